//! The wire fixtures (`wire/fixtures/`) through the filter's own encoders and decoders.
//!
//! What the filter sends (the check request, the activity report, the revalidation) is built by
//! the functions the shim calls and must equal its fixture as JSON; what it parses (allow,
//! lease, deny, revalidation verdicts) goes through the functions the shim calls and must mean
//! what the fixture says. The token-service's `tests/wire_fixtures.rs` pushes the same
//! fixtures through its handlers, so a change on either side that breaks the contract fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::head;
use ptk_filter_core::activity::ActivityBatch;
use ptk_filter_core::guard::outbound;
use ptk_filter_core::key_pool::first_key;
use ptk_filter_core::open_streams::{
    parse_revalidation, revalidate_call, OpenStreams, Revalidated,
};
use ptk_filter_core::verdict_cache::{cache_key, CachedVerdict};
use ptk_filter_core::{
    check_call, decide_check_response, decide_headers, token_hash, CheckDecision, FilterConfig,
    HeadersDecision, LocalReply, PendingCheck, RequestHead,
};
use ptk_wire::{DenyReason, Lease, Provider, ACTIVITY_PATH, REVALIDATE_PATH};
use serde_json::Value;

const SECRET: &str = "fixture-check-secret-0123";
/// The host time the check was sent (the cache TTL runs from there).
const SENT_MS: u64 = 1_800_000_000_000;
/// The key the response fixtures carry.
const KEY: &str = "sk-real-fixture-key";

