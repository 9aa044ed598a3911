//! Timestamps and expiry: one stored format everywhere (RFC 3339, UTC, milliseconds, `Z`), one
//! display format for people (the CLI table, the dashboard), and the fail-closed reading of a
//! stored expiry.

use chrono::{DateTime, SecondsFormat, Utc};

/// Formats a time the way every stored timestamp looks: `2026-07-08T12:00:00.000Z`.
pub fn format_timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The current time in the stored format.
pub fn now_timestamp() -> String {
    format_timestamp(Utc::now())
}

/// A stored timestamp as people read it, to the minute in UTC: `2026-07-08T12:00:00.000Z` ->
/// `2026-07-08 12:00 UTC`. Text that does not parse is shown as stored.
pub fn display_time(stored: &str) -> String {
    DateTime::parse_from_rfc3339(stored).map_or_else(
        |_| stored.to_owned(),
        |at| {
            at.with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M UTC")
                .to_string()
        },
    )
}

/// Why an operator-typed expiry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid expiry {0:?}: expected RFC 3339 with Z or an offset, e.g. 2030-01-01T00:00:00Z, or `never`")]
pub struct ExpiryInputError(pub String);

/// Parses an operator-typed expiry: RFC 3339 with `Z` or an explicit offset (an offset-less
/// time would be read in the server's zone, not the operator's), normalised to UTC with ms.
/// Blank or `never` means "no expiry". Past times are accepted: they make an expired token.
pub fn parse_expiry_input(raw: &str) -> Result<Option<String>, ExpiryInputError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    DateTime::parse_from_rfc3339(trimmed)
        .map(|at| Some(format_timestamp(at.with_timezone(&Utc))))
        .map_err(|_| ExpiryInputError(trimmed.to_owned()))
}

/// What a stored expiry means at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryState {
    /// No expiry (absent or empty).
    Never,
    /// Expires later; carries the expiry instant.
    Until(DateTime<Utc>),
    /// The expiry is at or before the instant asked about.
    Expired,
    /// The stored text does not parse: the token must fail closed (treated as invalid).
    Unparseable,
}

/// Reads a stored expiry at `now`. Expiry exactly at `now` is already expired, and an
/// unparseable value never compares as "still valid" (the original guarded against NaN
/// comparisons failing open; here the type makes the case explicit).
pub fn expiry_state(stored: Option<&str>, now: DateTime<Utc>) -> ExpiryState {
    let text = match stored.map(str::trim) {
        None | Some("") => return ExpiryState::Never,
        Some(text) => text,
    };
    match DateTime::parse_from_rfc3339(text) {
        Err(_) => ExpiryState::Unparseable,
        Ok(at) if at <= now => ExpiryState::Expired,
        Ok(at) => ExpiryState::Until(at.with_timezone(&Utc)),
    }
}

/// How long the filter may cache an allow: the configured TTL, but never past the expiry.
pub fn cap_cache_ttl(ttl_ms: u64, expires: Option<DateTime<Utc>>, now: DateTime<Utc>) -> u64 {
    match expires {
        None => ttl_ms,
        Some(at) => {
            let left = (at - now).num_milliseconds();
            ttl_ms.min(u64::try_from(left).unwrap_or(0))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use chrono::{Duration, TimeZone as _};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 7, 8, 12, 0, 0).unwrap()
    }

    #[test]
    fn display_time_is_minutes_in_utc_or_the_text_as_stored() {
        assert_eq!(
            display_time(&format_timestamp(t0())),
            "2026-07-08 12:00 UTC"
        );
        assert_eq!(
            display_time("2026-07-08T14:30:59+02:00"),
            "2026-07-08 12:30 UTC"
        );
        assert_eq!(display_time("soon"), "soon");
    }

    #[test]
    fn timestamps_have_ms_and_z() {
        assert_eq!(format_timestamp(t0()), "2026-07-08T12:00:00.000Z");
        let now = now_timestamp();
        assert!(now.ends_with('Z') && now.len() == 24, "{now}");
    }

    #[test]
    fn expiry_input_is_normalised_to_utc() {
        assert_eq!(
            parse_expiry_input(" 2030-01-01T02:00:00+02:00 ").unwrap(),
            Some("2030-01-01T00:00:00.000Z".into())
        );
        assert_eq!(
            parse_expiry_input("2030-01-01T00:00:00.5z").unwrap(),
            Some("2030-01-01T00:00:00.500Z".into())
        );
        assert_eq!(parse_expiry_input("never").unwrap(), None);
        assert_eq!(parse_expiry_input("  ").unwrap(), None);
        assert!(parse_expiry_input("2030-01-01T00:00").is_err());
        assert!(parse_expiry_input("2030-01-01").is_err());
        assert!(parse_expiry_input("not-a-date").is_err());
        // Past values are fine: they make an already-expired token.
        assert!(parse_expiry_input("2000-01-01T00:00:00Z")
            .unwrap()
            .is_some());
    }

    #[test]
    fn stored_expiry_states() {
        let now = t0();
        assert_eq!(expiry_state(None, now), ExpiryState::Never);
        assert_eq!(expiry_state(Some(""), now), ExpiryState::Never);
        assert_eq!(
            expiry_state(Some("2026-07-08T12:00:00.000Z"), now),
            ExpiryState::Expired,
            "expiry exactly now is expired"
        );
        assert_eq!(
            expiry_state(Some("2026-07-08T11:59:59.999Z"), now),
            ExpiryState::Expired
        );
        assert_eq!(
            expiry_state(Some("2026-07-08T12:00:00.001Z"), now),
            ExpiryState::Until(now + Duration::milliseconds(1))
        );
        assert_eq!(
            expiry_state(Some("tomorrow"), now),
            ExpiryState::Unparseable
        );
        assert_eq!(
            expiry_state(Some("2026-13-40T00:00:00Z"), now),
            ExpiryState::Unparseable
        );
    }

    #[test]
    fn cache_ttl_never_outlives_the_token() {
        let now = t0();
        assert_eq!(cap_cache_ttl(1000, None, now), 1000);
        assert_eq!(
            cap_cache_ttl(1000, Some(now + Duration::milliseconds(250)), now),
            250
        );
        assert_eq!(
            cap_cache_ttl(1000, Some(now + Duration::hours(1)), now),
            1000
        );
        assert_eq!(
            cap_cache_ttl(1000, Some(now - Duration::seconds(1)), now),
            0
        );
        assert_eq!(cap_cache_ttl(0, Some(now + Duration::hours(1)), now), 0);
    }
}
