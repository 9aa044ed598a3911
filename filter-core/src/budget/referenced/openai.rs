//! OpenAI's request bodies (Chat Completions, Completions, Responses, Embeddings, and the
//! OpenAI-compatible endpoints), per the API reference:
//! - stored state: Responses' `previous_response_id`, `conversation`, a stored `prompt`
//!   (`{"id": "pmpt_…"}`; Completions' `prompt` is text and carried), input items by reference
//!   (`{"type": "item_reference", "id": …}`, or an item with an `id` and no `type`);
//! - files and media the provider fetches: any `file_id` (`input_file`, `input_image`, Chat
//!   Completions' `file` part), `file_url`, an `image_url` that is not a `data:` URL;
//! - server-side tools: every tool whose `type` is not `function` or `custom` (`file_search`,
//!   `web_search*`, `code_interpreter`, `mcp`, `image_generation`, `computer_use_preview`,
//!   shell tools and types not invented yet), and Chat Completions' `web_search_options`.

use serde_json::{Map, Value};

use super::{fetched, find, present, text, Reference};

/// The members that carry the conversation (messages, input items, instructions).
const CONTENT: [&str; 3] = ["messages", "input", "instructions"];

/// Tool types the client runs itself: their results come back in a later body, carried.
const CLIENT_TOOLS: [&str; 2] = ["function", "custom"];

/// The first reference of an OpenAI-shaped body.
pub fn referenced(doc: &Map<String, Value>) -> Option<Reference> {
    for key in ["previous_response_id", "conversation", "web_search_options"] {
        if present(doc, key) {
            return Some(Reference(key));
        }
    }
    if doc.get("prompt").is_some_and(Value::is_object) {
        return Some(Reference("prompt"));
    }
    if let Some(found) = server_tool(doc) {
        return Some(found);
    }
    if let Some(Value::Array(items)) = doc.get("input") {
        if items.iter().any(item_reference) {
            return Some(Reference("item_reference"));
        }
    }
    let free_form = |_: &Map<String, Value>, key: &str| key == "metadata";
    CONTENT
        .iter()
        .filter_map(|key| doc.get(*key))
        .find_map(|content| find(content, &part, &free_form))
}

/// A tool the provider runs: any whose `type` is not a client-run one.
fn server_tool(doc: &Map<String, Value>) -> Option<Reference> {
    let Some(Value::Array(tools)) = doc.get("tools") else {
        return None;
    };
    let client = |tool: &Value| {
        tool.as_object()
            .and_then(|t| text(t, "type"))
            .is_some_and(|kind| CLIENT_TOOLS.contains(&kind))
    };
    (!tools.iter().all(client)).then_some(Reference("a server-side tool"))
}

/// An input item given by its id: the provider reads the stored item.
fn item_reference(item: &Value) -> bool {
    let Some(item) = item.as_object() else {
        return false;
    };
    match text(item, "type") {
        Some(kind) => kind == "item_reference",
        None => present(item, "id") && !present(item, "role"),
    }
}

/// A content part (or any object inside the content) naming a file or a fetched image.
fn part(object: &Map<String, Value>) -> Option<Reference> {
    for key in ["file_id", "file_url"] {
        if present(object, key) {
            return Some(Reference(key));
        }
    }
    let url = match object.get("image_url") {
        Some(Value::String(url)) => Some(url.as_str()),
        Some(Value::Object(image)) => text(image, "url"),
        _ => None,
    };
    url.filter(|u| fetched(u)).map(|_| Reference("image_url"))
}
