//! Issue 10 item 13: OpenAI Realtime client secrets (`ek_…`) are recognised only with
//! `ephemeral.pass_through` on, only on a Realtime use (WebRTC `POST` of an SDP offer, a
//! WebSocket handshake) and only when every value of every credential slot is that one secret
//! (item 3's strict rule); then the request goes the bound way (relayed untouched if the proxy
//! saw the secret minted for a valid token, else 401), never swapped for the real key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::{anywhere, config, run, Outcome};
use proptest::prelude::*;
use proptest::sample::select;
use ptk_filter_core::ephemeral::{pass_through, Ephemeral};
use ptk_filter_core::plan::CREDENTIAL_HEADERS;
use ptk_filter_core::{decide_headers, FilterConfig, HeadersDecision, Refusal, RequestHead};

const SECRET: &str = "ek_68af296e8e408191a1120ab6383263c2";
const OTHER_SECRET: &str = "ek_68af296e8e408191a1120ab6383263c3";
const TOKEN: &str = "ptk_SENTINEL_client_secret_leak_00";
const KEY: &str = "sk-REAL-openai";

fn on() -> FilterConfig {
    config(r#"{"ephemeral":{"pass_through":true}}"#)
}

fn request(method: &str, path: &str, websocket: bool, pairs: &[(&str, &str)]) -> RequestHead {
    let mut all = vec![
        (":method".to_string(), method.to_string()),
        (":path".to_string(), path.to_string()),
        (":authority".to_string(), "127.0.0.1:10000".to_string()),
    ];
    if websocket {
        all.push(("upgrade".into(), "websocket".into()));
        all.push(("connection".into(), "Upgrade".into()));
    }
    all.extend(pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    RequestHead::new(all)
}

fn handshake(pairs: &[(&str, &str)]) -> RequestHead {
    request("GET", "/v1/realtime?model=gpt-realtime", true, pairs)
}

fn subprotocol(secret: &str) -> String {
    format!("realtime, openai-insecure-api-key.{secret}, openai-beta.realtime-v1")
}

fn secret_of(head: &RequestHead) -> Option<String> {
    match pass_through(&on().ephemeral, head) {
        Some(Ephemeral::OpenaiClientSecret(s)) => Some(s),
        _ => None,
    }
}

#[test]
fn every_sdk_form_is_recognised_when_switched_on() {
    let bearer = format!("Bearer {SECRET}");
    let offer = subprotocol(SECRET);
    let cases = [
        (
            "WebRTC calls (GA)",
            request(
                "POST",
                "/v1/realtime/calls",
                false,
                &[
                    ("authorization", &bearer),
                    ("content-type", "application/sdp"),
                ],
            ),
        ),
        (
            "WebRTC beta (POST /v1/realtime?model=)",
            request(
                "POST",
                "/v1/realtime?model=gpt-4o-realtime-preview",
                false,
                &[("authorization", &bearer)],
            ),
        ),
        (
            "browser WebSocket subprotocol",
            handshake(&[("sec-websocket-protocol", &offer)]),
        ),
        ("Bearer handshake", handshake(&[("authorization", &bearer)])),
        (
            "both, the same secret",
            handshake(&[
                ("authorization", &bearer),
                ("sec-websocket-protocol", &offer),
            ]),
        ),
        (
            "scheme in any case",
            handshake(&[("authorization", &format!("bearer  {SECRET}"))]),
        ),
        (
            "translation sessions",
            request(
                "GET",
                "/v1/realtime/translations?model=m",
                true,
                &[("authorization", &bearer)],
            ),
        ),
    ];
    for (name, head) in cases {
        assert_eq!(secret_of(&head).as_deref(), Some(SECRET), "{name}");
        match decide_headers(&on(), &head) {
            HeadersDecision::ClientSecret(p) => assert!(!format!("{p:?}").contains(SECRET)),
            other => panic!("{name}: {other:?}"),
        }
        // As it would go upstream once found bound: the secret as sent, no real key added.
        let Outcome::Secret(up) = run(&on(), &head, KEY) else {
            panic!("{name}: not the secret path");
        };
        assert!(anywhere(&up, SECRET), "{name}: the secret went missing");
        assert!(!anywhere(&up, KEY), "{name}: a real key was added");
        assert!(up.contains(&(":authority".into(), "api.openai.com".into())));
    }
}

#[test]
fn off_by_default_a_secret_is_an_ordinary_unknown_token() {
    let default = FilterConfig::parse(b"").unwrap();
    assert!(!default.ephemeral.pass_through);
    let offer = subprotocol(SECRET);
    let bearer = format!("Bearer {SECRET}");
    for head in [
        handshake(&[("sec-websocket-protocol", &offer)]),
        request(
            "POST",
            "/v1/realtime/calls",
            false,
            &[("authorization", &bearer)],
        ),
    ] {
        assert_eq!(pass_through(&default.ephemeral, &head), None);
        match decide_headers(&default, &head) {
            // Checked like any token: the token-service refuses it as unknown (401).
            HeadersDecision::Check(p) => assert_eq!(p.identified.token, SECRET),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn only_realtime_uses_qualify() {
    let bearer = format!("Bearer {SECRET}");
    let cases = [
        (
            "chat",
            request(
                "POST",
                "/v1/chat/completions",
                false,
                &[("authorization", &bearer)],
            ),
        ),
        (
            "GET calls",
            request(
                "GET",
                "/v1/realtime/calls",
                false,
                &[("authorization", &bearer)],
            ),
        ),
        (
            "a call's sideband control",
            request(
                "POST",
                "/v1/realtime/calls/rtc_1/hangup",
                false,
                &[("authorization", &bearer)],
            ),
        ),
        (
            "minting with a secret",
            request(
                "POST",
                "/v1/realtime/client_secrets",
                false,
                &[("authorization", &bearer)],
            ),
        ),
        (
            "WebSocket elsewhere",
            request("GET", "/v1/responses", true, &[("authorization", &bearer)]),
        ),
        (
            "calls as a WebSocket",
            request(
                "GET",
                "/v1/realtime/calls",
                true,
                &[("authorization", &bearer)],
            ),
        ),
        (
            "prefixed path",
            request(
                "POST",
                "/x/v1/realtime/calls",
                false,
                &[("authorization", &bearer)],
            ),
        ),
        ("no credential", handshake(&[])),
    ];
    for (name, head) in cases {
        assert_eq!(secret_of(&head), None, "{name}");
    }
}

/// Item 3's strict rule for the OpenAI kind: one value anywhere that is not the secret in its
/// SDK form, and the request takes the normal path; whatever happens then, no proxy token goes
/// upstream.
#[test]
fn anything_else_in_any_slot_blocks_the_secret_path() {
    let bearer = format!("Bearer {SECRET}");
    let offer = subprotocol(SECRET);
    let with = |extra: &[(&str, &str)]| {
        let mut pairs = vec![("sec-websocket-protocol", offer.as_str())];
        pairs.extend_from_slice(extra);
        handshake(&pairs)
    };
    let token_bearer = format!("Bearer {TOKEN}");
    let joined = format!("{bearer}, {token_bearer}");
    let two_entries = format!("{offer}, openai-insecure-api-key.{TOKEN}");
    let other_offer = subprotocol(OTHER_SECRET);
    let other_bearer = format!("Bearer {OTHER_SECRET}");
    let junk = format!("Bearer {SECRET} {TOKEN}");
    let cases: Vec<(&str, RequestHead)> = vec![
        (
            "a Bearer proxy token",
            with(&[("authorization", &token_bearer)]),
        ),
        (
            "a second authorization",
            with(&[("authorization", &bearer), ("authorization", &token_bearer)]),
        ),
        ("joined in one value", with(&[("authorization", &joined)])),
        (
            "a second key entry",
            handshake(&[("sec-websocket-protocol", &two_entries)]),
        ),
        (
            "a second offer",
            with(&[(
                "sec-websocket-protocol",
                &format!("openai-insecure-api-key.{TOKEN}"),
            )]),
        ),
        ("x-api-key", with(&[("x-api-key", TOKEN)])),
        ("an empty x-api-key", with(&[("x-api-key", "")])),
        ("x-goog-api-key", with(&[("x-goog-api-key", TOKEN)])),
        ("api-key", with(&[("api-key", TOKEN)])),
        (
            "proxy-authorization",
            with(&[("proxy-authorization", TOKEN)]),
        ),
        (
            "two different secrets",
            with(&[("authorization", &other_bearer)]),
        ),
        (
            "two different offers",
            with(&[("sec-websocket-protocol", &other_offer)]),
        ),
        (
            "Token scheme",
            with(&[("authorization", &format!("Token {SECRET}"))]),
        ),
        (
            "junk after the secret",
            handshake(&[("authorization", &junk)]),
        ),
        (
            "?key=",
            request(
                "GET",
                &format!("/v1/realtime?model=m&key={TOKEN}"),
                true,
                &[("sec-websocket-protocol", &offer)],
            ),
        ),
        (
            "an empty ?key=",
            request(
                "GET",
                "/v1/realtime?model=m&key=",
                true,
                &[("sec-websocket-protocol", &offer)],
            ),
        ),
        (
            "KEY= upper case",
            request(
                "GET",
                &format!("/v1/realtime?KEY={TOKEN}"),
                true,
                &[("sec-websocket-protocol", &offer)],
            ),
        ),
        (
            "api_key= on a call",
            request(
                "POST",
                &format!("/v1/realtime/calls?api_key={TOKEN}"),
                false,
                &[("authorization", &bearer)],
            ),
        ),
        (
            "access_token= on a call",
            request(
                "POST",
                &format!("/v1/realtime/calls?access_token={SECRET}"),
                false,
                &[("authorization", &bearer)],
            ),
        ),
    ];
    for (name, head) in cases {
        assert_eq!(secret_of(&head), None, "{name}");
        match run(&on(), &head, KEY) {
            Outcome::Passthrough(_) | Outcome::Secret(_) | Outcome::Leg(_) => {
                panic!("{name}: relayed")
            }
            Outcome::Forwarded(up) => {
                assert!(!anywhere(&up, TOKEN), "{name}: token upstream");
                // The normal path strips every credential slot: the secret does not ride
                // next to the real key either.
                assert!(!anywhere(&up, SECRET), "{name}: secret next to the key");
            }
            Outcome::Refused(_) => {}
        }
    }
}

#[test]
fn a_secret_that_is_not_bound_is_refused_in_openais_shape() {
    // The pipeline hands the use to the shim, which answers 401 for a secret the table does
    // not hold; the reply it sends is this one.
    let offer = subprotocol(SECRET);
    let HeadersDecision::ClientSecret(ws) =
        decide_headers(&on(), &handshake(&[("sec-websocket-protocol", &offer)]))
    else {
        panic!("not the secret path");
    };
    let refused = ws.refuse(Refusal::UnknownSecret);
    assert_eq!(
        (refused.reply.status, refused.reply.body.as_slice()),
        (401, &b"unknown or expired client secret"[..])
    );
    let bearer = format!("Bearer {SECRET}");
    let call = request(
        "POST",
        "/v1/realtime/calls",
        false,
        &[("authorization", &bearer)],
    );
    let HeadersDecision::ClientSecret(http) = decide_headers(&on(), &call) else {
        panic!("not the secret path");
    };
    let body: serde_json::Value =
        serde_json::from_slice(&http.refuse(Refusal::UnknownSecret).reply.body).unwrap();
    assert_eq!(body["error"]["code"], "unknown_client_secret");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&http.refuse(Refusal::Invalid).reply.body)
            .unwrap()["error"]["code"],
        "invalid_api_key",
        "a revoked minting token: OpenAI's shape, the token's refusal"
    );
}

#[test]
fn the_table_settings_are_strict_and_errors_name_the_field() {
    let c = on().ephemeral;
    assert_eq!((c.slots, c.max_ttl_ms), (4096, 7_200_000));
    for (bad, field) in [
        (r#"{"ephemeral":{"slots":15}}"#, "ephemeral.slots"),
        (r#"{"ephemeral":{"slots":65537}}"#, "ephemeral.slots"),
        (
            r#"{"ephemeral":{"max_ttl_ms":59999}}"#,
            "ephemeral.max_ttl_ms",
        ),
        (
            r#"{"ephemeral":{"max_ttl_ms":86400001}}"#,
            "ephemeral.max_ttl_ms",
        ),
        (r#"{"ephemeral":{"slots":"many"}}"#, "ephemeral.slots"),
    ] {
        let err = FilterConfig::parse(bad.as_bytes()).unwrap_err();
        assert!(err.contains(field), "{bad}: {err}");
    }
    let ok = config(r#"{"ephemeral":{"pass_through":true,"slots":16,"max_ttl_ms":60000}}"#);
    assert_eq!((ok.ephemeral.slots, ok.ephemeral.max_ttl_ms), (16, 60_000));
}

// --- the strict rule as a property --------------------------------------------------------

/// Where a value can go on a Realtime use.
#[derive(Debug, Clone)]
enum Put {
    Bearer,
    Subprotocol,
    Header(&'static str),
    Query(&'static str),
}

fn put() -> impl Strategy<Value = Put> {
    prop_oneof![
        Just(Put::Bearer),
        Just(Put::Subprotocol),
        select(&CREDENTIAL_HEADERS[..]).prop_map(Put::Header),
        select(&["key", "KEY", "api_key", "access_token", "%6Bey", "key[]"][..])
            .prop_map(Put::Query),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(SECRET.to_string()),
        Just(OTHER_SECRET.to_string()),
        "ptk_[A-Za-z0-9_-]{32}",
        "ek_[A-Za-z0-9_-]{1,40}",
        "[!-~]{12,30}",
        Just(String::new()),
    ]
}

fn build(websocket: bool, path: &str, puts: &[(Put, String)]) -> RequestHead {
    let mut query = Vec::new();
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (at, v) in puts {
        match at {
            Put::Bearer => pairs.push(("authorization".into(), format!("Bearer {v}"))),
            Put::Subprotocol => pairs.push((
                "sec-websocket-protocol".into(),
                format!("realtime, openai-insecure-api-key.{v}"),
            )),
            Put::Header(name) => pairs.push((name.to_string(), v.clone())),
            Put::Query(name) => query.push(format!("{name}={v}")),
        }
    }
    let full = if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query.join("&"))
    };
    let method = if websocket { "GET" } else { "POST" };
    let borrowed: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    request(method, &full, websocket, &borrowed)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Whatever is put where, the secret path is taken only when every value put is the same
    /// `ek_` secret in a slot its SDKs use, and then nothing but that secret is upstream.
    #[test]
    fn the_secret_path_carries_one_secret_and_nothing_else(
        websocket in any::<bool>(),
        path in select(&["/v1/realtime", "/v1/realtime/calls", "/v1/realtime/translations"][..]),
        puts in proptest::collection::vec((put(), value()), 1..5),
    ) {
        let head = build(websocket, path, &puts);
        let Some(secret) = secret_of(&head) else {
            return Ok(());
        };
        for (at, v) in &puts {
            prop_assert!(matches!(at, Put::Bearer | Put::Subprotocol), "{:?} passed", at);
            prop_assert_eq!(v, &secret);
        }
        let Outcome::Secret(up) = run(&on(), &head, KEY) else {
            return Err(TestCaseError::fail("not the secret path"));
        };
        prop_assert!(!anywhere(&up, KEY));
        prop_assert!(anywhere(&up, &secret), "the secret went missing");
    }
}
