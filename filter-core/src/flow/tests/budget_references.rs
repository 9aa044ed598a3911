//! A budgeted token's body that references input it does not carry is estimated at the
//! provider's context bound (`limits.context_tokens`); one the filter cannot read as the
//! provider would is refused with a 400 before anything is forwarded.

use super::*;
use crate::budget::context::OPENAI_CONTEXT_TOKENS;
use crate::flow::{Action, Root, Stream};
use ptk_wire::{BudgetGrant, Limits};

const HOLD: &str = r#"{"limits": {"body_hold": true}}"#;

fn root(config: &str, host: &mut FakeHost) -> Root {
    let mut root = Root::new(1);
    let env = |name: &str| (name == "PTK_CHECK_SECRET").then(|| "check-secret-0123456789".into());
    assert!(root.configure(host, config.as_bytes(), env));
    root
}

/// An allow with a budget grant of `tokens`, cached 30 s.
fn budgeted(tokens: u64) -> Vec<u8> {
    serde_json::to_vec(&CheckResponse::Allow {
        key: KEY.into(),
        cache_ttl_ms: 30_000,
        lease: None,
        limits: Some(Limits {
            budget: Some(BudgetGrant {
                id: 4,
                tokens,
                expires_in_ms: 30_000,
            }),
            ..Limits::default()
        }),
        pool: Vec::new(),
    })
    .unwrap()
}

/// A held POST to `path`, checked with a grant of `tokens`, its whole `body` in: the stream
/// and the action of its body callback.
fn held(
    root: &Root,
    host: &mut FakeHost,
    path: &str,
    tokens: u64,
    body: &[u8],
) -> (Stream, Action) {
    let mut stream = root.stream(7);
    host.ctx.request = Some(vec![
        (":method".into(), "POST".into()),
        (":path".into(), path.into()),
        (":authority".into(), "proxy.local".into()),
        ("authorization".into(), format!("Bearer {TOKEN}")),
    ]);
    stream.on_request_headers(host, false);
    let answer = budgeted(tokens);
    host.ctx.answer = (Some("200".into()), Some(answer.clone()));
    let token = host.last_token();
    stream.on_callout_response(host, token, answer.len());
    host.request_body = body.to_vec();
    let action = stream.on_request_body(host, body.len(), true);
    (stream, action)
}

const CONTINUED: &[u8] =
    br#"{"model":"gpt-x","input":"and then?","max_output_tokens":16,"previous_response_id":"resp_1"}"#;

/// The attacker's request: 90 bytes continuing a stored conversation. Estimated at its bytes
/// it fitted a grant of 2,000; at the context bound it does not (a top-up is asked for all of
/// it, which the token-service refuses when the budget cannot hold it).
#[test]
fn a_continued_conversation_is_estimated_at_the_context_bound() {
    let mut host = FakeHost::new();
    let a = root(HOLD, &mut host);
    let sent = host.sent.len();
    let (_s, action) = held(&a, &mut host, "/v1/responses", 2_000, CONTINUED);
    assert_eq!(
        action,
        Action::Pause,
        "the grant is short: a top-up is asked"
    );
    assert_eq!(host.sent.len(), sent + 2);
    let want = OPENAI_CONTEXT_TOKENS + 16;
    assert_eq!(host.last_check().budget_want, Some(want));
    // Without the reference it is its bytes and fits (a fresh grant: the top-up above gave
    // this one's rest back).
    let mut host = FakeHost::new();
    let a = root(HOLD, &mut host);
    let plain = br#"{"model":"gpt-x","input":"and then?","max_output_tokens":16}"#;
    let (_s, action) = held(&a, &mut host, "/v1/responses", 2_000, plain);
    assert_eq!(action, Action::Continue);
}

/// Each provider's API is read by its rules, and the bound is configurable per provider.
#[test]
fn every_provider_is_bounded_by_its_configured_context() {
    let config = r#"{"limits": {"body_hold": true,
        "context_tokens": {"openai": 5000, "anthropic": 6000, "gemini": 7000}}}"#;
    let mut host = FakeHost::new();
    let a = root(config, &mut host);
    let (_s, action) = held(&a, &mut host, "/v1/responses", 1_000, CONTINUED);
    assert_eq!(action, Action::Pause);
    assert_eq!(host.last_check().budget_want, Some(5000 + 16));
    let chat = br#"{"model":"m","max_tokens":9,"messages":[{"role":"user","content":[
        {"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]}"#;
    let (_s, action) = held(&a, &mut host, "/v1/chat/completions", 1_000, chat);
    assert_eq!(action, Action::Pause);
    assert_eq!(host.last_check().budget_want, Some(5000 + 9));
}

/// A body with its cap given twice (a last-key-wins server honours the larger one), invalid
/// UTF-8, or not JSON: refused with a 400 naming why, nothing forwarded, counted.
#[test]
fn a_body_the_provider_may_read_otherwise_is_refused() {
    let mut host = FakeHost::new();
    let a = root(HOLD, &mut host);
    let bodies: [&[u8]; 3] = [
        br#"{"model":"m","max_tokens":1,"messages":[],"max_tokens":90000}"#,
        b"{\"model\":\"m\",\"messages\":[{\"content\":\"\xff\"}]}",
        b"model=m",
    ];
    for (n, body) in bodies.into_iter().enumerate() {
        host.replies.clear();
        let (_s, action) = held(&a, &mut host, "/v1/chat/completions", 100_000, body);
        assert_ne!(action, Action::Continue, "not forwarded");
        let reply = host.replies.first().unwrap();
        assert_eq!(reply.status, 400);
        let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(json["error"]["code"], "budget_body_unreadable");
        let worker = a.worker.as_ref().unwrap();
        let count = refused(worker, Refusal::BudgetBodyUnreadable);
        assert_eq!(count, u64::try_from(n).unwrap() + 1);
    }
}
