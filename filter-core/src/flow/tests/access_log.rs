//! The access-log fields of forwarded requests (`flow/access_fields.rs`): provider and token
//! (a generated token by its hash prefix, any other as `custom`) when forwarded, checked or
//! cached; model and usage when a metered response ends; nothing for a refused request.

use super::*;
use crate::access_log::{MODEL_FIELD, PROVIDER_FIELD, TOKEN_FIELD, USAGE_FIELD};

/// A token of the generated shape (`ptk_` and 32 URL-safe characters).
const GENERATED: &str = "ptk_Gen3rated-Token_0123456789abcdef";

fn field<'h>(host: &'h FakeHost, name: &str) -> Option<&'h str> {
    let found = host.log_fields.iter().find(|(n, _)| n == name);
    found.map(|(_, v)| v.as_str())
}

#[test]
fn a_checked_generated_token_logs_its_provider_and_hash_prefix_never_the_token() {
    assert_eq!(GENERATED.len(), 36);
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    let (mut flow, step) = headers(&w, &mut host, request_with(GENERATED));
    assert!(matches!(step, Step::CallOut { .. }));
    assert!(host.log_fields.is_empty(), "logged before the verdict");
    assert_eq!(
        answer(&mut flow, &w, &mut host, &allow(0, None)),
        Step::Forward
    );
    assert_eq!(field(&host, PROVIDER_FIELD), Some("openai"));
    let hash = token_hash(GENERATED);
    assert_eq!(field(&host, TOKEN_FIELD), Some(&hash[..12]));
    for (_, value) in &host.log_fields {
        assert!(
            !value.contains(GENERATED) && !value.contains(KEY),
            "{value}"
        );
    }
}

#[test]
fn a_cached_custom_token_logs_as_custom() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    cache_verdict(&host, T0 + 10_000, 5, 1);
    let (_flow, step) = headers(&w, &mut host, request());
    assert_eq!(step, Step::Forward);
    assert_eq!(field(&host, PROVIDER_FIELD), Some("openai"));
    assert_eq!(field(&host, TOKEN_FIELD), Some("custom"));
    assert_eq!(field(&host, USAGE_FIELD), None);
}

#[test]
fn a_refused_request_logs_no_field() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    let (mut flow, _) = headers(&w, &mut host, request_with(GENERATED));
    let refused = deny(ptk_wire::DenyReason::Invalid, None);
    assert_eq!(status(&answer(&mut flow, &w, &mut host, &refused)), 401);
    assert!(host.log_fields.is_empty(), "{:?}", host.log_fields);
}

#[test]
fn a_metered_response_logs_its_model_and_usage_when_it_ends() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    cache_verdict(&host, T0 + 10_000, 5, 1);
    let (mut flow, _) = headers(&w, &mut host, request());
    host.response = vec![
        (":status".into(), "200".into()),
        ("content-type".into(), "application/json".into()),
    ];
    flow.on_response_headers(&w, &mut host, false);
    host.body = br#"{"model":"gpt-x\" 200 [fake]","usage":{"prompt_tokens":12,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":1}}}"#.to_vec();
    let size = host.body.len();
    flow.on_response_body(&w, &mut host, size, false);
    assert_eq!(field(&host, USAGE_FIELD), None, "logged before the end");
    flow.on_response_body(&w, &mut host, 0, true);
    assert_eq!(field(&host, MODEL_FIELD), Some("gpt-x__200__fake_"));
    assert_eq!(
        field(&host, USAGE_FIELD),
        Some("input=12,cached=4,cache_write=0,output=3,reasoning=1,complete")
    );
}
