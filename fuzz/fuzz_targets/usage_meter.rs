//! The usage meter over arbitrary response bodies: never panics, and where the body is cut
//! into chunks never changes what it meters (chunk boundaries are arbitrary in Envoy). The
//! usage-chunk stripper on the same bytes: its output does not depend on the cut either, and
//! is the input exactly unless it removed a usage-only event. The request body's model reader
//! on the same bytes: what it finds does not depend on the cut either.
//! Input: byte 0 picks the API (low bits) and framing (top two bits: JSON, WebSocket, SSE), byte 1 the cut point, the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptk_filter_core::usage::request_model::RequestModel;
use ptk_filter_core::usage::{Framing, MeteredUsage, UsageApi, UsageChunkStripper, UsageMeter};

const APIS: [UsageApi; 7] = [
    UsageApi::ChatCompletions,
    UsageApi::Responses,
    UsageApi::Embeddings,
    UsageApi::Messages,
    UsageApi::GenerateContent,
    UsageApi::Realtime,
    UsageApi::Live,
];

fn meter(api: UsageApi, framing: Framing, chunks: &[&[u8]]) -> MeteredUsage {
    let mut meter = UsageMeter::new(api, framing);
    for chunk in chunks {
        meter.feed(chunk);
    }
    meter.finish(true)
}

fn strip(chunks: &[&[u8]]) -> (Vec<u8>, u32) {
    let mut stripper = UsageChunkStripper::default();
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(stripper.rewrite(chunk));
    }
    out.extend(stripper.finish());
    (out, stripper.removed())
}

fn request_model(chunks: &[&[u8]]) -> Option<String> {
    let mut reader = RequestModel::new(4096);
    for chunk in chunks {
        reader.feed(chunk);
    }
    reader.model().map(str::to_string)
}

fuzz_target!(|data: &[u8]| {
    let [pick, cut, body @ ..] = data else {
        return;
    };
    let api = APIS[usize::from(pick & 0x0F) % APIS.len()];
    let framing = match pick >> 6 {
        0 => Framing::Json,
        1 => Framing::WebSocket,
        _ => Framing::Sse,
    };
    let whole = meter(api, framing, &[body]);
    let at = usize::from(*cut) * body.len() / 255;
    let (a, b) = body.split_at(at);
    assert_eq!(meter(api, framing, &[a, b]), whole);
    assert_eq!(request_model(&[a, b]), request_model(&[body]));
    let (stripped, removed) = strip(&[body]);
    assert_eq!(strip(&[a, b]), (stripped.clone(), removed));
    if removed == 0 {
        assert_eq!(stripped, body);
    }
    if body.len() <= 4096 {
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(meter(api, framing, &bytes), whole);
    }
});
