//! Input a request body makes the provider bill without carrying it: stored state it continues
//! (`previous_response_id`, a conversation, a stored prompt, a context cache), files and media
//! it names by id or URL (fetched by the provider), and server-side tools whose results the
//! model reads as input (search, fetch, code execution, MCP). The body's bytes bound only what
//! the body carries, so a body that references input is estimated at the provider's context
//! bound instead (`limits.context_tokens`, `budget::estimate`).
//!
//! Each API's body is read by its own rules ([`openai`], [`anthropic`], [`gemini`]); a shape
//! these rules do not know (a new tool type) counts as referencing input: an estimate too high
//! costs a refusal the client can see, one too low an overshoot nobody sees.

pub mod anthropic;
pub mod gemini;
pub mod openai;

use ptk_wire::UsageApi;
use serde_json::{Map, Value};

/// What a body references, named for tests and logs (`"previous_response_id"`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference(pub &'static str);

/// The first input `body` (a JSON document of `api`) references without carrying, if any.
pub fn referenced(api: UsageApi, body: &Value) -> Option<Reference> {
    let doc = body.as_object()?;
    match api {
        UsageApi::Messages => anthropic::referenced(doc),
        UsageApi::GenerateContent => gemini::referenced(doc),
        // Chat Completions (also Anthropic's and Gemini's OpenAI-compatible endpoints),
        // Responses, Embeddings; the WebSocket APIs never get here (refused under a budget).
        _ => openai::referenced(doc).or_else(|| gemini::openai_compatible(doc)),
    }
}

/// Whether `doc` holds `key` with a value other than `null` (the providers read `null` as
/// absent).
pub(crate) fn present(doc: &Map<String, Value>, key: &str) -> bool {
    doc.get(key).is_some_and(|v| !v.is_null())
}

/// The string at `key` of `doc`.
pub(crate) fn text<'a>(doc: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    doc.get(key).and_then(Value::as_str)
}

/// The first object in `value` (itself or nested at any depth, arrays included) that `rule`
/// finds a reference in. `free_form(object, key)` names the members holding a caller's own
/// data (a tool call's arguments), which are not walked: their keys are not the API's.
pub(crate) fn find(
    value: &Value,
    rule: &impl Fn(&Map<String, Value>) -> Option<Reference>,
    free_form: &impl Fn(&Map<String, Value>, &str) -> bool,
) -> Option<Reference> {
    match value {
        Value::Array(items) => items.iter().find_map(|item| find(item, rule, free_form)),
        Value::Object(object) => rule(object).or_else(|| {
            object
                .iter()
                .filter(|(key, _)| !free_form(object, key))
                .find_map(|(_, member)| find(member, rule, free_form))
        }),
        _ => None,
    }
}

/// A URL the provider fetches: anything but an inline `data:` URL.
pub(crate) fn fetched(url: &str) -> bool {
    let url = url.trim_start();
    !url.get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("data:"))
}

#[cfg(test)]
mod tests;
