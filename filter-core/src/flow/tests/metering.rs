//! Token usage of forwarded requests (`flow/metering.rs`): a streamed Chat Completions request
//! asked for its usage and the usage chunk cut out again, JSON and SSE responses metered,
//! errors and resets recorded as incomplete, everything in the worker's activity report.

use ptk_wire::{ActivityReport, UsageApi, UsageEntry};

use super::*;
use crate::flow::{BodyStep, HeadersStep};

/// A request with [`TOKEN`] forwarded from the cache with `config`.
fn forwarded(
    config: &str,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
) -> (Worker, FakeHost, RequestFlow) {
    let mut host = FakeHost::new();
    let w = worker(config, &host);
    cache_verdict(&host, T0 + 10_000, 5, 1);
    let mut headers = vec![
        (":method".to_string(), method.to_string()),
        (":path".to_string(), path.to_string()),
        ("authorization".to_string(), format!("Bearer {TOKEN}")),
    ];
    if !extra.iter().any(|(n, _)| *n == "content-length") {
        headers.push(("content-length".to_string(), "99".to_string()));
    }
    headers.extend(
        extra
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, v)| (n.to_string(), v.to_string())),
    );
    let mut flow = RequestFlow::new(7);
    // OpenAI's verdict is cached; another provider's is asked for (and allowed).
    match flow.on_request_headers(&w, &mut host, RequestHead::new(headers)) {
        Step::Forward => {}
        Step::CallOut { token_id } => {
            let answer = allow(1000, None);
            let step = flow.on_callout_response(&w, &mut host, token_id, Some(200), Some(&answer));
            assert_eq!(step, Some(Step::Forward));
        }
        other => panic!("{other:?}"),
    }
    (w, host, flow)
}

fn chat() -> (Worker, FakeHost, RequestFlow) {
    forwarded("{}", "POST", "/v1/chat/completions", &[])
}

fn dropped_content_length(host: &FakeHost) -> bool {
    host.edits.contains(&("content-length".into(), None))
}

/// The usage entries of the worker's next activity report.
fn reported(w: &Worker) -> Vec<UsageEntry> {
    let call = w.activity.borrow_mut().take_call(&w.config, "s");
    call.map(|(_, body)| {
        serde_json::from_slice::<ActivityReport>(&body)
            .unwrap()
            .token_usage
    })
    .unwrap_or_default()
}

const STREAM: &str = concat!(
    "data: {\"model\":\"gpt-x\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n",
    "data: {\"model\":\"gpt-x\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3}}\n\n",
    "data: [DONE]\n\n",
);

fn sse_response(host: &mut FakeHost) {
    host.response = vec![
        (":status".into(), "200".into()),
        ("content-type".into(), "text/event-stream".into()),
    ];
}

/// Feeds `body` as the response in chunks of `size`; what the client got.
fn respond(
    w: &Worker,
    host: &mut FakeHost,
    flow: &mut RequestFlow,
    body: &str,
    size: usize,
) -> String {
    let mut client = Vec::new();
    let chunks: Vec<&[u8]> = body.as_bytes().chunks(size).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        host.body = chunk.to_vec();
        let end = i + 1 == chunks.len();
        assert_eq!(
            flow.on_response_body(w, host, chunk.len(), end),
            BodyStep::Continue
        );
        client.extend(host.body.clone());
    }
    String::from_utf8(client).unwrap()
}

#[test]
fn a_stream_that_did_not_ask_is_asked_and_sees_exactly_its_stream() {
    let (w, mut host, mut flow) = chat();
    assert!(dropped_content_length(&host), "the body will change length");
    host.request_body = br#"{"model":"gpt-x","stream":true,"messages":[]}"#.to_vec();
    let size = host.request_body.len();
    assert_eq!(
        flow.on_request_body(&mut host, size, false),
        BodyStep::Pause
    );
    assert_eq!(
        flow.on_request_body(&mut host, size, true),
        BodyStep::Continue
    );
    let sent: serde_json::Value = serde_json::from_slice(&host.request_body).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    sse_response(&mut host);
    assert_eq!(
        flow.on_response_headers(&w, &mut host, false),
        HeadersStep::Continue
    );
    let client = respond(&w, &mut host, &mut flow, STREAM, 7);
    assert!(!client.contains("prompt_tokens"), "{client}");
    assert!(client.contains("\"Hi\"") && client.ends_with("data: [DONE]\n\n"));
    let entries = reported(&w);
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(
        (e.api, e.model.as_str(), e.status, e.streamed),
        (UsageApi::ChatCompletions, "gpt-x", 200, true)
    );
    assert_eq!(
        (e.requests, e.incomplete, e.usage.input, e.usage.output),
        (1, 0, 12, 3)
    );
    assert_eq!(e.hash, token_hash(TOKEN));
    assert_eq!(w.counts.get(Counter::UsageInputTokens), 12);
    assert_eq!(w.counts.get(Counter::UsageResponses), 1);
}

