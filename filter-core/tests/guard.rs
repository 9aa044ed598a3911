//! Issue 10 item 4: after the rewrite the plaintext token is nowhere in what goes upstream.
//! (a) The strip knows every spelling that clearly means a credential parameter; (b) the final
//! guard refuses, with 400 in the provider's shape, whatever still carries a proxy token, on
//! both forward paths (fresh check and cached verdict).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::{anywhere, config, head, run, run_on, Outcome};
use ptk_filter_core::key_pool::first_key;
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
        Outcome::Passthrough(up) | Outcome::Secret(up) | Outcome::Leg(up) => {
            panic!("passed through: {up:?}")
        }
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
    match decide_check_response(
        &config,
        &h,
        &pending,
        Some(200),
        Some(allow),
        NOW,
        first_key,
    ) {
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

// --- generated tokens outside any slot, on every forwarding path -----------------------------

/// A generated token (`ptk_` and 32 URL-safe characters) that is in no credential slot: the
/// guard only knows slot values by their value, so it knows a generated token by its shape.
const STRAY: &str = "ptk_Zx9-stray_generated_012345678901";
const LIVE: &str =
    "//ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained";
const EPH: &str = "auth_tokens/cd02d243f0cc8cc2d2aa5d0295e927b6";
const SECRET: &str = "ek_68af296e8e408191a1120ab6383263c2";
const UPLOAD: &str = "/upload/v1beta/files?upload_id=AUx1&upload_protocol=resumable";

fn pass_through_on() -> FilterConfig {
    config(r#"{"ephemeral":{"pass_through":true}}"#)
}

/// One place a stray token can be put: its name, extra headers and a path suffix.
type Place = (&'static str, Vec<(&'static str, String)>, String);

/// Every place outside the slots a stray token can be put, as extra headers and a path
/// suffix (appended to the request's own path).
fn stray_places() -> Vec<Place> {
    assert_eq!(STRAY.len(), 4 + 32);
    let enc = STRAY.replace('_', "%5F");
    let double = STRAY.replace('_', "%255F").replace('-', "%252D");
    vec![
        (
            "another header",
            vec![("x-debug", STRAY.into())],
            String::new(),
        ),
        (
            "a cookie",
            vec![("cookie", format!("a=1; b={STRAY}"))],
            String::new(),
        ),
        (
            "upper-cased",
            vec![("x-debug", STRAY.to_uppercase())],
            String::new(),
        ),
        (
            "a header name",
            vec![("x-ptk_zx9-stray_generated_012345678901", "1".into())],
            String::new(),
        ),
        (
            "encoded in a header",
            vec![("x-debug", enc.clone())],
            String::new(),
        ),
        (
            "a subprotocol entry",
            vec![("sec-websocket-protocol", format!("realtime, {STRAY}"))],
            String::new(),
        ),
        ("a query value", Vec::new(), format!("&x={STRAY}")),
        ("an encoded query value", Vec::new(), format!("&x={enc}")),
        (
            "a twice-encoded query value",
            Vec::new(),
            format!("&x={double}"),
        ),
        ("a matrix parameter", Vec::new(), format!(";t={STRAY}")),
    ]
}

fn with_stray(
    path: &str,
    pairs: &[(&str, &str)],
    extra: &[(&str, String)],
    suffix: &str,
) -> RequestHead {
    let path = if suffix.starts_with('&') && !path.contains('?') {
        format!("{path}?a=1{suffix}")
    } else {
        format!("{path}{suffix}")
    };
    let mut all: Vec<(&str, &str)> = vec![(":path", &path), (":authority", "127.0.0.1:10000")];
    all.extend_from_slice(pairs);
    all.extend(extra.iter().map(|(n, v)| (*n, v.as_str())));
    head(&all)
}

fn assert_guard_refused(outcome: Outcome, name: &str) -> ptk_filter_core::Refused {
    match outcome {
        Outcome::Refused(r) => {
            assert_eq!(r.refusal, Refusal::TokenInRequest, "{name}");
            assert_eq!(r.reply.status, 400, "{name}");
            assert!(
                !String::from_utf8_lossy(&r.reply.body).contains(STRAY),
                "{name}: echoed"
            );
            r
        }
        other => panic!("{name}: not refused: {other:?}"),
    }
}

/// Finding 2: a second generated token outside any slot, on the normal path (fresh check and
/// cached verdict), next to a generated or a custom token.
#[test]
fn a_generated_token_outside_any_slot_is_refused_on_the_normal_path() {
    for token in [TOKEN, "my own custom proxy token"] {
        let bearer = format!("Bearer {token}");
        for (name, extra, suffix) in stray_places() {
            let h = with_stray(
                "/v1/chat/completions",
                &[("authorization", &bearer)],
                &extra,
                &suffix,
            );
            for fresh in [false, true] {
                let r = assert_guard_refused(run_on(&default(), &h, KEY, fresh), name);
                let body: Value = serde_json::from_slice(&r.reply.body).unwrap();
                assert_eq!(body["error"]["code"], "proxy_token_in_request", "{name}");
            }
        }
    }
}

/// Finding 2: with the pass-through on, a Gemini Live handshake whose slots hold only Google
/// tokens is still refused when a generated proxy token is anywhere else (plain text: it is a
/// handshake); the same handshake without it passes.
#[test]
fn the_ephemeral_pass_through_refuses_a_generated_token_anywhere_else() {
    let upgrade = [("upgrade", "websocket"), ("connection", "Upgrade")];
    let token_header = format!("Token {EPH}");
    let forms: [(String, Vec<(&str, &str)>); 2] = [
        (format!("{LIVE}?access_token={EPH}"), upgrade.to_vec()),
        (
            LIVE.to_string(),
            [
                &upgrade[..],
                &[
                    ("authorization", token_header.as_str()),
                    ("x-goog-api-key", EPH),
                ][..],
            ]
            .concat(),
        ),
    ];
    for (path, pairs) in &forms {
        let clean = with_stray(path, pairs, &[], "");
        assert!(
            matches!(
                run(&pass_through_on(), &clean, KEY),
                Outcome::Passthrough(_)
            ),
            "{path}"
        );
        for (name, extra, suffix) in stray_places() {
            let h = with_stray(path, pairs, &extra, &suffix);
            if suffix.starts_with(';') && path.contains("access_token=") {
                // `access_token=auth_tokens/…;t=ptk_…` is one value to a server that splits
                // on `&`: no Google token alone, so no pass-through; and no proxy token in a
                // slot either (401). Refused all the same.
                match run(&pass_through_on(), &h, KEY) {
                    Outcome::Refused(r) => assert_eq!(r.refusal, Refusal::MissingToken, "{name}"),
                    other => panic!("{name}: not refused: {other:?}"),
                }
                continue;
            }
            let r = assert_guard_refused(run(&pass_through_on(), &h, KEY), name);
            assert!(
                r.reply
                    .body
                    .starts_with(b"proxy token found outside its auth slot"),
                "{name}"
            );
        }
    }
}

/// Finding 2: a use of an OpenAI client secret (the WebRTC `POST`, a handshake) is refused
/// when a generated proxy token is anywhere else: OpenAI's shape, plain text on a handshake.
#[test]
fn client_secret_uses_refuse_a_generated_token_anywhere_else() {
    let bearer = format!("Bearer {SECRET}");
    let post = [(":method", "POST"), ("authorization", bearer.as_str())];
    let clean = with_stray("/v1/realtime/calls", &post, &[], "");
    assert!(matches!(
        run(&pass_through_on(), &clean, KEY),
        Outcome::Secret(_)
    ));
    for (name, extra, suffix) in stray_places() {
        if suffix.starts_with(';') {
            continue; // `/v1/realtime/calls;t=…` is not a Realtime path: an unknown token.
        }
        let h = with_stray("/v1/realtime/calls", &post, &extra, &suffix);
        let r = assert_guard_refused(run(&pass_through_on(), &h, KEY), name);
        let body: Value = serde_json::from_slice(&r.reply.body).unwrap();
        assert_eq!(body["error"]["code"], "proxy_token_in_request", "{name}");
    }
    let ws = [
        (":method", "GET"),
        ("upgrade", "websocket"),
        ("authorization", bearer.as_str()),
    ];
    let h = with_stray("/v1/realtime", &ws, &[("x-debug", STRAY.into())], "");
    let r = assert_guard_refused(run(&pass_through_on(), &h, KEY), "handshake");
    assert!(r
        .reply
        .body
        .starts_with(b"proxy token found outside its auth slot"));
}

/// Finding 2: a keyless upload leg is refused (Gemini's shape) when a generated proxy token
/// is anywhere in it, or a value from one of its slots (all emptied) is anywhere else.
#[test]
fn upload_legs_refuse_a_generated_token_or_a_slot_value_anywhere_else() {
    let put = [(":method", "PUT"), ("x-goog-upload-command", "upload")];
    let clean = with_stray(UPLOAD, &put, &[], "");
    assert!(matches!(run(&default(), &clean, KEY), Outcome::Leg(_)));
    for (name, extra, suffix) in stray_places() {
        let h = with_stray(UPLOAD, &put, &extra, &suffix);
        if name == "a subprotocol entry" {
            // A leg is no handshake: its offer is removed whole, stray token and all.
            let Outcome::Leg(up) = run(&default(), &h, KEY) else {
                panic!("{name}: not forwarded");
            };
            assert!(!anywhere(&up, STRAY));
            continue;
        }
        let r = assert_guard_refused(run(&default(), &h, KEY), name);
        let body: Value = serde_json::from_slice(&r.reply.body).unwrap();
        assert_eq!(body["error"]["status"], "INVALID_ARGUMENT", "{name}");
    }
    let copied = [
        (":method", "POST"),
        ("api-key", "some-custom-value-000"),
        ("x-copy", "some-custom-value-000"),
    ];
    let h = with_stray(UPLOAD, &copied, &[], "");
    assert_guard_refused(run(&default(), &h, KEY), "a slot value copied");
}

/// A custom token holding the generated prefix (not the whole shape) is still found: the
/// prefix's own matches (looked at for the shape) never hide a needle's.
#[test]
fn a_custom_token_holding_the_prefix_is_found_past_it() {
    for token in [
        "my-ptk_custom-token",
        "ptk_short-custom",
        "xx-PTK_ptk_custom",
    ] {
        let bearer = format!("Bearer {token}");
        for copy in [
            format!("a{token}"),
            format!("ptk_{token}"),
            token.to_uppercase(),
        ] {
            let h = head(&[
                (":path", "/v1/chat/completions"),
                ("authorization", &bearer),
                ("x-copy", &copy),
            ]);
            assert_eq!(
                refused(&h).refusal,
                Refusal::TokenInRequest,
                "{token} in {copy}"
            );
        }
    }
}

/// Only a whole generated token is a stray one; the operator's own values (the real key, its
/// `request_headers`, the upstream host) are never searched for the shape.
#[test]
fn near_misses_and_the_operators_own_values_pass() {
    let bearer = format!("Bearer {TOKEN}");
    let body32 = &STRAY[4..];
    for near in [
        format!("ptk_{}", &body32[1..]),
        format!("ptk-{body32}"),
        format!("ptk_{}.{}", &body32[..10], &body32[11..]),
        "ptk_admin=session-cookie".to_string(),
    ] {
        let h = head(&[
            (":path", "/v1/chat/completions"),
            ("authorization", &bearer),
            ("x-debug", &near),
        ]);
        forwarded(&h);
    }
    let key = format!("sk-proj-{STRAY}");
    let c = config(&format!(
        r#"{{"providers":{{"openai":{{"request_headers":{{"openai-organization":"org-{STRAY}"}}}}}}}}"#
    ));
    let h = head(&[
        (":path", "/v1/chat/completions"),
        ("authorization", &bearer),
    ]);
    match run(&c, &h, &key) {
        Outcome::Forwarded(up) => {
            assert!(up.contains(&("authorization".into(), format!("Bearer {key}"))))
        }
        other => panic!("{other:?}"),
    }
}

/// The bounds beyond which the guard refuses instead of searching: a credential value over
/// 2 KiB, over 8 KiB of credential forms in all, a head over 64 KiB.
#[test]
fn credentials_and_heads_beyond_the_bounds_are_refused_unsearched() {
    use ptk_filter_core::credentials::{MAX_GUARDED_BYTES, MAX_GUARDED_LEN};
    use ptk_filter_core::guard::MAX_OUTBOUND_BYTES;
    let bearer = format!("Bearer {TOKEN}");
    let with = |extra: Vec<(String, String)>| {
        let mut all: Vec<(String, String)> = vec![
            (":path".into(), "/v1/chat/completions".into()),
            ("authorization".into(), bearer.clone()),
        ];
        all.extend(extra);
        RequestHead::new(all)
    };
    let value = |len: usize, tag: char| format!("{}{tag}", "v".repeat(len - 1));
    // One value: at the bound it is searched (and forwarded), one byte over it is refused.
    forwarded(&with(vec![("api-key".into(), value(MAX_GUARDED_LEN, 'a'))]));
    assert_eq!(
        refused(&with(vec![(
            "api-key".into(),
            value(MAX_GUARDED_LEN + 1, 'a')
        )]))
        .refusal,
        Refusal::TokenInRequest
    );
    // All forms: four values of 2 KiB are over 8 KiB with the bearer's.
    let three: Vec<(String, String)> = "abc"
        .chars()
        .map(|c| ("api-key".to_string(), value(MAX_GUARDED_LEN, c)))
        .collect();
    forwarded(&with(three.clone()));
    let mut four = three;
    four.push(("api-key".into(), value(MAX_GUARDED_LEN, 'd')));
    const { assert!(4 * MAX_GUARDED_LEN <= MAX_GUARDED_BYTES + MAX_GUARDED_LEN) };
    assert_eq!(refused(&with(four)).refusal, Refusal::TokenInRequest);
    // The head.
    let pad = |len: usize| vec![("x-pad".to_string(), "p".repeat(len))];
    forwarded(&with(pad(MAX_OUTBOUND_BYTES - 1024)));
    assert_eq!(
        refused(&with(pad(MAX_OUTBOUND_BYTES))).refusal,
        Refusal::TokenInRequest
    );
}

/// Attack round 2, finding 1: a custom token holding a `;` in `?key=` (or any credential
/// parameter). Identification reads `key=` up to the next `&`, as Google does; the strip
/// used to split on `;` too and keep the tail as a parameter of its own. Now the stripped
/// parameter takes the rest of its `&`-segment, and the guard knows the `&`-reading value.
#[test]
fn a_credential_parameter_takes_its_whole_segment_with_it() {
    let token = "acme-team-A;Zq7-secret-tail-9431";
    let tail = "Zq7-secret-tail-9431";
    for fresh in [true, false] {
        let path = format!("/v1beta/models/gemini-2.0-flash:generateContent?key={token}&alt=sse");
        let h = head(&[(":method", "POST"), (":path", &path)]);
        match run_on(&default(), &h, KEY, fresh) {
            Outcome::Forwarded(up) => {
                assert!(!anywhere(&up, tail), "{up:?}");
                let path = up.iter().find(|(n, _)| n == ":path").unwrap();
                assert_eq!(
                    path.1,
                    "/v1beta/models/gemini-2.0-flash:generateContent?alt=sse"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    // A second custom token in another credential parameter, next to a Bearer token.
    let bearer = format!("Bearer {TOKEN}");
    let h = head(&[
        (
            ":path",
            "/v1/chat/completions?access_token=a;Zq7-second-tail-9431&x=1",
        ),
        ("authorization", &bearer),
    ]);
    let up = forwarded(&h);
    assert!(!anywhere(&up, "Zq7-second-tail-9431"), "{up:?}");
}

/// Attack round 2, finding 3: the shape counts at the start of a text or after a byte that is
/// not a letter or digit; a random id that merely holds `ptk_` glued to letters or digits
/// (a Google upload id, a base64url cookie) is not refused.
#[test]
fn a_random_id_holding_the_prefix_is_not_a_token() {
    let bearer = format!("Bearer {TOKEN}");
    let id = "AUx1bQptk_Zx9strayGenerated0123456789012Qz";
    assert!(id.split("ptk_").nth(1).unwrap().len() >= 32);
    let path = format!("/v1/files?upload_id={id}");
    let cookie = format!("session=eyJhbGciOi.eyJzdWIiOiIx{id}.sig");
    let h = head(&[
        (":path", &path),
        ("authorization", &bearer),
        ("cookie", &cookie),
    ]);
    forwarded(&h);
    // At a boundary it is a token: refused.
    for stray in [
        format!("x={STRAY}"),
        format!("a.{STRAY}"),
        format!("-{STRAY}"),
    ] {
        let h = head(&[
            (":path", "/v1/chat/completions"),
            ("authorization", &bearer),
            ("x-debug", &stray),
        ]);
        assert_eq!(refused(&h).refusal, Refusal::TokenInRequest, "{stray}");
    }
}

/// The shape's boundary never hides a value the client put in a slot: a generated token from
/// a slot, copied glued to letters, is refused all the same (looked up at every prefix).
#[test]
fn a_slot_token_copied_glued_to_letters_is_refused() {
    let bearer = format!("Bearer {STRAY}");
    for copy in [
        format!("abc{STRAY}"),
        format!("abc{}", STRAY.to_uppercase()),
        format!("abc{}", STRAY.replace('_', "%5F")),
    ] {
        let h = head(&[
            (":path", "/v1/chat/completions"),
            ("authorization", &bearer),
            ("x-debug", &copy),
        ]);
        assert_eq!(refused(&h).refusal, Refusal::TokenInRequest, "{copy}");
        let path = format!("/v1/chat/completions?q={copy}");
        let h = head(&[(":path", &path), ("authorization", &bearer)]);
        assert_eq!(refused(&h).refusal, Refusal::TokenInRequest, "{copy}");
    }
}
