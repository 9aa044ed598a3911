//! The model a request names, for a metered call whose response does not say (an upstream
//! error, a stream cut before its first event): Gemini's native API and OpenAI Realtime name it
//! in the path or query (`/v1beta/models/{model}:generateContent`, `/v1/realtime?model=…`);
//! OpenAI's and Anthropic's JSON APIs in the body's top-level `model`, which [`RequestModel`]
//! copies out of the chunks as they pass (never holding them, and giving up past a byte bound).
//!
//! The response's own model wins when it names one (the provider's resolved name, e.g. a dated
//! snapshot of an alias); this one only fills the gap.

use super::json_capture::{JsonCapture, Path};
use crate::query::first_param;

/// Longest model name kept (longer ones are dropped, not cut: no provider has one).
pub const MAX_MODEL_LEN: usize = 256;

const MODEL_PATHS: &[Path] = &[&["model"]];

/// The model named by a request's path: Gemini's `models/{model}:{method}` or
/// `tunedModels/{model}:{method}` segment, or a `model` query parameter (OpenAI Realtime and
/// Responses WebSocket handshakes). `None` when the path names none.
pub fn model_in_path(path: &str) -> Option<String> {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let in_path = path.rsplit('/').next().and_then(|last| {
        let (model, _method) = last.split_once(':')?;
        let parent = path.strip_suffix(last)?.trim_end_matches('/');
        let named = parent.ends_with("/models") || parent.ends_with("/tunedModels");
        named.then(|| model.to_string())
    });
    let model = in_path.or_else(|| first_param(Some(query), "model"))?;
    (!model.is_empty() && model.len() <= MAX_MODEL_LEN).then_some(model)
}

/// The top-level `model` of a JSON request body fed in chunks; see the module docs.
#[derive(Debug, Clone)]
pub struct RequestModel {
    capture: Option<JsonCapture>,
    /// Bytes still read before giving up.
    budget: usize,
    model: Option<String>,
}

impl RequestModel {
    /// Reads at most `limit` bytes of the body looking for its `model`.
    pub fn new(limit: usize) -> RequestModel {
        RequestModel {
            capture: Some(JsonCapture::new(
                MODEL_PATHS,
                MAX_MODEL_LEN.saturating_add(2),
            )),
            budget: limit,
            model: None,
        }
    }

    /// Whether more body is still worth feeding.
    pub fn wants_more(&self) -> bool {
        self.capture.is_some()
    }

    /// The next chunk of the body. Stops at the first top-level `model` string, at bytes that
    /// cannot be JSON, or past the byte bound.
    pub fn feed(&mut self, chunk: &[u8]) {
        let Some(capture) = self.capture.as_mut() else {
            return;
        };
        let (now, _rest) = chunk.split_at(chunk.len().min(self.budget));
        self.budget = self.budget.saturating_sub(now.len());
        capture.feed(now);
        // The first top-level `model` decides, whatever it holds (a number, an overlong name).
        let first = capture.drain().into_iter().next();
        let found = first.is_some();
        if let Some(first) = first.filter(|c| !c.overflowed) {
            self.model = serde_json::from_slice::<String>(&first.value)
                .ok()
                .filter(|m| !m.is_empty());
        }
        if found || capture.broken() || self.budget == 0 {
            self.capture = None;
        }
    }

    /// The model found, if any.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemini_and_realtime_name_their_model_in_the_path() {
        for (path, model) in [
            (
                "/v1beta/models/gemini-2.5-flash:generateContent",
                Some("gemini-2.5-flash"),
            ),
            (
                "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
                Some("gemini-2.5-pro"),
            ),
            (
                "/v1beta/tunedModels/my-model_1.2:generateContent",
                Some("my-model_1.2"),
            ),
            ("/v1/realtime?model=gpt-realtime", Some("gpt-realtime")),
            (
                "/v1/realtime?x=1&model=gpt-4o%2Drealtime",
                Some("gpt-4o-realtime"),
            ),
            ("/v1/chat/completions", None),
            ("/v1beta/files/abc:download", None),
            ("/v1/realtime?model=", None),
        ] {
            assert_eq!(model_in_path(path).as_deref(), model, "{path}");
        }
    }

    #[test]
    fn the_body_model_is_found_at_every_split_point_and_only_at_the_top() {
        let body = br#"{"messages":[{"role":"user","model":"inner"}],"model":"gpt-4o\u002dmini","stream":true}"#;
        for split in 0..=body.len() {
            let mut reader = RequestModel::new(1 << 20);
            let (a, b) = body.split_at(split);
            reader.feed(a);
            reader.feed(b);
            assert_eq!(reader.model(), Some("gpt-4o-mini"), "split at {split}");
            assert!(!reader.wants_more());
        }
    }

    #[test]
    fn it_gives_up_past_its_bound_on_garbage_and_on_a_non_string_model() {
        let late = format!(r#"{{"pad":"{}","model":"m"}}"#, "x".repeat(100));
        let mut reader = RequestModel::new(64);
        reader.feed(late.as_bytes());
        assert_eq!((reader.model(), reader.wants_more()), (None, false));
        let mut garbage = RequestModel::new(1024);
        garbage.feed(b"\x00\x01 not json");
        assert!(!garbage.wants_more());
        let mut number = RequestModel::new(1024);
        number.feed(br#"{"model":42}"#);
        assert_eq!(number.model(), None);
        let mut long = RequestModel::new(1 << 20);
        long.feed(format!(r#"{{"model":"{}"}}"#, "m".repeat(300)).as_bytes());
        assert_eq!(long.model(), None);
    }
}
