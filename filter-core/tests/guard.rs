//! Issue 10 item 4: after the rewrite the plaintext token is nowhere in what goes upstream.
//! (a) The strip knows every spelling that clearly means a credential parameter; (b) the final
//! guard refuses, with 400 in the provider's shape, whatever still carries a proxy token, on
//! both forward paths (fresh check and cached verdict).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::{anywhere, config, head, run, Outcome};
use ptk_filter_core::{
    decide_check_response, decide_headers, CheckDecision, FilterConfig, HeadersDecision, Refusal,
    RequestHead,
};
use serde_json::Value;

const TOKEN: &str = "ptk_SENTINEL_guard_000000000000000";
const OTHER: &str = "ptk_SENTINEL_second_11111111111111";
const KEY: &str = "sk-REAL-key-for-the-guard";
const NOW: u64 = 1_800_000_000_000;

fn default() -> FilterConfig {
    FilterConfig::parse(b"").unwrap()
}

fn forwarded(h: &RequestHead) -> Vec<(String, String)> {
    match run(&default(), h, KEY) {
        Outcome::Forwarded(up) => up,
        other => panic!("not forwarded: {other:?}"),
    }
}

fn refused(h: &RequestHead) -> ptk_filter_core::Refused {
    match run(&default(), h, KEY) {
        Outcome::Refused(r) => r,
        Outcome::Forwarded(up) => panic!("forwarded: {up:?}"),
        Outcome::Passthrough(up) | Outcome::Secret(up) => panic!("passed through: {up:?}"),
    }
}

/// Every spelling a lenient server reads as `key` (or another credential parameter) is
/// stripped, so the request is forwarded clean rather than refused.
#[test]
fn credential_parameters_are_stripped_under_every_spelling() {
    let spellings = [
        "key",
        "KEY",
        "Key",
        "key[]",
        "key%5B%5D",
        "key[0]",
        "key%00",
        "$key",
        "%24key",
        "%6Bey",
        "k%65y",
        "%256Bey",
        "key%20",
        "+key",
        "access_token",
        "ACCESS_TOKEN",
        "oauth_token",
        "api_key",
        "api-key",
        "apikey",
        "API_KEY",
    ];
    for name in spellings {
        for sep in ['&', ';'] {
            let path = format!("/v1beta/models/m:generateContent?alt=sse{sep}{name}={TOKEN}&x=1");
            let h = head(&[(":path", &path), ("x-goog-api-key", TOKEN)]);
            let up = forwarded(&h);
            assert!(!anywhere(&up, TOKEN), "{path}: {up:?}");
            let path = up
                .iter()
                .find(|(n, _)| n == ":path")
                .map(|(_, v)| v.as_str());
            assert_eq!(
                path,
                Some("/v1beta/models/m:generateContent?alt=sse&x=1"),
                "{name}"
            );
        }
    }
}

/// A token the strip cannot know about is refused: 400, provider's shape, never forwarded.
#[test]
fn whatever_still_carries_a_token_is_refused_with_400() {
    let enc = TOKEN.replace('_', "%5F");
    let double = TOKEN.replace('_', "%255F");
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("another header", vec![("x-debug", TOKEN.into())]),
        (
            "inside another header's text",
            vec![("x-note", format!("copy of {TOKEN} here"))],
        ),
        (
            "a referer with the token",
            vec![("referer", format!("https://app/?key={TOKEN}"))],
        ),
        (
            "a cookie",
            vec![("cookie", format!("session=abc; t={TOKEN}"))],
        ),
        (
            "upper-cased elsewhere",
            vec![("x-debug", TOKEN.to_uppercase())],
        ),
        (
            "percent-encoded in a header",
            vec![("x-debug", enc.clone())],
        ),
        (
            "a path segment",
            vec![(":path", format!("/v1/chat/{TOKEN}/completions"))],
        ),
        (
            "an encoded path segment",
            vec![(":path", format!("/v1/chat/{enc}"))],
        ),
        (
            "a double-encoded path segment",
            vec![(":path", format!("/v1/chat/{double}"))],
        ),
        (
            "an unknown query name",
            vec![(":path", format!("/v1/chat?foo={TOKEN}"))],
        ),
        (
            "a matrix parameter",
            vec![(":path", format!("/v1/chat;key={TOKEN}"))],
        ),
        (
            "after a fragment",
            vec![(":path", format!("/v1/chat?a=1#key={TOKEN}"))],
        ),
        (
            "a second token from another slot, elsewhere",
            vec![
                (":path", format!("/v1/chat?key={OTHER}")),
                ("x-debug", OTHER.into()),
            ],
        ),
        (
            "a subprotocol token, elsewhere",
            vec![
                (
                    "sec-websocket-protocol",
                    format!("realtime, openai-insecure-api-key.{OTHER}"),
                ),
                ("x-debug", OTHER.into()),
            ],
        ),
        (
            "the second token of a repeated slot, elsewhere",
            vec![
                ("x-debug", OTHER.into()),
                ("x-api-key", String::new()),
                ("x-api-key", OTHER.into()),
            ],
        ),
    ];
    for (name, extra) in cases {
        let bearer = format!("Bearer {TOKEN}");
        let mut pairs: Vec<(&str, &str)> = vec![("authorization", &bearer)];
        let has_path = extra.iter().any(|(n, _)| *n == ":path");
        if !has_path {
            pairs.push((":path", "/v1/chat/completions"));
        }
        pairs.extend(extra.iter().map(|(n, v)| (*n, v.as_str())));
        let h = head(&pairs);
        let r = refused(&h);
        assert_eq!(r.refusal, Refusal::TokenInRequest, "{name}");
        assert_eq!(r.reply.status, 400, "{name}");
        let body: Value = serde_json::from_slice(&r.reply.body).unwrap();
        assert_eq!(body["error"]["code"], "proxy_token_in_request", "{name}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{name}");
        assert!(
            !String::from_utf8_lossy(&r.reply.body).contains(TOKEN),
            "{name}: echoed"
        );
    }
}

