//! Issue 10 item 3: the Gemini ephemeral pass-through is opt-in, and when on it relays a
//! request only when every value of every credential slot is a Google ephemeral token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::{anywhere, config, run, Outcome};
use ptk_filter_core::ephemeral::{pass_through, Ephemeral};
use ptk_filter_core::{FilterConfig, HeadersDecision, Refusal, RequestHead};

const LIVE: &str =
    "//ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained";
const EPH: &str = "auth_tokens/cd02d243f0cc8cc2d2aa5d0295e927b6";
const TOKEN: &str = "ptk_SENTINEL_ephemeral_leak_000000";
const KEY: &str = "AIza-REAL-gemini";

fn on() -> FilterConfig {
    config(r#"{"ephemeral":{"pass_through":true}}"#)
}

/// A Live handshake with this query (appended to the path) and these headers.
fn live(query: &str, pairs: &[(&str, &str)]) -> RequestHead {
    let mut all = vec![
        (":path".to_string(), format!("{LIVE}{query}")),
        (":authority".to_string(), "127.0.0.1:10000".to_string()),
        ("upgrade".to_string(), "websocket".to_string()),
        ("connection".to_string(), "Upgrade".to_string()),
    ];
    all.extend(pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    RequestHead::new(all)
}

#[test]
fn the_sdk_forms_pass_when_switched_on() {
    let token_header = format!("Token {EPH}");
    let cases = [
        (
            "node ?access_token=",
            live(&format!("?access_token={EPH}"), &[]),
        ),
        (
            "python Token + x-goog-api-key",
            live(
                "",
                &[("authorization", &token_header), ("x-goog-api-key", EPH)],
            ),
        ),
        (
            "scheme in any case",
            live("", &[("authorization", &format!("TOKEN {EPH}"))]),
        ),
        (
            "both forms at once",
            live(
                &format!("?alt=x&access_token={EPH}"),
                &[("authorization", &token_header), ("x-goog-api-key", EPH)],
            ),
        ),
    ];
    for (name, head) in cases {
        assert_eq!(
            pass_through(&on().ephemeral, &head),
            Some(Ephemeral::GeminiLive),
            "{name}"
        );
        let Outcome::Passthrough(up) = run(&on(), &head, KEY) else {
            panic!("{name}: not passed through");
        };
        // Untouched but for the host: the Google token goes as sent, no real key is added.
        assert!(up.contains(&(
            ":authority".into(),
            "generativelanguage.googleapis.com".into()
        )));
        assert!(!anywhere(&up, KEY), "{name}");
    }
}

#[test]
fn off_by_default_auth_tokens_get_no_special_treatment() {
    let default = FilterConfig::parse(b"").unwrap();
    assert!(!default.ephemeral.pass_through);
    // The Node form fills no proxy-token slot: 401 missing token, nothing forwarded.
    let node = live(&format!("?access_token={EPH}"), &[]);
    match run(&default, &node, KEY) {
        Outcome::Refused(r) => assert_eq!(r.refusal, Refusal::MissingToken),
        other => panic!("node form: {other:?}"),
    }
    // The Python form fills x-goog-api-key: checked like any token (the token-service then
    // refuses it as unknown).
    let python = live(
        "",
        &[
            ("authorization", &format!("Token {EPH}")),
            ("x-goog-api-key", EPH),
        ],
    );
    match ptk_filter_core::decide_headers(&default, &python) {
        HeadersDecision::Check(p) => assert_eq!(p.identified.token, EPH),
        other => panic!("python form: {other:?}"),
    }
}

/// Each request mixes a proxy token into a Live handshake that also carries a Google token.
/// With pass-through on, none may be relayed, and whatever the filter does instead, the proxy
/// token must not go upstream.
#[test]
fn a_proxy_token_in_any_slot_blocks_the_pass_through() {
    let token_header = format!("Token {EPH}");
    let bearer = format!("Bearer {TOKEN}");
    let q = |s: &str| s.replace("{EPH}", EPH).replace("{T}", TOKEN);
    let cases: Vec<(&str, RequestHead)> = vec![
        (
            "a second x-goog-api-key",
            live("", &[("x-goog-api-key", EPH), ("x-goog-api-key", TOKEN)]),
        ),
        (
            "an empty key= then key=<token>",
            live(&q("?access_token={EPH}&key=&key={T}"), &[]),
        ),
        (
            "Token auth_tokens plus a Bearer proxy token",
            live(
                "",
                &[("authorization", &token_header), ("authorization", &bearer)],
            ),
        ),
        (
            "Token and Bearer joined in one value",
            live(
                "",
                &[("authorization", &format!("{token_header}, {bearer}"))],
            ),
        ),
        (
            "an empty x-api-key then one with the token",
            live(
                "",
                &[
                    ("authorization", &token_header),
                    ("x-api-key", ""),
                    ("x-api-key", TOKEN),
                ],
            ),
        ),
        (
            "KEY= upper case",
            live(&q("?access_token={EPH}&KEY={T}"), &[]),
        ),
        (
            "$key= system parameter",
            live(&q("?access_token={EPH}&%24key={T}"), &[]),
        ),
        ("key[]=", live(&q("?access_token={EPH}&key[]={T}"), &[])),
        (";key=", live(&q("?access_token={EPH};key={T}"), &[])),
        ("key%00=", live(&q("?access_token={EPH}&key%00={T}"), &[])),
        (
            "a second access_token",
            live(&q("?access_token={EPH}&access_token={T}"), &[]),
        ),
        ("api_key=", live(&q("?access_token={EPH}&api_key={T}"), &[])),
        (
            "a subprotocol key entry",
            live(
                &q("?access_token={EPH}"),
                &[(
                    "sec-websocket-protocol",
                    &format!("openai-insecure-api-key.{TOKEN}"),
                )],
            ),
        ),
        (
            "Bearer auth_tokens (not the SDK's scheme)",
            live("", &[("authorization", &format!("Bearer {EPH}"))]),
        ),
        (
            "junk after the Google token",
            live("", &[("x-goog-api-key", &format!("{EPH} {TOKEN}"))]),
        ),
        (
            "api-key header",
            live(&q("?access_token={EPH}"), &[("api-key", TOKEN)]),
        ),
        (
            "proxy-authorization header",
            live(&q("?access_token={EPH}"), &[("proxy-authorization", TOKEN)]),
        ),
        (
            "an empty x-goog-api-key",
            live(&q("?access_token={EPH}"), &[("x-goog-api-key", "")]),
        ),
    ];
    for (name, head) in cases {
        assert_eq!(pass_through(&on().ephemeral, &head), None, "{name}");
        match run(&on(), &head, KEY) {
            Outcome::Passthrough(_) | Outcome::Secret(_) | Outcome::Leg(_) => {
                panic!("{name}: relayed")
            }
            Outcome::Forwarded(up) => assert!(!anywhere(&up, TOKEN), "{name}: token upstream"),
            Outcome::Refused(_) => {}
        }
    }
}

#[test]
fn only_live_handshakes_qualify() {
    let not_live = RequestHead::new(vec![
        (":path".into(), format!("/v1/realtime?access_token={EPH}")),
        ("upgrade".into(), "websocket".into()),
    ]);
    assert_eq!(pass_through(&on().ephemeral, &not_live), None);
    let not_upgrade =
        RequestHead::new(vec![(":path".into(), format!("{LIVE}?access_token={EPH}"))]);
    assert_eq!(pass_through(&on().ephemeral, &not_upgrade), None);
    assert_eq!(
        pass_through(&on().ephemeral, &live("", &[])),
        None,
        "no credential"
    );
}

#[test]
fn the_switch_is_strict_and_errors_name_the_field() {
    let cases = [
        (
            r#"{"ephemeral":{"passthrough":true}}"#,
            "ephemeral.passthrough",
        ),
        (
            r#"{"ephemeral":{"pass_through":"yes"}}"#,
            "ephemeral.pass_through",
        ),
        (r#"{"ephemeral":true}"#, "ephemeral"),
    ];
    for (bad, field) in cases {
        let err = FilterConfig::parse(bad.as_bytes()).unwrap_err();
        assert!(err.contains(field), "{bad}: {err}");
    }
    assert!(!config(r#"{"ephemeral":{}}"#).ephemeral.pass_through);
}
