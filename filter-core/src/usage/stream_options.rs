//! Asking an OpenAI-style Chat Completions stream for its usage: a streamed call carries no
//! usage unless the request says `stream_options.include_usage: true`, so for upstreams that
//! accept the field the filter adds it, and remembers to remove the usage-only chunk the client
//! did not ask for (clients that index `choices[0]` crash on it; see `strip.rs`).
//!
//! Only `"stream": true` requests are touched (`stream_options` with `stream: false` is a 400
//! at OpenAI). The body is read with the streaming capture, not parsed: a request that needs
//! the field gets it inserted right after its opening brace, so the rest of the body (which may
//! hold megabytes of base64 images) is copied, never re-encoded. Only a request that already
//! has a `stream_options` object without `include_usage: true` is parsed and re-encoded.

use serde_json::Value;

use super::json_capture::{JsonCapture, Path};

/// What to do with a Chat Completions request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamUsage {
    /// Not a stream, not a JSON object, or the client already asked for usage: forward the
    /// body as it is; the stream (if any) is passed on untouched.
    Unchanged,
    /// Forward this body instead; the client did not ask for usage, so the usage-only chunk
    /// must be removed from the response stream.
    Injected(Vec<u8>),
}

const PATHS: &[Path] = &[&["stream"], &["stream_options"]];
/// `stream_options` objects are tiny; a longer one is left alone.
const OPTIONS_LIMIT: usize = 1024;
const INSERT: &[u8] = br#""stream_options":{"include_usage":true},"#;

/// Decides and, if needed, rewrites a whole Chat Completions request body.
pub fn request_stream_usage(body: &[u8]) -> StreamUsage {
    let mut capture = JsonCapture::new(PATHS, OPTIONS_LIMIT);
    capture.feed(body);
    capture.end_document();
    let (mut stream, mut options) = (None, None);
    for captured in capture.drain() {
        match captured.path {
            0 => stream = Some(captured.value),
            _ if captured.overflowed => return StreamUsage::Unchanged,
            _ => options = Some(captured.value),
        }
    }
    if stream.as_deref() != Some(b"true") {
        return StreamUsage::Unchanged;
    }
    match options {
        None => insert_after_brace(body).map_or(StreamUsage::Unchanged, StreamUsage::Injected),
        Some(options) => merge_into_options(body, &options),
    }
}

/// `{` + the field + the rest; `None` if the body does not start with an object (after
/// whitespace) or the object is empty (`{}` cannot be `"stream": true`).
fn insert_after_brace(body: &[u8]) -> Option<Vec<u8>> {
    let brace = body.iter().position(|b| !b.is_ascii_whitespace())?;
    if body.get(brace) != Some(&b'{') {
        return None;
    }
    let (head, rest) = body.split_at(brace.checked_add(1)?);
    let mut out = Vec::with_capacity(body.len().saturating_add(INSERT.len()));
    out.extend_from_slice(head);
    out.extend_from_slice(INSERT);
    out.extend_from_slice(rest);
    Some(out)
}

/// The client sent `stream_options`: if it already asks for usage, nothing changes (the
/// client expects the usage chunk); otherwise the body is parsed and the flag set.
fn merge_into_options(body: &[u8], options: &[u8]) -> StreamUsage {
    let Ok(Value::Object(options)) = serde_json::from_slice::<Value>(options) else {
        return StreamUsage::Unchanged;
    };
    if options.get("include_usage") == Some(&Value::Bool(true)) {
        return StreamUsage::Unchanged;
    }
    let Ok(Value::Object(mut request)) = serde_json::from_slice::<Value>(body) else {
        return StreamUsage::Unchanged;
    };
    let Some(Value::Object(options)) = request.get_mut("stream_options") else {
        return StreamUsage::Unchanged;
    };
    options.insert("include_usage".to_owned(), Value::Bool(true));
    serde_json::to_vec(&request).map_or(StreamUsage::Unchanged, StreamUsage::Injected)
}
