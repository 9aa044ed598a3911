//! A budgeted token's holder against its budget, through the contexts: ways to be forwarded
//! without being charged (the client leaving before the answer), and bodies whose estimate
//! must count every completion they ask for.

use super::budget::HOLD;
use super::*;
use crate::flow::{report_activity, Action, Root, Stream};
use ptk_wire::ActivityReport;

fn root(host: &mut FakeHost) -> Root {
    super::budget::root(HOLD, host)
}

/// An allow with budget grant `id` of `tokens`, cached 30 s.
fn budgeted(id: u64, tokens: u64) -> Vec<u8> {
    super::budget::budgeted(id, tokens, 30_000)
}

/// A held chat request checked with `answer` and its whole `body` in: the stream and the
/// action of its body callback.
fn held_chat(root: &Root, host: &mut FakeHost, answer: &[u8], body: &[u8]) -> (Stream, Action) {
    let mut stream = root.stream(7);
    host.ctx.request = Some(vec![
        (":method".into(), "POST".into()),
        (":path".into(), "/v1/chat/completions".into()),
        (":authority".into(), "proxy.local".into()),
        ("authorization".into(), format!("Bearer {TOKEN}")),
    ]);
    stream.on_request_headers(host, false);
    host.ctx.answer = (Some("200".into()), Some(answer.to_vec()));
    let token = host.last_token();
    stream.on_callout_response(host, token, answer.len());
    host.request_body = body.to_vec();
    let action = stream.on_request_body(host, body.len(), true);
    (stream, action)
}

fn report(root: &Root, host: &mut FakeHost) -> ActivityReport {
    let before = host.sent.len();
    report_activity(root.worker.as_ref().unwrap(), host);
    assert_eq!(host.sent.len(), before + 1, "a report was sent");
    serde_json::from_slice(&host.sent.last().unwrap().body).unwrap()
}

/// A client that leaves after its request went upstream and before any response header (a
/// non-streamed completion answers only once it is done) is charged its estimate: the
/// provider had the request and bills it. It was charged nothing: its estimate stayed
/// reserved until the grant lapsed, then the budget had it back, spent for free.
#[test]
fn a_request_the_client_leaves_before_its_answer_is_charged_its_estimate() {
    let mut host = FakeHost::new();
    let a = root(&mut host);
    let body = br#"{"model":"gpt-x","max_tokens":100,"messages":[]}"#;
    let estimate = u64::try_from(body.len()).unwrap() + 100;
    let (s, action) = held_chat(&a, &mut host, &budgeted(9, 10_000), body);
    assert_eq!(action, Action::Continue, "forwarded");
    drop(s); // reset by the client: no response headers ever reached the filter
    let r = report(&a, &mut host);
    assert_eq!(r.token_usage.len(), 1, "{r:?}");
    let entry = &r.token_usage[0];
    assert_eq!((entry.status, entry.incomplete), (0, 1));
    assert_eq!(entry.shortfall_tokens, estimate);
    assert_eq!(entry.model, "gpt-x");
    let released: Vec<_> = r
        .grant_releases
        .iter()
        .map(|g| (g.grant, g.tokens))
        .collect();
    assert_eq!(released, vec![(9, estimate)]);
}

/// An unbudgeted request the client leaves before its answer records nothing, as before.
#[test]
fn an_unbudgeted_request_left_before_its_answer_records_nothing() {
    let mut host = FakeHost::new();
    let a = root(&mut host);
    let allow = serde_json::to_vec(&CheckResponse::Allow {
        key: KEY.into(),
        cache_ttl_ms: 30_000,
        lease: None,
        limits: None,
        pool: Vec::new(),
    })
    .unwrap();
    let mut stream = a.stream(7);
    host.ctx.request = Some(vec![
        (":method".into(), "POST".into()),
        (":path".into(), "/v1/chat/completions".into()),
        (":authority".into(), "proxy.local".into()),
        ("authorization".into(), format!("Bearer {TOKEN}")),
    ]);
    stream.on_request_headers(&mut host, false);
    host.ctx.answer = (Some("200".into()), Some(allow.clone()));
    let token = host.last_token();
    stream.on_callout_response(&mut host, token, allow.len());
    drop(stream);
    let before = host.sent.len();
    report_activity(a.worker.as_ref().unwrap(), &mut host);
    assert_eq!(host.sent.len(), before, "nothing to report");
}

/// `n` choices each up to `max_tokens`: the estimate counts them all, so a grant that covers
/// one choice does not cover eight (it asks with `budget_want` for all of them).
#[test]
fn every_choice_asked_for_is_estimated() {
    let mut host = FakeHost::new();
    let a = root(&mut host);
    let body = br#"{"model":"gpt-x","max_tokens":1000,"n":8,"messages":[]}"#;
    let estimate = u64::try_from(body.len()).unwrap() + 8_000;
    let sent = host.sent.len();
    let (_s, action) = held_chat(&a, &mut host, &budgeted(3, 2_000), body);
    assert_eq!(
        action,
        Action::Pause,
        "the grant is short: a top-up is asked"
    );
    assert_eq!(host.sent.len(), sent + 2);
    assert_eq!(host.last_check().budget_want, Some(estimate));
}
