//! Usage metered from WebSocket sessions (filter-core/src/usage/{ws,meter}.rs): OpenAI Realtime
//! (`response.done`, summed), Gemini Live (binary frames, last snapshot per turn, turns summed),
//! Responses over a WebSocket (terminal events summed); frames of every length encoding,
//! masked or not, fragmented with control frames between fragments, cut at every byte.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use ptk_filter_core::usage::{Framing, MeteredUsage, TokenUsage, UsageApi, UsageMeter};

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;

/// One frame: FIN and RSV1 as asked, the shortest length encoding unless `long` forces the
/// 64-bit one, masked with `mask` if given.
fn frame(
    opcode: u8,
    fin: bool,
    rsv1: bool,
    payload: &[u8],
    mask: Option<[u8; 4]>,
    long: bool,
) -> Vec<u8> {
    let mut out = vec![opcode | if fin { 0x80 } else { 0 } | if rsv1 { 0x40 } else { 0 }];
    let m = if mask.is_some() { 0x80 } else { 0 };
    let n = payload.len();
    if long {
        out.push(m | 127);
        out.extend((n as u64).to_be_bytes());
    } else if n < 126 {
        out.push(m | n as u8);
    } else if n <= 0xFFFF {
        out.push(m | 126);
        out.extend((n as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend((n as u64).to_be_bytes());
    }
    match mask {
        Some(key) => {
            out.extend(key);
            out.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
        }
        None => out.extend(payload),
    }
    out
}

fn text(json: &str) -> Vec<u8> {
    frame(TEXT, true, false, json.as_bytes(), None, false)
}

fn close() -> Vec<u8> {
    frame(CLOSE, true, false, &[0x03, 0xE8], None, false)
}

fn usage(input: u64, cached_input: u64, output: u64, reasoning: u64) -> TokenUsage {
    TokenUsage {
        input,
        cached_input,
        cache_write: 0,
        output,
        reasoning,
    }
}

fn meter(api: UsageApi, chunks: &[&[u8]]) -> MeteredUsage {
    let mut m = UsageMeter::new(api, Framing::WebSocket);
    for chunk in chunks {
        m.feed(chunk);
    }
    m.finish(true)
}

/// A Realtime session: the session, a padded message long enough for the 16-bit length, a
/// `response.done` fragmented in three with a ping between fragments, a second one in the
/// 64-bit encoding, then close.
fn realtime_session() -> Vec<u8> {
    let mut s = text(
        r#"{"type":"session.created","event_id":"ev_0","session":{"id":"sess_1","model":"gpt-realtime-x"}}"#,
    );
    let delta = format!(
        r#"{{"type":"response.output_audio.delta","delta":"{}","usage":{{"input_tokens":999}}}}"#,
        "A".repeat(300)
    );
    s.extend(text(&delta));
    let done1 = r#"{"type":"response.done","event_id":"ev_1","response":{"id":"resp_1","status":"completed","usage":{"total_tokens":353,"input_tokens":250,"output_tokens":103,"input_token_details":{"text_tokens":120,"audio_tokens":130,"cached_tokens":192},"output_token_details":{"text_tokens":23,"audio_tokens":80}}}}"#;
    let (a, rest) = done1.as_bytes().split_at(40);
    let (b, c) = rest.split_at(100);
    s.extend(frame(TEXT, false, false, a, None, false));
    s.extend(frame(PING, true, false, b"hi", None, false));
    s.extend(frame(CONTINUATION, false, false, b, None, false));
    s.extend(frame(CONTINUATION, true, false, c, None, false));
    let done2 = r#"{"type":"response.done","response":{"status":"cancelled","usage":{"input_tokens":400,"output_tokens":7,"input_token_details":{"cached_tokens":256}}}}"#;
    s.extend(frame(TEXT, true, false, done2.as_bytes(), None, true));
    s.extend(close());
    s
}

#[test]
fn realtime_sums_every_response_done_at_every_split() {
    let session = realtime_session();
    let want = MeteredUsage {
        usage: usage(650, 448, 110, 0),
        model: Some("gpt-realtime-x".into()),
        complete: true,
    };
    assert_eq!(meter(UsageApi::Realtime, &[&session]), want);
    for at in 0..=session.len() {
        let (a, b) = session.split_at(at);
        assert_eq!(meter(UsageApi::Realtime, &[a, b]), want, "cut at {at}");
    }
    let bytes: Vec<&[u8]> = session.chunks(1).collect();
    assert_eq!(meter(UsageApi::Realtime, &bytes), want);
}

#[test]
fn gemini_live_keeps_the_last_snapshot_of_each_turn_and_sums_turns() {
    let bin = |json: &str| frame(BINARY, true, false, json.as_bytes(), None, false);
    let mut s = bin(r#"{"setupComplete":{}}"#);
    s.extend(bin(r#"{"serverContent":{"modelTurn":{"parts":[{"text":"a"}]}},"usageMetadata":{"promptTokenCount":143,"responseTokenCount":5,"totalTokenCount":148}}"#));
    s.extend(bin(r#"{"serverContent":{"turnComplete":true},"usageMetadata":{"promptTokenCount":143,"responseTokenCount":23,"thoughtsTokenCount":4,"totalTokenCount":170}}"#));
    s.extend(bin(r#"{"serverContent":{"turnComplete":true},"usageMetadata":{"promptTokenCount":181,"cachedContentTokenCount":100,"responseTokenCount":10,"totalTokenCount":191}}"#));
    s.extend(close());
    let want = MeteredUsage {
        usage: usage(324, 100, 37, 4),
        model: None,
        complete: true,
    };
    for at in 0..=s.len() {
        let (a, b) = s.split_at(at);
        assert_eq!(meter(UsageApi::Live, &[a, b]), want, "cut at {at}");
    }
    // Cut off mid-turn: the open turn's snapshot counts, and the session is incomplete.
    let mut open = bin(
        r#"{"serverContent":{"modelTurn":{}},"usageMetadata":{"promptTokenCount":10,"responseTokenCount":2}}"#,
    );
    open.extend(close());
    let got = meter(UsageApi::Live, &[&open]);
    assert_eq!(got.usage, usage(10, 0, 2, 0));
    assert!(!got.complete);
}

#[test]
fn responses_over_a_websocket_sum_their_terminal_events() {
    let mut s =
        text(r#"{"type":"response.created","response":{"id":"r1","model":"gpt-x","usage":null}}"#);
    s.extend(text(r#"{"type":"response.incomplete","response":{"id":"r1","incomplete_details":{"reason":"steered"},"usage":{"input_tokens":10,"output_tokens":2}}}"#));
    s.extend(text(r#"{"type":"response.completed","response":{"id":"r2","usage":{"input_tokens":30,"output_tokens":5,"output_tokens_details":{"reasoning_tokens":3}}}}"#));
    s.extend(close());
    let got = meter(UsageApi::Responses, &[&s]);
    assert_eq!(got.usage, usage(40, 0, 7, 3));
    assert_eq!(got.model.as_deref(), Some("gpt-x"));
    assert!(got.complete);
}

#[test]
fn masked_frames_are_read_too() {
    let key = Some([0x37, 0xfa, 0x21, 0x3d]);
    let done =
        r#"{"type":"response.done","response":{"usage":{"input_tokens":3,"output_tokens":4}}}"#;
    let (a, b) = done.as_bytes().split_at(13);
    let mut s = frame(TEXT, false, false, a, key, false);
    s.extend(frame(CONTINUATION, true, false, b, key, false));
    s.extend(frame(CLOSE, true, false, &[], key, false));
    for at in 0..=s.len() {
        let (x, y) = s.split_at(at);
        assert_eq!(
            meter(UsageApi::Realtime, &[x, y]).usage,
            usage(3, 0, 4, 0),
            "cut at {at}"
        );
    }
}

#[test]
fn a_compressed_message_is_skipped_and_marks_the_session_incomplete() {
    let mut s = frame(
        TEXT,
        true,
        true,
        b"\xf2\x48\xcd\xc9\xc9\x07\x00",
        None,
        false,
    );
    s.extend(text(
        r#"{"type":"response.done","response":{"usage":{"input_tokens":3,"output_tokens":4}}}"#,
    ));
    s.extend(close());
    let got = meter(UsageApi::Realtime, &[&s]);
    assert_eq!(
        got.usage,
        usage(3, 0, 4, 0),
        "later uncompressed messages still count"
    );
    assert!(!got.complete);
}

#[test]
fn a_session_without_a_close_frame_is_incomplete_and_one_with_it_complete_even_when_reset() {
    let s = text(
        r#"{"type":"response.done","response":{"usage":{"input_tokens":3,"output_tokens":4}}}"#,
    );
    let got = meter(UsageApi::Realtime, &[&s]);
    assert_eq!(got.usage, usage(3, 0, 4, 0));
    assert!(!got.complete);
    let mut m = UsageMeter::new(UsageApi::Realtime, Framing::WebSocket);
    m.feed(&s);
    assert!(!m.finish(false).complete, "reset before the close frame");
    // After the close handshake the upstream closes its connection, which Envoy reports as a
    // reset (response flag UC): the session still ended as the protocol says it ends.
    let mut closed = s.clone();
    closed.extend(close());
    let mut m = UsageMeter::new(UsageApi::Realtime, Framing::WebSocket);
    m.feed(&closed);
    assert!(m.finish(false).complete, "closed, then reset");
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut seed = 0x2545F4914F6CDD1Du64;
    for len in 0..600 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        for api in [UsageApi::Realtime, UsageApi::Live, UsageApi::Responses] {
            let _ = meter(api, &[&bytes]);
        }
    }
}
