//! Issue 10 item 12: a client cannot pick whose organization, project, billing or quota the
//! operator's key is used for. Those headers (all values, any case), their query spellings
//! and the Realtime subprotocol entries are stripped on HTTP and WebSocket handshakes alike;
//! the operator sets their own per provider (`providers.<name>.request_headers`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::{config, run, Outcome};
use ptk_filter_core::{FilterConfig, RequestHead};

const TOKEN: &str = "ptk_SENTINEL_account_0000000000000";
const KEY: &str = "sk-REAL";

fn up(c: &FilterConfig, pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let h = RequestHead::new(
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    );
    match run(c, &h, KEY) {
        Outcome::Forwarded(up) => up,
        other => panic!("not forwarded: {other:?}"),
    }
}

fn values<'a>(up: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    up.iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

const ACCOUNT: [&str; 4] = [
    "openai-organization",
    "openai-project",
    "x-goog-user-project",
    "x-goog-quota-user",
];

#[test]
fn client_account_headers_are_stripped_on_every_route_http_and_websocket() {
    let bearer = format!("Bearer {TOKEN}");
    let routes: [(&str, &str, &str); 3] = [
        ("/v1/chat/completions", "authorization", bearer.as_str()),
        ("/v1/messages", "x-api-key", TOKEN),
        ("/v1beta/models/m:generateContent", "x-goog-api-key", TOKEN),
    ];
    for (path, slot, value) in routes {
        for websocket in [false, true] {
            let mut pairs = vec![(":path", path), (slot, value)];
            if websocket {
                pairs.push(("upgrade", "websocket"));
            }
            // Any case (the head lowercases names as Envoy does), every value.
            pairs.extend([
                ("OpenAI-Organization", "org-client"),
                ("openai-organization", "org-second"),
                ("OpenAI-Project", "proj_client"),
                ("X-Goog-User-Project", "client-project"),
                ("x-goog-quota-user", "someone-else"),
            ]);
            let out = up(&FilterConfig::parse(b"").unwrap(), &pairs);
            for name in ACCOUNT {
                assert!(
                    values(&out, name).is_empty(),
                    "{path} ws={websocket}: {name}"
                );
            }
        }
    }
}

#[test]
fn account_query_parameters_are_stripped_under_any_spelling() {
    let c = FilterConfig::parse(b"").unwrap();
    for name in [
        "userProject",
        "USERPROJECT",
        "$userProject",
        "%24userProject",
        "quotaUser",
        "$quotaUser",
        "quotaUser[]",
    ] {
        let path = format!("/v1beta/models/m:generateContent?{name}=other&alt=sse");
        let out = up(&c, &[(":path", &path), ("x-goog-api-key", TOKEN)]);
        assert_eq!(
            values(&out, ":path"),
            vec!["/v1beta/models/m:generateContent?alt=sse"],
            "{name}"
        );
    }
}

#[test]
fn realtime_subprotocol_org_and_project_entries_are_stripped() {
    let offer = format!(
        "realtime, openai-insecure-api-key.{TOKEN}, openai-organization.org-1, OpenAI-Project.p-2, openai-beta.realtime-v1"
    );
    let out = up(
        &FilterConfig::parse(b"").unwrap(),
        &[
            (":path", "/v1/realtime?model=m"),
            ("upgrade", "websocket"),
            ("sec-websocket-protocol", &offer),
        ],
    );
    assert_eq!(
        values(&out, "sec-websocket-protocol"),
        vec!["realtime, openai-beta.realtime-v1"]
    );
    // Even with no key entry (the token came in a header).
    let bearer = format!("Bearer {TOKEN}");
    let out = up(
        &FilterConfig::parse(b"").unwrap(),
        &[
            (":path", "/v1/realtime"),
            ("upgrade", "websocket"),
            ("authorization", &bearer),
            (
                "sec-websocket-protocol",
                "realtime, openai-organization.org-1",
            ),
        ],
    );
    assert_eq!(values(&out, "sec-websocket-protocol"), vec!["realtime"]);
}

