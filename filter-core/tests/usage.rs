//! Usage metering over response bodies as they pass (filter-core/src/usage): each provider's
//! API in JSON and SSE, every split point of every fixture, LF / CRLF / CR line ends, the
//! merge rules (overwrite cumulative snapshots, sum per-response counts), aborted streams and
//! hostile content. Fixtures are our own, shaped like the providers' responses as described in
//! ../shared/reference/usage-metering.md §1 (values invented).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use proptest::prelude::*;
use ptk_filter_core::usage::{Framing, MeteredUsage, TokenUsage, UsageApi, UsageMeter};

const CHAT_SSE: &str = concat!(
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-x-2026\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi \\\"usage\\\":{\\\"prompt_tokens\\\":999}\"},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-x-2026\",\"choices\":[],\"moderation\":{\"flagged\":false},\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-x-2026\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    ": keep-alive comment\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-x-2026\",\"service_tier\":\"default\",\"choices\":[],\"usage\":{\"prompt_tokens\":1200,\"completion_tokens\":300,\"total_tokens\":1500,\"prompt_tokens_details\":{\"cached_tokens\":1024,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":256}}}\n\n",
    "data: [DONE]\n\n",
);

const CHAT_JSON: &str = "{\"id\":\"chatcmpl-2\",\"object\":\"chat.completion\",\"model\":\"gpt-x-mini\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"{\\\"usage\\\": 1}\"},\"finish_reason\":\"stop\"}],\n  \"usage\": {\"prompt_tokens\": 19, \"completion_tokens\": 10, \"total_tokens\": 29}\n}";

const EMBEDDINGS_JSON: &str = "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,\"embedding\":[0.0023,-0.0093,1e-3,-2.5E+2]}],\"model\":\"text-embedding-x\",\"usage\":{\"prompt_tokens\":8,\"total_tokens\":8}}";

const RESPONSES_SSE: &str = concat!(
    "event: response.created\n",
    "data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\",\"model\":\"gpt-x\",\"usage\":null}}\n\n",
    "event: response.output_text.delta\n",
    "data: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"delta\":\"Hello\"}\n\n",
    "event: response.incomplete\n",
    "data: {\"type\":\"response.incomplete\",\"sequence_number\":2,\"response\":{\"id\":\"resp_1\",\"status\":\"incomplete\",\"incomplete_details\":{\"reason\":\"steered\"},\"model\":\"gpt-x\",\"usage\":{\"input_tokens\":100,\"input_tokens_details\":{\"cached_tokens\":0},\"output_tokens\":20,\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":120}}}\n\n",
    "event: response.created\n",
    "data: {\"type\":\"response.created\",\"sequence_number\":3,\"response\":{\"id\":\"resp_2\",\"status\":\"in_progress\",\"model\":\"gpt-x\",\"usage\":null}}\n\n",
    "event: response.completed\n",
    "data: {\"sequence_number\":42,\"response\":{\"id\":\"resp_2\",\"status\":\"completed\",\"model\":\"gpt-x\",\"usage\":{\"input_tokens\":1200,\"input_tokens_details\":{\"cached_tokens\":1024,\"cache_write_tokens\":64},\"output_tokens\":300,\"output_tokens_details\":{\"reasoning_tokens\":256},\"total_tokens\":1500}},\"type\":\"response.completed\"}\n\n",
);

const ANTHROPIC_SSE: &str = concat!(
    "event: message_start\n",
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":2048,\"output_tokens\":1}}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\\\"usage\\\":{\\\"output_tokens\\\":7}\"}}\n\n",
    "event: ping\n",
    "data: {\"type\": \"ping\"}\n\n",
    "event: message_delta\n",
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":90}}\n\n",
    "event: message_delta\n",
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":180,\"output_tokens_details\":{\"thinking_tokens\":120}}}\n\n",
    "event: message_stop\n",
    "data: {\"type\":\"message_stop\"}\n\n",
);

