//! A budgeted token's requests through the contexts (`flow/budget.rs`): estimates spent from
//! the grant in shared data by two workers, a short grant topped up with `budget_want` or
//! refused with its 429, an expired grant released, the settlement (estimate released in the
//! report that carries the usage, the shortfall of an aborted stream), and the routes that
//! spend but are not metered refused.

use super::*;
use crate::budget::grants::grant_key;
use crate::flow::{report_activity, Action, Root, Stream};
use crate::models::HOLD_HEADER;
use ptk_wire::{ActivityReport, BudgetGrant, Limits};

pub(super) const HOLD: &str = r#"{"limits": {"body_hold": true}}"#;

pub(super) fn root(config: &str, host: &mut FakeHost) -> Root {
    let mut root = Root::new(1);
    let env = |name: &str| (name == "PTK_CHECK_SECRET").then(|| "check-secret-0123456789".into());
    assert!(root.configure(host, config.as_bytes(), env));
    root
}

/// An allow with a budget grant `id` of `tokens`, expiring in `expires_in_ms`, cached as long.
pub(super) fn budgeted(id: u64, tokens: u64, expires_in_ms: u64) -> Vec<u8> {
    cached_for(id, tokens, expires_in_ms, expires_in_ms)
}

/// The same, cached `ttl_ms`.
pub(super) fn cached_for(id: u64, tokens: u64, expires_in_ms: u64, ttl_ms: u64) -> Vec<u8> {
    serde_json::to_vec(&CheckResponse::Allow {
        key: KEY.into(),
        cache_ttl_ms: ttl_ms,
        lease: Some(Lease {
            units: 1000,
            window: 1,
        }),
        limits: Some(Limits {
            budget: Some(BudgetGrant {
                id,
                tokens,
                expires_in_ms,
            }),
            ..Limits::default()
        }),
        pool: Vec::new(),
    })
    .unwrap()
}

pub(super) fn exhausted() -> Vec<u8> {
    br#"{"verdict":"deny","reason":"budget_exhausted","retry_after_s":3600,
        "budget":{"scope":"token","kind":"tokens","period":"day","resets_at_s":1800003600}}"#
        .to_vec()
}

pub(super) fn head(method: &str, path: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let auth = format!("Bearer {TOKEN}");
    let mut h = vec![
        (":method".to_string(), method.to_string()),
        (":path".to_string(), path.to_string()),
        (":authority".to_string(), "proxy.local".to_string()),
        ("authorization".to_string(), auth),
    ];
    h.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    h
}

pub(super) fn chat() -> Vec<(String, String)> {
    head("POST", "/v1/chat/completions", &[])
}

/// The request headers on a new stream of `root`: the action, answering a check callout
/// with `answer` when one is sent.
pub(super) fn headers(
    root: &Root,
    host: &mut FakeHost,
    h: Vec<(String, String)>,
    end: bool,
    answer: &[u8],
) -> (Stream, Action) {
    let mut stream = root.stream(7);
    host.ctx.request = Some(h);
    let before = host.sent.len();
    let action = stream.on_request_headers(host, end);
    if host.sent.len() == before {
        return (stream, action);
    }
    deliver(host, &mut stream, answer);
    let action = if host.replies.is_empty() {
        Action::Continue
    } else {
        Action::Pause
    };
    (stream, action)
}

/// Delivers `answer` to the stream's last callout.
pub(super) fn deliver(host: &mut FakeHost, stream: &mut Stream, answer: &[u8]) {
    host.ctx.answer = (Some("200".into()), Some(answer.to_vec()));
    let token = host.last_token();
    stream.on_callout_response(host, token, answer.len());
}

/// The whole body in one callback (Envoy's buffer once the hold ends).
pub(super) fn body(host: &mut FakeHost, stream: &mut Stream, bytes: &[u8]) -> Action {
    host.request_body = bytes.to_vec();
    stream.on_request_body(host, bytes.len(), true)
}

