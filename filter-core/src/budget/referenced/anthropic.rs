//! Anthropic Messages bodies, per the API reference:
//! - files and media the provider fetches: an `image` or `document` whose `source` is of type
//!   `url` or `file` (Files API), any `file_id` (`container_upload`), anywhere in `messages`
//!   or `system` (tool results included);
//! - server-side tools: `mcp_servers` (the MCP connector), a reused `container` (its files),
//!   and every tool that is neither a custom tool (no `type`, or `custom`) nor one of the
//!   Anthropic-defined tools the client runs (`bash_…`, `text_editor_…`, `computer_…`,
//!   `memory_…`): `web_search_…`, `web_fetch_…`, `code_execution_…`, tool search, MCP
//!   toolsets and types not invented yet.

use serde_json::{Map, Value};

use super::{find, present, text, Reference};

/// Anthropic-defined tools the client runs (their results come back in a later body).
const CLIENT_TOOL_PREFIXES: [&str; 4] = ["bash_", "text_editor_", "computer_", "memory_"];

/// The first reference of a Messages body.
pub fn referenced(doc: &Map<String, Value>) -> Option<Reference> {
    let servers = doc.get("mcp_servers");
    if servers.is_some_and(|s| !s.is_null() && s.as_array().is_none_or(|a| !a.is_empty())) {
        return Some(Reference("mcp_servers"));
    }
    if present(doc, "container") {
        return Some(Reference("container"));
    }
    if let Some(Value::Array(tools)) = doc.get("tools") {
        if !tools.iter().all(client_tool) {
            return Some(Reference("a server tool"));
        }
    }
    // A tool call's `input` is the model's own arguments, not content.
    let free_form = |object: &Map<String, Value>, key: &str| {
        key == "input" && text(object, "type").is_some_and(|t| t.ends_with("tool_use"))
    };
    ["messages", "system"]
        .iter()
        .filter_map(|key| doc.get(*key))
        .find_map(|content| find(content, &block, &free_form))
}

/// A tool the client runs: a custom tool or a client-run Anthropic-defined one.
fn client_tool(tool: &Value) -> bool {
    let Some(tool) = tool.as_object() else {
        return false;
    };
    match text(tool, "type") {
        None => !present(tool, "type"),
        Some(kind) => kind == "custom" || CLIENT_TOOL_PREFIXES.iter().any(|p| kind.starts_with(p)),
    }
}

/// A content block whose source the provider fetches or reads from its Files API.
fn block(object: &Map<String, Value>) -> Option<Reference> {
    if present(object, "file_id") {
        return Some(Reference("file_id"));
    }
    let source = object.get("source").and_then(Value::as_object)?;
    match text(source, "type") {
        Some("url") => Some(Reference("source url")),
        Some("file") => Some(Reference("source file")),
        _ => None,
    }
}
