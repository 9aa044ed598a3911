//! Which responses are metered, and how: the API a request calls (from its dialect, method and
//! path) and the framing of its response (from the status and `content-type`).
//!
//! Only calls that produce billed tokens are metered: OpenAI Chat Completions, (legacy)
//! Completions, Responses, Embeddings, Realtime sessions and Responses over a WebSocket (also
//! at operator-configured OpenAI-compatible providers, whose paths sit under their prefix);
//! Anthropic Messages (not `count_tokens`, not batches) and its OpenAI-compatible Chat
//! Completions; Gemini `generateContent`,
//! `streamGenerateContent`, Live sessions and its OpenAI-compatible endpoint. A `GET` of a
//! stored response is not metered (it would count the same tokens again on every poll).

use super::meter::{Framing, UsageApi};
use crate::dialect::Dialect;

/// The API a request calls, if its responses are metered.
pub fn metered_api(dialect: Dialect, method: &str, path: &str, upgrade: bool) -> Option<UsageApi> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    if upgrade {
        return websocket_api(dialect, path);
    }
    if !method.eq_ignore_ascii_case("POST") {
        return None;
    }
    match dialect {
        Dialect::Openai | Dialect::GeminiOpenai => {
            if path.ends_with("/chat/completions") || path.ends_with("/completions") {
                Some(UsageApi::ChatCompletions)
            } else if path.ends_with("/responses") {
                Some(UsageApi::Responses)
            } else if path.ends_with("/embeddings") {
                Some(UsageApi::Embeddings)
            } else {
                None
            }
        }
        // Anthropic's OpenAI SDK compatibility endpoint bills like Messages and answers in
        // Chat Completions' shape: metered, so it is no way around a meter (or a budget).
        Dialect::Anthropic if path.ends_with("/chat/completions") => {
            Some(UsageApi::ChatCompletions)
        }
        Dialect::Anthropic => path.ends_with("/v1/messages").then_some(UsageApi::Messages),
        Dialect::Gemini => {
            let method = path
                .rsplit('/')
                .next()
                .and_then(|last| last.split_once(':'));
            matches!(
                method,
                Some((_, "generateContent" | "streamGenerateContent"))
            )
            .then_some(UsageApi::GenerateContent)
        }
    }
}

fn websocket_api(dialect: Dialect, path: &str) -> Option<UsageApi> {
    match dialect {
        Dialect::Openai | Dialect::GeminiOpenai if path.ends_with("/realtime") => {
            Some(UsageApi::Realtime)
        }
        Dialect::Openai | Dialect::GeminiOpenai if path.ends_with("/responses") => {
            Some(UsageApi::Responses)
        }
        Dialect::Gemini if path.contains("BidiGenerateContent") => Some(UsageApi::Live),
        _ => None,
    }
}

/// How a response is framed: a 101 to an upgrade is a WebSocket session; otherwise by
/// `content-type` (SSE, or any JSON type); `None` for anything else (audio, files).
pub fn response_framing(status: u16, content_type: Option<&str>, upgrade: bool) -> Option<Framing> {
    if upgrade {
        return (status == 101).then_some(Framing::WebSocket);
    }
    let media = content_type?.split(';').next()?.trim().to_ascii_lowercase();
    if media == "text/event-stream" {
        Some(Framing::Sse)
    } else if media == "application/json" || media.ends_with("+json") {
        Some(Framing::Json)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metered_calls_of_every_dialect() {
        use Dialect::*;
        use UsageApi::*;
        let cases: &[(Dialect, &str, &str, bool, Option<UsageApi>)] = &[
            (
                Openai,
                "POST",
                "/v1/chat/completions",
                false,
                Some(ChatCompletions),
            ),
            (
                Openai,
                "post",
                "/v1/chat/completions?x=1",
                false,
                Some(ChatCompletions),
            ),
            (
                Openai,
                "POST",
                "/selfhosted/v1/chat/completions",
                false,
                Some(ChatCompletions),
            ),
            (
                Openai,
                "POST",
                "/v1/completions",
                false,
                Some(ChatCompletions),
            ),
            (Openai, "POST", "/v1/responses", false, Some(Responses)),
            (Openai, "GET", "/v1/responses/resp_1", false, None),
            (Openai, "POST", "/v1/responses/resp_1/cancel", false, None),
            (Openai, "POST", "/v1/embeddings", false, Some(Embeddings)),
            (Openai, "GET", "/v1/models", false, None),
            (Openai, "POST", "/v1/files", false, None),
            (
                Openai,
                "GET",
                "/v1/realtime?model=gpt-realtime",
                true,
                Some(Realtime),
            ),
            (Openai, "GET", "/v1/responses", true, Some(Responses)),
            (Anthropic, "POST", "/v1/messages", false, Some(Messages)),
            (Anthropic, "POST", "/v1/messages/count_tokens", false, None),
            (
                Anthropic,
                "POST",
                "/v1/chat/completions",
                false,
                Some(ChatCompletions),
            ),
            (Anthropic, "POST", "/v1/messages/batches", false, None),
            (
                Gemini,
                "POST",
                "/v1beta/models/gemini-x:generateContent",
                false,
                Some(GenerateContent),
            ),
            (
                Gemini,
                "POST",
                "/v1beta/models/gemini-x:streamGenerateContent?alt=sse",
                false,
                Some(GenerateContent),
            ),
            (
                Gemini,
                "POST",
                "/v1beta/models/gemini-x:countTokens",
                false,
                None,
            ),
            (
                Gemini,
                "POST",
                "/v1beta/models/gemini-x:embedContent",
                false,
                None,
            ),
            (
                Gemini,
                "GET",
                "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent",
                true,
                Some(Live),
            ),
            (
                GeminiOpenai,
                "POST",
                "/v1beta/openai/chat/completions",
                false,
                Some(ChatCompletions),
            ),
            (
                GeminiOpenai,
                "POST",
                "/v1beta/openai/embeddings",
                false,
                Some(Embeddings),
            ),
        ];
        for (dialect, method, path, upgrade, want) in cases {
            assert_eq!(
                metered_api(*dialect, method, path, *upgrade),
                *want,
                "{dialect:?} {method} {path}"
            );
        }
    }

    #[test]
    fn framing_from_status_and_content_type() {
        assert_eq!(response_framing(101, None, true), Some(Framing::WebSocket));
        assert_eq!(response_framing(400, Some("application/json"), true), None);
        assert_eq!(
            response_framing(200, Some("text/event-stream; charset=utf-8"), false),
            Some(Framing::Sse)
        );
        assert_eq!(
            response_framing(200, Some("Application/JSON"), false),
            Some(Framing::Json)
        );
        assert_eq!(
            response_framing(200, Some("application/problem+json"), false),
            Some(Framing::Json)
        );
        assert_eq!(response_framing(200, Some("audio/mpeg"), false), None);
        assert_eq!(response_framing(200, None, false), None);
    }
}
