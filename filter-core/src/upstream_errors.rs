//! Provider errors on a request the filter forwarded with the operator's real key.
//!
//! Once a token was accepted and the real key went upstream, the provider refusing that key
//! (or its account) is the operator's problem, not the client's, and some providers quote the
//! refused key back (OpenAI: `Incorrect API key provided: sk-proj-***…INEL`). So:
//! - **401 / 403**: answered in the provider's own shape, status kept, with a message that the
//!   proxy's upstream credential was refused; decided from the status alone (WebSocket
//!   handshakes too, as plain text like the filter's other handshake refusals). Whether a pool
//!   key leaves rotation is another question, answered from the whole body (`key_refusal`);
//! - **Gemini 400 with an `API_KEY_*` reason** (how Gemini answers an invalid key): the same
//!   answer, once the body has been read;
//! - **any other error** (status 400 and up): its body, and its header values, are searched
//!   for the key or a fragment of it ([`key_fragments`]); what is found is masked in place,
//!   everything else passes byte for byte.
//!
//! - **a WebSocket the provider accepted** (101): the first [`FRAMES_MAX`] bytes of its text
//!   and close frames are searched the same way (OpenAI's Realtime API accepts the upgrade of a
//!   refused key, then sends an `error` event quoting it masked, then closes with 3000), and a
//!   fragment masked in place inside the frame ([`crate::ws_frames`]).
//!
//! Other successful responses (below 400) are never looked at.

use ptk_wire::Provider;
use serde_json::Value;

use crate::cors::decorate;
use crate::dialect::{Dialect, ErrorShape};
use crate::key_fragments;
use crate::plan::RewritePlan;
use crate::refusal::{error_json, LocalReply};
use crate::ws_frames::FrameScanner;

/// What the response path needs to know about a request forwarded with a real key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// The dialect the request spoke (provider and error shape).
    pub dialect: Dialect,
    /// A WebSocket handshake (refusals in plain text, never CORS-decorated).
    pub websocket: bool,
    /// The request's `Origin`, for CORS decoration of a replacement.
    pub origin: Option<String>,
}

/// Bytes of a WebSocket's first server frames searched for the key; the rest pass unread.
pub const FRAMES_MAX: usize = 64 * 1024;

/// Most bytes of an error body held back to be read whole; a longer one is searched as it
/// passes, chunk by chunk.
pub const INSPECT_MAX: usize = 64 * 1024;

/// The decision once the response headers are in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadersVerdict {
    /// A success, or nothing to do: pass untouched, never look at the body.
    Pass,
    /// A WebSocket the provider accepted: search its first server frames (up to
    /// [`FRAMES_MAX`] bytes) as they pass.
    Frames,
    /// The provider refused the operator's credential: answer this instead.
    Replace(LocalReply),
    /// An error: read its body (held back whole when `hold`, else chunk by chunk).
    Inspect {
        /// Hold the body back up to [`INSPECT_MAX`] to read it whole (not for event streams).
        hold: bool,
    },
}

/// What to do with an error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyVerdict {
    /// Pass the bytes as they are.
    Pass,
    /// Put these bytes in their place.
    Rewrite {
        /// The new bytes (the same length unless the response has no `content-length`).
        body: Vec<u8>,
        /// Why.
        class: Rewritten,
    },
}

/// Why an error body was rewritten (for counters and the log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewritten {
    /// The provider refused the operator's credential (Gemini's 400 `API_KEY_*`).
    CredentialRefused,
    /// A fragment of the real key was masked.
    FragmentMasked,
}

/// The message every replacement carries.
pub const MESSAGE: &str = "The provider refused this proxy's upstream credential (the \
     operator's API key or its account); your proxy token was accepted. Contact the operator \
     of this proxy.";

/// Shorter forms, for a body that must fit the length already announced.
const SHORTER: [&str; 2] = [
    "The provider refused this proxy's upstream credential; contact the proxy's operator.",
    "upstream credential refused",
];

/// OpenAI-shape `code` of a replacement.
pub const CODE: &str = "upstream_credential_refused";

/// Decides from the status (and content type) of a forwarded request's response.
pub fn on_headers(fwd: &Forwarded, status: u16, content_type: Option<&str>) -> HeadersVerdict {
    match status {
        101 if fwd.websocket => HeadersVerdict::Frames,
        0..=399 => HeadersVerdict::Pass,
        401 | 403 => HeadersVerdict::Replace(credential_refused(fwd, status, MESSAGE)),
        _ => HeadersVerdict::Inspect {
            hold: !content_type.is_some_and(|t| {
                t.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("text/event-stream")
            }),
        },
    }
}