#[test]
fn the_operator_sets_their_own_per_provider() {
    let c = config(
        r#"{"providers":{
            "openai":{"request_headers":{"openai-organization":"org-operator","openai-project":"proj_operator"}},
            "gemini":{"request_headers":{"x-goog-user-project":"operator-project"}}}}"#,
    );
    let bearer = format!("Bearer {TOKEN}");
    let out = up(
        &c,
        &[
            (":path", "/v1/chat/completions"),
            ("authorization", &bearer),
            ("openai-organization", "org-client"),
            ("openai-organization", "org-client-2"),
        ],
    );
    assert_eq!(values(&out, "openai-organization"), vec!["org-operator"]);
    assert_eq!(values(&out, "openai-project"), vec!["proj_operator"]);
    assert!(
        values(&out, "x-goog-user-project").is_empty(),
        "gemini's header on openai"
    );
    // Gemini's OpenAI-compatible endpoint is the gemini provider.
    let out = up(
        &c,
        &[
            (":path", "/v1beta/openai/chat/completions"),
            ("authorization", &bearer),
            ("x-goog-user-project", "client"),
        ],
    );
    assert_eq!(
        values(&out, "x-goog-user-project"),
        vec!["operator-project"]
    );
    assert!(values(&out, "openai-organization").is_empty());
    // The authority default survives a provider object that only sets headers.
    let openai = c.providers.upstream(ptk_wire::Provider::Openai);
    assert_eq!(openai.authority, "api.openai.com");
}

#[test]
fn request_headers_are_validated_naming_the_field() {
    let cases = [
        (r#"{"OpenAI-Organization":"org"}"#, "lowercase"),
        (r#"{":authority":"x"}"#, "pseudo-headers"),
        (r#"{"authorization":"Bearer x"}"#, "credential"),
        (r#"{"x-api-key":"x"}"#, "credential"),
        (r#"{"x-goog-api-key":"x"}"#, "credential"),
        (r#"{"connection":"close"}"#, "hop-by-hop"),
        (r#"{"transfer-encoding":"chunked"}"#, "hop-by-hop"),
        (r#"{"host":"evil"}"#, "hop-by-hop"),
        (r#"{"content-length":"1"}"#, "hop-by-hop"),
        (r#"{"sec-websocket-protocol":"x"}"#, "WebSocket"),
        (r#"{"x-envoy-original-path":"/x"}"#, "x-envoy-"),
        (r#"{"bad name":"x"}"#, "not a valid header name"),
        (r#"{"":"x"}"#, "empty"),
        (r#"{"openai-project":""}"#, "value"),
        (r#"{"openai-project":" padded"}"#, "value"),
        (r#"{"openai-project":"a\r\nx-injected: 1"}"#, "value"),
        (r#"{"openai-project":"caf\u00e9"}"#, "value"),
        (
            r#"{"openai-project":1}"#,
            "providers.openai.request_headers.openai-project",
        ),
    ];
    for (headers, needle) in cases {
        let json = format!(r#"{{"providers":{{"openai":{{"request_headers":{headers}}}}}}}"#);
        let err = FilterConfig::parse(json.as_bytes()).unwrap_err();
        assert!(
            err.contains("providers.openai.request_headers"),
            "{headers}: {err}"
        );
        assert!(err.contains(needle), "{headers}: {err}");
        assert!(
            !err.contains("injected"),
            "the value is never echoed: {err}"
        );
    }
    let long = "v".repeat(1025);
    let json =
        format!(r#"{{"providers":{{"anthropic":{{"request_headers":{{"x-team":"{long}"}}}}}}}}"#);
    assert!(FilterConfig::parse(json.as_bytes())
        .unwrap_err()
        .contains("providers.anthropic.request_headers"));
    let many: Vec<String> = (0..33).map(|i| format!(r#""x-h{i}":"v""#)).collect();
    let json = format!(
        r#"{{"providers":{{"gemini":{{"request_headers":{{{}}}}}}}}}"#,
        many.join(",")
    );
    assert!(FilterConfig::parse(json.as_bytes())
        .unwrap_err()
        .contains("at most 32"));
}

/// Attack (issue 13): Google's partial-response system parameter (`fields`, `$fields`, the
/// `X-Goog-FieldMask` header) would let a client ask for `candidates` only, dropping
/// `usageMetadata`, and its tokens would go unmetered. Neither reaches a provider.
#[test]
fn response_masks_never_reach_a_provider() {
    let c = FilterConfig::parse(b"").unwrap();
    for name in ["fields", "$fields", "%24fields", "FIELDS"] {
        let path = format!("/v1beta/models/m:generateContent?{name}=candidates&alt=sse");
        let out = up(
            &c,
            &[
                (":path", &path),
                ("x-goog-api-key", TOKEN),
                ("X-Goog-FieldMask", "candidates"),
            ],
        );
        assert_eq!(
            values(&out, ":path"),
            vec!["/v1beta/models/m:generateContent?alt=sse"],
            "{name}"
        );
        assert!(values(&out, "x-goog-fieldmask").is_empty(), "{name}");
    }
}
