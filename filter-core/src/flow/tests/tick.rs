//! The tick: a token revoked while its verdict was cached reaches its open requests; activity of
//! cached requests is reported.

use super::*;
use crate::flow::{report_activity, Revalidations};

#[test]
fn revoked_while_cached_the_open_request_is_closed_after_the_verdict_runs_out() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    cache_verdict(&host, T0 + 1_000, 5, 1);
    let (_, step) = headers(&w, &mut host, request());
    assert_eq!(step, Step::Forward);
    let mut revalidations = Revalidations::default();
    // While the cached verdict is fresh, nothing is asked.
    host.now = T0 + 500;
    assert!(revalidations.on_tick(&w, &mut host).is_empty());
    assert!(host.sent.is_empty());
    // Revoked meanwhile: the cached verdict still allows until its TTL...
    let (_, step) = headers(&w, &mut host, request());
    assert_eq!(step, Step::Forward);
    // ...then the tick asks, and the refusal closes the open request (context 7).
    host.now = T0 + 1_000;
    assert!(revalidations.on_tick(&w, &mut host).is_empty());
    assert_eq!(host.sent.len(), 1);
    assert_eq!(host.sent[0].path, "/v1/revalidate");
    let token = host.last_token();
    assert!(revalidations.expects(token));
    let body = revalidated(&token_hash(TOKEN), None, Provider::Openai);
    let closing = revalidations.on_callout_response(&w, &mut host, token, Some(200), Some(&body));
    assert_eq!(closing, vec![7]);
    // And a new request checks and is refused.
    let (mut flow, step) = headers(&w, &mut host, request());
    assert!(matches!(step, Step::CallOut { .. }));
    assert_eq!(
        status(&answer(
            &mut flow,
            &w,
            &mut host,
            &deny(DenyReason::Invalid, None)
        )),
        401
    );
}

#[test]
fn a_failed_revalidation_closes_nothing_and_an_activity_answer_is_not_a_revalidation() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    cache_verdict(&host, T0 + 1, 5, 1);
    headers(&w, &mut host, request());
    host.now = T0 + 1;
    let mut revalidations = Revalidations::default();
    revalidations.on_tick(&w, &mut host);
    let token = host.last_token();
    assert!(revalidations
        .on_callout_response(&w, &mut host, token, None, None)
        .is_empty());
    assert!(revalidations
        .on_callout_response(&w, &mut host, 5, Some(204), None)
        .is_empty());
}

#[test]
fn cached_requests_are_reported_on_the_tick() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    cache_verdict(&host, T0 + 1_000, 5, 1);
    headers(&w, &mut host, request());
    headers(&w, &mut host, request());
    report_activity(&w, &mut host);
    assert_eq!(host.sent.len(), 1);
    assert_eq!(host.sent[0].path, "/v1/usage");
    let body = String::from_utf8_lossy(&host.sent[0].body).to_string();
    assert!(
        body.contains(&token_hash(TOKEN)) && body.contains('2'),
        "{body}"
    );
    report_activity(&w, &mut host);
    assert_eq!(host.sent.len(), 1, "an empty batch was reported");
}

#[test]
fn a_request_allowed_by_its_check_is_open_until_its_verdict_is_revalidated() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    let (mut flow, _) = headers(&w, &mut host, request());
    assert_eq!(
        answer(&mut flow, &w, &mut host, &allow(1_000, Some((3, 1)))),
        Step::Forward
    );
    assert_eq!(
        w.streams.borrow().len(),
        1,
        "an allowed request was not registered as open"
    );
    let mut revalidations = Revalidations::default();
    host.now = T0 + 1_000;
    revalidations.on_tick(&w, &mut host);
    assert_eq!(host.sent.last().unwrap().path, "/v1/revalidate");
}

#[test]
fn a_configured_provider_stream_is_revalidated_against_its_own_scope() {
    let mut host = FakeHost::new();
    let config = r#"{"providers":{"selfhosted":{"path_prefix":"/selfhosted/","authority":"llm.internal:8000"}}}"#;
    let w = worker(config, &host);
    let head = RequestHead::new(vec![
        (":method".into(), "POST".into()),
        (":path".into(), "/selfhosted/v1/chat/completions".into()),
        (":authority".into(), "proxy.local".into()),
        ("authorization".into(), format!("Bearer {TOKEN}")),
    ]);
    let (mut flow, _) = headers(&w, &mut host, head);
    assert_eq!(
        answer(&mut flow, &w, &mut host, &allow(1_000, Some((3, 1)))),
        Step::Forward
    );
    let mut revalidations = Revalidations::default();
    host.now = T0 + 1_000;
    revalidations.on_tick(&w, &mut host);
    let sent = host.sent.last().unwrap();
    assert_eq!(sent.path, "/v1/revalidate");
    // Its own scope, not OpenAI's whose dialect it speaks.
    let body = String::from_utf8_lossy(&sent.body).to_string();
    assert!(body.contains(r#""provider":"selfhosted""#), "{body}");
}