/// A JSON chat response with `input` + `output` tokens, to its end.
pub(super) fn respond(host: &mut FakeHost, stream: &mut Stream, input: u64, output: u64) {
    host.response = vec![
        (":status".into(), "200".into()),
        ("content-type".into(), "application/json".into()),
    ];
    assert_eq!(stream.on_response_headers(host, false), Action::Continue);
    host.body = format!(
        r#"{{"model":"gpt-x","usage":{{"prompt_tokens":{input},"completion_tokens":{output}}}}}"#
    )
    .into_bytes();
    let size = host.body.len();
    assert_eq!(stream.on_response_body(host, size, true), Action::Continue);
}

/// Tokens left in the grant entry, and its id.
pub(super) fn left(host: &FakeHost) -> (u64, u64) {
    let v = host.shared.value(&grant_key(&key_of_token())).unwrap();
    let id = u64::from_le_bytes(v[0..8].try_into().unwrap());
    (id, u64::from_le_bytes(v[8..16].try_into().unwrap()))
}

/// The worker's next activity report.
pub(super) fn report(root: &Root, host: &mut FakeHost) -> ActivityReport {
    let before = host.sent.len();
    report_activity(root.worker.as_ref().unwrap(), host);
    assert_eq!(host.sent.len(), before + 1, "a report was sent");
    serde_json::from_slice(&host.sent.last().unwrap().body).unwrap()
}

pub(super) fn releases(r: &ActivityReport) -> Vec<(u64, u64)> {
    r.grant_releases
        .iter()
        .map(|g| (g.grant, g.tokens))
        .collect()
}

/// A body of `n` bytes with `max_tokens` 100.
pub(super) fn capped(n: usize) -> Vec<u8> {
    let start = br#"{"max_tokens":100,"messages":""#;
    let mut b = start.to_vec();
    b.resize(n - 2, b'x');
    b.extend_from_slice(b"\"}");
    b
}

#[test]
fn two_workers_spend_one_grant_then_the_short_one_asks_with_budget_want() {
    let mut host = FakeHost::new();
    let a = root(HOLD, &mut host);
    let b = root(HOLD, &mut host);
    // Fresh check on worker a: the grant (1000) lands in shared data, marked for the hold.
    let (mut s, action) = headers(&a, &mut host, chat(), false, &budgeted(77, 1000, 30_000));
    assert_eq!(action, Action::Continue);
    assert!(host.edits.contains(&(HOLD_HEADER.into(), Some("1".into()))));
    assert_eq!(left(&host), (77, 1000));
    // 200 body bytes + max_tokens 100 = 300.
    assert_eq!(body(&mut host, &mut s, &capped(200)), Action::Continue);
    assert_eq!(left(&host), (77, 700));
    // Worker b, from the cache (no callout): spends from the same grant.
    let sent = host.sent.len();
    let (mut s2, _) = headers(&b, &mut host, chat(), false, b"");
    assert_eq!(host.sent.len(), sent, "a cache hit");
    assert_eq!(body(&mut host, &mut s2, &capped(500)), Action::Continue);
    assert_eq!(left(&host), (77, 100));
    // Below a quarter of the grant: this spend claimed its renewal (`grant_renewal.rs`).
    assert_eq!(host.sent.len(), sent + 1);
    assert_eq!(host.last_check().budget_want, Some(16_000)); // 900 of 1,000 spent at once: 16 times the grant
                                                             // 300 more do not fit before the renewal is in: a check with budget_want 300, paused
                                                             // until it answers.
    let (mut s3, _) = headers(&a, &mut host, chat(), false, b"");
    assert_eq!(body(&mut host, &mut s3, &capped(200)), Action::Pause);
    assert_eq!(host.sent.len(), sent + 2);
    let top_ups = a.worker.as_ref().unwrap().counts.get(Counter::BudgetTopUps);
    assert_eq!(top_ups, 1);
    assert_eq!(host.last_check().budget_want, Some(300));
    // The short grant's 100 unspent tokens go back on the top-up itself (room for its grant).
    let given_back: Vec<_> = host
        .last_check()
        .releases
        .iter()
        .map(|r| (r.grant, r.tokens))
        .collect();
    assert_eq!(given_back, vec![(77, 100)]);
    assert_eq!(left(&host), (77, 0));
    let resumed = host.ctx.resumed;
    deliver(&mut host, &mut s3, &budgeted(78, 4096, 30_000));
    assert_eq!(host.ctx.resumed, resumed + 1, "forwarded");
    assert!(host.replies.is_empty());
    assert_eq!(left(&host), (78, 4096 - 300));
    // Nothing more of grant 77 to release: it was given back already.
    assert!(releases(&report(&a, &mut host)).is_empty());
    // And a refusal: the 429 in the provider's shape, nothing forwarded.
    let (mut s4, _) = headers(&b, &mut host, chat(), false, b"");
    assert_eq!(body(&mut host, &mut s4, &capped(5000)), Action::Pause);
    assert_eq!(host.last_check().budget_want, Some(5100));
    deliver(&mut host, &mut s4, &exhausted());
    assert_eq!(host.replies.len(), 1);
    assert_eq!(host.replies[0].status, 429);
    let json: serde_json::Value = serde_json::from_slice(&host.replies[0].body).unwrap();
    assert_eq!(json["error"]["code"], "budget_exhausted");
    let refused = Refusal::BudgetExhausted {
        budget: None,
        retry_after_s: 0,
    };
    assert_eq!(refused_count(&b, refused), 1);
    drop((s, s2, s3, s4));
}