fn fixture(name: &str) -> String {
    let path = format!("{}/../wire/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// The token the fixtures' hash is of (`sha256("test")`).
const TOKEN: &str = "test";

/// A request carrying [`TOKEN`]: Anthropic's Messages API, or OpenAI's chat completions.
fn request(provider: Provider) -> RequestHead {
    match provider {
        Provider::Anthropic => head(&[(":path", "/v1/messages"), ("x-api-key", TOKEN)]),
        _ => head(&[
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            ("authorization", "Bearer test"),
        ]),
    }
}

fn pending(config: &FilterConfig, h: &RequestHead) -> PendingCheck {
    match decide_headers(config, h) {
        HeadersDecision::Check(p) => p,
        other => panic!("expected a check, got {other:?}"),
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn the_fixtures_hash_is_the_filters_hash_of_their_token() {
    let request = json(fixture("check_request.json").as_bytes());
    assert_eq!(request["hash"], token_hash(TOKEN));
}

#[test]
fn the_check_request_the_filter_sends_is_the_fixture() {
    let config = FilterConfig::parse(b"").unwrap();
    let p = pending(&config, &request(Provider::Anthropic));
    let (headers, body) = check_call(&config, SECRET, &p);
    assert_eq!(json(&body), json(fixture("check_request.json").as_bytes()));
    assert_eq!(header(&headers, ":path"), Some(ptk_wire::CHECK_PATH));

    // An expired lease handed back rides on the next check.
    let mut p = pending(&config, &request(Provider::Openai));
    p.returned = Some(Lease {
        units: 7,
        window: 1_764_326_400_123,
    });
    let (_, body) = check_call(&config, SECRET, &p);
    assert_eq!(
        json(&body),
        json(fixture("check_request_returning.json").as_bytes())
    );
}

#[test]
fn the_activity_report_the_filter_sends_is_the_fixture() {
    let config = FilterConfig::parse(b"").unwrap();
    let mut batch = ActivityBatch::default();
    for _ in 0..42 {
        batch.record(&token_hash(TOKEN));
    }
    let (headers, body) = batch.take_call(&config, SECRET).unwrap();
    assert_eq!(json(&body), json(fixture("usage.json").as_bytes()));
    assert_eq!(header(&headers, ":path"), Some(ACTIVITY_PATH));
}

/// The filter's decision on a 200 carrying `body`, for a request to `provider`.
fn decide(provider: Provider, body: &str) -> CheckDecision {
    let config = FilterConfig::parse(b"").unwrap();
    let h = request(provider);
    let p = pending(&config, &h);
    decide_check_response(
        &config,
        &h,
        &p,
        Some(200),
        Some(body.as_bytes()),
        SENT_MS,
        first_key,
    )
}

/// The key that goes upstream and the cache entry of a forward.
fn forwarded(provider: Provider, body: &str) -> (String, Option<CachedVerdict>) {
    let h = request(provider);
    match decide(provider, body) {
        CheckDecision::Forward { plan, cache, .. } => {
            let upstream: Vec<(String, String)> = outbound(&h, &plan)
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            (header(&upstream, "x-api-key").unwrap().to_string(), cache)
        }
        other => panic!("expected a forward, got {other:?}"),
    }
}

fn replied(body: &str) -> LocalReply {
    match decide(Provider::Anthropic, body) {
        CheckDecision::Reply {
            refused,
            callout_failed: false,
        } => refused.reply,
        other => panic!("expected a deny's reply, got {other:?}"),
    }
}

#[test]
fn the_filter_forwards_an_allow_with_its_key_and_caches_it_for_its_ttl() {
    let (key, cache) = forwarded(Provider::Anthropic, &fixture("allow.json"));
    assert_eq!(key, KEY);
    let cache = cache.expect("a TTL of 1000 ms is cacheable");
    assert_eq!(cache.key, KEY);
    assert_eq!(cache.valid_until_ms, SENT_MS + 1000);
    assert_eq!(
        (cache.units, cache.window),
        (0, 0),
        "allow.json has no lease"
    );
}

#[test]
fn the_filter_keeps_a_leases_units_and_window() {
    for name in ["allow_lease.json", "newer_allow_lease.json"] {
        let (key, cache) = forwarded(Provider::Anthropic, &fixture(name));
        assert_eq!(key, KEY, "{name}");
        let cache = cache.unwrap();
        assert_eq!(
            (cache.units, cache.window, cache.valid_until_ms),
            (24, 1_764_326_400_123, SENT_MS + 1000),
            "{name}"
        );
    }
}

#[test]
fn the_filter_refuses_on_the_deny_fixtures() {
    for name in ["deny_invalid.json", "newer_deny_invalid.json"] {
        assert_eq!(replied(&fixture(name)).status, 401, "{name}");
    }
    let limited = replied(&fixture("deny_rate_limited.json"));
    assert_eq!(limited.status, 429);
    assert_eq!(header(&limited.headers, "retry-after"), Some("42"));
    let budget = replied(&fixture("deny_budget_exhausted.json"));
    assert_eq!(budget.status, 429);
    assert_eq!(header(&budget.headers, "retry-after"), Some("3600"));
    let body = json(&budget.body);
    let message = body
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap();
    assert!(
        message.contains("group's daily cost budget") && message.contains("2026-11-30T00:00:00Z"),
        "{message}"
    );
}

#[test]
fn an_allow_limited_is_enforced_and_its_limits_are_cached() {
    // The fixture's request names its model in the body; without the hold filter configured
    // it cannot be read before forwarding: refused (403), never forwarded unchecked. The
    // token itself is allowed: its verdict is cached with its limits.
    match decide(Provider::Openai, &fixture("allow_limited.json")) {
        CheckDecision::Refuse { refused, cache } => {
            assert_eq!(refused.reply.status, 403);
            let body = String::from_utf8(refused.reply.body).unwrap();
            assert!(
                body.contains("model_not_allowed") && body.contains("hold"),
                "{body}"
            );
            let limits = cache.unwrap().limits.and_then(|l| l.models);
            assert_eq!(
                limits,
                Some(vec!["gpt-5*".to_string(), "gpt-4o-mini".to_string()])
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A limit this build does not know still fails closed (503).
    let unknown =
        r#"{"verdict":"allow_limited","key":"k","cache_ttl_ms":1,"limits":{"spend_cap":1}}"#;
    assert!(matches!(
        decide(Provider::Openai, unknown),
        CheckDecision::Reply {
            callout_failed: true,
            ..
        }
    ));
}

#[test]
fn a_budget_grant_is_handed_to_the_flow_with_its_expiry_from_the_send() {
    // `flow/budget.rs` spends it before anything is forwarded (`flow::tests::budget`).
    match decide(Provider::Openai, &fixture("allow_budgeted.json")) {
        CheckDecision::Forward {
            grant: Some(grant), ..
        } => assert_eq!(
            (grant.id, grant.remaining, grant.expires_at_ms),
            (77, 25_000, SENT_MS + 1000)
        ),
        other => panic!("expected a forward with its grant, got {other:?}"),
    }
}

#[test]
fn the_revalidation_the_filter_sends_and_reads_are_the_fixtures() {
    let config = FilterConfig::parse(b"").unwrap();
    let hash = token_hash(TOKEN);
    let (openai, gemini) = (
        cache_key(&hash, Provider::Openai),
        cache_key(&hash, Provider::Gemini),
    );
    let mut streams = OpenStreams::default();
    // Open streams of one token on two providers; OpenAI's verdict ran out first.
    streams.open(1, &openai, &hash, Provider::Openai, SENT_MS - 1, Some(0));
    streams.open(2, &gemini, &hash, Provider::Gemini, SENT_MS, Some(0));
    let due = streams.due(SENT_MS).unwrap();
    let (keys, entries): (Vec<String>, Vec<_>) = due.into_iter().unzip();
    assert_eq!(keys, [openai.clone(), gemini.clone()]);
    let (headers, body) = revalidate_call(&config, SECRET, entries);
    assert_eq!(
        json(&body),
        json(fixture("revalidate_request.json").as_bytes())
    );
    assert_eq!(header(&headers, ":path"), Some(REVALIDATE_PATH));

    let answer = fixture("revalidate_response.json");
    let verdicts = parse_revalidation(Some(200), Some(answer.as_bytes())).unwrap();
    assert_eq!(
        verdicts,
        [
            (
                openai.clone(),
                Revalidated::Valid {
                    ttl_ms: 1000,
                    limits_tag: 0,
                }
            ),
            (
                gemini.clone(),
                Revalidated::Refused(DenyReason::ProviderNotAllowed)
            ),
        ]
    );
    // Out of scope now: the Gemini stream closes, the OpenAI one stays open.
    let mut closed = Vec::new();
    for (key, verdict) in verdicts {
        closed.extend(streams.revalidated(&key, verdict, SENT_MS));
    }
    assert_eq!(closed, [2]);
}
