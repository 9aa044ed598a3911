//! The request state machine: verdict mapping (original Worker §1.2), error shapes, and the
//! fail-closed rules for a token-service that is down, slow or answering garbage.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::head;
use ptk_filter_core::{
    check_call, decide_check_response, decide_headers, token_hash, CheckDecision, FilterConfig,
    HeadersDecision, LocalReply, PendingCheck, Refusal, RequestHead,
};
use serde_json::Value;

const SECRET: &str = "check-secret-0123456789";
const NOW: u64 = 1_800_000_000_000;

fn pending(h: &RequestHead) -> PendingCheck {
    match decide_headers(&FilterConfig::parse(b"").unwrap(), h) {
        HeadersDecision::Check(p) => p,
        other => panic!("unexpected {other:?}"),
    }
}

fn reply(h: &RequestHead, status: Option<u16>, body: &str) -> LocalReply {
    let config = FilterConfig::parse(b"").unwrap();
    match decide_check_response(&config, h, &pending(h), status, Some(body.as_bytes()), NOW) {
        CheckDecision::Reply {
            refused,
            callout_failed,
        } => {
            assert!(!callout_failed, "{body}");
            refused.reply
        }
        CheckDecision::Forward { .. } => panic!("forwarded on {status:?} {body}"),
        CheckDecision::Refuse { refused, .. } => panic!("guard refused: {refused:?}"),
    }
}

fn json(r: &LocalReply) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn header<'a>(r: &'a LocalReply, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn openai() -> RequestHead {
    head(&[
        (":path", "/v1/chat/completions"),
        ("authorization", "Bearer ptk_abc"),
    ])
}
fn anthropic() -> RequestHead {
    head(&[(":path", "/v1/messages"), ("x-api-key", "ptk_abc")])
}
fn gemini() -> RequestHead {
    head(&[
        (":path", "/v1beta/models/m:generateContent"),
        ("x-goog-api-key", "ptk_abc"),
    ])
}

#[test]
fn hash_is_lowercase_hex_sha256() {
    assert_eq!(
        token_hash("test"),
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    );
}

#[test]
fn missing_token_is_401_in_a_guessed_shape() {
    let cases = [
        ("/v1/chat/completions", "error.message"),
        ("/v1/messages", "type"),
        ("/v1beta/models/m:generateContent", "error.status"),
    ];
    for (path, field) in cases {
        let HeadersDecision::Reply(refused) = decide_headers(
            &FilterConfig::parse(b"").unwrap(),
            &head(&[(":path", path)]),
        ) else {
            panic!("expected a reply for {path}");
        };
        assert_eq!(refused.refusal, Refusal::MissingToken);
        let r = refused.reply;
        assert_eq!(r.status, 401);
        let body = json(&r);
        let mut v = &body;
        for part in field.split('.') {
            v = &v[part];
        }
        assert!(!v.is_null(), "{path}: {field} missing in {body}");
        assert!(body.to_string().contains("missing token"));
    }
}

#[test]
fn check_call_sends_the_hash_never_the_token() {
    let config = FilterConfig::parse(b"").unwrap();
    let h = anthropic();
    let p = pending(&h);
    let (headers, body) = check_call(&config, SECRET, &p);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["hash"], token_hash("ptk_abc"));
    assert_eq!(body["provider"], "anthropic");
    assert!(!serde_json::to_string(&headers).unwrap().contains("ptk_abc"));
    assert!(headers.contains(&(":path".to_string(), "/v1/check".to_string())));
    assert!(headers.contains(&("x-ptk-check-secret".to_string(), SECRET.to_string())));
}

#[test]
fn gemini_openai_checks_the_gemini_scope() {
    let config = FilterConfig::parse(b"").unwrap();
    let h = head(&[
        (":path", "/v1beta/openai/chat/completions"),
        ("authorization", "Bearer t"),
    ]);
    let (_, body) = check_call(&config, SECRET, &pending(&h));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["provider"], "gemini");
}

