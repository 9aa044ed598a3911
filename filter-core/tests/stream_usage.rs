//! Asking a Chat Completions stream for usage the client did not ask for, and removing the
//! usage-only chunk again (filter-core/src/usage/{stream_options,strip}.rs): the client sees
//! byte for byte the stream it would have seen, however the stream is cut, with any line end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use proptest::prelude::*;
use ptk_filter_core::usage::{
    request_stream_usage, Framing, StreamUsage, UsageApi, UsageChunkStripper, UsageMeter,
};
use serde_json::{json, Value};

fn injected(body: &str) -> Value {
    match request_stream_usage(body.as_bytes()) {
        StreamUsage::Injected(out) => serde_json::from_slice(&out).unwrap(),
        other => panic!("not injected: {body}: {other:?}"),
    }
}

#[test]
fn a_stream_without_stream_options_gets_include_usage_and_keeps_every_field() {
    let body = r#"  {"model":"gpt-x","stream":true,"messages":[{"role":"user","content":"{\"stream\":false}"}],"n":1}"#;
    let out = injected(body);
    assert_eq!(out["stream_options"], json!({"include_usage": true}));
    let mut expected: Value = serde_json::from_str(body).unwrap();
    expected["stream_options"] = json!({"include_usage": true});
    assert_eq!(out, expected);
    // The original bytes follow the insertion verbatim (nothing re-encoded).
    let StreamUsage::Injected(raw) = request_stream_usage(body.as_bytes()) else {
        unreachable!()
    };
    assert!(raw.ends_with(&body.as_bytes()[3..]));
}

#[test]
fn stream_options_without_include_usage_gets_it_merged() {
    let out = injected(
        r#"{"model":"gpt-x","stream":true,"stream_options":{"include_obfuscation":false}}"#,
    );
    assert_eq!(
        out["stream_options"],
        json!({"include_obfuscation": false, "include_usage": true})
    );
    let out = injected(r#"{"stream":true,"stream_options":{"include_usage":false}}"#);
    assert_eq!(out["stream_options"], json!({"include_usage": true}));
}

#[test]
fn a_null_stream_options_reads_as_absent_and_is_asked() {
    // An upstream reads `null` as "not given": the client asked for nothing.
    let out = injected(r#"{"model":"gpt-x","stream":true,"stream_options":null}"#);
    assert_eq!(out["stream_options"], json!({"include_usage": true}));
    assert_eq!(out["model"], "gpt-x");
    // Also when a duplicate key sends the body down the re-encoding path.
    let out = injected(r#"{"stream":true,"stream":true,"stream_options":null}"#);
    assert_eq!(out["stream_options"], json!({"include_usage": true}));
}

#[test]
fn what_is_left_alone() {
    for body in [
        r#"{"model":"gpt-x","stream":false,"messages":[]}"#,
        r#"{"model":"gpt-x","messages":[]}"#,
        r#"{"model":"gpt-x","stream":"true"}"#,
        r#"{"stream":true,"stream_options":{"include_usage":true}}"#,
        r#"[{"stream":true}]"#,
        r#"{"nested":{"stream":true}}"#,
        "not json",
        "",
    ] {
        assert_eq!(
            request_stream_usage(body.as_bytes()),
            StreamUsage::Unchanged,
            "{body}"
        );
    }
}

const STREAM: &str = concat!(
    "data: {\"id\":\"c1\",\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n",
    "data: {\"id\":\"c1\",\"model\":\"gpt-x\",\"choices\":[],\"moderation\":{\"flagged\":false},\"usage\":null}\n\n",
    "data: {\"id\":\"c1\",\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"c1\",\"model\":\"gpt-x\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n",
    "data: [DONE]\n\n",
);

/// The stream the client would have seen without the injection.
fn without_usage_chunk(stream: &str) -> String {
    stream
        .split_inclusive("\n\n")
        .filter(|event| !event.contains("\"prompt_tokens\""))
        .collect()
}

fn strip_chunks(chunks: &[&[u8]]) -> Vec<u8> {
    let mut stripper = UsageChunkStripper::default();
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(stripper.rewrite(chunk));
    }
    out.extend(stripper.finish());
    out
}

#[test]
fn the_usage_only_chunk_is_removed_and_nothing_else_changes_at_any_split() {
    for ending in ["\n", "\r\n", "\r"] {
        let stream = STREAM.replace('\n', ending);
        let want = without_usage_chunk(STREAM).replace('\n', ending);
        let bytes = stream.as_bytes();
        for at in 0..=bytes.len() {
            let (a, b) = bytes.split_at(at);
            let out = strip_chunks(&[a, b]);
            assert_eq!(
                String::from_utf8_lossy(&out),
                want,
                "{ending:?} cut at {at}"
            );
        }
        let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(String::from_utf8_lossy(&strip_chunks(&one_by_one)), want);
    }
}

#[test]
fn the_meter_still_reads_the_usage_the_client_no_longer_sees() {
    let mut meter = UsageMeter::new(UsageApi::ChatCompletions, Framing::Sse);
    let mut stripper = UsageChunkStripper::default();
    for chunk in STREAM.as_bytes().chunks(7) {
        meter.feed(chunk);
        stripper.rewrite(chunk);
    }
    let metered = meter.finish(true);
    assert_eq!((metered.usage.input, metered.usage.output), (5, 2));
    assert!(metered.complete);
    assert_eq!(stripper.removed(), 1);
}

#[test]
fn a_long_event_passes_through_unheld_and_a_usage_chunk_with_choices_is_kept() {
    let big = format!(
        "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n",
        "y".repeat(100_000)
    );
    let mut stripper = UsageChunkStripper::default();
    let first = stripper.rewrite(&big.as_bytes()[..40_000]);
    assert!(
        first.len() >= 40_000 - 16 * 1024,
        "a long event must not be held"
    );
    // Gemini's compatible endpoint puts usage on a content chunk: it is not usage-only.
    let content_with_usage =
        "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":{\"prompt_tokens\":1}}\n\n";
    let stream = format!("{big}{content_with_usage}");
    assert_eq!(strip_chunks(&[stream.as_bytes()]), stream.as_bytes());
}

#[test]
fn an_unfinished_event_at_the_end_goes_out_unchanged() {
    let cut = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}";
    assert_eq!(strip_chunks(&[cut.as_bytes()]), cut.as_bytes());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// On any bytes, however cut, the stripper only ever removes whole usage-only events: with
    /// no such event, the output is the input exactly.
    #[test]
    fn without_a_usage_chunk_the_stream_is_unchanged(
        bytes in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'd'), Just(b':'), any::<u8>()], 0..400),
        cut in any::<prop::sample::Index>(),
    ) {
        let at = cut.index(bytes.len() + 1);
        let (a, b) = bytes.split_at(at);
        prop_assert_eq!(strip_chunks(&[a, b]), bytes.clone());
    }
}

