#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use super::*;

const GEO: &str = r#"{"error":{"code":"unsupported_country_region_territory","message":"Country, region, or territory not supported","param":null,"type":"request_forbidden"}}"#;
const KEY_403: &str =
    r#"{"error":{"code":"invalid_api_key","message":"no","type":"invalid_request_error"}}"#;

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn only_an_exact_403_with_the_marker_is_a_geo_block() {
    assert!(is_geo_block(403, GEO.as_bytes()));
    assert!(is_geo_block(
        403,
        b"xx unsupported_country_region_territory"
    ));
    assert!(!is_geo_block(403, KEY_403.as_bytes()));
    assert!(!is_geo_block(403, b""));
    assert!(!is_geo_block(403, b"unsupported_country_region"));
    for status in [200, 400, 401, 404, 429, 451, 500, 503] {
        assert!(!is_geo_block(status, GEO.as_bytes()), "{status}");
    }
}

#[test]
fn only_openai_over_http_qualifies() {
    assert!(qualifies(Provider::Openai, false));
    assert!(!qualifies(Provider::Openai, true));
    for provider in [
        Provider::Anthropic,
        Provider::Gemini,
        Provider::Configured("selfhosted"),
    ] {
        assert!(!qualifies(provider, false), "{provider:?}");
    }
}

#[test]
fn the_copy_follows_what_envoy_holds() {
    let mut body = ReplayBody::new(10);
    body.chunk(b"abc", false);
    body.passed();
    // Paused: Envoy hands the held bytes again, growing.
    body.chunk(b"de", false);
    body.chunk(b"defg", true);
    body.passed();
    assert_eq!(body.replayable(false), Some(&b"abcdefg"[..]));
}

#[test]
fn an_unfinished_body_is_not_replayable() {
    let mut body = ReplayBody::new(10);
    body.chunk(b"abc", false);
    body.passed();
    assert_eq!(body.replayable(false), None);
    assert_eq!(ReplayBody::new(10).replayable(true), Some(&b""[..]));
    assert_eq!(ReplayBody::new(10).replayable(false), None);
}

#[test]
fn past_the_bound_the_copy_is_dropped_for_good() {
    let mut body = ReplayBody::new(5);
    body.chunk(b"abcde", false);
    body.passed();
    assert!(!body.overflowed());
    body.chunk(b"f", true);
    assert!(body.overflowed());
    assert_eq!(body.replayable(false), None);
    body.chunk(b"", true);
    assert_eq!(body.replayable(true), None);
    // Exactly the bound is kept.
    let mut exact = ReplayBody::new(3);
    exact.chunk(b"abc", true);
    assert_eq!(exact.replayable(false), Some(&b"abc"[..]));
}

#[test]
fn the_replay_keeps_the_swapped_headers_and_sets_framing_and_authority() {
    let headers = pairs(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "api.openai.com"),
        (":scheme", "https"),
        ("authorization", "Bearer sk-real"),
        ("content-length", "999"),
        ("transfer-encoding", "chunked"),
        ("x-envoy-expected-rq-timeout-ms", "1"),
        ("openai-organization", "org-1"),
    ]);
    let (out, body) = replay_call(&headers, "egress.example", b"{}");
    assert_eq!(body, b"{}");
    let get = |name: &str| {
        out.iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(get(":authority"), ["egress.example"]);
    assert_eq!(get("authorization"), ["Bearer sk-real"]);
    assert_eq!(get("content-length"), ["2"]);
    assert_eq!(get("openai-organization"), ["org-1"]);
    assert_eq!(get(":path"), ["/v1/chat/completions"]);
    assert!(get("transfer-encoding").is_empty());
    assert!(get("x-envoy-expected-rq-timeout-ms").is_empty());
    let (bodyless, _) = replay_call(&headers, "a", b"");
    assert!(!bodyless.iter().any(|(n, _)| n == "content-length"));
}

#[test]
fn the_reply_drops_framing_and_masks_the_key_in_an_error() {
    let headers = pairs(&[
        (":status", "200"),
        ("content-type", "application/json"),
        ("content-length", "10"),
        ("x-request-id", "r1"),
    ]);
    let reply = replayed_reply(
        200,
        &headers,
        b"sk-real-key-0123456789".to_vec(),
        "sk-real-key-0123456789",
    );
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body, b"sk-real-key-0123456789",
        "a success is never rewritten"
    );
    assert_eq!(
        reply.headers,
        pairs(&[("content-type", "application/json"), ("x-request-id", "r1")])
    );
    let key = "sk-real-key-0123456789abcdef";
    let quoted = format!("bad key {key}");
    let error = replayed_reply(401, &headers, quoted.into_bytes(), key);
    assert!(!String::from_utf8(error.body).unwrap().contains(key));
}

#[test]
fn a_failed_egress_is_a_502_in_openai_shape() {
    let reply = failed_reply();
    assert_eq!(reply.status, 502);
    let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(json["error"]["code"], "geo_fallback_failed");
}

#[test]
fn the_config_is_bounded() {
    let parse = |text: &str| serde_json::from_str::<GeoFallbackConfig>(text);
    let config = parse(r#"{"cluster": "openai_egress"}"#).unwrap();
    assert_eq!(config.max_request_body_bytes, 256 * 1024);
    assert_eq!(config.authority, None);
    assert!(config.validate("f").is_ok());
    assert!(parse(r#"{"cluster": "c", "bogus": 1}"#).is_err());
    assert!(parse(r#"{}"#).is_err());
    let big = parse(r#"{"cluster": "c", "max_request_body_bytes": 99999999999}"#).unwrap();
    assert!(big
        .validate("f")
        .unwrap_err()
        .contains("f.max_request_body_bytes"));
    let slow = parse(r#"{"cluster": "c", "timeout_ms": 0}"#).unwrap();
    assert!(slow.validate("f").unwrap_err().contains("f.timeout_ms"));
}

#[test]
fn the_swapped_headers_are_the_clients_with_the_rewrite_applied() {
    let head = RequestHead::new(pairs(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "proxy.local"),
        ("Authorization", "Bearer ptk_client"),
        ("x-api-key", "ptk_other"),
        ("openai-beta", "x"),
    ]));
    let plan = RewritePlan {
        remove: vec!["x-api-key".into()],
        set: pairs(&[
            (":authority", "api.openai.com"),
            ("authorization", "Bearer sk-real"),
        ]),
    };
    let swapped = swapped_headers(&head, &plan);
    assert_eq!(
        swapped,
        pairs(&[
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            ("openai-beta", "x"),
            (":authority", "api.openai.com"),
            ("authorization", "Bearer sk-real"),
        ])
    );
    assert!(!swapped.iter().any(|(_, v)| v.contains("ptk_")));
}

#[test]
fn a_learned_block_holds_until_its_time() {
    let stored = blocked_until(1_000, 500);
    assert_eq!(stored, b"1500");
    assert!(still_blocked(Some(&stored), 1_499));
    assert!(!still_blocked(Some(&stored), 1_500));
    assert!(!still_blocked(None, 0));
    assert!(!still_blocked(Some(b"garbage"), 0));
    assert_eq!(
        blocked_until(u64::MAX, 1),
        u64::MAX.to_string().into_bytes()
    );
    let long =
        serde_json::from_str::<GeoFallbackConfig>(r#"{"cluster": "c", "learn_ms": 86400001}"#);
    assert!(long
        .unwrap()
        .validate("f")
        .unwrap_err()
        .contains("f.learn_ms"));
}
