//! A pool key leaves rotation only when the whole body of the provider's error says the key
//! itself was refused; the client gets the filter's answer either way, never the provider's
//! text.

use super::key_pool::{next, pooled, refuse, INVALID_KEY};
use super::*;
use crate::flow::{BodyStep, HeadersStep};
use crate::upstream_errors::INSPECT_MAX;

const MISSING_SCOPE: &str = r#"{"error":{"message":"You have insufficient permissions for this operation. Missing scopes: api.model.read.","type":"invalid_request_error","param":null,"code":"missing_scope"}}"#;

/// Ids the next `n` requests go with, sorted.
fn keys(w: &Worker, host: &mut FakeHost, n: usize) -> Vec<String> {
    let mut got: Vec<String> = (0..n).map(|_| next(w, host).1).collect();
    got.sort();
    got
}

fn answered(host: &FakeHost) {
    let body = String::from_utf8_lossy(&host.body);
    assert!(body.contains("upstream_credential_refused"), "{body}");
    assert!(!body.contains("scopes") && !body.contains("sk-"), "{body}");
}

#[test]
fn a_401_for_a_missing_scope_is_answered_and_leaves_the_key_in_rotation() {
    let (w, mut host) = pooled(&["a", "b"]);
    for _ in 0..2 {
        let (mut flow, _) = next(&w, &mut host);
        refuse(&mut flow, &w, &mut host, "401", MISSING_SCOPE);
        answered(&host);
    }
    assert_eq!(
        keys(&w, &mut host, 4),
        ["a", "a", "b", "b"],
        "a key left rotation"
    );
    assert_eq!(
        w.counts.get(Counter::CredentialRefused(Provider::Openai)),
        2
    );
    let report = w.activity.borrow_mut().take_call(&w.config, "s");
    assert!(report.is_none_or(|r| !String::from_utf8_lossy(&r.1).contains("refused")));
}

#[test]
fn a_refusal_still_arriving_is_held_and_decided_only_once_whole() {
    let (w, mut host) = pooled(&["a", "b"]);
    let (mut flow, id) = next(&w, &mut host);
    host.response = vec![(":status".into(), "401".into())];
    assert_eq!(
        flow.on_response_headers(&w, &mut host, false),
        HeadersStep::Continue
    );
    host.body = INVALID_KEY.as_bytes()[..20].to_vec();
    assert_eq!(
        flow.on_response_body(&w, &mut host, 20, false),
        BodyStep::Pause
    );
    host.body = INVALID_KEY.as_bytes().to_vec();
    let size = host.body.len();
    assert_eq!(
        flow.on_response_body(&w, &mut host, size, true),
        BodyStep::Continue
    );
    answered(&host);
    let other = if id == "a" { "b" } else { "a" };
    assert_eq!(
        keys(&w, &mut host, 2),
        [other, other],
        "the refused key stayed"
    );
}

#[test]
fn a_body_past_the_bound_is_answered_unread_and_keeps_the_key() {
    let (w, mut host) = pooled(&["a", "b"]);
    let (mut flow, _) = next(&w, &mut host);
    host.response = vec![
        (":status".into(), "401".into()),
        ("content-length".into(), "99999999".into()),
    ];
    assert_eq!(
        flow.on_response_headers(&w, &mut host, false),
        HeadersStep::Continue
    );
    // It says the key is invalid, but it never ends within the bound: not believed.
    let mut huge = INVALID_KEY.as_bytes().to_vec();
    huge.resize(INSPECT_MAX + 1, b' ');
    host.body = huge;
    let size = host.body.len();
    assert_eq!(
        flow.on_response_body(&w, &mut host, size, false),
        BodyStep::Continue
    );
    answered(&host);
    let answer = host.body.clone();
    // Whatever more comes is dropped, never held.
    host.body.extend_from_slice(b"more provider text sk-abcd");
    let more = host.body.len() - answer.len();
    host.body = host.body[answer.len()..].to_vec();
    assert_eq!(
        flow.on_response_body(&w, &mut host, more, true),
        BodyStep::Continue
    );
    assert!(
        host.body.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&host.body)
    );
    assert_eq!(keys(&w, &mut host, 4), ["a", "a", "b", "b"]);
}

#[test]
fn a_bodyless_401_is_answered_at_its_headers_and_keeps_the_key() {
    let (w, mut host) = pooled(&["a", "b"]);
    let (mut flow, _) = next(&w, &mut host);
    host.response = vec![(":status".into(), "401".into())];
    assert_eq!(
        flow.on_response_headers(&w, &mut host, true),
        HeadersStep::Stop
    );
    assert_eq!(host.replies.len(), 1);
    assert_eq!(keys(&w, &mut host, 4), ["a", "a", "b", "b"]);
}