/// Decides on an error body: `body` is the whole body when `whole`, else one chunk of it.
/// `length_fixed`: the response announced a `content-length`, so a rewrite keeps the length.
pub fn on_body(
    fwd: &Forwarded,
    status: u16,
    body: &[u8],
    key: &str,
    whole: bool,
    length_fixed: bool,
) -> BodyVerdict {
    if whole
        && status == 400
        && fwd.dialect.provider() == Provider::Gemini
        && gemini_key_refused(body)
    {
        let limit = length_fixed.then_some(body.len());
        let fitted = std::iter::once(MESSAGE)
            .chain(SHORTER)
            .find_map(|message| fit(credential_refused(fwd, status, message).body, limit));
        if let Some(body) = fitted {
            return BodyVerdict::Rewrite {
                body,
                class: Rewritten::CredentialRefused,
            };
        }
    }
    let mut masked = body.to_vec();
    if key_fragments::mask(&mut masked, key) > 0 {
        BodyVerdict::Rewrite {
            body: masked,
            class: Rewritten::FragmentMasked,
        }
    } else {
        BodyVerdict::Pass
    }
}

/// Whether to ask the provider for an uncompressed response (`accept-encoding: identity`) on a
/// request forwarded with a real key: whenever the client accepts any coding. A provider error
/// the filter cannot read (Google's front end gzips even small JSON errors) could neither be
/// recognised as a refusal of the key nor have the key masked; providers send their SSE streams
/// uncompressed anyway.
pub fn ask_identity(accept_encoding: Option<&str>) -> bool {
    accept_encoding
        .is_some_and(|v| !v.trim().is_empty() && !v.trim().eq_ignore_ascii_case("identity"))
}

/// The real key a rewrite plan sets (in whichever slot the dialect uses).
pub fn key_in_plan(plan: &RewritePlan) -> Option<&str> {
    plan.set_value("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| plan.set_value("x-api-key"))
        .or_else(|| plan.set_value("x-goog-api-key"))
        .filter(|key| !key.is_empty())
}

/// Masks fragments of `key` inside the readable payloads of a chunk of server frames; returns
/// how many were masked. The chunk keeps its length and every frame header.
pub fn mask_frames(scanner: &mut FrameScanner, chunk: &mut [u8], key: &str) -> usize {
    scanner
        .readable(chunk)
        .into_iter()
        .map(|range| {
            chunk
                .get_mut(range)
                .map_or(0, |payload| key_fragments::mask(payload, key))
        })
        .sum()
}

/// Whether to drop the client's `sec-websocket-extensions` offer from a handshake forwarded
/// with a real key: a compressed frame (permessage-deflate) could not be searched for the key.
pub fn drop_extensions(websocket: bool, offered: Option<&str>) -> bool {
    websocket && offered.is_some()
}

/// Header values of an error response that show the key, masked: `(name, new value)` for each
/// header to set. Pseudo-headers are left alone.
pub fn masked_headers(headers: &[(String, String)], key: &str) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| !name.starts_with(':'))
        .filter_map(|(name, value)| {
            let mut bytes = value.clone().into_bytes();
            (key_fragments::mask(&mut bytes, key) > 0)
                .then(|| (name.clone(), String::from_utf8_lossy(&bytes).into_owned()))
        })
        .collect()
}

/// True for a Gemini error whose `ErrorInfo` reason is one of Google's `API_KEY_*` reasons
/// (`API_KEY_INVALID`, `API_KEY_EXPIRED`, `API_KEY_SERVICE_BLOCKED`, …), in the plain or the
/// streaming (array) form.
pub fn gemini_key_refused(body: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let errors: Vec<&Value> = match &value {
        Value::Array(items) => items.iter().filter_map(|i| i.get("error")).collect(),
        other => other.get("error").into_iter().collect(),
    };
    errors.iter().any(|error| {
        error
            .get("details")
            .and_then(Value::as_array)
            .is_some_and(|details| {
                details.iter().any(|d| {
                    d.get("reason")
                        .and_then(Value::as_str)
                        .is_some_and(|r| r.starts_with("API_KEY_"))
                })
            })
    })
}

/// The answer in place of a provider's refusal of the operator's credential.
pub fn credential_refused(fwd: &Forwarded, status: u16, message: &str) -> LocalReply {
    if fwd.websocket {
        return LocalReply {
            status,
            headers: vec![(
                "content-type".to_string(),
                "text/plain; charset=utf-8".to_string(),
            )],
            body: message.as_bytes().to_vec(),
        };
    }
    let reply = LocalReply {
        status,
        headers: vec![("content-type".to_string(), "application/json".to_string())],
        body: shaped(fwd.dialect.error_shape(), status, message)
            .to_string()
            .into_bytes(),
    };
    decorate(reply, fwd.origin.as_deref())
}

fn shaped(shape: ErrorShape, status: u16, message: &str) -> Value {
    error_json(shape, status, message, CODE)
}

/// `body` padded with spaces to `limit` (JSON and plain text both allow trailing blanks), or
/// `None` when it does not fit; any body fits without a limit.
fn fit(mut body: Vec<u8>, limit: Option<usize>) -> Option<Vec<u8>> {
    match limit {
        None => Some(body),
        Some(n) if body.len() <= n => {
            body.resize(n, b' ');
            Some(body)
        }
        Some(_) => None,
    }
}