#[test]
fn a_client_that_asked_for_usage_keeps_its_usage_chunk() {
    let (w, mut host, mut flow) = chat();
    host.request_body = br#"{"stream":true,"stream_options":{"include_usage":true}}"#.to_vec();
    let before = host.request_body.clone();
    let size = before.len();
    assert_eq!(
        flow.on_request_body(&mut host, size, true),
        BodyStep::Continue
    );
    assert_eq!(host.request_body, before);
    sse_response(&mut host);
    flow.on_response_headers(&w, &mut host, false);
    let client = respond(&w, &mut host, &mut flow, STREAM, 1000);
    assert_eq!(client, STREAM);
    assert_eq!(reported(&w)[0].usage.input, 12);
}

#[test]
fn a_json_response_is_metered_and_its_body_untouched() {
    let (w, mut host, mut flow) = chat();
    host.request_body = br#"{"model":"gpt-x","messages":[]}"#.to_vec();
    let before = host.request_body.clone();
    assert_eq!(
        flow.on_request_body(&mut host, before.len(), true),
        BodyStep::Continue
    );
    assert_eq!(host.request_body, before, "not a stream: not asked");
    host.response = vec![
        (":status".into(), "200".into()),
        ("content-type".into(), "application/json".into()),
    ];
    flow.on_response_headers(&w, &mut host, false);
    let body =
        r#"{"model":"gpt-x-mini","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1}}"#;
    assert_eq!(respond(&w, &mut host, &mut flow, body, 10), body);
    let e = &reported(&w)[0];
    assert_eq!(
        (e.model.as_str(), e.streamed, e.incomplete, e.usage.input),
        ("gpt-x-mini", false, 0, 5)
    );
}

#[test]
fn an_error_is_recorded_without_reading_its_body_and_a_reset_as_incomplete() {
    let (w, mut host, mut flow) = chat();
    host.response = vec![
        (":status".into(), "429".into()),
        ("content-type".into(), "application/json".into()),
    ];
    flow.on_response_headers(&w, &mut host, false);
    host.body = br#"{"error":{"message":"slow down"}}"#.to_vec();
    let size = host.body.len();
    flow.on_response_body(&w, &mut host, size, true);
    let e = &reported(&w)[0];
    assert_eq!(
        (e.status, e.requests, e.incomplete, e.usage.input),
        (429, 1, 1, 0)
    );
    // A stream reset half way (the context is dropped before the end): what was seen counts.
    let (w, mut host, mut flow) = chat();
    sse_response(&mut host);
    flow.on_response_headers(&w, &mut host, false);
    host.body = STREAM.as_bytes()[..STREAM.find("data: [DONE]").unwrap()].to_vec();
    let size = host.body.len();
    flow.on_response_body(&w, &mut host, size, false);
    flow.finish_metering(&w, false);
    let e = &reported(&w)[0];
    assert_eq!((e.incomplete, e.usage.input), (1, 12));
    assert_eq!(w.counts.get(Counter::UsageIncomplete), 1);
    // Finishing twice records once.
    flow.finish_metering(&w, false);
    assert!(reported(&w).is_empty());
}

#[test]
fn a_compressed_response_is_not_misread_but_recorded_incomplete() {
    let (w, mut host, mut flow) = chat();
    host.response = vec![
        (":status".into(), "200".into()),
        ("content-type".into(), "application/json".into()),
        ("content-encoding".into(), "gzip".into()),
    ];
    flow.on_response_headers(&w, &mut host, false);
    respond(&w, &mut host, &mut flow, "\u{1f}\u{8b}garbage", 4);
    let e = &reported(&w)[0];
    assert_eq!((e.requests, e.incomplete, e.usage.input), (1, 1, 0));
}

