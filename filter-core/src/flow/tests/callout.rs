//! The callout step: matched by token id, retried once without a verdict, transport failures
//! 503, allows cached (compare-and-swap, no placeholder entries), a 429 confirmed once.

use super::*;

#[test]
fn only_the_requests_own_callout_decides_it() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    let (mut flow, _) = headers(&w, &mut host, request());
    assert!(!flow.expects(999));
    assert_eq!(
        flow.on_callout_response(&w, &mut host, 999, Some(200), Some(&allow(1, None))),
        None
    );
    assert!(flow.expects(100), "a stranger's answer consumed the wait");
    assert_eq!(
        answer(&mut flow, &w, &mut host, &allow(1, None)),
        Step::Forward
    );
    // Answered once: a duplicate delivery decides nothing.
    assert_eq!(
        flow.on_callout_response(&w, &mut host, 100, Some(200), Some(&allow(1, None))),
        None
    );
}

#[test]
fn no_response_is_retried_once_then_503_never_forwarded() {
    for status_code in [None, Some(503)] {
        let mut host = FakeHost::new();
        let w = worker("{}", &host);
        let (mut flow, _) = headers(&w, &mut host, request());
        let step = flow
            .on_callout_response(&w, &mut host, 100, status_code, None)
            .unwrap();
        assert_eq!(step, Step::CallOut { token_id: 101 }, "{status_code:?}");
        assert_eq!(w.counts.get(Counter::CalloutRetried), 1);
        let step = flow
            .on_callout_response(&w, &mut host, 101, status_code, None)
            .unwrap();
        assert_eq!(status(&step), 503);
        assert_eq!(w.counts.get(Counter::CalloutFailed), 1);
        assert_eq!(refused(&w, Refusal::TokenServiceUnavailable), 1);
        assert!(host.edits.is_empty());
    }
}

#[test]
fn a_retry_after_a_dead_replica_forwards_and_never_returns_units_twice() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    cache_verdict(&host, T0 - 1, 4, 3);
    let (mut flow, _) = headers(&w, &mut host, request());
    assert!(host.last_check().returned.is_some());
    flow.on_callout_response(&w, &mut host, 100, None, None)
        .unwrap();
    assert_eq!(host.last_check().returned, None);
    assert_eq!(
        answer(&mut flow, &w, &mut host, &allow(1_000, None)),
        Step::Forward
    );
}

#[test]
fn garbage_a_4xx_and_an_allow_without_key_are_503_without_retry() {
    let keyless = br#"{"verdict":"allow","key":"","cache_ttl_ms":5}"#.to_vec();
    let cases: [(Option<u16>, Vec<u8>); 4] = [
        (Some(200), b"not json".to_vec()),
        (Some(200), keyless),
        (Some(401), deny(DenyReason::Invalid, None)),
        (Some(200), br#"{"verdict":"maybe"}"#.to_vec()),
    ];
    for (code, body) in cases {
        let mut host = FakeHost::new();
        let w = worker("{}", &host);
        let (mut flow, _) = headers(&w, &mut host, request());
        let step = flow
            .on_callout_response(&w, &mut host, 100, code, Some(&body))
            .unwrap();
        assert_eq!(status(&step), 503, "{code:?}");
        assert_eq!(host.sent.len(), 1, "retried {code:?}");
        assert_eq!(w.counts.get(Counter::CalloutFailed), 1);
    }
}

#[test]
fn a_callout_that_cannot_start_is_503() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    host.dispatch_fails = true;
    let (flow, step) = headers(&w, &mut host, request());
    assert_eq!(status(&step), 503);
    assert!(!flow.expects(100));
    assert_eq!(w.counts.get(Counter::CalloutFailed), 1);
}

#[test]
fn a_failed_rewrite_after_an_allow_is_503_and_caches_nothing() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    let (mut flow, _) = headers(&w, &mut host, request());
    host.rewrite_fails = true;
    let step = answer(&mut flow, &w, &mut host, &allow(5_000, Some((3, 1))));
    assert_eq!(status(&step), 503);
    assert_eq!(cached_units(&host), None);
    assert!(w.streams.borrow().is_empty());
}

#[test]
fn a_grant_without_units_is_no_placeholder_entry() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    let (mut flow, _) = headers(&w, &mut host, request());
    assert_eq!(
        answer(&mut flow, &w, &mut host, &allow(5_000, None)),
        Step::Forward
    );
    let created = host.shared.value(&key_of_token());
    assert_eq!(created, None, "a unitless grant created a key");
    // Nor does it wipe the units another worker's lease put there meanwhile.
    let (mut flow, _) = headers(
        &w,
        &mut host,
        request_with("ptk_other000000000000000000000001"),
    );
    let _ = &mut flow;
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    let (mut flow, _) = headers(&w, &mut host, request());
    cache_verdict(&host, T0 + 10_000, 4, 1);
    answer(&mut flow, &w, &mut host, &allow(5_000, None));
    assert_eq!(cached_units(&host), Some(4));
}

