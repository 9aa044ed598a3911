//! The mock upstream's fixed answers: OpenAI-shaped, so LiteLLM parses them like the real
//! provider's, and small, so the mock never limits a proxy under test.

/// `POST /v1/chat/completions` without streaming.
pub const CHAT_COMPLETION: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the bench mock."},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15}}"#;

/// `GET /v1/models`.
pub const MODELS: &str = r#"{"object":"list","data":[{"id":"gpt-4o-mini","object":"model","created":1700000000,"owned_by":"bench"}]}"#;

/// First SSE event, sent as soon as the request arrives.
pub const SSE_FIRST: &str = "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hello\"},\"finish_reason\":null}]}\n\n";

/// The finish chunk, sent after the configured delay.
pub const SSE_FINISH: &str = "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";

/// The usage-only chunk OpenAI sends after the finish chunk when the request carries
/// `stream_options.include_usage` (the ptk filter adds it when metering is on).
pub const SSE_USAGE: &str = "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}\n\n";

/// The stream's end marker.
pub const SSE_DONE: &str = "data: [DONE]\n\n";

/// Events the client of the bench stream receives: [`SSE_FIRST`], [`SSE_FINISH`] and
/// [`SSE_DONE`] (the usage chunk only if the client asked for it itself; bench-sse does not).
pub const SSE_EVENTS_DELIVERED: usize = 3;

/// What the mock sends after the delay: the finish chunk, the usage chunk if asked, `[DONE]`.
pub fn sse_last(with_usage: bool) -> String {
    let usage = if with_usage { SSE_USAGE } else { "" };
    format!("{SSE_FINISH}{usage}{SSE_DONE}")
}

/// Whether a chat request body asks for a stream (`"stream": true`, any spacing). A byte scan,
/// not a JSON parse: the mock must stay far cheaper than any proxy in front of it.
pub fn wants_stream(body: &[u8]) -> bool {
    flag_is_true(body, b"\"stream\"")
}

/// Whether a streamed request asks for the usage chunk (`"include_usage": true`), as the ptk
/// filter's rewrite does when metering is on.
pub fn wants_usage(body: &[u8]) -> bool {
    flag_is_true(body, b"\"include_usage\"")
}

fn flag_is_true(body: &[u8], key: &[u8]) -> bool {
    let Some(at) = find(body, key) else {
        return false;
    };
    let rest = &body[at + key.len()..];
    let rest: Vec<u8> = rest
        .iter()
        .copied()
        .skip_while(|b| b.is_ascii_whitespace() || *b == b':')
        .take(4)
        .collect();
    rest == b"true"
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stream_flag_is_found_with_any_spacing() {
        assert!(wants_stream(br#"{"model":"m","stream":true}"#));
        assert!(wants_stream(br#"{"stream" :  true,"model":"m"}"#));
        assert!(!wants_stream(br#"{"stream":false}"#));
        assert!(!wants_stream(br#"{"model":"m"}"#));
        assert!(!wants_stream(b""));
    }

    #[test]
    fn usage_flag_is_found_with_any_spacing() {
        let asked = br#"{"stream":true,"stream_options": {"include_usage" : true}}"#;
        assert!(wants_usage(asked));
        assert!(!wants_usage(
            br#"{"stream":true,"stream_options":{"include_usage":false}}"#
        ));
        assert!(!wants_usage(br#"{"stream":true}"#));
    }

    #[test]
    fn the_usage_chunk_sits_before_done_only_when_asked() {
        let with = sse_last(true);
        assert!(with.find("\"usage\"").unwrap() < with.find("[DONE]").unwrap());
        assert!(!sse_last(false).contains("\"usage\""));
        let delivered = format!("{SSE_FIRST}{}", sse_last(false));
        assert_eq!(
            crate::sse::count_events(delivered.as_bytes()),
            SSE_EVENTS_DELIVERED
        );
    }

    #[test]
    fn fixtures_are_json() {
        for text in [CHAT_COMPLETION, MODELS] {
            serde_json::from_str::<serde_json::Value>(text).unwrap();
        }
        for event in [SSE_FIRST, SSE_FINISH, SSE_USAGE, SSE_DONE] {
            for line in event.lines().filter(|l| !l.is_empty()) {
                let data = line.strip_prefix("data: ").unwrap();
                if data != "[DONE]" {
                    serde_json::from_str::<serde_json::Value>(data).unwrap();
                }
            }
        }
    }
}