const ANTHROPIC_JSON: &str = "{\"id\":\"msg_2\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}],\"stop_reason\":\"end_turn\",\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":5,\"output_tokens\":3,\"service_tier\":\"standard\"}}";

const GEMINI_SSE: &str = concat!(
    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hel\"}]}}],\"usageMetadata\":{\"promptTokenCount\":9,\"totalTokenCount\":9},\"modelVersion\":\"gemini-x\"}\r\n\r\n",
    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"lo\"}]}}],\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":1,\"totalTokenCount\":10},\"modelVersion\":\"gemini-x\"}\r\n\r\n",
    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"!\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":9,\"cachedContentTokenCount\":4,\"candidatesTokenCount\":2,\"thoughtsTokenCount\":40,\"toolUsePromptTokenCount\":3,\"totalTokenCount\":54,\"promptTokensDetails\":[{\"modality\":\"TEXT\",\"tokenCount\":9}]},\"modelVersion\":\"gemini-x\"}\r\n\r\n",
);

/// `streamGenerateContent` without `alt=sse`: one JSON array of cumulative snapshots.
const GEMINI_JSON_ARRAY: &str = "[{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}],\"usageMetadata\":{\"promptTokenCount\":5,\"totalTokenCount\":5}}\n,\r\n{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"b\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":7,\"totalTokenCount\":12},\"modelVersion\":\"gemini-y\"}]";

fn meter_chunks(api: UsageApi, framing: Framing, chunks: &[&[u8]]) -> MeteredUsage {
    let mut meter = UsageMeter::new(api, framing);
    for chunk in chunks {
        meter.feed(chunk);
    }
    meter.finish(true)
}

fn meter(api: UsageApi, framing: Framing, body: &str) -> MeteredUsage {
    meter_chunks(api, framing, &[body.as_bytes()])
}

fn usage(
    input: u64,
    cached_input: u64,
    cache_write: u64,
    output: u64,
    reasoning: u64,
) -> TokenUsage {
    TokenUsage {
        input,
        cached_input,
        cache_write,
        output,
        reasoning,
    }
}

/// Every fixture with the answer it must give, however it is cut.
fn fixtures() -> Vec<(UsageApi, Framing, &'static str, MeteredUsage)> {
    let done = |usage: TokenUsage, model: &str| MeteredUsage {
        usage,
        model: Some(model.to_owned()),
        complete: true,
    };
    vec![
        (
            UsageApi::ChatCompletions,
            Framing::Sse,
            CHAT_SSE,
            done(usage(1200, 1024, 0, 300, 256), "gpt-x-2026"),
        ),
        (
            UsageApi::ChatCompletions,
            Framing::Json,
            CHAT_JSON,
            done(usage(19, 0, 0, 10, 0), "gpt-x-mini"),
        ),
        (
            UsageApi::Embeddings,
            Framing::Json,
            EMBEDDINGS_JSON,
            done(usage(8, 0, 0, 0, 0), "text-embedding-x"),
        ),
        // Two responses on one stream (a steered one and its successor): summed once each.
        (
            UsageApi::Responses,
            Framing::Sse,
            RESPONSES_SSE,
            done(usage(1300, 1024, 64, 320, 256), "gpt-x"),
        ),
        // Anthropic: input = 25 + 100 + 2048; output overwritten 1 → 90 → 180, never summed.
        (
            UsageApi::Messages,
            Framing::Sse,
            ANTHROPIC_SSE,
            done(usage(2173, 2048, 100, 180, 120), "claude-x"),
        ),
        (
            UsageApi::Messages,
            Framing::Json,
            ANTHROPIC_JSON,
            done(usage(15, 5, 0, 3, 0), "claude-x"),
        ),
        // Gemini: the last snapshot; input 9 + 3 tool-use, output 2 + 40 thoughts.
        (
            UsageApi::GenerateContent,
            Framing::Sse,
            GEMINI_SSE,
            done(usage(12, 4, 0, 42, 40), "gemini-x"),
        ),
        (
            UsageApi::GenerateContent,
            Framing::Json,
            GEMINI_JSON_ARRAY,
            done(usage(5, 0, 0, 7, 0), "gemini-y"),
        ),
    ]
}

