//! The mock upstream's fixed answers: OpenAI-shaped, so LiteLLM parses them like the real
//! provider's, and small, so the mock never limits a proxy under test.

/// `POST /v1/chat/completions` without streaming.
pub const CHAT_COMPLETION: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the bench mock."},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15}}"#;

/// `GET /v1/models`.
pub const MODELS: &str = r#"{"object":"list","data":[{"id":"gpt-4o-mini","object":"model","created":1700000000,"owned_by":"bench"}]}"#;

/// First SSE event, sent as soon as the request arrives.
pub const SSE_FIRST: &str = "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hello\"},\"finish_reason\":null}]}\n\n";

/// Last SSE events, sent after the configured delay: the finish chunk and `[DONE]`.
pub const SSE_LAST: &str = "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";

/// Whether a chat request body asks for a stream (`"stream": true`, any spacing). A byte scan,
/// not a JSON parse: the mock must stay far cheaper than any proxy in front of it.
pub fn wants_stream(body: &[u8]) -> bool {
    let Some(at) = find(body, b"\"stream\"") else {
        return false;
    };
    let rest = &body[at + b"\"stream\"".len()..];
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
    fn fixtures_are_json() {
        for text in [CHAT_COMPLETION, MODELS] {
            serde_json::from_str::<serde_json::Value>(text).unwrap();
        }
        for event in [SSE_FIRST, SSE_LAST] {
            for line in event.lines().filter(|l| !l.is_empty()) {
                let data = line.strip_prefix("data: ").unwrap();
                if data != "[DONE]" {
                    serde_json::from_str::<serde_json::Value>(data).unwrap();
                }
            }
        }
    }
}
