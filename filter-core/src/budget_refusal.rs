//! The words of a `budget_exhausted` refusal: which budget (the token's own or its group's;
//! tokens, cost or tokens per minute; its period) and when it resets, in UTC. Kept apart from
//! [`crate::refusal`]'s fixed table because this message is built from the deny's details.

use ptk_wire::{BudgetDenial, BudgetKind, BudgetPeriod, BudgetScope};

/// `Retry-After` is sent only when the budget resets within this many seconds (a day): a
/// client told to sleep for weeks would rather hear it in the message.
pub const RETRY_AFTER_WITHIN_S: u64 = 86_400;

/// The message: e.g. "the token's daily token budget is exhausted; it resets at
/// 2026-11-30T00:00:00Z (UTC)". Without details (a token-service that sent none) a generic one.
pub fn budget_message(budget: Option<BudgetDenial>) -> String {
    let Some(b) = budget else {
        return "budget exhausted".to_owned();
    };
    let whose = match b.scope {
        BudgetScope::Token => "the token's",
        BudgetScope::Group => "the token's group's",
    };
    let what = match (b.kind, b.period) {
        (BudgetKind::Tpm, _) => "tokens-per-minute limit".to_owned(),
        (kind, period) => {
            let period = match period {
                BudgetPeriod::Minute => "per-minute",
                BudgetPeriod::Day => "daily",
                BudgetPeriod::Week => "weekly",
                BudgetPeriod::Month => "monthly",
            };
            let kind = if kind == BudgetKind::Cost {
                "cost"
            } else {
                "token"
            };
            format!("{period} {kind} budget")
        }
    };
    format!(
        "{whose} {what} is exhausted; it resets at {} (UTC)",
        utc_text(b.resets_at_s)
    )
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, Howard Hinnant's
/// `civil_from_days`); clamped to the year 9999. Wrapping operations only: the inputs are
/// bounded, and the filter must not panic on any value a peer sends.
pub fn utc_text(unix_s: u64) -> String {
    let s = unix_s.min(253_402_300_799);
    let (days, secs) = (s / 86_400, s % 86_400);
    let z = days.wrapping_add(719_468);
    let era = z / 146_097;
    let doe = z.wrapping_sub(era.wrapping_mul(146_097));
    let yoe = doe
        .wrapping_sub(doe / 1_460)
        .wrapping_add(doe / 36_524)
        .wrapping_sub(doe / 146_096)
        / 365;
    let doy = doe.wrapping_sub(
        yoe.wrapping_mul(365)
            .wrapping_add(yoe / 4)
            .wrapping_sub(yoe / 100),
    );
    let mp = doy.wrapping_mul(5).wrapping_add(2) / 153;
    let day = doy
        .wrapping_sub(mp.wrapping_mul(153).wrapping_add(2) / 5)
        .wrapping_add(1);
    let month = if mp < 10 {
        mp.wrapping_add(3)
    } else {
        mp.wrapping_sub(9)
    };
    let year = yoe
        .wrapping_add(era.wrapping_mul(400))
        .wrapping_add(u64::from(month <= 2));
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]
    use super::*;

    #[test]
    fn utc_text_is_right_at_the_edges() {
        assert_eq!(utc_text(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_text(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_text(1_795_996_800), "2026-11-30T00:00:00Z");
        assert_eq!(utc_text(1_798_761_599), "2026-12-31T23:59:59Z");
        assert_eq!(utc_text(1_798_761_600), "2027-01-01T00:00:00Z");
        assert_eq!(utc_text(u64::MAX), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn the_message_names_the_budget_and_its_reset() {
        let b = BudgetDenial {
            scope: BudgetScope::Group,
            kind: BudgetKind::Cost,
            period: BudgetPeriod::Month,
            resets_at_s: 1_798_761_600,
        };
        assert_eq!(
            budget_message(Some(b)),
            "the token's group's monthly cost budget is exhausted; it resets at \
             2027-01-01T00:00:00Z (UTC)"
        );
        let tpm = BudgetDenial {
            scope: BudgetScope::Token,
            kind: BudgetKind::Tpm,
            period: BudgetPeriod::Minute,
            ..b
        };
        assert!(budget_message(Some(tpm)).starts_with("the token's tokens-per-minute limit"));
        assert_eq!(budget_message(None), "budget exhausted");
    }
}