fn refused_count(root: &Root, refusal: Refusal) -> u64 {
    refused(root.worker.as_ref().unwrap(), refusal)
}

#[test]
fn the_estimate_is_released_with_its_usage_and_an_aborted_one_adds_its_shortfall() {
    let mut host = FakeHost::new();
    let a = root(HOLD, &mut host);
    let (mut s, _) = headers(&a, &mut host, chat(), false, &budgeted(5, 10_000, 30_000));
    assert_eq!(body(&mut host, &mut s, &capped(200)), Action::Continue);
    // Nothing is released before the usage is in: there is nothing to report yet.
    let before = host.sent.len();
    report_activity(a.worker.as_ref().unwrap(), &mut host);
    assert_eq!(host.sent.len(), before);
    respond(&mut host, &mut s, 40, 7);
    let r = report(&a, &mut host);
    assert_eq!(releases(&r), vec![(5, 300)]);
    assert_eq!(r.token_usage.len(), 1);
    assert_eq!(
        (
            r.token_usage[0].usage.input,
            r.token_usage[0].shortfall_tokens
        ),
        (40, 0)
    );
    drop(s);
    // An aborted response (the stream dropped before its end, nothing seen): charged the
    // estimate, as shortfall.
    let (mut s, _) = headers(&a, &mut host, chat(), false, b"");
    assert_eq!(body(&mut host, &mut s, &capped(200)), Action::Continue);
    host.response = vec![
        (":status".into(), "200".into()),
        ("content-type".into(), "text/event-stream".into()),
    ];
    assert_eq!(s.on_response_headers(&mut host, false), Action::Continue);
    drop(s);
    let r = report(&a, &mut host);
    assert_eq!(releases(&r), vec![(5, 300)]);
    assert_eq!(
        (
            r.token_usage[0].incomplete,
            r.token_usage[0].shortfall_tokens
        ),
        (1, 300)
    );
    assert_eq!(left(&host), (5, 10_000 - 600));
    // An upstream error answer is not billed: released, no shortfall.
    let (mut s, _) = headers(&a, &mut host, chat(), false, b"");
    assert_eq!(body(&mut host, &mut s, &capped(200)), Action::Continue);
    host.response = vec![(":status".into(), "500".into())];
    s.on_response_headers(&mut host, false);
    host.body = Vec::new();
    s.on_response_body(&mut host, 0, true);
    let r = report(&a, &mut host);
    assert_eq!(releases(&r), vec![(5, 300)]);
    assert_eq!(
        (r.token_usage[0].status, r.token_usage[0].shortfall_tokens),
        (500, 0)
    );
}