/// The two keys, each at most once whatever its spelling (serde refuses a duplicate field).
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Keys {
    stream: Value,
    stream_options: Value,
}

/// How an upstream would read a forwarded body: serde_json, last duplicate wins (as most
/// parsers do), escapes decoded.
fn upstream_reads(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

#[test]
fn a_key_spelled_with_escapes_or_given_twice_is_read_as_the_upstream_reads_it() {
    // Each of these is a streamed request that did not ask for usage, as an upstream reads
    // it; the forwarded body must ask, once, unambiguously (before: forwarded unasked, or
    // with a client's `include_usage: false` after ours, so the stream went unmetered).
    for body in [
        r#"{"str\u0065am":true,"messages":[]}"#,
        r#"{"stream":true,"stream\u005foptions":{"include_usage":false}}"#,
        r#"{"stream":true,"stream_options":{"include_usage":false},"stream_options":{}}"#,
        r#"{"stream":false,"stream":true}"#,
        r#"{"stream":false,"str\u0065am":true}"#,
        "\u{feff}{\"stream\":true}",
    ] {
        let StreamUsage::Injected(out) = request_stream_usage(body.as_bytes()) else {
            panic!("not asked: {body}");
        };
        let out_text = String::from_utf8(out.clone()).unwrap();
        assert!(
            serde_json::from_slice::<Keys>(&out).is_ok(),
            "a key twice: {out_text}"
        );
        let read = upstream_reads(&out);
        assert_eq!(read["stream"], true, "{out_text}");
        assert_eq!(read["stream_options"]["include_usage"], true, "{out_text}");
    }
    // Not a stream as the upstream reads it, whatever a first `stream` said: the body goes
    // out with one `stream` key, so a first-wins parser cannot read a stream either.
    for body in [
        r#"{"stream":true,"stream":false}"#,
        r#"{"stream":true,"str\u0065am":false}"#,
    ] {
        let out = match request_stream_usage(body.as_bytes()) {
            StreamUsage::Rewritten(out) => out,
            other => panic!("{body}: {other:?}"),
        };
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"stream":false}"#);
    }
}
