//! Gemini bodies, per the API reference (protobuf JSON: every field also in its snake_case
//! name):
//! - stored state: `cachedContent` (a context cache, billed as cached input);
//! - files and media the provider fetches: `fileData` parts (Files API URIs, YouTube and
//!   other URLs) anywhere in `contents` or `systemInstruction`, function responses included;
//! - server-side tools: every tool member but `functionDeclarations` (`googleSearch`,
//!   `googleSearchRetrieval`, `urlContext`, `codeExecution`, `fileSearch`, `googleMaps`,
//!   `computerUse`, and members not invented yet).
//!
//! Its OpenAI-compatible endpoint takes the context cache as
//! `extra_body.google.cached_content` ([`openai_compatible`]).

use serde_json::{Map, Value};

use super::{find, present, Reference};

/// The members that carry the conversation.
const CONTENT: [&str; 3] = ["contents", "systemInstruction", "system_instruction"];

/// The first reference of a `generateContent` body.
pub fn referenced(doc: &Map<String, Value>) -> Option<Reference> {
    if present(doc, "cachedContent") || present(doc, "cached_content") {
        return Some(Reference("cachedContent"));
    }
    if let Some(Value::Array(tools)) = doc.get("tools") {
        if !tools.iter().all(client_tool) {
            return Some(Reference("a server-side tool"));
        }
    }
    // A function call's arguments and a function's response are the caller's own data.
    let free_form = |_: &Map<String, Value>, key: &str| key == "args" || key == "response";
    CONTENT
        .iter()
        .filter_map(|key| doc.get(*key))
        .find_map(|content| find(content, &part, &free_form))
}

/// A tool that only declares functions (the client runs them).
fn client_tool(tool: &Value) -> bool {
    tool.as_object().is_some_and(|members| {
        members.iter().all(|(key, value)| {
            value.is_null() || key == "functionDeclarations" || key == "function_declarations"
        })
    })
}

/// A part naming a file the provider reads.
fn part(object: &Map<String, Value>) -> Option<Reference> {
    (present(object, "fileData") || present(object, "file_data")).then_some(Reference("fileData"))
}

/// The context cache of a body sent to Gemini's OpenAI-compatible endpoint
/// (`extra_body.google.cached_content`, also read without the `extra_body` wrapper).
pub fn openai_compatible(doc: &Map<String, Value>) -> Option<Reference> {
    let extra = doc.get("extra_body").and_then(Value::as_object);
    [google(doc), extra.and_then(google)]
        .into_iter()
        .flatten()
        .any(|g| present(g, "cached_content") || present(g, "cachedContent"))
        .then_some(Reference("cached_content"))
}

/// The `google` extension object of an OpenAI-shaped body.
fn google(doc: &Map<String, Value>) -> Option<&Map<String, Value>> {
    doc.get("google")?.as_object()
}