#[test]
fn without_an_anchor_a_grant_is_left_uncached_rather_than_risk_a_lost_write() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    w.anchor.set(CasAnchor::default());
    let (mut flow, _) = headers(&w, &mut host, request());
    answer(&mut flow, &w, &mut host, &allow(5_000, Some((3, 1))));
    assert_eq!(cached_units(&host), None);
}

#[test]
fn a_racing_creator_merges_instead_of_overwriting() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    let (mut flow, _) = headers(&w, &mut host, request());
    let k = key_of_token();
    host.shared.before_next_set(move |s: &SharedDataDouble| {
        let a = CasAnchor::refresh(s);
        let e = CachedVerdict {
            valid_until_ms: T0 + 5_000,
            units: 5,
            window: 1,
            key: KEY.into(),
            limits: None,
        };
        s.raw_set(&k, &e.encode(), a.cas()).unwrap();
    });
    answer(&mut flow, &w, &mut host, &allow(5_000, Some((3, 1))));
    assert_eq!(cached_units(&host), Some(8), "a concurrent grant was lost");
}

#[test]
fn a_verdicts_ttl_runs_from_when_the_check_was_sent() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    let (mut flow, _) = headers(&w, &mut host, request());
    host.now = T0 + 900;
    answer(&mut flow, &w, &mut host, &allow(1_000, Some((3, 1))));
    host.now = T0 + 1_000;
    let (_, step) = headers(&w, &mut host, request());
    assert!(
        matches!(step, Step::CallOut { .. }),
        "a slow answer stretched the TTL"
    );
}

#[test]
fn a_rate_limit_is_confirmed_once_before_the_429() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    cache_verdict(&host, T0 - 1, 2, 4);
    let (mut flow, _) = headers(&w, &mut host, request());
    assert!(host.last_check().returned.is_some());
    let step = answer(
        &mut flow,
        &w,
        &mut host,
        &deny(DenyReason::RateLimited, Some(7)),
    );
    assert_eq!(step, Step::CallOut { token_id: 101 });
    assert_eq!(host.last_check().returned, None, "units handed back twice");
    let step = answer(
        &mut flow,
        &w,
        &mut host,
        &deny(DenyReason::RateLimited, Some(7)),
    );
    assert_eq!(status(&step), 429);
    assert_eq!(host.sent.len(), 2, "confirmed more than once");
    assert_eq!(refused(&w, Refusal::RateLimited { retry_after_s: 0 }), 1);
}

#[test]
fn a_lease_landing_during_a_429_is_spent_instead() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    let (mut flow, _) = headers(&w, &mut host, request());
    // Another request's grant lands in shared data while this check is out.
    cache_verdict(&host, T0 + 5_000, 2, 1);
    let step = answer(
        &mut flow,
        &w,
        &mut host,
        &deny(DenyReason::RateLimited, Some(7)),
    );
    assert_eq!(step, Step::Forward);
    assert_eq!(host.sent.len(), 1);
    assert_eq!(cached_units(&host), Some(1));
}

#[test]
fn a_guess_that_missed_counts_against_the_address_a_rate_limit_does_not() {
    let mut host = FakeHost::new();
    let w = worker(
        r#"{"guess_throttle":{"max_refusals":1,"window_ms":60000}}"#,
        &host,
    );
    let (mut flow, _) = headers(&w, &mut host, request());
    answer(
        &mut flow,
        &w,
        &mut host,
        &deny(DenyReason::RateLimited, Some(1)),
    );
    answer(
        &mut flow,
        &w,
        &mut host,
        &deny(DenyReason::RateLimited, Some(1)),
    );
    host.now += 2_000;
    let (mut flow, step) = headers(
        &w,
        &mut host,
        request_with("ptk_guess00000000000000000000003"),
    );
    assert!(
        matches!(step, Step::CallOut { .. }),
        "a rate limit counted as a guess"
    );
    answer(&mut flow, &w, &mut host, &deny(DenyReason::Expired, None));
    let (_, step) = headers(
        &w,
        &mut host,
        request_with("ptk_guess00000000000000000000004"),
    );
    assert_eq!(status(&step), 429);
}

#[test]
fn an_allowed_token_refused_by_the_final_guard_keeps_its_lease_not_a_deny() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    let head = RequestHead::new(vec![
        (":method".into(), "POST".into()),
        (":path".into(), "/v1/chat/completions".into()),
        ("authorization".into(), format!("Bearer {TOKEN}")),
        ("x-note".into(), TOKEN.into()),
    ]);
    let (mut flow, _) = headers(&w, &mut host, head);
    let step = answer(&mut flow, &w, &mut host, &allow(5_000, Some((3, 1))));
    assert_eq!(status(&step), 400);
    assert_eq!(cached_units(&host), Some(3));
    let (_, step) = headers(&w, &mut host, request());
    assert_eq!(
        step,
        Step::Forward,
        "the guard's 400 was remembered for the token"
    );
}