#[test]
fn an_expired_grant_is_released_and_the_request_asks_again() {
    let mut host = FakeHost::new();
    let a = root(HOLD, &mut host);
    // A verdict cached past its grant (a service may not, but the filter never trusts that).
    let first = cached_for(9, 1000, 2_000, 60_000);
    let (mut s, _) = headers(&a, &mut host, chat(), false, &first);
    assert_eq!(body(&mut host, &mut s, &capped(200)), Action::Continue);
    drop(s);
    host.now += 2_000;
    let (mut s, _) = headers(&a, &mut host, chat(), false, &budgeted(10, 1000, 2_000));
    assert_eq!(body(&mut host, &mut s, &capped(200)), Action::Pause);
    assert_eq!(host.last_check().budget_want, Some(300));
    deliver(&mut host, &mut s, &budgeted(10, 1000, 2_000));
    assert!(host.replies.is_empty());
    assert_eq!(left(&host), (10, 700));
    let r = report(&a, &mut host);
    // Grant 9's 700 unspent tokens, and the first request's 300: it went upstream and was
    // left before its answer, so it is charged its estimate (as shortfall) and released.
    assert!(releases(&r).contains(&(9, 1000)), "{:?}", releases(&r));
}

#[test]
fn routes_that_spend_unmetered_are_refused_and_free_ones_pass_unspent() {
    let mut host = FakeHost::new();
    let a = root(HOLD, &mut host);
    let grant = budgeted(1, 1000, 30_000);
    for path in ["/v1/images/generations", "/v1/audio/speech", "/v1/batches"] {
        host.replies.clear();
        let (_s, action) = headers(&a, &mut host, head("POST", path, &[]), false, &grant);
        assert_eq!(action, Action::Pause, "{path}");
        assert_eq!(host.replies[0].status, 403, "{path}");
        let json: serde_json::Value = serde_json::from_slice(&host.replies[0].body).unwrap();
        assert_eq!(json["error"]["code"], "not_metered_under_budget");
    }
    // A WebSocket session the meter does not read: refused too (Realtime, Responses and
    // Live sessions are budgeted per turn: `tests/session.rs`).
    host.replies.clear();
    let ws = head(
        "GET",
        "/v1/chat/completions",
        &[("connection", "upgrade"), ("upgrade", "websocket")],
    );
    let (_s, _) = headers(&a, &mut host, ws, true, &grant);
    assert_eq!(host.replies.first().map(|r| r.status), Some(403));
    assert_eq!(refused_count(&a, Refusal::BudgetUnmetered), 4);
    // Listing models spends nothing: forwarded, nothing spent.
    host.replies.clear();
    let (_s, action) = headers(&a, &mut host, head("GET", "/v1/models", &[]), true, &grant);
    assert_eq!(action, Action::Continue);
    assert!(host.replies.is_empty());
    assert_eq!(left(&host), (1, 1000));
}