#[test]
fn every_deny_reason_maps_to_its_status_and_message() {
    let cases = [
        (
            r#"{"verdict":"deny","reason":"invalid"}"#,
            401,
            "invalid or revoked token",
        ),
        (
            r#"{"verdict":"deny","reason":"expired"}"#,
            401,
            "token expired",
        ),
        (
            r#"{"verdict":"deny","reason":"scope"}"#,
            403,
            "token not allowed for provider",
        ),
        (
            r#"{"verdict":"deny","reason":"rate_limited","retry_after_s":17}"#,
            429,
            "rate limit exceeded",
        ),
        (
            r#"{"verdict":"deny","reason":"store_unavailable"}"#,
            503,
            "token store unavailable",
        ),
        (
            r#"{"verdict":"deny","reason":"provider_unconfigured"}"#,
            503,
            "provider not configured on this proxy",
        ),
    ];
    for (body, status, message) in cases {
        let r = reply(&openai(), Some(200), body);
        assert_eq!(r.status, status, "{body}");
        assert_eq!(json(&r)["error"]["message"], message, "{body}");
        assert_eq!(header(&r, "content-type"), Some("application/json"));
    }
    let limited = reply(
        &openai(),
        Some(200),
        r#"{"verdict":"deny","reason":"rate_limited","retry_after_s":17}"#,
    );
    assert_eq!(header(&limited, "retry-after"), Some("17"));
    let default = reply(
        &openai(),
        Some(200),
        r#"{"verdict":"deny","reason":"rate_limited"}"#,
    );
    assert_eq!(header(&default, "retry-after"), Some("60"));
}

#[test]
fn errors_use_each_providers_shape() {
    let deny = r#"{"verdict":"deny","reason":"scope"}"#;
    let o = json(&reply(&openai(), Some(200), deny));
    assert_eq!(o["error"]["type"], "permission_error");
    assert_eq!(o["error"]["code"], "provider_not_allowed");
    let a = json(&reply(&anthropic(), Some(200), deny));
    assert_eq!(a["type"], "error");
    assert_eq!(a["error"]["type"], "permission_error");
    assert_eq!(a["error"]["message"], "token not allowed for provider");
    let g = json(&reply(&gemini(), Some(200), deny));
    assert_eq!(g["error"]["code"], 403);
    assert_eq!(g["error"]["status"], "PERMISSION_DENIED");
    let bearer_anthropic = head(&[
        (":path", "/v1/messages"),
        ("authorization", "Bearer t"),
        ("anthropic-version", "2026-10-21"),
    ]);
    let b = json(&reply(
        &bearer_anthropic,
        Some(200),
        r#"{"verdict":"deny","reason":"invalid"}"#,
    ));
    assert_eq!(b["error"]["type"], "authentication_error");
}

