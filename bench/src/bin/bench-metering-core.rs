//! bench-metering-core: the ptk filter core's token usage metering work for the bench mock's
//! answers, natively, for `valgrind --tool=callgrind` to count instructions (repeatable on a
//! shared machine, unlike time). The same Rust runs compiled to wasm inside Envoy's V8, where
//! the host calls that hand it the bytes come on top.
//!
//! `bench-metering-core <case> <n>` runs one case `n` times; the harness (bench/harness/
//! instructions.py) counts `n` = 0 and `n` = N and divides the difference by N. Cases:
//!
//! - `json`: one non-streamed Chat Completions call: the request body read for its `model` and
//!   checked for `stream`, then the response (the mock's completion with its `usage`) metered;
//! - `sse-request`: one streamed request body rewritten to ask for usage;
//! - `sse-response`: one stream's response metered and its usage chunk cut, as the mock sends
//!   it: the first chunk, then the finish chunk, the usage chunk and `[DONE]` together.

use std::hint::black_box;
use std::process::ExitCode;

use ptk_bench::fixtures::{sse_last, CHAT_COMPLETION, SSE_FIRST};
use ptk_filter_core::usage::request_model::RequestModel;
use ptk_filter_core::usage::{
    request_stream_usage, Framing, UsageApi, UsageChunkStripper, UsageMeter,
};

const JSON_REQUEST: &[u8] =
    br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
const SSE_REQUEST: &[u8] =
    br#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
/// What the filter holds at most (`metering.max_request_body_bytes`' default).
const BODY_LIMIT: usize = 512 * 1024;

/// The request side as the filter does it for a held body: its model, then the stream check.
fn request(body: &[u8]) {
    let mut model = RequestModel::new(BODY_LIMIT);
    model.feed(body);
    black_box(model.model());
    black_box(request_stream_usage(body));
}

fn json_call() {
    request(JSON_REQUEST);
    let mut meter = UsageMeter::new(UsageApi::ChatCompletions, Framing::Json);
    meter.feed(black_box(CHAT_COMPLETION.as_bytes()));
    black_box(meter.finish(true));
}

fn sse_response(last: &[u8]) {
    let mut meter = UsageMeter::new(UsageApi::ChatCompletions, Framing::Sse);
    let mut stripper = UsageChunkStripper::default();
    for chunk in [SSE_FIRST.as_bytes(), last] {
        meter.feed(black_box(chunk));
        black_box(stripper.rewrite(chunk));
    }
    black_box(stripper.finish());
    black_box(meter.finish(true));
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(case), Some(Ok(n))) = (args.first(), args.get(1).map(|n| n.parse::<u64>())) else {
        eprintln!("usage: bench-metering-core <json|sse-request|sse-response> <n>");
        return ExitCode::from(2);
    };
    let last = sse_last(true);
    let run: Box<dyn Fn()> = match case.as_str() {
        "json" => Box::new(json_call),
        "sse-request" => Box::new(|| request(SSE_REQUEST)),
        "sse-response" => Box::new(|| sse_response(last.as_bytes())),
        _ => {
            eprintln!("unknown case {case}");
            return ExitCode::from(2);
        }
    };
    for _ in 0..n {
        run();
    }
    ExitCode::SUCCESS
}