#[test]
fn without_the_hold_filter_content_length_and_the_default_cap_are_spent_at_the_headers() {
    let mut host = FakeHost::new();
    let a = root(r#"{"limits": {"default_output_tokens": 50}}"#, &mut host);
    let h = head("POST", "/v1/chat/completions", &[("content-length", "120")]);
    let (_s, action) = headers(&a, &mut host, h, false, &budgeted(2, 1000, 30_000));
    assert_eq!(action, Action::Continue);
    assert!(!host.edits.iter().any(|(n, _)| n == HOLD_HEADER));
    assert_eq!(left(&host), (2, 830));
    let warned = |host: &FakeHost| {
        let logs = host.logs.borrow();
        logs.iter()
            .filter(|(_, l)| l.contains("limits.body_hold"))
            .count()
    };
    assert_eq!(warned(&host), 1, "said so, once per worker");
    let h = head("POST", "/v1/chat/completions", &[("content-length", "10")]);
    let (_s, _) = headers(&a, &mut host, h, false, b"");
    assert_eq!((left(&host), warned(&host)), ((2, 770), 1));
    // No content-length: the input cannot be bounded without the hold filter.
    let (_s, _) = headers(&a, &mut host, chat(), false, b"");
    assert_eq!(host.replies.first().map(|r| r.status), Some(403));
    assert_eq!(left(&host), (2, 770));
}

#[test]
fn a_body_ended_by_trailers_is_estimated_and_spent_at_the_trailers() {
    // HTTP/2 request trailers end the stream: the body's last chunk never says `end`. The
    // estimate must still be spent before anything goes on (else a budgeted request would be
    // forwarded unreserved, charged only after the fact).
    let mut host = FakeHost::new();
    let a = root(HOLD, &mut host);
    let (mut s, _) = headers(&a, &mut host, chat(), false, &budgeted(77, 1000, 30_000));
    let whole = capped(200);
    let (first, _) = whole.split_at(50);
    host.request_body = first.to_vec();
    assert_eq!(
        s.on_request_body(&mut host, first.len(), false),
        Action::Pause
    );
    host.request_body = whole.clone();
    assert_eq!(
        s.on_request_body(&mut host, whole.len(), false),
        Action::Pause
    );
    assert_eq!(
        left(&host),
        (77, 1000),
        "nothing spent before the body is whole"
    );
    assert_eq!(s.on_request_trailers(&mut host), Action::Continue);
    assert_eq!(left(&host), (77, 700), "200 bytes + max_tokens 100");
    // Short at the trailers: the top-up check pauses them; a refusal answers 429.
    let (mut s2, _) = headers(&a, &mut host, chat(), false, b"");
    let big = capped(2000);
    host.request_body = big.clone();
    assert_eq!(
        s2.on_request_body(&mut host, big.len(), false),
        Action::Pause
    );
    assert_eq!(s2.on_request_trailers(&mut host), Action::Pause);
    assert_eq!(host.last_check().budget_want, Some(2100));
    deliver(&mut host, &mut s2, &exhausted());
    assert_eq!(host.replies.last().map(|r| r.status), Some(429));
    drop((s, s2));
}

#[test]
fn the_rest_of_an_expired_verdicts_grant_goes_back_on_the_next_check_once() {
    let mut host = FakeHost::new();
    let a = root(HOLD, &mut host);
    let (mut s, _) = headers(&a, &mut host, chat(), false, &budgeted(5, 1000, 1_000));
    assert_eq!(body(&mut host, &mut s, &capped(200)), Action::Continue);
    respond(&mut host, &mut s, 10, 5);
    drop(s);
    // The verdict runs out; the next request's check gives grant 5's 700 back (its own grant
    // will replace it), so the token's own dead grant is not counted against the new one.
    host.now += 1_000;
    let mut s = a.stream(8);
    host.ctx.request = Some(chat());
    assert_eq!(s.on_request_headers(&mut host, false), Action::Pause);
    let check = host.last_check();
    let given_back: Vec<_> = check.releases.iter().map(|r| (r.grant, r.tokens)).collect();
    assert_eq!(given_back, vec![(5, 700)]);
    assert_eq!(left(&host), (5, 0));
    // No verdict: the retry does not give it back twice (the first may have been counted).
    host.ctx.answer = (Some("503".into()), Some(b"down".to_vec()));
    let token = host.last_token();
    let sent = host.sent.len();
    s.on_callout_response(&mut host, token, 4);
    assert_eq!(host.sent.len(), sent + 1, "retried");
    assert!(host.last_check().releases.is_empty());
    // Nothing of grant 5 is left for a report either.
    assert!(!releases(&report(&a, &mut host)).contains(&(5, 700)));
}
