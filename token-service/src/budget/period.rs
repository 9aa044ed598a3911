//! Budget periods on the UTC calendar: the id a period's spend is kept under (`2026-11-29`,
//! `2026-W48`, `2026-11`, `2026-11-29T10:05`) and when it ends. Calendar periods, not rolling
//! windows: "what is left this month" has one answer, and every replica agrees on it.

use chrono::{DateTime, Datelike as _, Duration, NaiveDate, TimeZone as _, Timelike as _, Utc};
use ptk_wire::BudgetPeriod;

/// The id of the period that contains `now` (sorts like time within one kind of period).
pub fn period_id(period: BudgetPeriod, now: DateTime<Utc>) -> String {
    let format = match period {
        BudgetPeriod::Minute => "%Y-%m-%dT%H:%M",
        BudgetPeriod::Day => "%Y-%m-%d",
        // The ISO week-based year: 2027-01-01 (a Friday) is in 2026-W53.
        BudgetPeriod::Week => "%G-W%V",
        BudgetPeriod::Month => "%Y-%m",
    };
    now.format(format).to_string()
}

/// The instant the period containing `now` ends (the next one's first instant).
pub fn period_end(period: BudgetPeriod, now: DateTime<Utc>) -> DateTime<Utc> {
    let day_start = |d: NaiveDate| Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN));
    let today = now.date_naive();
    match period {
        BudgetPeriod::Minute => {
            let minute = now
                .with_second(0)
                .and_then(|t| t.with_nanosecond(0))
                .unwrap_or(now);
            minute + Duration::minutes(1)
        }
        BudgetPeriod::Day => day_start(today) + Duration::days(1),
        BudgetPeriod::Week => {
            let since_monday = i64::from(today.weekday().num_days_from_monday());
            day_start(today) + Duration::days(7 - since_monday)
        }
        BudgetPeriod::Month => {
            let (year, month) = if today.month() == 12 {
                (today.year() + 1, 1)
            } else {
                (today.year(), today.month() + 1)
            };
            NaiveDate::from_ymd_opt(year, month, 1).map_or(now, day_start)
        }
    }
}

/// Milliseconds from `now` to the end of its period (at least 1).
pub fn ms_to_end(period: BudgetPeriod, now: DateTime<Utc>) -> u64 {
    let left = period_end(period, now) - now;
    u64::try_from(left.num_milliseconds()).unwrap_or(0).max(1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use BudgetPeriod::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn ids_and_ends_at_the_edges_of_each_period() {
        let cases = [
            // (instant, period, id, end)
            (
                "2026-11-29T10:05:59.999Z",
                Minute,
                "2026-11-29T10:05",
                "2026-11-29T10:06:00Z",
            ),
            (
                "2026-11-29T10:06:00Z",
                Minute,
                "2026-11-29T10:06",
                "2026-11-29T10:07:00Z",
            ),
            (
                "2026-11-29T23:59:59.999Z",
                Day,
                "2026-11-29",
                "2026-11-30T00:00:00Z",
            ),
            (
                "2026-11-30T00:00:00Z",
                Day,
                "2026-11-30",
                "2026-12-01T00:00:00Z",
            ),
            // Sunday night is still the week that began on Monday 23 November.
            (
                "2026-11-29T23:59:59Z",
                Week,
                "2026-W48",
                "2026-11-30T00:00:00Z",
            ),
            (
                "2026-11-30T00:00:00Z",
                Week,
                "2026-W49",
                "2026-12-07T00:00:00Z",
            ),
            // ISO weeks cross years: 2027-01-01 is a Friday of 2026-W53.
            (
                "2027-01-01T12:00:00Z",
                Week,
                "2026-W53",
                "2027-01-04T00:00:00Z",
            ),
            (
                "2026-11-30T23:59:59.999Z",
                Month,
                "2026-11",
                "2026-12-01T00:00:00Z",
            ),
            (
                "2026-12-31T23:59:59Z",
                Month,
                "2026-12",
                "2027-01-01T00:00:00Z",
            ),
            (
                "2028-02-29T08:00:00Z",
                Month,
                "2028-02",
                "2028-03-01T00:00:00Z",
            ),
        ];
        for (now, period, id, end) in cases {
            assert_eq!(period_id(period, at(now)), id, "{now} {period:?}");
            assert_eq!(period_end(period, at(now)), at(end), "{now} {period:?}");
        }
        assert_eq!(ms_to_end(Day, at("2026-11-29T23:59:59.999Z")), 1);
        assert_eq!(ms_to_end(Minute, at("2026-11-29T10:05:00Z")), 60_000);
    }
}