#[test]
fn transport_failures_and_garbage_fail_closed_with_503() {
    let config = FilterConfig::parse(b"").unwrap();
    let h = openai();
    let p = pending(&h);
    let failures: [(Option<u16>, Option<&[u8]>); 10] = [
        (None, None),
        (Some(200), None),
        (Some(200), Some(b"")),
        (Some(200), Some(b"not json")),
        (Some(200), Some(br#"{"verdict":"allow"}"#)),
        (
            Some(200),
            Some(br#"{"verdict":"allow","key":"","cache_ttl_ms":0}"#),
        ),
        // An unknown verdict fails closed (unknown *fields* are fine: see the next test).
        (
            Some(200),
            Some(br#"{"verdict":"maybe","key":"k","cache_ttl_ms":0}"#),
        ),
        (
            Some(401),
            Some(br#"{"verdict":"allow","key":"k","cache_ttl_ms":0}"#),
        ),
        (Some(500), Some(b"oops")),
        // A token-service that does not speak this filter's wire major (docs/wire-protocol.md).
        (
            Some(400),
            Some(br#"{"error":{"code":"unsupported_wire_version","message":"wire protocol 2.0 not supported"}}"#),
        ),
    ];
    for (status, body) in failures {
        match decide_check_response(&config, &h, &p, status, body, NOW) {
            CheckDecision::Reply {
                refused,
                callout_failed,
            } => {
                assert!(callout_failed);
                let r = refused.reply;
                assert_eq!(r.status, 503, "{status:?}");
                assert_eq!(json(&r)["error"]["message"], "token store unavailable");
            }
            CheckDecision::Forward { .. } => panic!("forwarded on {status:?} {body:?}"),
            CheckDecision::Refuse { refused, .. } => panic!("guard refused: {refused:?}"),
        }
    }
}

/// Rolling upgrades: a newer token-service may add fields (at the top and inside the lease);
/// this filter ignores them and forwards, instead of answering 503 for every request. What it
/// cannot read (an unknown deny reason) still fails closed.
#[test]
fn an_allow_with_unknown_fields_forwards() {
    let config = default_config();
    let h = anthropic();
    let p = pending(&h);
    let body = br#"{"verdict":"allow","key":"sk-ant-real","cache_ttl_ms":750,"lease":{"units":9,"window":3,"burst":2},"budget":{"tokens":100},"hint":"newer"}"#;
    match decide_check_response(&config, &h, &p, Some(200), Some(body), NOW) {
        CheckDecision::Forward { plan, cache, .. } => {
            let cache = cache.unwrap();
            assert_eq!((cache.units, cache.window), (9, 3));
            assert_eq!(cache.valid_until_ms, NOW + 750);
            assert_eq!(plan.set_value("x-api-key"), Some("sk-ant-real"));
        }
        CheckDecision::Reply { refused, .. } | CheckDecision::Refuse { refused, .. } => {
            panic!("refused: {refused:?}")
        }
    }
    let deny = reply(
        &openai(),
        Some(200),
        r#"{"verdict":"deny","reason":"scope","detail":"newer"}"#,
    );
    assert_eq!(deny.status, 403);
    let unknown_reason = br#"{"verdict":"deny","reason":"quota_exhausted"}"#;
    match decide_check_response(&config, &h, &p, Some(200), Some(unknown_reason), NOW) {
        CheckDecision::Reply {
            refused,
            callout_failed,
        } => {
            assert!(callout_failed);
            assert_eq!(refused.reply.status, 503);
        }
        CheckDecision::Forward { .. } | CheckDecision::Refuse { .. } => {
            panic!("forwarded an unknown deny reason")
        }
    }
}

#[test]
fn allow_forwards_with_the_plan_and_ttl() {
    let config = FilterConfig::parse(
        br#"{"providers":{"anthropic":{"authority":"anthropic.internal:8443"}}}"#,
    )
    .unwrap();
    let h = anthropic();
    let p = pending(&h);
    let body = br#"{"verdict":"allow","key":"sk-ant-real","cache_ttl_ms":750,"lease":{"units":9,"window":3}}"#;
    match decide_check_response(&config, &h, &p, Some(200), Some(body), NOW) {
        CheckDecision::Forward { plan, cache, .. } => {
            let cache = cache.unwrap();
            assert_eq!(cache.valid_until_ms, NOW + 750);
            assert_eq!((cache.units, cache.window), (9, 3));
            assert_eq!(cache.key, "sk-ant-real");
            assert_eq!(plan.set_value("x-api-key"), Some("sk-ant-real"));
            assert_eq!(
                plan.set_value(":authority"),
                Some("anthropic.internal:8443")
            );
        }
        CheckDecision::Reply { refused, .. } | CheckDecision::Refuse { refused, .. } => {
            panic!("refused: {refused:?}")
        }
    }
}

#[test]
fn websocket_rejections_are_plain_text() {
    let ws = head(&[
        (":path", "/v1/realtime"),
        ("upgrade", "websocket"),
        ("authorization", "Bearer t"),
    ]);
    let r = reply(&ws, Some(200), r#"{"verdict":"deny","reason":"expired"}"#);
    assert_eq!(r.status, 401);
    assert_eq!(r.body, b"token expired");
    assert!(header(&r, "content-type")
        .unwrap()
        .starts_with("text/plain"));
    let HeadersDecision::Reply(missing) = decide_headers(
        &FilterConfig::parse(b"").unwrap(),
        &head(&[(":path", "/v1/realtime"), ("upgrade", "websocket")]),
    ) else {
        panic!("expected a reply");
    };
    assert_eq!(missing.reply.body, b"missing token");
}

fn default_config() -> FilterConfig {
    FilterConfig::parse(b"").unwrap()
}

#[test]
fn preflight_is_answered_before_any_token_work() {
    // Even with a token in every slot, a preflight never reaches the check.
    let h = head(&[
        (":method", "OPTIONS"),
        (":path", "/v1/chat?key=t"),
        ("authorization", "Bearer t"),
        ("origin", "https://app.example"),
    ]);
    match decide_headers(&default_config(), &h) {
        HeadersDecision::Preflight(r) => {
            assert_eq!(r.status, 204);
            assert_eq!(
                header(&r, "access-control-allow-origin"),
                Some("https://app.example")
            );
        }
        other => panic!("expected a preflight answer, got {other:?}"),
    }
}

#[test]
fn refusals_are_decorated_for_browsers() {
    let h = head(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        ("origin", "https://app.example"),
    ]);
    let HeadersDecision::Reply(missing) = decide_headers(&default_config(), &h) else {
        panic!("expected a reply");
    };
    assert_eq!(
        header(&missing.reply, "access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(header(&missing.reply, "vary"), Some("Origin"));
    let with_token = head(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        ("origin", "https://app.example"),
        ("authorization", "Bearer t"),
    ]);
    let r = reply(
        &with_token,
        Some(200),
        r#"{"verdict":"deny","reason":"scope"}"#,
    );
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(
        header(&r, "access-control-expose-headers"),
        Some(ptk_filter_core::expose::sdk_list().as_str())
    );
    let no_origin = reply(
        &openai(),
        Some(200),
        r#"{"verdict":"deny","reason":"scope"}"#,
    );
    assert_eq!(header(&no_origin, "access-control-allow-origin"), None);
}

/// Issue 10 item 3 makes the pass-through opt-in (`ephemeral.pass_through`); with it off the
/// same request is refused as missing a token (tests/ephemeral.rs).
#[test]
fn gemini_ephemeral_tokens_pass_through_untouched() {
    let h = head(&[
        (":path", "//ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained?access_token=auth_tokens/abc"),
        ("upgrade", "websocket"),
    ]);
    let on = FilterConfig::parse(br#"{"ephemeral":{"pass_through":true}}"#).unwrap();
    match decide_headers(&on, &h) {
        HeadersDecision::Passthrough(plan) => {
            assert!(plan.remove.is_empty());
            assert_eq!(
                plan.set,
                vec![(
                    ":authority".to_string(),
                    "generativelanguage.googleapis.com".to_string()
                )]
            );
        }
        other => panic!("expected passthrough, got {other:?}"),
    }
}

#[test]
fn a_zero_ttl_allow_is_not_cached() {
    let config = default_config();
    let h = openai();
    let body = br#"{"verdict":"allow","key":"k","cache_ttl_ms":0}"#;
    match decide_check_response(&config, &h, &pending(&h), Some(200), Some(body), NOW) {
        CheckDecision::Forward { cache, .. } => assert!(cache.is_none()),
        CheckDecision::Reply { refused, .. } | CheckDecision::Refuse { refused, .. } => {
            panic!("refused: {refused:?}")
        }
    }
}

#[test]
fn returned_lease_units_ride_on_the_check() {
    let config = default_config();
    let h = openai();
    let mut p = pending(&h);
    p.returned = Some(ptk_wire::Lease {
        units: 4,
        window: 9,
    });
    let (_, body) = check_call(&config, SECRET, &p);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["returned"]["units"], 4);
    assert_eq!(body["returned"]["window"], 9);
    assert_eq!(
        p.cache_key,
        ptk_filter_core::verdict_cache::cache_key(&p.hash, ptk_wire::Provider::Openai)
    );
}
