//! Grants whose check answer never reaches a request (`flow/proposed_grant.rs`): every check
//! that may reserve proposes a grant id; a stream dropped while its check, top-up or renewal
//! is pending, a failed or retried check and an allow refused here release that id whole in
//! the next report; an installed answer and a deny release nothing extra.

use super::budget::{body, budgeted, capped, chat, deliver, exhausted, headers, root, HOLD};
use super::*;
use crate::flow::{report_activity, Root};

/// The releases of the worker's next report (none when nothing was reported).
fn released(root: &Root, host: &mut FakeHost) -> Vec<(u64, u64)> {
    let before = host.sent.len();
    report_activity(root.worker.as_ref().unwrap(), host);
    if host.sent.len() == before {
        return Vec::new();
    }
    let report: ptk_wire::ActivityReport =
        serde_json::from_slice(&host.sent.last().unwrap().body).unwrap();
    report
        .grant_releases
        .iter()
        .map(|g| (g.grant, g.tokens))
        .collect()
}

/// The grant id the last check proposed (within 1..2^52).
fn proposed(host: &FakeHost) -> u64 {
    let id = host.last_check().grant_id.expect("a grant id is proposed");
    assert!((1..1u64 << 52).contains(&id), "{id}");
    id
}

#[test]
fn a_stream_dropped_while_its_check_is_pending_releases_the_proposed_id() {
    let mut host = FakeHost::new();
    let a = root(HOLD, &mut host);
    let mut first = a.stream(7);
    host.ctx.request = Some(chat());
    first.on_request_headers(&mut host, false);
    let id = proposed(&host);
    let mut second = a.stream(8);
    second.on_request_headers(&mut host, false);
    assert_ne!(proposed(&host), id, "each check proposes its own id");
    drop(first); // reset by the client: Envoy drops the answer
    assert_eq!(released(&a, &mut host), vec![(id, u64::MAX)]);
    drop(second);
    assert_eq!(released(&a, &mut host).len(), 1);
}

#[test]
fn a_failed_check_releases_its_id_and_its_retry_proposes_a_fresh_one() {
    let mut host = FakeHost::new();
    let a = root(HOLD, &mut host);
    let mut s = a.stream(7);
    host.ctx.request = Some(chat());
    s.on_request_headers(&mut host, false);
    let mut ids = vec![proposed(&host)];
    // No answer at all (timeout, reset): retried with a fresh id, then refused (503).
    for _ in 0..2 {
        host.ctx.answer = (None, None);
        let token = host.last_token();
        s.on_callout_response(&mut host, token, 0);
        if ids.len() < host.sent.len() {
            ids.push(proposed(&host));
        }
    }
    assert_eq!(ids.len(), 2, "one retry");
    assert_ne!(ids[0], ids[1]);
    assert_eq!(host.replies.len(), 1, "503");
    let mut got = released(&a, &mut host);
    got.sort_unstable();
    ids.sort_unstable();
    assert_eq!(
        got,
        ids.iter().map(|&id| (id, u64::MAX)).collect::<Vec<_>>()
    );
    drop(s);
}

#[test]
fn an_installed_answer_and_a_deny_release_nothing_extra() {
    let mut host = FakeHost::new();
    let a = root(HOLD, &mut host);
    let (s, _) = headers(&a, &mut host, chat(), false, &budgeted(1, 10_000, 30_000));
    drop(s);
    assert_eq!(released(&a, &mut host), Vec::new(), "installed");
    // Denied (no room): the service reserved nothing, and a taken id must never be freed.
    let mut host = FakeHost::new();
    let a = root(HOLD, &mut host);
    let (s, _) = headers(&a, &mut host, chat(), false, &exhausted());
    assert_eq!(host.replies.len(), 1);
    drop(s);
    assert_eq!(released(&a, &mut host), Vec::new(), "denied");
}

#[test]
fn an_allow_refused_here_releases_its_grant() {
    let mut host = FakeHost::new();
    let a = root(HOLD, &mut host);
    host.rewrite_fails = true;
    let mut s = a.stream(7);
    host.ctx.request = Some(chat());
    s.on_request_headers(&mut host, false);
    let id = proposed(&host);
    deliver(&mut host, &mut s, &budgeted(id, 10_000, 30_000));
    assert_eq!(host.replies.len(), 1, "503: never forwarded");
    drop(s);
    assert_eq!(released(&a, &mut host), vec![(id, u64::MAX)]);
}

#[test]
fn a_stream_dropped_while_its_top_up_is_pending_releases_the_proposed_id() {
    let mut host = FakeHost::new();
    let a = root(HOLD, &mut host);
    let (mut s, _) = headers(&a, &mut host, chat(), false, &budgeted(1, 150, 30_000));
    let sent = host.sent.len();
    // 500 bytes + 100: short of the 150 granted, a top-up with `budget_want` goes out.
    body(&mut host, &mut s, &capped(500));
    assert_eq!(host.sent.len(), sent + 1);
    assert_eq!(host.last_check().budget_want, Some(600));
    let id = proposed(&host);
    drop(s);
    assert!(released(&a, &mut host).contains(&(id, u64::MAX)));
}

#[test]
fn a_stream_dropped_while_its_renewal_is_pending_releases_the_proposed_id() {
    let mut host = FakeHost::new();
    let a = root(HOLD, &mut host);
    let (mut s, _) = headers(&a, &mut host, chat(), false, &budgeted(1, 1000, 30_000));
    body(&mut host, &mut s, &capped(700));
    assert_eq!(host.last_check().budget_want, Some(16_000), "a renewal");
    let id = proposed(&host);
    drop(s);
    assert!(released(&a, &mut host).contains(&(id, u64::MAX)));
}
