//! The wire fixtures shared with the filter, pushed through the running service: the request
//! fixtures (check, usage, revalidation) are accepted as-is, and the service's own answers
//! serialise to the response fixtures (allow, lease, deny, rate limited, revalidation).
//! The `newer_*` fixtures are what a newer filter or token-service might send (fields this
//! version does not know): they parse to the same values as their base fixtures. The filter
//! core's `tests/wire_fixtures.rs` builds and reads the same fixtures with its own code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use ptk_wire::{CheckRequest, CheckResponse, DenyReason, Provider};
use serde_json::Value;
use token_service::keys::ProviderKeys;

fn fixture(name: &str) -> String {
    let path = format!("{}/../wire/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn every_fixture_round_trips_through_the_wire_types() {
    for name in ["check_request.json", "check_request_returning.json"] {
        let request: CheckRequest = serde_json::from_str(&fixture(name)).unwrap();
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json(&fixture(name))
        );
    }
    for name in ["usage.json", "usage_with_token_usage.json"] {
        let usage: ptk_wire::ActivityReport = serde_json::from_str(&fixture(name)).unwrap();
        assert_eq!(serde_json::to_value(&usage).unwrap(), json(&fixture(name)));
    }
    for name in [
        "allow.json",
        "allow_lease.json",
        "deny_invalid.json",
        "deny_rate_limited.json",
    ] {
        let parsed: CheckResponse = serde_json::from_str(&fixture(name)).unwrap();
        assert_eq!(
            serde_json::to_value(&parsed).unwrap(),
            json(&fixture(name)),
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_service_answers_the_request_fixture_with_the_response_fixtures() {
    // allow.json's key, configured as the Anthropic key the request fixture asks for.
    let app = spawn_app_with(Options {
        keys: ProviderKeys::none().with(Provider::Anthropic, "sk-real-fixture-key"),
        ..Options::default()
    })
    .await;
    let request = fixture("check_request.json");

    // No such token yet: the body is exactly deny_invalid.json.
    let response = app.post_check(request.clone(), Some(SECRET)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        json(&response.text().await.unwrap()),
        json(&fixture("deny_invalid.json"))
    );

    // The fixture's hash is sha256("test"); store that token and the answer is allow.json.
    // (A limit of 1 leaves nothing to lease, so the answer carries no lease.)
    let hash = app
        .add_token("test", &[Provider::Anthropic], |r| {
            r.rate_limit = Some(token_service::ratelimit::RateLimit {
                limit: 1,
                window_s: 60,
            })
        })
        .await;
    assert_eq!(json(&request)["hash"], hash);
    let response = app.post_check(request, Some(SECRET)).await;
    assert_eq!(
        json(&response.text().await.unwrap()),
        json(&fixture("allow.json"))
    );

    // The rate-limited shape the service builds matches its fixture.
    let limited = CheckResponse::Deny {
        reason: DenyReason::RateLimited,
        retry_after_s: Some(42),
        budget: None,
    };
    assert_eq!(
        serde_json::to_value(&limited).unwrap(),
        json(&fixture("deny_rate_limited.json"))
    );
}

#[test]
fn newer_fixtures_parse_like_their_base_fixtures() {
    let request = |name| serde_json::from_str::<CheckRequest>(&fixture(name)).unwrap();
    assert_eq!(
        request("newer_check_request_returning.json"),
        request("check_request_returning.json")
    );
    let response = |name| serde_json::from_str::<CheckResponse>(&fixture(name)).unwrap();
    assert_eq!(
        response("newer_allow_lease.json"),
        response("allow_lease.json")
    );
    assert_eq!(
        response("newer_deny_invalid.json"),
        response("deny_invalid.json")
    );
    let usage = |name| serde_json::from_str::<ptk_wire::ActivityReport>(&fixture(name)).unwrap();
    assert_eq!(usage("newer_usage.json"), usage("usage.json"));
}

#[tokio::test]
async fn the_service_answers_a_newer_filters_messages() {
    let app = spawn_app().await;
    // The fixture returns lease units for sha256("test") on openai; no such token yet.
    let response = app
        .post_check(fixture("newer_check_request_returning.json"), Some(SECRET))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        json(&response.text().await.unwrap()),
        json(&fixture("deny_invalid.json"))
    );
    let usage = app
        .client
        .post(app.url(ptk_wire::ACTIVITY_PATH))
        .header(ptk_wire::CHECK_SECRET_HEADER, SECRET)
        .body(fixture("newer_usage.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(usage.status(), 204);
}

/// `value` with the number at `pointer` replaced by `with`, after checking it is one in `range`
/// (for the fields that depend on the clock: window ids, seconds to wait).
fn pinned(
    mut value: Value,
    pointer: &str,
    range: std::ops::RangeInclusive<u64>,
    with: u64,
) -> Value {
    let field = value
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer} missing in the answer"));
    let n = field
        .as_u64()
        .unwrap_or_else(|| panic!("{pointer}: {field}"));
    assert!(range.contains(&n), "{pointer}: {n} not in {range:?}");
    *field = Value::from(with);
    value
}

#[tokio::test]
async fn the_service_answers_with_the_lease_and_rate_limited_fixtures() {
    let app = spawn_app_with(Options {
        keys: ProviderKeys::none().with(Provider::Anthropic, "sk-real-fixture-key"),
        ..Options::default()
    })
    .await;
    // sha256("test") again; 100 a minute leases (100 - 1) / 4 = 24 units, as the fixture.
    app.add_token("test", &[Provider::Anthropic], |r| {
        r.rate_limit = Some(token_service::ratelimit::RateLimit {
            limit: 100,
            window_s: 60,
        })
    })
    .await;
    let request = fixture("check_request.json");
    let first = json(
        &app.post_check(request.clone(), Some(SECRET))
            .await
            .text()
            .await
            .unwrap(),
    );
    let lease = json(&fixture("allow_lease.json"));
    let window = lease["lease"]["window"].as_u64().unwrap();
    assert_eq!(pinned(first, "/lease/window", 1..=u64::MAX, window), lease);

    // Spend the window; the first refusal is the rate-limited fixture, give or take the wait.
    let limited = json(&fixture("deny_rate_limited.json"));
    let wait = limited["retry_after_s"].as_u64().unwrap();
    for _ in 0..100 {
        let answer = json(
            &app.post_check(request.clone(), Some(SECRET))
                .await
                .text()
                .await
                .unwrap(),
        );
        if answer["verdict"] == "deny" {
            assert_eq!(pinned(answer, "/retry_after_s", 1..=60, wait), limited);
            return;
        }
    }
    panic!("100 checks of a 100-a-minute token were never rate limited");
}

#[tokio::test]
async fn the_service_reads_the_usage_and_returning_fixtures() {
    let app = spawn_app().await;
    app.add_token("test", &[Provider::Openai], |_| {}).await;
    let usage = app
        .client
        .post(app.url(ptk_wire::ACTIVITY_PATH))
        .header(ptk_wire::CHECK_SECRET_HEADER, SECRET)
        .body(fixture("usage.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(usage.status(), 204);
    let returning = app
        .post_check(fixture("check_request_returning.json"), Some(SECRET))
        .await;
    assert_eq!(returning.status(), 200);
    let answer = json(&returning.text().await.unwrap());
    assert_eq!(answer["verdict"], "allow", "{answer}");
}

#[tokio::test]
async fn the_service_answers_the_revalidation_fixture_with_its_answer_fixture() {
    let app = spawn_app().await;
    // Valid for OpenAI, out of scope for Gemini.
    app.add_token("test", &[Provider::Openai], |_| {}).await;
    let response = app
        .client
        .post(app.url(ptk_wire::REVALIDATE_PATH))
        .header(ptk_wire::CHECK_SECRET_HEADER, SECRET)
        .body(fixture("revalidate_request.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        json(&response.text().await.unwrap()),
        json(&fixture("revalidate_response.json"))
    );
}
