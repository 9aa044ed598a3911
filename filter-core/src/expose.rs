//! `access-control-expose-headers`: which response headers a browser page may read.
//!
//! A browser hides every response header outside the CORS-safelisted few unless the response
//! exposes it, so a browser SDK reads `null` for its retry and request-id headers when a proxy
//! drops them from this list. The provider's own list is kept and ours is merged in; when the
//! provider sends none (and on the filter's own replies) ours is what the official browser
//! builds of `openai`, `@anthropic-ai/sdk` and `@google/genai` read.

/// The headers the official browser SDKs read, or hand to their users as the provider's
/// rate-limit state (found in `openai` 6.49, `@anthropic-ai/sdk` 1.14 and `@google/genai` 2.32):
/// retry and backoff, request ids, OpenAI's polling hint, both providers' rate-limit headers,
/// and Gemini's resumable-upload headers.
pub const SDK_HEADERS: &[&str] = &[
    // Retry and backoff (all three SDKs; `x-should-retry` overrides their own retry rules).
    "retry-after",
    "retry-after-ms",
    "x-should-retry",
    // Request ids: OpenAI's `x-request-id` (also `request_id` in the SDK), Anthropic's
    // `request-id`.
    "x-request-id",
    "request-id",
    // OpenAI's poll interval for `createAndPoll` / `uploadAndPoll` helpers.
    "openai-poll-after-ms",
    // OpenAI rate limits.
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    // Anthropic rate limits (Anthropic itself sends `*`, which is kept as it is).
    "anthropic-ratelimit-requests-limit",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-limit",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-limit",
    "anthropic-ratelimit-input-tokens-remaining",
    "anthropic-ratelimit-input-tokens-reset",
    "anthropic-ratelimit-output-tokens-limit",
    "anthropic-ratelimit-output-tokens-remaining",
    "anthropic-ratelimit-output-tokens-reset",
    // Gemini resumable uploads (the browser SDK reads the URL and the status).
    "x-goog-upload-url",
    "x-goog-upload-control-url",
    "x-goog-upload-status",
    "x-goog-upload-chunk-granularity",
    "x-goog-upload-size-received",
];

/// [`SDK_HEADERS`] as one header value (what the filter's own replies carry).
pub fn sdk_list() -> String {
    SDK_HEADERS.join(", ")
}

/// The value for a response whose provider sent `provider` (every value of the header, joined
/// with `,`; `None` when absent).
///
/// - none or blank: [`SDK_HEADERS`];
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
    for ours in SDK_HEADERS {
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
        for ours in SDK_HEADERS {
            assert!(got.iter().any(|n| n.eq_ignore_ascii_case(ours)), "{ours}");
        }
    }

    #[test]
    fn every_name_is_a_lowercase_token() {
        for name in SDK_HEADERS {
            assert!(name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        }
    }
}
