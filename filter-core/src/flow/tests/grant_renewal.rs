//! Renewing a budget grant before it runs dry (`flow/grant_renewal.rs`): one spend over all
//! workers claims the renewal; its check asks `budget_want` 0 while the request goes on; the
//! request's response waits for the answer (so the answer finds a live context), which
//! installs the next grant for every worker; a deny or a failed callout installs nothing.

use super::budget::{
    body, budgeted, chat, deliver, exhausted, headers, left, releases, report, root, HOLD,
};
use super::*;
use crate::flow::Action;

/// Response headers of a 200 JSON answer: the action.
fn response_headers(host: &mut FakeHost, stream: &mut crate::flow::Stream) -> Action {
    host.response = vec![
        (":status".into(), "200".into()),
        ("content-type".into(), "application/json".into()),
    ];
    stream.on_response_headers(host, false)
}

/// A body of `n` bytes with `max_tokens` 100.
fn capped(n: usize) -> Vec<u8> {
    super::budget::capped(n)
}

#[test]
fn one_spend_renews_the_grant_its_response_waits_and_every_worker_spends_the_next() {
    let mut host = FakeHost::new();
    let (a, b) = (root(HOLD, &mut host), root(HOLD, &mut host));
    let (mut s1, _) = headers(&a, &mut host, chat(), false, &budgeted(1, 1000, 30_000));
    let sent = host.sent.len();
    // 300: 700 left, a quarter (250) or more: no renewal.
    assert_eq!(body(&mut host, &mut s1, &capped(200)), Action::Continue);
    assert_eq!(host.sent.len(), sent);
    // Worker b: 600 leaves 100, below a quarter: this spend claims the renewal and asks.
    let (mut s2, _) = headers(&b, &mut host, chat(), false, b"");
    assert_eq!(body(&mut host, &mut s2, &capped(500)), Action::Continue);
    assert_eq!(host.sent.len(), sent + 1);
    let renewal = host.last_check();
    assert_eq!(renewal.budget_want, Some(16_000)); // 900 spent at once: a fast grant, 16×
    let renewal_token = host.last_token();
    // Worker a again: spends the rest without asking (the renewal is claimed).
    let (mut s3, _) = headers(&a, &mut host, chat(), false, b"");
    let small = br#"{"max_tokens":40,"messages":""}"#;
    assert_eq!(body(&mut host, &mut s3, small), Action::Continue);
    assert_eq!(
        host.sent.len(),
        sent + 1,
        "one renewal, not one per request"
    );
    assert_eq!(left(&host), (1, 100 - 71));
    // The renewing request's response waits for the answer; the others' do not.
    assert_eq!(response_headers(&mut host, &mut s1), Action::Continue);
    assert_eq!(response_headers(&mut host, &mut s2), Action::Pause);
    assert_eq!(host.ctx.responses_resumed, 0);
    // The answer: the next grant for every worker, the old one's 29 released, s2 resumed.
    assert_eq!(host.last_token(), renewal_token);
    deliver(&mut host, &mut s2, &budgeted(2, 4000, 30_000));
    assert_eq!(host.ctx.responses_resumed, 1);
    assert_eq!(left(&host), (2, 4000));
    // Released by the worker that installed it (b).
    assert_eq!(releases(&report(&b, &mut host)), vec![(1, 29)]);
    let sent = host.sent.len();
    let (mut s4, _) = headers(&b, &mut host, chat(), false, b"");
    assert_eq!(body(&mut host, &mut s4, &capped(200)), Action::Continue);
    assert_eq!(left(&host), (2, 3700));
    assert_eq!(host.sent.len(), sent);
    drop((s1, s2, s3, s4));
}

#[test]
fn a_renewal_answered_before_the_response_holds_nothing() {
    let mut host = FakeHost::new();
    let a = root(HOLD, &mut host);
    let (mut s, _) = headers(&a, &mut host, chat(), false, &budgeted(1, 1000, 30_000));
    assert_eq!(body(&mut host, &mut s, &capped(700)), Action::Continue);
    assert_eq!(host.last_check().budget_want, Some(16_000));
    deliver(&mut host, &mut s, &budgeted(2, 1000, 30_000));
    assert_eq!(response_headers(&mut host, &mut s), Action::Continue);
    assert_eq!(host.ctx.responses_resumed, 0);
    assert_eq!(left(&host), (2, 1000));
}

#[test]
fn a_renewal_late_in_the_grants_life_is_claimed_by_time() {
    let mut host = FakeHost::new();
    let a = root(HOLD, &mut host);
    let (mut s, _) = headers(&a, &mut host, chat(), false, &budgeted(1, 100_000, 40_000));
    let sent = host.sent.len();
    assert_eq!(body(&mut host, &mut s, &capped(200)), Action::Continue);
    assert_eq!(host.sent.len(), sent);
    // Three quarters of its life later, plenty left: the next spend renews it anyway.
    host.now += 30_000;
    let (mut s2, _) = headers(&a, &mut host, chat(), false, b"");
    assert_eq!(body(&mut host, &mut s2, &capped(200)), Action::Continue);
    assert_eq!(host.sent.len(), sent + 1);
    assert_eq!(host.last_check().budget_want, Some(0));
    drop((s, s2));
}

#[test]
fn a_denied_or_failed_renewal_installs_nothing_and_its_claim_lapses() {
    let mut host = FakeHost::new();
    let a = root(HOLD, &mut host);
    let (mut s, _) = headers(&a, &mut host, chat(), false, &budgeted(1, 2000, 30_000));
    // 1,700 leaves 300 < 500: claimed.
    assert_eq!(body(&mut host, &mut s, &capped(1600)), Action::Continue);
    let sent = host.sent.len();
    assert_eq!(host.last_check().budget_want, Some(32_000));
    assert_eq!(response_headers(&mut host, &mut s), Action::Pause);
    deliver(&mut host, &mut s, &exhausted());
    // Denied: resumed, nothing installed, no reply in the request's place.
    assert_eq!(host.ctx.responses_resumed, 1);
    assert!(host.replies.is_empty());
    assert_eq!(left(&host), (1, 300));
    // Within the claim (the callout timeout, 1 s) nobody asks again; after it, one does.
    let small = br#"{"max_tokens":10,"messages":""}"#;
    let (mut s2, _) = headers(&a, &mut host, chat(), false, b"");
    assert_eq!(body(&mut host, &mut s2, small), Action::Continue);
    assert_eq!(host.sent.len(), sent);
    host.now += 1000;
    let (mut s3, _) = headers(&a, &mut host, chat(), false, b"");
    assert_eq!(body(&mut host, &mut s3, small), Action::Continue);
    assert_eq!(host.sent.len(), sent + 1);
    // A failed callout (no status) installs nothing either and is counted.
    let failed = refused_or_failed(&a);
    host.ctx.answer = (None, None);
    let token = host.last_token();
    s3.on_callout_response(&mut host, token, 0);
    assert_eq!(refused_or_failed(&a), failed + 1);
    assert_eq!(left(&host).0, 1);
    drop((s, s2, s3));
}

/// The worker's failed-callout count.
fn refused_or_failed(root: &crate::flow::Root) -> u64 {
    root.worker
        .as_ref()
        .unwrap()
        .counts
        .get(crate::flow::Counter::CalloutFailed)
}
