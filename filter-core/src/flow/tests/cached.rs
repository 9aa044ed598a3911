//! The headers step: refusal memory, guess throttle, lease pool, shared data, then the check.

use super::*;
use crate::verdict_cache::MAX_BATCH;

#[test]
fn a_miss_calls_out_with_the_hash_never_the_token() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    let sets = host.shared.sets();
    let (flow, step) = headers(&w, &mut host, request());
    assert_eq!(step, Step::CallOut { token_id: 100 });
    assert!(flow.expects(100));
    let sent = &host.sent[0];
    assert_eq!(
        (sent.cluster.as_str(), sent.path.as_str()),
        ("token_service", "/v1/check")
    );
    assert!(!String::from_utf8_lossy(&sent.body).contains(TOKEN));
    assert_eq!(host.last_check().hash, token_hash(TOKEN));
    assert_eq!(host.shared.sets(), sets, "a miss wrote shared data");
}

#[test]
fn an_allow_is_cached_and_the_next_request_hits_without_a_callout() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    let (mut flow, _) = headers(&w, &mut host, request());
    let step = answer(&mut flow, &w, &mut host, &allow(5_000, Some((3, 1))));
    assert_eq!(step, Step::Forward);
    assert_eq!(cached_units(&host), Some(3));
    let (_, step) = headers(&w, &mut host, request());
    assert_eq!(step, Step::Forward);
    assert_eq!(host.sent.len(), 1, "a cache hit called out");
    assert_eq!(cached_units(&host), Some(2));
    assert_eq!(w.counts.get(Counter::CacheHits), 1);
    assert_eq!(w.counts.get(Counter::Allowed), 2);
    // The rewrite took the key; the cached request was counted for the activity report.
    assert!(sent_key(&host));
    assert!(w
        .activity
        .borrow_mut()
        .take_call(&w.config, "s".repeat(20).as_str())
        .is_some());
}

#[test]
fn a_large_lease_is_spent_from_the_worker_pool_without_shared_writes() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    cache_verdict(&host, T0 + 10_000, 800, 1);
    let (_, step) = headers(&w, &mut host, request());
    assert_eq!(step, Step::Forward);
    assert_eq!(cached_units(&host), Some(800 - MAX_BATCH));
    let sets = host.shared.sets();
    for _ in 1..MAX_BATCH {
        let (_, step) = headers(&w, &mut host, request());
        assert_eq!(step, Step::Forward);
    }
    assert_eq!(
        host.shared.sets(),
        sets,
        "the pool's units went through shared data"
    );
    // The pool is spent: the next unit comes from shared data again.
    let (_, step) = headers(&w, &mut host, request());
    assert_eq!(step, Step::Forward);
    assert_eq!(cached_units(&host), Some(800 - 2 * MAX_BATCH));
    assert!(host.sent.is_empty());
}

#[test]
fn the_ttl_edge_a_verdict_is_valid_until_its_last_millisecond_only() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    cache_verdict(&host, T0 + 1, 5, 9);
    let (_, step) = headers(&w, &mut host, request());
    assert_eq!(step, Step::Forward);
    host.now = T0 + 1;
    let (_, step) = headers(&w, &mut host, request());
    assert_eq!(step, Step::CallOut { token_id: 100 });
    // The expired lease's units go back on the check, and leave the shared entry.
    let returned = host.last_check().returned.unwrap();
    assert_eq!((returned.units, returned.window), (4, 9));
    assert_eq!(cached_units(&host), Some(0));
}

#[test]
fn a_cas_conflict_on_spend_takes_the_other_writers_units_into_account() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    cache_verdict(&host, T0 + 10_000, 3, 1);
    // Another worker spends a unit between this worker's read and write.
    let k = key_of_token();
    host.shared.before_next_set(move |s: &SharedDataDouble| {
        let e = CachedVerdict {
            valid_until_ms: T0 + 10_000,
            units: 2,
            window: 1,
            key: KEY.into(),
            limits: None,
        };
        s.raw_set(&k, &e.encode(), None).unwrap();
    });
    let (_, step) = headers(&w, &mut host, request());
    assert_eq!(step, Step::Forward);
    assert_eq!(cached_units(&host), Some(1), "a unit was spent twice");
}

#[test]
fn the_deny_memory_answers_before_the_cache_and_the_callout() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    let (mut flow, _) = headers(&w, &mut host, request());
    let step = answer(&mut flow, &w, &mut host, &deny(DenyReason::Invalid, None));
    assert_eq!(status(&step), 401);
    // A verdict landing in shared data meanwhile does not override the fresh refusal.
    cache_verdict(&host, T0 + 10_000, 5, 1);
    let (_, step) = headers(&w, &mut host, request());
    assert_eq!(status(&step), 401);
    assert_eq!(host.sent.len(), 1);
    assert_eq!(cached_units(&host), Some(5));
    assert_eq!(refused(&w, Refusal::Invalid), 2);
    // The memory is short: after its TTL the cache answers again.
    host.now = T0 + 1_000;
    let (_, step) = headers(&w, &mut host, request());
    assert_eq!(step, Step::Forward);
}

