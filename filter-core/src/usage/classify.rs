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
//!
//! The rules read the path as a lenient server might: percent-decoded once, slashes merged,
//! trailing slashes dropped, letters in any case; and the OpenAI-shaped paths count in every
//! dialect of a provider that serves them (the credential slot picks the dialect, and Gemini's
//! OpenAI-compatible endpoint also takes `x-goog-api-key` and `?key=`). Metering a spelling
//! the provider refuses costs nothing; missing one it serves would be a way around the meter
//! and the budgets.

use std::borrow::Cow;

use super::meter::{Framing, UsageApi};
use crate::dialect::Dialect;

/// The API a request calls, if its responses are metered.
pub fn metered_api(dialect: Dialect, method: &str, path: &str, upgrade: bool) -> Option<UsageApi> {
    let path = canonical_path(path);
    let path = path.as_str();
    if upgrade {
        return websocket_api(dialect, path);
    }
    if !method.eq_ignore_ascii_case("POST") {
        return None;
    }
    match dialect {
        Dialect::Openai | Dialect::GeminiOpenai => openai_api(path),
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
            match method {
                Some((_, "generatecontent" | "streamgeneratecontent")) => {
                    Some(UsageApi::GenerateContent)
                }
                _ => openai_api(path),
            }
        }
    }
}

/// The OpenAI-shaped calls that are metered, by the end of the (canonical) path.
fn openai_api(path: &str) -> Option<UsageApi> {
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

/// The path without its query or fragment, percent-decoded once, its runs of `/` merged, its
/// trailing `/` dropped and lowercased: every spelling a lenient server reads as one path.
pub(crate) fn canonical_path(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let decoded: Cow<'_, str> = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let mut out = String::with_capacity(decoded.len());
    for c in decoded.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c.to_ascii_lowercase());
        }
    }
    let kept = out.trim_end_matches('/').len();
    out.truncate(kept);
    out
}

fn websocket_api(dialect: Dialect, path: &str) -> Option<UsageApi> {
    match dialect {
        Dialect::Openai | Dialect::GeminiOpenai if path.ends_with("/realtime") => {
            Some(UsageApi::Realtime)
        }
        Dialect::Openai | Dialect::GeminiOpenai if path.ends_with("/responses") => {
            Some(UsageApi::Responses)
        }
        Dialect::Gemini if path.contains("bidigeneratecontent") => Some(UsageApi::Live),
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
    fn every_spelling_and_slot_of_a_metered_call_is_metered() {
        use Dialect::*;
        use UsageApi::*;
        let cases: &[(Dialect, &str, bool, UsageApi)] = &[
            // Gemini's OpenAI-compatible endpoint reached with x-goog-api-key or ?key=.
            (
                Gemini,
                "/v1beta/openai/chat/completions",
                false,
                ChatCompletions,
            ),
            (Gemini, "/v1beta/openai/embeddings?key=x", false, Embeddings),
            (Openai, "/v1/chat/completions/", false, ChatCompletions),
            (Openai, "/v1//chat//completions//", false, ChatCompletions),
            (Openai, "/v1/Chat/Completions", false, ChatCompletions),
            (Openai, "/v1/responses/", false, Responses),
            (Openai, "/v1/chat/completion%73", false, ChatCompletions),
            (Openai, "/v1/chat%2Fcompletions", false, ChatCompletions),
            (Openai, "/v1/realtime/?model=m", true, Realtime),
            (
                GeminiOpenai,
                "/v1beta/openai/chat/completions/",
                false,
                ChatCompletions,
            ),
            (Anthropic, "/v1/messages/", false, Messages),
            (Anthropic, "//v1/Messages?beta=true", false, Messages),
            (Anthropic, "/v1/chat/completions/", false, ChatCompletions),
            (
                Gemini,
                "/v1beta/models/g%3AgenerateContent",
                false,
                GenerateContent,
            ),
            (
                Gemini,
                "/v1beta/models/g:GenerateContent/",
                false,
                GenerateContent,
            ),
            (
                Gemini,
                "/v1beta/models/g%3astreamGenerateContent?alt=sse",
                false,
                GenerateContent,
            ),
            (
                Gemini,
                "/ws/google.ai.generativelanguage.v1beta.GenerativeService.bidiGenerateContent/",
                true,
                Live,
            ),
        ];
        for (dialect, path, upgrade, want) in cases {
            let method = if *upgrade { "GET" } else { "POST" };
            assert_eq!(
                metered_api(*dialect, method, path, *upgrade),
                Some(*want),
                "{dialect:?} {path}"
            );
        }
        for (dialect, path) in [
            (Anthropic, "/v1/messages/count_tokens/"),
            (Gemini, "/v1beta/models/g%3AcountTokens"),
            (Openai, "/v1/responses/resp_1/"),
        ] {
            assert_eq!(metered_api(dialect, "POST", path, false), None, "{path}");
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
