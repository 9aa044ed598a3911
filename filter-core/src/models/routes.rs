//! Where a request names its model, per route: the one table that decides whether a limited
//! token's request is checked at its headers (the Gemini path, a WebSocket handshake's
//! `?model=`), after its JSON body (read while the request-body hold filter keeps the headers
//! from going upstream), refused because the model cannot be read on a route that spends, or
//! let through because the route spends nothing.
//!
//! Paths are read as the metering rules read them (`usage::classify::canonical_path`:
//! percent-decoded once, slashes merged, lowercase), so no spelling of a spending route slips
//! into "spends nothing". Anything not listed that is a `POST` is refused: a new billable
//! route is closed until it is added here.

use crate::dialect::Dialect;
use crate::query::first_param;
use crate::request::RequestHead;
use crate::usage::classify::canonical_path;
use crate::usage::request_model::model_in_path;

/// Where a request's model is, for the allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// The route spends nothing (reads, deletes, file storage): no model to check.
    NotSpending,
    /// Named at the headers: the Gemini path's model, or a handshake's `?model=`.
    Named(String),
    /// The JSON body's `model` at this path of keys (`["model"]`, or `["session","model"]`
    /// for a Realtime client secret).
    Body(BodyModel),
    /// The route spends but names its model where the filter cannot read it: refused, and why.
    Unreadable(&'static str),
}

/// Which key of a JSON body holds the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyModel {
    /// The top-level `model`.
    TopLevel,
    /// `session.model` (OpenAI's `POST /v1/realtime/client_secrets`).
    Session,
}

/// JSON routes (by the end of their canonical path) whose body names the model at the top
/// level: OpenAI's APIs (also at Gemini's and Anthropic's OpenAI-compatible endpoints and at
/// configured providers) and Anthropic's.
const BODY_ROUTES: &[&str] = &[
    "/chat/completions",
    "/completions",
    "/responses",
    "/responses/input_tokens",
    "/embeddings",
    "/moderations",
    "/images/generations",
    "/audio/speech",
    "/realtime/sessions",
    "/messages",
    "/messages/count_tokens",
    "/complete",
    "/cachedcontents",
];

/// Routes that take no model and spend nothing (file storage and uploads, cancelling).
const FREE_ROUTES: &[&str] = &[
    "/files",
    "/uploads",
    "/cancel",
    "/parts",
    "/complete_upload",
];

/// Routes that spend without naming a model the filter can read, and why.
const UNREADABLE: &[(&str, &str)] = &[
    ("/audio/transcriptions", "a multipart audio upload"),
    ("/audio/translations", "a multipart audio upload"),
    ("/images/edits", "a multipart image upload"),
    ("/images/variations", "a multipart image upload"),
    ("/batches", "a batch (its requests are in an uploaded file)"),
    ("/runs", "an Assistants run (its model is the assistant's)"),
];

/// Where this request names its model (see the module docs).
pub fn model_source(dialect: Dialect, head: &RequestHead) -> ModelSource {
    let path = canonical_path(head.path());
    if head.is_websocket_upgrade() {
        return handshake(dialect, head, &path);
    }
    if !head.method().eq_ignore_ascii_case("POST") {
        return ModelSource::NotSpending;
    }
    // `/v1/uploads/../chat/completions` would read as an upload here, and as Chat Completions
    // to a server (or a front end) that resolves dot segments.
    if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return ModelSource::Unreadable("a request whose path has `.` or `..` segments");
    }
    if dialect == Dialect::Gemini {
        if let Some(model) = model_in_path(head.path()) {
            return named(&model, true);
        }
    }
    let last = |routes: &[&str]| routes.iter().any(|r| path.ends_with(r));
    if path.ends_with("/realtime/client_secrets") {
        return ModelSource::Body(BodyModel::Session);
    }
    // OpenAI's multi-part uploads (`/uploads/{id}/complete` is not Anthropic's `/complete`).
    if path.contains("/uploads/") {
        return ModelSource::NotSpending;
    }
    if let Some((_, why)) = UNREADABLE.iter().find(|(r, _)| path.ends_with(r)) {
        return ModelSource::Unreadable(why);
    }
    if last(BODY_ROUTES) {
        return ModelSource::Body(BodyModel::TopLevel);
    }
    if last(FREE_ROUTES) || path.contains("/files/") || path.contains("/upload/") {
        return ModelSource::NotSpending;
    }
    ModelSource::Unreadable("a route whose model this proxy does not read")
}