#[test]
fn a_throttled_address_gets_429_without_a_check_or_a_cache_lookup() {
    let mut host = FakeHost::new();
    let w = worker(
        r#"{"guess_throttle":{"max_refusals":2,"window_ms":60000}}"#,
        &host,
    );
    for n in 0..2 {
        let guess = format!("ptk_guess{n:023}");
        let (mut flow, _) = headers(&w, &mut host, request_with(&guess));
        let step = answer(&mut flow, &w, &mut host, &deny(DenyReason::Invalid, None));
        assert_eq!(status(&step), 401);
    }
    cache_verdict(&host, T0 + 10_000, 5, 1);
    let (_, step) = headers(&w, &mut host, request());
    assert_eq!(status(&step), 429);
    assert_eq!(host.sent.len(), 2, "a throttled address got a check");
    assert_eq!(
        cached_units(&host),
        Some(5),
        "a throttled address spent a cached unit"
    );
    assert_eq!(refused(&w, Refusal::Throttled { retry_after_s: 0 }), 1);
    // Another address is not throttled.
    host.source = "198.51.100.1:1".into();
    let (_, step) = headers(&w, &mut host, request());
    assert_eq!(step, Step::Forward);
}

#[test]
fn a_known_good_pair_passes_its_throttled_address() {
    let mut host = FakeHost::new();
    let w = worker(
        r#"{"guess_throttle":{"max_refusals":1,"window_ms":60000}}"#,
        &host,
    );
    cache_verdict(&host, T0 + 10_000, 5, 1);
    let (_, step) = headers(&w, &mut host, request());
    assert_eq!(step, Step::Forward);
    let (mut flow, _) = headers(
        &w,
        &mut host,
        request_with("ptk_guess00000000000000000000001"),
    );
    assert_eq!(
        status(&answer(
            &mut flow,
            &w,
            &mut host,
            &deny(DenyReason::Invalid, None)
        )),
        401
    );
    // The address is throttled now, but its own valid token still passes.
    let (_, step) = headers(
        &w,
        &mut host,
        request_with("ptk_guess00000000000000000000002"),
    );
    assert_eq!(status(&step), 429);
    let (_, step) = headers(&w, &mut host, request());
    assert_eq!(step, Step::Forward);
}

#[test]
fn with_the_cache_off_every_request_calls_out_and_nothing_is_stored() {
    let mut host = FakeHost::new();
    let w = worker(r#"{"cache":{"enabled":false}}"#, &host);
    cache_verdict(&host, T0 + 10_000, 5, 1);
    let (mut flow, step) = headers(&w, &mut host, request());
    assert!(matches!(step, Step::CallOut { .. }));
    assert_eq!(
        answer(&mut flow, &w, &mut host, &allow(5_000, Some((9, 1)))),
        Step::Forward
    );
    assert_eq!(cached_units(&host), Some(5));
}

#[test]
fn a_failed_rewrite_of_a_cached_allow_is_503_never_forwarded() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    cache_verdict(&host, T0 + 10_000, 5, 1);
    host.rewrite_fails = true;
    let (flow, step) = headers(&w, &mut host, request());
    assert_eq!(status(&step), 503);
    assert_eq!(w.counts.get(Counter::CalloutFailed), 1);
    assert_eq!(w.counts.get(Counter::Allowed), 0);
    assert_eq!(flow.cors_origin, None);
}

#[test]
fn a_token_that_would_still_go_upstream_is_400_from_the_cache() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    cache_verdict(&host, T0 + 10_000, 5, 1);
    let head = RequestHead::new(vec![
        (":method".into(), "POST".into()),
        (":path".into(), "/v1/chat/completions".into()),
        ("authorization".into(), format!("Bearer {TOKEN}")),
        ("x-note".into(), TOKEN.into()),
    ]);
    let (_, step) = headers(&w, &mut host, head);
    assert_eq!(status(&step), 400);
    assert_eq!(refused(&w, Refusal::TokenInRequest), 1);
    assert!(host.edits.is_empty(), "a leaking request was rewritten");
}

#[test]
fn a_request_without_a_token_is_401_and_no_host_state_is_touched() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    let sets = host.shared.sets();
    let head = RequestHead::new(vec![(":path".into(), "/v1/models".into())]);
    let (_, step) = headers(&w, &mut host, head);
    assert_eq!(status(&step), 401);
    assert_eq!(refused(&w, Refusal::MissingToken), 1);
    assert!(host.sent.is_empty() && host.shared.sets() == sets);
}
