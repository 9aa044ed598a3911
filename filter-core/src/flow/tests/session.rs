//! A budgeted token's WebSocket sessions through the contexts (`flow/session.rs`): one turn's
//! reservation spent at the handshake (or its 429), every client message checked against the
//! session's headroom, a short grant topped up with `budget_want` while the message is held,
//! a denied top-up closing the session with the message never forwarded, and everything the
//! session held released in the report that carries its usage.

use super::budget::{
    budgeted, deliver, exhausted, head, headers, left, releases, report, root, HOLD,
};
use super::*;
use crate::budget::grants::grant_key;
use crate::flow::{Action, Stream};

/// One turn's reservation in these tests (`limits.default_output_tokens`).
const TURN: u64 = 1000;
const CONFIG: &str = r#"{"limits": {"body_hold": true, "default_output_tokens": 1000}}"#;

fn realtime() -> Vec<(String, String)> {
    let upgrade = [("connection", "Upgrade"), ("upgrade", "websocket")];
    head("GET", "/v1/realtime?model=gpt-realtime", &upgrade)
}

/// A client (masked) text frame.
fn client_frame(text: &str) -> Vec<u8> {
    let mask = [9u8, 8, 7, 6];
    let len = u8::try_from(text.len()).unwrap();
    assert!(len < 126);
    let mut out = vec![0x81, 0x80 | len];
    out.extend_from_slice(&mask);
    out.extend(text.bytes().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    out
}

/// A server (unmasked) text frame.
fn server_frame(text: &str) -> Vec<u8> {
    let len = u8::try_from(text.len()).unwrap();
    assert!(len < 126);
    let mut out = vec![0x81, len];
    out.extend_from_slice(text.as_bytes());
    out
}

const CREATE: &str = r#"{"type":"response.create"}"#;

/// A session opened on worker `root` with `answer` to its check, upgraded (101).
fn open(root: &crate::flow::Root, host: &mut FakeHost, answer: &[u8]) -> Stream {
    let (mut s, action) = headers(root, host, realtime(), false, answer);
    assert_eq!(action, Action::Continue, "{:?}", host.replies.first());
    host.response = vec![(":status".into(), "101".into())];
    assert_eq!(s.on_response_headers(host, false), Action::Continue);
    s
}

/// The client sends `bytes` (Envoy holds `held` more before them when paused).
fn send(host: &mut FakeHost, s: &mut Stream, bytes: &[u8]) -> Action {
    host.request_body.extend_from_slice(bytes);
    let size = host.request_body.len();
    let action = s.on_request_body(host, size, false);
    if action == Action::Continue {
        host.request_body.clear();
    }
    action
}

/// Delivers a top-up answer; a resumed request's held frames go on (Envoy's buffer empties).
fn top_up(host: &mut FakeHost, s: &mut Stream, answer: &[u8]) {
    let resumed = host.ctx.resumed;
    deliver(host, s, answer);
    if host.ctx.resumed > resumed {
        host.request_body.clear();
    }
}

/// The server answers a response with `input` + `output` tokens.
fn respond(host: &mut FakeHost, s: &mut Stream, input: u64, output: u64) {
    let done = format!(
        r#"{{"type":"response.done","response":{{"usage":{{"input_tokens":{input},"output_tokens":{output}}}}}}}"#
    );
    let mut frames = server_frame(r#"{"type":"response.created"}"#);
    frames.extend(server_frame(&done));
    host.body = frames;
    let size = host.body.len();
    assert_eq!(s.on_response_body(host, size, false), Action::Continue);
}

fn closed_count(root: &crate::flow::Root) -> u64 {
    root.worker
        .as_ref()
        .unwrap()
        .counts
        .get(Counter::BudgetSessionsClosed)
}

#[test]
fn a_session_within_its_budget_tops_up_from_the_grant_and_releases_it_with_its_usage() {
    let mut host = FakeHost::new();
    let a = root(CONFIG, &mut host);
    let mut s = open(&a, &mut host, &budgeted(1, 10_000, 60_000));
    // The handshake spent one turn.
    assert_eq!(left(&host), (1, 10_000 - TURN));
    // The first turn fits in what the handshake holds: nothing more spent.
    assert_eq!(
        send(&mut host, &mut s, &client_frame(CREATE)),
        Action::Continue
    );
    assert_eq!(left(&host), (1, 9_000));
    respond(&mut host, &mut s, 300, 400);
    // The second needs what the first used back, spent from the grant by CAS (no callout).
    let sent = host.sent.len();
    assert_eq!(
        send(&mut host, &mut s, &client_frame(CREATE)),
        Action::Continue
    );
    assert_eq!(left(&host), (1, 9_000 - 700));
    assert_eq!(host.sent.len(), sent);
    respond(&mut host, &mut s, 500, 200);
    // Audio appends and other events need no more while the headroom holds.
    let append = r#"{"type":"input_audio_buffer.append","audio":"AAAA"}"#;
    assert_eq!(
        send(&mut host, &mut s, &client_frame(append)),
        Action::Continue
    );
    assert_eq!(left(&host), (1, 8_300 - 700));
    host.body = vec![0x88, 0x00];
    s.on_response_body(&mut host, 2, true);
    drop(s);
    let r = report(&a, &mut host);
    // Everything it held goes back in the report that carries its usage: no shortfall.
    assert_eq!(releases(&r), vec![(1, TURN + 700 + 700)]);
    let u = &r.token_usage[0];
    assert_eq!(
        (u.usage.input, u.usage.output, u.shortfall_tokens),
        (800, 600, 0)
    );
    assert_eq!((u.incomplete, u.status), (0, 101));
    assert_eq!(closed_count(&a), 0);
}

#[test]
fn a_session_that_runs_out_is_closed_with_its_message_held_and_charged_what_it_used() {
    let mut host = FakeHost::new();
    let a = root(CONFIG, &mut host);
    let mut s = open(&a, &mut host, &budgeted(1, 2_500, 60_000));
    assert_eq!(
        send(&mut host, &mut s, &client_frame(CREATE)),
        Action::Continue
    );
    respond(&mut host, &mut s, 400, 500);
    assert_eq!(
        send(&mut host, &mut s, &client_frame(CREATE)),
        Action::Continue
    );
    respond(&mut host, &mut s, 400, 500);
    assert_eq!(left(&host), (1, 2_500 - 1_900));
    // The third turn needs 1,800 + 1,000 held (1,900): 900 more, 600 left: a top-up check
    // asks for exactly that, with the message held.
    let sent = host.sent.len();
    assert_eq!(
        send(&mut host, &mut s, &client_frame(CREATE)),
        Action::Pause
    );
    assert_eq!(host.sent.len(), sent + 1);
    let asked: CheckRequest = serde_json::from_slice(&host.sent[sent].body).unwrap();
    assert_eq!(asked.budget_want, Some(900));
    // More frames while it is in flight: held behind it, read, not forwarded.
    let append = client_frame(r#"{"type":"input_audio_buffer.append","audio":"AA"}"#);
    assert_eq!(send(&mut host, &mut s, &append), Action::Pause);
    // Denied: the session is reset (no local reply past the 101), counted, logged without
    // the token.
    let resumed = host.ctx.resumed;
    deliver(&mut host, &mut s, &exhausted());
    assert_eq!(host.ctx.resets, 1);
    assert_eq!(host.ctx.resumed, resumed);
    assert!(host.replies.is_empty());
    assert_eq!(closed_count(&a), 1);
    let logs = host.logs.borrow().clone();
    assert!(logs.iter().any(|(_, l)| l.contains("budget cannot cover")));
    assert!(logs.iter().all(|(_, l)| !l.contains(TOKEN)));
    drop(s);
    // Charged exactly what was metered: no response was running when it closed.
    let r = report(&a, &mut host);
    assert_eq!(releases(&r), vec![(1, 1_900)]);
    let u = &r.token_usage[0];
    assert_eq!(
        (u.usage.input + u.usage.output, u.shortfall_tokens),
        (1_800, 0)
    );
}

#[test]
fn a_top_up_granted_lets_the_held_message_go_and_a_failed_one_closes() {
    let mut host = FakeHost::new();
    let a = root(CONFIG, &mut host);
    let mut s = open(&a, &mut host, &budgeted(1, 1_000, 60_000));
    assert_eq!(left(&host), (1, 0));
    assert_eq!(
        send(&mut host, &mut s, &client_frame(CREATE)),
        Action::Continue
    );
    respond(&mut host, &mut s, 100, 200);
    // Two asks in one chunk (one still running after the first ends): 300 + 2 turns.
    let mut two = client_frame(CREATE);
    two.extend(client_frame(CREATE));
    assert_eq!(send(&mut host, &mut s, &two), Action::Pause);
    let asked: CheckRequest = serde_json::from_slice(&host.sent.last().unwrap().body).unwrap();
    assert_eq!(asked.budget_want, Some(300 + 2 * TURN - TURN));
    let resumed = host.ctx.resumed;
    top_up(&mut host, &mut s, &budgeted(2, 5_000, 60_000));
    assert_eq!((host.ctx.resumed, host.ctx.resets), (resumed + 1, 0));
    assert_eq!(left(&host), (2, 5_000 - 1_300));
    // The grant's answer never comes (transport failure): closed, fail closed.
    respond(&mut host, &mut s, 3_000, 2_000);
    respond(&mut host, &mut s, 10, 10);
    assert_eq!(
        send(&mut host, &mut s, &client_frame(CREATE)),
        Action::Pause
    );
    let proposed = host.last_check().grant_id.unwrap();
    host.ctx.answer = (None, None);
    let token = host.last_token();
    s.on_callout_response(&mut host, token, 0);
    assert_eq!(host.ctx.resets, 1);
    drop(s);
    let r = report(&a, &mut host);
    // Grant 2 held 1,300; the first grant's 1,000 went with the handshake; whatever the
    // failed top-up may have reserved under its proposed id goes back whole.
    let mut got = releases(&r);
    got.sort_unstable();
    let mut want = vec![(1, 1_000), (2, 1_300), (proposed, u64::MAX)];
    want.sort_unstable();
    assert_eq!(got, want);
    // 5,320 metered against 2,300 held: one response past its turn, the documented bound.
    let u = &r.token_usage[0];
    assert_eq!(
        (u.usage.input + u.usage.output, u.shortfall_tokens),
        (5_320, 0)
    );
}

#[test]
fn a_handshake_without_room_gets_the_429_before_anything_is_forwarded() {
    let mut host = FakeHost::new();
    let a = root(HOLD, &mut host);
    // 500 left: the handshake's turn (4,096 by default) asks for a top-up, which is denied.
    let (mut s, _) = headers(&a, &mut host, realtime(), false, &budgeted(1, 500, 60_000));
    let asked: CheckRequest = serde_json::from_slice(&host.sent.last().unwrap().body).unwrap();
    assert_eq!(asked.budget_want, Some(4096));
    let resumed = host.ctx.resumed;
    deliver(&mut host, &mut s, &exhausted());
    assert_eq!(host.replies.first().map(|r| r.status), Some(429));
    assert_eq!(host.ctx.resumed, resumed);
}

#[test]
fn gemini_live_reserves_per_turn_end_and_charges_each_turn() {
    let mut host = FakeHost::new();
    let a = root(CONFIG, &mut host);
    let path = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent";
    let upgrade = [("connection", "Upgrade"), ("upgrade", "websocket")];
    let h = head("GET", path, &upgrade);
    let h = h
        .into_iter()
        .map(|(n, v)| {
            if n == "authorization" {
                ("x-goog-api-key".to_string(), TOKEN.to_string())
            } else {
                (n, v)
            }
        })
        .collect();
    let (mut s, action) = headers(&a, &mut host, h, false, &budgeted(1, 3_000, 60_000));
    assert_eq!(action, Action::Continue, "{:?}", host.replies.first());
    host.response = vec![(":status".into(), "101".into())];
    s.on_response_headers(&mut host, false);
    let left = |host: &FakeHost| {
        let key = grant_key(&cache_key(&token_hash(TOKEN), Provider::Gemini));
        let v = host.shared.value(&key).unwrap();
        u64::from_le_bytes(v[8..16].try_into().unwrap())
    };
    assert_eq!(left(&host), 2_000);
    let setup = client_frame(r#"{"setup":{"model":"models/gemini-live"}}"#);
    assert_eq!(send(&mut host, &mut s, &setup), Action::Continue);
    let turn = client_frame(r#"{"clientContent":{"turnComplete":true}}"#);
    assert_eq!(send(&mut host, &mut s, &turn), Action::Continue);
    let usage = r#"{"usageMetadata":{"promptTokenCount":700,"responseTokenCount":600}}"#;
    let mut frames = server_frame(usage);
    frames.extend(server_frame(r#"{"serverContent":{"turnComplete":true}}"#));
    host.body = frames;
    let size = host.body.len();
    s.on_response_body(&mut host, size, false);
    // 1,300 metered + one turn: 1,300 more from the grant.
    assert_eq!(send(&mut host, &mut s, &turn), Action::Continue);
    assert_eq!(left(&host), 700);
    drop(s);
    let r = report(&a, &mut host);
    assert_eq!(releases(&r), vec![(1, 2_300)]);
    // The second turn never answered: a response was running, so what it held is charged.
    let u = &r.token_usage[0];
    assert_eq!(
        (u.usage.input + u.usage.output, u.shortfall_tokens),
        (1_300, 1_000)
    );
}

#[test]
fn a_long_session_holds_again_what_its_lapsing_grant_covered() {
    use crate::budget::session::RENEW_AFTER_MS;
    let mut host = FakeHost::new();
    let a = root(CONFIG, &mut host);
    let mut s = open(&a, &mut host, &budgeted(1, 100_000, 60_000));
    assert_eq!(
        send(&mut host, &mut s, &client_frame(CREATE)),
        Action::Continue
    );
    respond(&mut host, &mut s, 300, 400);
    // Within the renewal age the handshake's hold still covers the next turn.
    host.now += RENEW_AFTER_MS - 1;
    let sent = host.sent.len();
    assert_eq!(
        send(&mut host, &mut s, &client_frame(CREATE)),
        Action::Pause
    );
    // (700 charged + 1,000 = 1,700 needed, 1,000 held: grant 1 expired, so a top-up asks.)
    let asked: CheckRequest = serde_json::from_slice(&host.sent[sent].body).unwrap();
    assert_eq!(asked.budget_want, Some(700));
    top_up(&mut host, &mut s, &budgeted(2, 10_000, 600_000));
    assert_eq!(left(&host), (2, 10_000 - 700));
    respond(&mut host, &mut s, 100, 100);
    // Past it, the handshake's hold (grant 1, whose reservation may lapse) no longer counts:
    // 900 charged + 1,000 are held again from the current grant, less grant 2's 700.
    host.now += 1;
    assert_eq!(
        send(&mut host, &mut s, &client_frame(CREATE)),
        Action::Continue
    );
    assert_eq!(left(&host), (2, 9_300 - (1_900 - 700)));
    drop(s);
    let r = report(&a, &mut host);
    // Grant 1: the 99,000 it still had when found expired, and the handshake's 1,000.
    let mut got = releases(&r);
    got.sort_unstable();
    assert_eq!(got, vec![(1, 100_000), (2, 700 + 1_200)]);
}

/// A session reset while its top-up is in flight: Envoy drops the answer, so whatever the
/// top-up reserved under its proposed grant id goes back whole with the session's holds.
#[test]
fn a_session_dropped_while_its_top_up_is_pending_releases_the_proposed_id() {
    let mut host = FakeHost::new();
    let a = root(CONFIG, &mut host);
    let mut s = open(&a, &mut host, &budgeted(1, 1_000, 60_000));
    let sent = host.sent.len();
    assert_eq!(
        send(&mut host, &mut s, &client_frame(CREATE)),
        Action::Continue
    );
    respond(&mut host, &mut s, 100, 200);
    assert_eq!(
        send(&mut host, &mut s, &client_frame(CREATE)),
        Action::Pause
    );
    assert_eq!(host.sent.len(), sent + 1, "a top-up");
    let proposed = host.last_check().grant_id.unwrap();
    drop(s);
    let got = releases(&report(&a, &mut host));
    assert!(got.contains(&(proposed, u64::MAX)), "{got:?}");
}