/// A WebSocket handshake: OpenAI Realtime names the session's model in `?model=`. Sessions
/// that name it in their messages are refused, their messages not being checked: Gemini Live
/// (its first message) and OpenAI's Responses WebSocket mode (each `response.create`, so a
/// `?model=` on its handshake says nothing of what it will spend).
fn handshake(dialect: Dialect, head: &RequestHead, path: &str) -> ModelSource {
    if dialect == Dialect::Gemini || path.contains("bidigeneratecontent") {
        return ModelSource::Unreadable(
            "a Gemini Live session (it names its model in its first message)",
        );
    }
    if !path.ends_with("/realtime") {
        return ModelSource::Unreadable(
            "a WebSocket session that names its models in its messages",
        );
    }
    let models: Vec<String> = head
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|pair| first_param(Some(pair), "model"))
                .collect()
        })
        .unwrap_or_default();
    match models.as_slice() {
        [model] => named(model, false),
        [] => ModelSource::Unreadable("a WebSocket session without ?model="),
        // Servers disagree on which of two values counts.
        _ => ModelSource::Unreadable("a WebSocket session with ?model= given twice"),
    }
}

/// A model named in the path (`decode`: percent-decoded once, as the server decodes it) or
/// in the query (already decoded); Gemini's `models/` prefix dropped, as its API reads it.
/// A name with any other character than a model id's (`A-Z a-z 0-9 . _ - @ +`) is refused:
/// `/`, `%`, `:` or a space would let a `*` pattern match a name the provider reads as
/// another path or model (`gemini-2.5-flash%2F..%2Fgemini-1.5-pro`).
fn named(model: &str, decode: bool) -> ModelSource {
    let decoded = if decode {
        percent_encoding::percent_decode_str(model).decode_utf8_lossy()
    } else {
        model.into()
    };
    let name = decoded.strip_prefix("models/").unwrap_or(&decoded);
    let id_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+');
    if name.is_empty() || !name.chars().all(id_char) {
        return ModelSource::Unreadable(
            "a request whose model name holds a character no model id has",
        );
    }
    ModelSource::Named(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: &str, path: &str, upgrade: bool) -> RequestHead {
        let mut headers = vec![
            (":method".to_string(), method.to_string()),
            (":path".to_string(), path.to_string()),
        ];
        if upgrade {
            headers.push(("upgrade".to_string(), "websocket".to_string()));
            headers.push(("connection".to_string(), "Upgrade".to_string()));
        }
        RequestHead::new(headers)
    }

    /// The README's route table, row by row.
    #[test]
    fn the_route_table() {
        use BodyModel::*;
        use Dialect::*;
        use ModelSource::*;
        let n = |m: &str| Named(m.to_string());
        let cases: Vec<(Dialect, &str, &str, bool, ModelSource)> = vec![
            (
                Gemini,
                "POST",
                "/v1beta/models/gemini-2.5-pro:generateContent",
                false,
                n("gemini-2.5-pro"),
            ),
            (
                Gemini,
                "POST",
                "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
                false,
                n("gemini-2.5-pro"),
            ),
            (
                Gemini,
                "POST",
                "/v1beta/models/gemini%2D2.5-pro:countTokens",
                false,
                n("gemini-2.5-pro"),
            ),
            (
                Gemini,
                "POST",
                "/v1beta/models/gemini-2.5-flash%2F..%2F..%2Fmodels%2Fgemini-1.5-pro:generateContent",
                false,
                Unreadable("a request whose path has `.` or `..` segments"),
            ),
            (
                Gemini,
                "POST",
                "/v1beta/models/gemini-2.5-flash%2Fgemini-1.5-pro:generateContent",
                false,
                Unreadable("a request whose model name holds a character no model id has"),
            ),
            (
                Openai,
                "GET",
                "/v1/realtime?model=gpt-realtime%2525",
                true,
                Unreadable("a request whose model name holds a character no model id has"),
            ),
            (
                Gemini,
                "POST",
                "/v1beta/tunedModels/my-tuned:generateContent",
                false,
                n("my-tuned"),
            ),
            (
                Gemini,
                "POST",
                "/v1beta/models/text-embedding-004:batchEmbedContents",
                false,
                n("text-embedding-004"),
            ),
            (
                Gemini,
                "POST",
                "/v1beta/cachedContents",
                false,
                Body(TopLevel),
            ),
            (
                Gemini,
                "POST",
                "/upload/v1beta/files?uploadType=resumable",
                false,
                NotSpending,
            ),
            (Gemini, "GET", "/v1beta/models", false, NotSpending),
            (
                Gemini,
                "GET",
                "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent",
                true,
                Unreadable("a Gemini Live session (it names its model in its first message)"),
            ),
            (
                GeminiOpenai,
                "POST",
                "/v1beta/openai/chat/completions",
                false,
                Body(TopLevel),
            ),
            (
                Openai,
                "POST",
                "/v1/chat/completions",
                false,
                Body(TopLevel),
            ),
            (
                Openai,
                "POST",
                "/v1//Chat/Completions/",
                false,
                Body(TopLevel),
            ),
            (Openai, "POST", "/v1/responses", false, Body(TopLevel)),
            (Openai, "POST", "/v1/embeddings", false, Body(TopLevel)),
            (Openai, "POST", "/v1/audio/speech", false, Body(TopLevel)),
            (
                Openai,
                "POST",
                "/v1/realtime/client_secrets",
                false,
                Body(Session),
            ),
            (
                Openai,
                "POST",
                "/v1/audio/transcriptions",
                false,
                Unreadable("a multipart audio upload"),
            ),
            (
                Openai,
                "POST",
                "/v1/images/edits",
                false,
                Unreadable("a multipart image upload"),
            ),
            (
                Openai,
                "POST",
                "/v1/batches",
                false,
                Unreadable("a batch (its requests are in an uploaded file)"),
            ),
            (
                Openai,
                "POST",
                "/v1/threads/t/runs",
                false,
                Unreadable("an Assistants run (its model is the assistant's)"),
            ),
            (
                Openai,
                "POST",
                "/v1/vector_stores",
                false,
                Unreadable("a route whose model this proxy does not read"),
            ),
            (Openai, "POST", "/v1/files", false, NotSpending),
            (
                Openai,
                "POST",
                "/v1/uploads/../chat/completions",
                false,
                Unreadable("a request whose path has `.` or `..` segments"),
            ),
            (
                Openai,
                "POST",
                "/v1/files/%2e%2E/responses",
                false,
                Unreadable("a request whose path has `.` or `..` segments"),
            ),
            (
                Openai,
                "POST",
                "/v1/./chat/completions",
                false,
                Unreadable("a request whose path has `.` or `..` segments"),
            ),
            (Openai, "POST", "/v1/uploads/u/complete", false, NotSpending),
            (
                Openai,
                "POST",
                "/v1/responses/resp_1/cancel",
                false,
                NotSpending,
            ),
            (Openai, "GET", "/v1/responses/resp_1", false, NotSpending),
            (Openai, "DELETE", "/v1/files/f", false, NotSpending),
            (
                Openai,
                "GET",
                "/v1/realtime?model=gpt-realtime",
                true,
                n("gpt-realtime"),
            ),
            (
                Openai,
                "GET",
                "/v1/realtime?model=gpt%2Drealtime",
                true,
                n("gpt-realtime"),
            ),
            (
                Openai,
                "GET",
                "/v1/realtime",
                true,
                Unreadable("a WebSocket session without ?model="),
            ),
            (
                Openai,
                "GET",
                "/v1/realtime?model=a&model=b",
                true,
                Unreadable("a WebSocket session with ?model= given twice"),
            ),
            (
                Openai,
                "GET",
                "/v1/responses?model=gpt-realtime",
                true,
                Unreadable("a WebSocket session that names its models in its messages"),
            ),
            (
                Openai,
                "GET",
                "/v1//Realtime/?model=gpt-realtime",
                true,
                n("gpt-realtime"),
            ),
            (
                Openai,
                "POST",
                "/v1/chat/completions?model=gpt-5",
                true,
                Unreadable("a WebSocket session that names its models in its messages"),
            ),
            (
                Openai,
                "GET",
                "/v1/realtime/x?model=gpt-realtime",
                true,
                Unreadable("a WebSocket session that names its models in its messages"),
            ),
            (Anthropic, "POST", "/v1/messages", false, Body(TopLevel)),
            (
                Anthropic,
                "POST",
                "/v1/messages/count_tokens",
                false,
                Body(TopLevel),
            ),
            (
                Anthropic,
                "POST",
                "/v1/chat/completions",
                false,
                Body(TopLevel),
            ),
            (
                Anthropic,
                "POST",
                "/v1/messages/batches",
                false,
                Unreadable("a batch (its requests are in an uploaded file)"),
            ),
        ];
        for (dialect, method, path, upgrade, want) in cases {
            let got = model_source(dialect, &head(method, path, upgrade));
            assert_eq!(got, want, "{dialect:?} {method} {path}");
        }
    }
}