#[test]
fn every_fixture_meters_as_expected_whole() {
    for (api, framing, body, want) in fixtures() {
        assert_eq!(meter(api, framing, body), want, "{api:?} {framing:?}");
    }
}

#[test]
fn every_split_point_gives_the_same_answer() {
    for (api, framing, body, want) in fixtures() {
        let bytes = body.as_bytes();
        for at in 0..=bytes.len() {
            let (a, b) = bytes.split_at(at);
            assert_eq!(
                meter_chunks(api, framing, &[a, b]),
                want,
                "{api:?} cut at {at}"
            );
        }
    }
}

#[test]
fn byte_by_byte_gives_the_same_answer() {
    for (api, framing, body, want) in fixtures() {
        let bytes: Vec<&[u8]> = body.as_bytes().chunks(1).collect();
        assert_eq!(meter_chunks(api, framing, &bytes), want, "{api:?}");
    }
}

#[test]
fn lf_crlf_and_cr_line_ends_give_the_same_answer() {
    for (api, framing, body, want) in fixtures() {
        if framing != Framing::Sse {
            continue;
        }
        let lf = body.replace("\r\n", "\n");
        for ending in ["\n", "\r\n", "\r"] {
            let text = lf.replace('\n', ending);
            assert_eq!(meter(api, framing, &text), want, "{api:?} with {ending:?}");
            // Split between a CR and its LF, too.
            let bytes = text.as_bytes();
            for at in 0..bytes.len() {
                let (a, b) = bytes.split_at(at);
                assert_eq!(
                    meter_chunks(api, framing, &[a, b]),
                    want,
                    "{api:?} {ending:?} at {at}"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Any chunking at all (many cuts, empty chunks included) gives the whole-body answer.
    #[test]
    fn any_chunking_gives_the_same_answer(which in 0usize..8, cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12)) {
        let (api, framing, body, want) = fixtures().swap_remove(which);
        let bytes = body.as_bytes();
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        at.sort_unstable();
        let mut chunks = Vec::new();
        let mut from = 0;
        for cut in at {
            chunks.push(&bytes[from..cut]);
            from = cut;
        }
        chunks.push(&bytes[from..]);
        prop_assert_eq!(meter_chunks(api, framing, &chunks), want);
    }
}

#[test]
fn a_stream_cut_off_before_its_usage_is_incomplete_with_what_was_seen() {
    // Anthropic cut after the first delta: input from message_start, output 90, incomplete.
    let cut = ANTHROPIC_SSE.find("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"").unwrap();
    let mut m = UsageMeter::new(UsageApi::Messages, Framing::Sse);
    m.feed(&ANTHROPIC_SSE.as_bytes()[..cut]);
    let got = m.finish(false);
    assert_eq!(got.usage, usage(2173, 2048, 100, 90, 0));
    assert!(!got.complete);
    // Gemini cut before the final chunk: the last snapshot seen, incomplete (no finishReason).
    let cut = GEMINI_SSE.rfind("data:").unwrap();
    let got = meter(UsageApi::GenerateContent, Framing::Sse, &GEMINI_SSE[..cut]);
    assert_eq!(got.usage, usage(9, 0, 0, 1, 0));
    assert!(!got.complete);
    // Chat cut before the usage chunk: nothing, incomplete.
    let cut = CHAT_SSE.find("\"service_tier\"").unwrap();
    let got = meter(UsageApi::ChatCompletions, Framing::Sse, &CHAT_SSE[..cut]);
    assert!(got.usage.is_zero() && !got.complete);
}

#[test]
fn a_body_that_ended_by_reset_is_never_complete() {
    let mut m = UsageMeter::new(UsageApi::ChatCompletions, Framing::Sse);
    m.feed(CHAT_SSE.as_bytes());
    let got = m.finish(false);
    assert_eq!(got.usage, usage(1200, 1024, 0, 300, 256));
    assert!(!got.complete);
}

#[test]
fn missing_and_null_usage_count_nothing() {
    let no_usage = "{\"id\":\"x\",\"model\":\"m\",\"choices\":[]}";
    let null_usage = "{\"id\":\"x\",\"model\":\"m\",\"choices\":[],\"usage\":null}";
    for body in [no_usage, null_usage] {
        let got = meter(UsageApi::ChatCompletions, Framing::Json, body);
        assert!(got.usage.is_zero() && !got.complete, "{body}");
    }
}

#[test]
fn an_error_body_counts_nothing() {
    let error = "{\"error\":{\"message\":\"Rate limit\",\"type\":\"rate_limit_error\",\"usage\":{\"prompt_tokens\":5}}}";
    let got = meter(UsageApi::ChatCompletions, Framing::Json, error);
    assert!(got.usage.is_zero() && !got.complete);
}

#[test]
fn usage_text_inside_content_strings_is_never_read_as_usage() {
    // The model may write anything; only the top-level `usage` counts.
    let body = "{\"model\":\"m\",\"choices\":[{\"message\":{\"content\":\"}, \\\"usage\\\": {\\\"prompt_tokens\\\": 999999}\"}}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}";
    let got = meter(UsageApi::ChatCompletions, Framing::Json, body);
    assert_eq!(got.usage, usage(1, 0, 0, 2, 0));
    // Nested `usage` keys deeper in the document are not the response's usage either.
    let nested = "{\"model\":\"m\",\"choices\":[{\"message\":{\"usage\":{\"prompt_tokens\":999}}}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}";
    assert_eq!(
        meter(UsageApi::ChatCompletions, Framing::Json, nested).usage,
        usage(1, 0, 0, 2, 0)
    );
}

#[test]
fn a_huge_content_event_is_streamed_through_and_usage_still_read() {
    let big = "x".repeat(2 << 20);
    let body = format!(
        "data: {{\"model\":\"m\",\"choices\":[{{\"delta\":{{\"content\":\"{big}\"}}}}],\"usage\":null}}\n\ndata: {{\"model\":\"m\",\"choices\":[],\"usage\":{{\"prompt_tokens\":3,\"completion_tokens\":4}}}}\n\ndata: [DONE]\n\n"
    );
    let chunks: Vec<&[u8]> = body.as_bytes().chunks(16 * 1024).collect();
    let got = meter_chunks(UsageApi::ChatCompletions, Framing::Sse, &chunks);
    assert_eq!(got.usage, usage(3, 0, 0, 4, 0));
    assert!(got.complete);
}

#[test]
fn an_oversized_usage_value_marks_the_usage_incomplete() {
    let pad = format!("\"pad\":\"{}\",", "p".repeat(5000));
    let body = format!(
        "{{\"model\":\"m\",\"usage\":{{{pad}\"prompt_tokens\":3,\"completion_tokens\":4}}}}"
    );
    let got = meter(UsageApi::ChatCompletions, Framing::Json, &body);
    assert!(!got.complete);
}

#[test]
fn garbage_never_panics_and_counts_nothing_it_cannot_read() {
    for body in [
        "",
        "[DONE]",
        "}}}]]]",
        "{\"usage\":",
        "\u{0}\u{1}\u{2}",
        "data: {\"usage\"\n\n",
    ] {
        for framing in [Framing::Json, Framing::Sse] {
            let got = meter(UsageApi::ChatCompletions, framing, body);
            assert!(got.usage.is_zero(), "{body:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// Arbitrary bytes in any API and framing: no panic, and the meter keeps working after.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), api in 0usize..5, sse in any::<bool>()) {
        let api = [UsageApi::ChatCompletions, UsageApi::Responses, UsageApi::Embeddings, UsageApi::Messages, UsageApi::GenerateContent][api];
        let framing = if sse { Framing::Sse } else { Framing::Json };
        let mut m = UsageMeter::new(api, framing);
        m.feed(&bytes);
        let _ = m.finish(true);
    }
}