#[test]
fn refusals_come_in_each_providers_shape_and_plain_text_on_handshakes() {
    let leak = ("x-debug", TOKEN);
    let anthropic = head(&[(":path", "/v1/messages"), ("x-api-key", TOKEN), leak]);
    let body: Value = serde_json::from_slice(&refused(&anthropic).reply.body).unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let gemini = head(&[
        (":path", "/v1beta/models/m:generateContent"),
        ("x-goog-api-key", TOKEN),
        leak,
    ]);
    let body: Value = serde_json::from_slice(&refused(&gemini).reply.body).unwrap();
    assert_eq!(body["error"]["code"], 400);
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    let bearer = format!("Bearer {TOKEN}");
    let ws = head(&[
        (":path", "/v1/realtime"),
        ("upgrade", "websocket"),
        ("authorization", &bearer),
        leak,
    ]);
    let r = refused(&ws).reply;
    assert_eq!(r.status, 400);
    assert!(r
        .body
        .starts_with(b"proxy token found outside its auth slot"));
    assert!(r
        .headers
        .iter()
        .any(|(n, v)| n == "content-type" && v.starts_with("text/plain")));
}

/// The fresh-check path refuses too, and still hands back the verdict to cache (the token is
/// fine; this request is not).
#[test]
fn the_fresh_check_path_refuses_and_keeps_the_verdict() {
    let config = default();
    let bearer = format!("Bearer {TOKEN}");
    let h = head(&[
        (":path", &format!("/v1/chat?KEY%5B%5D={TOKEN}&foo={TOKEN}")),
        ("authorization", &bearer),
    ]);
    let HeadersDecision::Check(pending) = decide_headers(&config, &h) else {
        panic!("expected a check");
    };
    let allow =
        br#"{"verdict":"allow","key":"sk-REAL","cache_ttl_ms":500,"lease":{"units":4,"window":1}}"#;
    match decide_check_response(&config, &h, &pending, Some(200), Some(allow), NOW) {
        CheckDecision::Refuse { refused, cache } => {
            assert_eq!(refused.refusal, Refusal::TokenInRequest);
            assert_eq!(cache.unwrap().units, 4);
        }
        other => panic!("expected a guard refusal, got {other:?}"),
    }
}

/// Normal traffic is never refused: short credential values, empty slots, ordinary headers,
/// the same token in two slots that are both stripped.
#[test]
fn ordinary_requests_pass_the_guard() {
    let bearer = format!("Bearer {TOKEN}");
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![
            (":path", "/v1/chat/completions"),
            ("authorization", &bearer),
            ("content-type", "application/json"),
            ("user-agent", "OpenAI/Python 3.57.0"),
            ("x-api-key", ""),
            ("x-goog-api-key", "short"),
        ],
        vec![
            (":path", "/v1/chat?key=abc&alt=sse"),
            ("authorization", &bearer),
            ("x-stainless-os", "Linux"),
        ],
        vec![
            (":path", "/v1/messages"),
            ("x-api-key", TOKEN),
            ("authorization", &bearer),
            ("anthropic-version", "2023-06-01"),
        ],
        vec![
            (":path", "/v1/chat"),
            ("authorization", &bearer),
            ("authorization", "Basic dXNlcg=="),
        ],
    ];
    for pairs in cases {
        let up = forwarded(&head(&pairs));
        assert!(!anywhere(&up, TOKEN));
    }
}

#[test]
fn operator_headers_and_the_real_key_are_not_mistaken_for_tokens() {
    let c = config(
        r#"{"providers":{"openai":{"request_headers":{"openai-organization":"org-operator-000000"}}}}"#,
    );
    let bearer = format!("Bearer {TOKEN}");
    let h = head(&[(":path", "/v1/chat"), ("authorization", &bearer)]);
    match run(&c, &h, KEY) {
        Outcome::Forwarded(up) => {
            assert!(up.contains(&("openai-organization".into(), "org-operator-000000".into())))
        }
        other => panic!("{other:?}"),
    }
}

/// The search costs values × bytes: a request with more distinct credential values than any
/// client sends is refused rather than searched.
#[test]
fn too_many_credential_values_are_refused_not_searched() {
    let bearer = format!("Bearer {TOKEN}");
    let mut pairs: Vec<(String, String)> = vec![
        (":path".into(), "/v1/chat/completions".into()),
        ("authorization".into(), bearer),
    ];
    let few: Vec<(String, String)> = (0..30)
        .map(|i| ("x-api-key".into(), format!("junk-value-{i:04}-xx")))
        .collect();
    let many: Vec<(String, String)> = (0..40)
        .map(|i| ("x-api-key".into(), format!("junk-value-{i:04}-xx")))
        .collect();
    // x-api-key outranks Bearer, so put the filler after an empty first x-api-key.
    pairs.insert(1, ("x-api-key".into(), String::new()));
    let with = |extra: &[(String, String)]| {
        let mut all = pairs.clone();
        all.extend_from_slice(extra);
        RequestHead::new(all)
    };
    match run(&default(), &with(&few), KEY) {
        Outcome::Forwarded(up) => assert!(!anywhere(&up, TOKEN)),
        other => panic!("30 values: {other:?}"),
    }
    assert_eq!(refused(&with(&many)).refusal, Refusal::TokenInRequest);
}
