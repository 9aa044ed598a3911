//! `access-control-expose-headers`: which response headers a browser page may read.
//!
//! A browser hides every response header outside the CORS-safelisted few unless the response
//! exposes it, so a browser SDK reads `null` for its retry and request-id headers when a proxy
//! drops them from this list. The provider's own list is kept and ours is merged in; when the
//! provider sends none (and on the filter's own replies) ours is what the official browser
//! builds of `openai`, `@anthropic-ai/sdk` and `@google/genai` read.

/// The headers every official browser SDK reads (`openai` 6.49, `@anthropic-ai/sdk` 1.14 and
/// `@google/genai` 2.32): retry and backoff, request ids. Each provider's own (rate limits,
/// polling hints, upload state) are in its registry entry ([`crate::providers`]).
pub const COMMON_HEADERS: &[&str] = &[
    // Retry and backoff (all three SDKs; `x-should-retry` overrides their own retry rules).
    "retry-after",
    "retry-after-ms",
    "x-should-retry",
    // Request ids: OpenAI's `x-request-id` (also `request_id` in the SDK), Anthropic's
    // `request-id`.
    "x-request-id",
    "request-id",
];

/// The headers the official browser SDKs read, or hand to their users as the provider's
/// rate-limit state: [`COMMON_HEADERS`], then each provider's in registry order.
pub fn sdk_headers() -> impl Iterator<Item = &'static str> {
    COMMON_HEADERS.iter().copied().chain(
        crate::providers::TABLE
            .into_iter()
            .flat_map(|p| p.expose_headers.iter().copied()),
    )
}

/// [`sdk_headers`] as one header value (what the filter's own replies carry).
pub fn sdk_list() -> String {
    sdk_headers().collect::<Vec<_>>().join(", ")
}

/// The value for a response whose provider sent `provider` (every value of the header, joined
/// with `,`; `None` when absent).
///
/// - none or blank: [`sdk_headers`];
/// - a list holding `*`: kept as it is. The wildcard already exposes every header to requests
///   without credentials, the only kind the filter's CORS admits (it never sends
///   `access-control-allow-credentials`);
/// - any other list: kept as sent, followed by each of ours it does not already name
///   (names compare case-insensitively).
pub fn merged(provider: Option<&str>) -> String {
    let names: Vec<&str> = provider
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return sdk_list();
    }
    if names.contains(&"*") {
        return names.join(", ");
    }
    let mut out = names.join(", ");
    for ours in sdk_headers() {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(ours)) {
            out.push_str(", ");
            out.push_str(ours);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(value: &str) -> Vec<String> {
        value.split(',').map(|n| n.trim().to_string()).collect()
    }

    #[test]
    fn none_or_blank_gives_what_the_sdks_read() {
        for provider in [None, Some(""), Some(" , ")] {
            let value = merged(provider);
            assert_eq!(value, sdk_list());
            for needed in [
                "retry-after",
                "retry-after-ms",
                "x-should-retry",
                "x-request-id",
                "request-id",
                "x-ratelimit-remaining-requests",
                "anthropic-ratelimit-requests-remaining",
                "x-goog-upload-url",
                "x-goog-upload-status",
                "x-goog-upload-chunk-granularity",
            ] {
                assert!(names(&value).iter().any(|n| n == needed), "{needed}");
            }
        }
    }

    #[test]
    fn a_wildcard_is_kept_as_sent() {
        assert_eq!(merged(Some("*")), "*");
        assert_eq!(merged(Some("x-a, *")), "x-a, *");
    }

    #[test]
    fn a_provider_list_is_kept_first_and_ours_merged_once() {
        let value = merged(Some("X-Request-ID,openai-processing-ms, Retry-After"));
        let got = names(&value);
        assert_eq!(
            &got[..3],
            ["X-Request-ID", "openai-processing-ms", "Retry-After"]
        );
        // Case-insensitive: neither comes twice.
        assert_eq!(
            got.iter()
                .filter(|n| n.eq_ignore_ascii_case("x-request-id"))
                .count(),
            1
        );
        assert_eq!(
            got.iter()
                .filter(|n| n.eq_ignore_ascii_case("retry-after"))
                .count(),
            1
        );
        for ours in sdk_headers() {
            assert!(got.iter().any(|n| n.eq_ignore_ascii_case(ours)), "{ours}");
        }
    }

    #[test]
    fn every_name_is_a_lowercase_token() {
        for name in sdk_headers() {
            assert!(name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        }
    }
}
