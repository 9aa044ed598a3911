//! Asking an OpenAI-style Chat Completions stream for its usage: a streamed call carries no
//! usage unless the request says `stream_options.include_usage: true`, so for upstreams that
//! accept the field the filter adds it, and remembers to remove the usage-only chunk the client
//! did not ask for (clients that index `choices[0]` crash on it; see `strip.rs`).
//!
//! Only `"stream": true` requests are touched (`stream_options` with `stream: false` is a 400
//! at OpenAI). The two keys are read as an upstream reads them (escapes decoded, so
//! `"str\u0065am"` is `stream`); the rest of the body is skipped, not parsed. A request that
//! needs the field and has no `stream_options` gets it inserted right after its opening brace,
//! so the rest of the body (which may hold large base64 images) is copied, never re-encoded.
//! A body whose `stream_options` lacks `include_usage: true`, or that gives `stream` or
//! `stream_options` twice (parsers disagree on which one counts), is parsed and re-encoded
//! with each key once: the upstream then reads exactly what the filter decided on.

use serde::Deserialize;
use serde_json::{Map, Value};

/// What to do with a Chat Completions request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamUsage {
    /// Not a stream, not a JSON object, or the client already asked for usage: forward the
    /// body as it is; the stream (if any) is passed on untouched.
    Unchanged,
    /// Forward this body instead; the client did not ask for usage, so the usage-only chunk
    /// must be removed from the response stream.
    Injected(Vec<u8>),
    /// Not a stream, but `stream` or `stream_options` was given twice: forward this body
    /// instead, with each once (as read here, the last one), so no upstream reads a stream.
    Rewritten(Vec<u8>),
}

const INSERT: &[u8] = br#""stream_options":{"include_usage":true},"#;
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The two fields that decide, each read once (serde refuses a duplicate, whatever its
/// spelling); every other field is skipped without being kept.
#[derive(Deserialize)]
struct Fields {
    #[serde(default)]
    stream: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    stream_options: Option<Value>,
}

/// A field that is there, even as `null` (absent is `None`).
fn present<'de, D: serde::Deserializer<'de>>(value: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(value).map(Some)
}

/// Decides and, if needed, rewrites a whole Chat Completions request body.
pub fn request_stream_usage(body: &[u8]) -> StreamUsage {
    // A byte order mark is not JSON, but some parsers skip it: read past it, send without it.
    let json = body.strip_prefix(BOM).unwrap_or(body);
    let Ok(fields) = serde_json::from_slice::<Fields>(json) else {
        return canonical(json);
    };
    if fields.stream != Some(Value::Bool(true)) {
        return StreamUsage::Unchanged;
    }
    match fields.stream_options {
        None => insert_after_brace(json).map_or(StreamUsage::Unchanged, StreamUsage::Injected),
        // `null` reads as absent upstream (the SDKs' optional field): asked like absent.
        Some(Value::Object(_) | Value::Null) => {
            let asked_already = fields
                .stream_options
                .as_ref()
                .and_then(|o| o.get("include_usage"))
                == Some(&Value::Bool(true));
            if asked_already {
                return StreamUsage::Unchanged;
            }
            let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(json) else {
                return StreamUsage::Unchanged;
            };
            ask(request)
        }
        Some(_) => StreamUsage::Unchanged,
    }
}

/// A body serde would not read as [`Fields`]: not an object (left alone), or one with a key
/// twice, which is re-encoded with each key once (the last, as `serde_json` keeps).
fn canonical(json: &[u8]) -> StreamUsage {
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(json) else {
        return StreamUsage::Unchanged;
    };
    if request.get("stream") == Some(&Value::Bool(true))
        && !matches!(request.get("stream_options"), Some(o) if !o.is_object() && !o.is_null())
    {
        let asked_already = request
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            == Some(&Value::Bool(true));
        if !asked_already {
            return ask(request);
        }
    }
    serde_json::to_vec(&request).map_or(StreamUsage::Unchanged, StreamUsage::Rewritten)
}

/// The request with `stream_options.include_usage: true` set, re-encoded.
fn ask(mut request: Map<String, Value>) -> StreamUsage {
    let options = request
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Map::new()));
    if options.is_null() {
        *options = Value::Object(Map::new());
    }
    let Value::Object(options) = options else {
        return StreamUsage::Unchanged;
    };
    options.insert("include_usage".to_owned(), Value::Bool(true));
    serde_json::to_vec(&request).map_or(StreamUsage::Unchanged, StreamUsage::Injected)
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
