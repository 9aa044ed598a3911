//! The wire fixtures shared with the filter, pushed through the running service: the request
//! fixture is accepted as-is, and the service's own answers serialise to the response fixtures.
//! The `newer_*` fixtures are what a newer filter or token-service might send (fields this
//! version does not know): they parse to the same values as their base fixtures.
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
    let usage: ptk_wire::ActivityReport = serde_json::from_str(&fixture("usage.json")).unwrap();
    assert_eq!(
        serde_json::to_value(&usage).unwrap(),
        json(&fixture("usage.json"))
    );
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
            r.rate_limit = Some(token_service::token::RateLimit {
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