#[test]
fn a_body_of_unknown_or_too_large_size_is_never_held() {
    // Chunked (no content-length): never held, so it can never stall behind flow control.
    let (_, host, _) = forwarded(
        "{}",
        "POST",
        "/v1/chat/completions",
        &[("content-length", "")],
    );
    assert!(!dropped_content_length(&host));
    // Beyond metering.max_request_body_bytes (512 KiB by default): forwarded as it comes.
    let (w, mut host, mut flow) = forwarded(
        "{}",
        "POST",
        "/v1/chat/completions",
        &[("content-length", "3000000")],
    );
    assert!(!dropped_content_length(&host));
    assert_eq!(
        flow.on_request_body(&mut host, 10, false),
        BodyStep::Continue
    );
    // Still metered (the response is read); only the asking is skipped.
    sse_response(&mut host);
    flow.on_response_headers(&w, &mut host, false);
    let client = respond(&w, &mut host, &mut flow, STREAM, 64);
    assert_eq!(client, STREAM);
    // At the bound it is held; the bound is configurable within limits.
    let at = r#"{"metering":{"max_request_body_bytes":1024}}"#;
    let (_, host, _) = forwarded(
        at,
        "POST",
        "/v1/chat/completions",
        &[("content-length", "1024")],
    );
    assert!(dropped_content_length(&host));
    let (_, host, _) = forwarded(
        at,
        "POST",
        "/v1/chat/completions",
        &[("content-length", "1025")],
    );
    assert!(!dropped_content_length(&host));
    for bad in [0u64, 1023, 16 * 1024 * 1024 + 1] {
        let config = format!(r#"{{"metering":{{"max_request_body_bytes":{bad}}}}}"#);
        let error = crate::FilterConfig::parse(config.as_bytes()).unwrap_err();
        assert!(error.contains("metering.max_request_body_bytes"), "{error}");
    }
}

#[test]
fn a_request_never_answered_records_nothing() {
    let (w, _host, mut flow) = chat();
    flow.finish_metering(&w, false);
    assert!(reported(&w).is_empty());
}

#[test]
fn what_is_not_asked_or_not_metered() {
    // Anthropic streams carry usage: no body is held; checked by a callout, still metered.
    let (w, mut host, mut flow) = forwarded("{}", "POST", "/v1/messages", &[("x-api-key", TOKEN)]);
    assert!(!dropped_content_length(&host));
    sse_response(&mut host);
    flow.on_response_headers(&w, &mut host, false);
    let anthropic = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-x\",\"usage\":{\"input_tokens\":4,\"output_tokens\":1}}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    assert_eq!(respond(&w, &mut host, &mut flow, anthropic, 13), anthropic);
    let e = &reported(&w)[0];
    assert_eq!(
        (e.provider.as_str(), e.api, e.incomplete, e.usage.output),
        ("anthropic", UsageApi::Messages, 0, 9)
    );
    // A provider whose streams may not be asked (configured off): no body held.
    let off = r#"{"providers":{"openai":{"stream_usage":false}}}"#;
    let (w, mut host, mut flow) = forwarded(off, "POST", "/v1/chat/completions", &[]);
    assert!(!dropped_content_length(&host));
    host.request_body = br#"{"stream":true}"#.to_vec();
    assert_eq!(
        flow.on_request_body(&mut host, 15, false),
        BodyStep::Continue
    );
    sse_response(&mut host);
    flow.on_response_headers(&w, &mut host, false);
    respond(&w, &mut host, &mut flow, STREAM, 50);
    assert_eq!(
        reported(&w)[0].usage.input,
        12,
        "still metered when the client asked"
    );
    // Listing models is not metered; metering off meters nothing.
    let (w, mut host, mut flow) = forwarded("{}", "GET", "/v1/models", &[]);
    host.response = vec![
        (":status".into(), "200".into()),
        ("content-type".into(), "application/json".into()),
    ];
    flow.on_response_headers(&w, &mut host, false);
    respond(&w, &mut host, &mut flow, "{}", 10);
    assert!(reported(&w).is_empty());
    let (w, mut host, mut flow) = forwarded(
        r#"{"metering":{"enabled":false}}"#,
        "POST",
        "/v1/chat/completions",
        &[],
    );
    assert!(!dropped_content_length(&host));
    sse_response(&mut host);
    flow.on_response_headers(&w, &mut host, false);
    respond(&w, &mut host, &mut flow, STREAM, 50);
    assert!(reported(&w).is_empty());
}

#[test]
fn a_websocket_session_is_metered_from_its_frames() {
    let (w, mut host, mut flow) = forwarded(
        "{}",
        "GET",
        "/v1/realtime?model=gpt-realtime",
        &[("connection", "Upgrade"), ("upgrade", "websocket")],
    );
    host.response = vec![(":status".into(), "101".into())];
    flow.on_response_headers(&w, &mut host, false);
    let done =
        br#"{"type":"response.done","response":{"usage":{"input_tokens":7,"output_tokens":2}}}"#;
    let mut frames = vec![0x81, done.len() as u8];
    frames.extend_from_slice(done);
    frames.extend_from_slice(&[0x88, 0x00]);
    host.body = frames;
    let size = host.body.len();
    flow.on_response_body(&w, &mut host, size, true);
    let e = &reported(&w)[0];
    assert_eq!(
        (e.api, e.status, e.streamed, e.incomplete, e.usage.input),
        (UsageApi::Realtime, 101, true, 0, 7)
    );
}

#[test]
fn a_stream_whose_last_bytes_were_held_gets_them_at_an_empty_end() {
    // Envoy often ends a response with an empty chunk; a stream whose last line has no
    // blank line after it was held by the stripper and must still reach the client.
    let (w, mut host, mut flow) = chat();
    host.request_body = br#"{"stream":true}"#.to_vec();
    assert_eq!(
        flow.on_request_body(&mut host, 15, true),
        BodyStep::Continue
    );
    sse_response(&mut host);
    flow.on_response_headers(&w, &mut host, false);
    let body = "data: {\"choices\":[{\"delta\":{}}]}\n\ndata: [DONE]\n";
    host.body = body.as_bytes().to_vec();
    flow.on_response_body(&w, &mut host, body.len(), false);
    let mut client = host.body.clone();
    host.body = Vec::new();
    flow.on_response_body(&w, &mut host, 0, true);
    client.extend(host.body.clone());
    assert_eq!(String::from_utf8(client).unwrap(), body);
}

#[test]
fn a_body_whole_at_its_content_length_is_asked_before_any_trailers() {
    // HTTP/2 trailers end the stream after the last DATA frame, which does not say `end`:
    // held on to them, Envoy would lose the body (`flow/context.rs`, `on_request_trailers`).
    let body = br#"{"model":"gpt-x","stream":true,"messages":[]}"#;
    let length = body.len().to_string();
    let (_w, mut host, mut flow) = forwarded(
        "{}",
        "POST",
        "/v1/chat/completions",
        &[("content-length", &length)],
    );
    host.request_body = body[..10].to_vec();
    assert_eq!(flow.on_request_body(&mut host, 10, false), BodyStep::Pause);
    host.request_body = body.to_vec();
    assert_eq!(
        flow.on_request_body(&mut host, body.len(), false),
        BodyStep::Continue
    );
    let sent: serde_json::Value = serde_json::from_slice(&host.request_body).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
}

#[test]
fn a_request_body_past_the_hold_limit_passes_unasked() {
    // Held past Envoy's buffer limit the request would be refused with 413.
    let (_w, mut host, mut flow) = chat();
    let limit = 512 * 1024; // metering.max_request_body_bytes by default
    host.request_body = vec![b' '; limit + 1];
    assert_eq!(
        flow.on_request_body(&mut host, limit, false),
        BodyStep::Pause
    );
    assert_eq!(
        flow.on_request_body(&mut host, limit + 1, false),
        BodyStep::Continue
    );
    assert_eq!(
        flow.on_request_body(&mut host, limit + 2, true),
        BodyStep::Continue
    );
    assert_eq!(
        host.request_body,
        vec![b' '; limit + 1],
        "forwarded as it came"
    );
}

#[test]
fn an_asked_stream_with_a_content_length_loses_it() {
    // The usage chunk is cut out, so the stream gets shorter: a `content-length` left in
    // place made the client wait for bytes that never came (a hang through the real Envoy).
    let (w, mut host, mut flow) = chat();
    host.request_body = br#"{"stream":true}"#.to_vec();
    flow.on_request_body(&mut host, 15, true);
    sse_response(&mut host);
    let length = STREAM.len().to_string();
    host.response.push(("content-length".into(), length));
    flow.on_response_headers(&w, &mut host, false);
    assert!(!host.response.iter().any(|(n, _)| n == "content-length"));
    assert!(!respond(&w, &mut host, &mut flow, STREAM, 20).contains("prompt_tokens"));
    // A client that asked: its stream is not changed, nor its length.
    let (w, mut host, mut flow) = chat();
    host.request_body = br#"{"stream":true,"stream_options":{"include_usage":true}}"#.to_vec();
    let size = host.request_body.len();
    flow.on_request_body(&mut host, size, true);
    sse_response(&mut host);
    host.response.push(("content-length".into(), "10".into()));
    flow.on_response_headers(&w, &mut host, false);
    assert!(host.response.iter().any(|(n, _)| n == "content-length"));
}

/// An error response to the request `flow` forwarded, with `body` (never read).
fn error_response(w: &Worker, host: &mut FakeHost, flow: &mut RequestFlow, status: &str) {
    host.response = vec![
        (":status".into(), status.into()),
        ("content-type".into(), "application/json".into()),
    ];
    flow.on_response_headers(w, host, false);
    host.body = br#"{"error":{"message":"no","model":"not-this"}}"#.to_vec();
    let size = host.body.len();
    flow.on_response_body(w, host, size, true);
}

#[test]
fn an_error_is_recorded_under_the_model_the_request_named() {
    // In the body, which passes chunk by chunk (Anthropic: never held).
    let (w, mut host, mut flow) = forwarded(
        "{}",
        "POST",
        "/v1/messages",
        &[("x-api-key", TOKEN), ("anthropic-version", "2023-06-01")],
    );
    let body = br#"{"max_tokens":5,"model":"claude-x","messages":[]}"#;
    for (i, chunk) in body.chunks(7).enumerate() {
        host.request_body = chunk.to_vec();
        let end = (i + 1) * 7 >= body.len();
        let step = flow.on_request_body(&mut host, chunk.len(), end);
        assert_eq!(step, BodyStep::Continue);
    }
    error_response(&w, &mut host, &mut flow, "529");
    let e = &reported(&w)[0];
    assert_eq!((e.model.as_str(), e.status), ("claude-x", 529));
    // A held (streamed Chat Completions) body is read once, whole.
    let (w, mut host, mut flow) = chat();
    host.request_body = br#"{"model":"gpt-y","stream":true,"messages":[]}"#.to_vec();
    let size = host.request_body.len();
    assert_eq!(flow.on_request_body(&mut host, 8, false), BodyStep::Pause);
    assert_eq!(
        flow.on_request_body(&mut host, size, true),
        BodyStep::Continue
    );
    error_response(&w, &mut host, &mut flow, "500");
    assert_eq!(reported(&w)[0].model, "gpt-y");
    // In the path (Gemini).
    let (w, mut host, mut flow) = forwarded(
        "{}",
        "POST",
        "/v1beta/models/gemini-z:generateContent",
        &[("authorization", ""), ("x-goog-api-key", TOKEN)],
    );
    error_response(&w, &mut host, &mut flow, "503");
    assert_eq!(reported(&w)[0].model, "gemini-z");
}

#[test]
fn the_response_model_wins_over_the_request_model() {
    let (w, mut host, mut flow) = forwarded("{}", "POST", "/v1/embeddings", &[]);
    host.request_body = br#"{"model":"alias","input":"x"}"#.to_vec();
    let size = host.request_body.len();
    flow.on_request_body(&mut host, size, true);
    host.response = vec![
        (":status".into(), "200".into()),
        ("content-type".into(), "application/json".into()),
    ];
    flow.on_response_headers(&w, &mut host, false);
    let body = r#"{"model":"alias-2025-01-01","usage":{"prompt_tokens":3,"total_tokens":3}}"#;
    respond(&w, &mut host, &mut flow, body, 5);
    assert_eq!(reported(&w)[0].model, "alias-2025-01-01");
}
