//! The wire protocol's version: `MAJOR.MINOR`, sent by the filter on every call to the
//! token-service in [`WIRE_VERSION_HEADER`] and echoed by the token-service on its answers.
//!
//! **Rule**: a minor version only adds what an older reader may ignore (fields are tolerated
//! both ways), so any `1.x` filter works with any `1.y` token-service. A new major version
//! changes a meaning; the token-service refuses a major it does not speak with `400` and
//! [`UNSUPPORTED_WIRE_VERSION`], which the filter, like any non-`200`, turns into a `503` in
//! the provider's shape (never forward). A call without the header (a filter older than the
//! header) is taken as `1.0`.

/// Header carrying the sender's wire version (`MAJOR.MINOR`).
pub const WIRE_VERSION_HEADER: &str = "x-ptk-wire-version";

/// The major version this build speaks.
pub const WIRE_MAJOR: u32 = 1;

/// The version this build sends: `MAJOR.MINOR`.
pub const WIRE_VERSION: &str = "1.2";

/// Error code of the token-service's refusal of a major version it does not speak.
pub const UNSUPPORTED_WIRE_VERSION: &str = "unsupported_wire_version";

/// The major version of a `MAJOR.MINOR` (or bare `MAJOR`) value; `None` when it is neither.
pub fn wire_major(value: &str) -> Option<u32> {
    let (major, minor) = value.split_once('.').unwrap_or((value, "0"));
    let digits = |s: &str| !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return None;
    }
    major.parse().ok()
}

/// True when a peer sending `value` (or nothing: an older filter) speaks a major this build
/// understands.
pub fn wire_compatible(value: Option<&str>) -> bool {
    value.is_none_or(|v| wire_major(v.trim()) == Some(WIRE_MAJOR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_version_is_compatible() {
        assert_eq!(wire_major(WIRE_VERSION), Some(WIRE_MAJOR));
        assert!(wire_compatible(Some(WIRE_VERSION)));
    }

    #[test]
    fn minor_versions_and_missing_header_are_accepted() {
        assert!(wire_compatible(None));
        assert!(wire_compatible(Some("1.7")));
        assert!(wire_compatible(Some("1")));
    }

    #[test]
    fn other_majors_and_garbage_are_refused() {
        for v in [
            "2.0",
            "0.9",
            "",
            "1.",
            ".1",
            "one",
            "1.0.0",
            "-1.0",
            "99999999999.0",
        ] {
            assert!(!wire_compatible(Some(v)), "{v}");
        }
    }
}
