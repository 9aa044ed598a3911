//! The model a request names, for a metered call whose response does not say (an upstream
//! error, a stream cut before its first event): Gemini's native API and OpenAI Realtime name it
//! in the path or query (`/v1beta/models/{model}:generateContent`, `/v1/realtime?model=…`);
//! OpenAI's and Anthropic's JSON APIs in the body's top-level `model`, which [`RequestModel`]
//! copies out of the chunks as they pass (never holding them, and giving up past a byte bound);
//! Gemini Live in its first client message, `setup.model` (`models/…`), read from the client's
//! WebSocket frames the same way ([`RequestModel::live_setup`]).
//!
//! The response's own model wins when it names one (the provider's resolved name, e.g. a dated
//! snapshot of an alias); this one only fills the gap.

use super::json_capture::{JsonCapture, Path};
use super::ws::{WsFrames, WsSink};
use crate::query::first_param;

/// Longest model name kept (longer ones are dropped, not cut: no provider has one).
pub const MAX_MODEL_LEN: usize = 256;

const MODEL_PATHS: &[Path] = &[&["model"]];
const LIVE_SETUP_PATHS: &[Path] = &[&["setup", "model"]];

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
    /// Gemini Live: the client's WebSocket frames, whose first message is read.
    frames: Option<WsFrames>,
}

/// Feeds the first client message's payload to the capture.
struct FirstMessage<'a> {
    capture: &'a mut JsonCapture,
    ended: bool,
}

impl WsSink for FirstMessage<'_> {
    fn data(&mut self, bytes: &[u8]) {
        if !self.ended {
            self.capture.feed(bytes);
        }
    }

    fn message_end(&mut self) {
        if !self.ended {
            self.capture.end_document();
        }
        self.ended = true;
    }

    fn compressed(&mut self) {
        self.ended = true;
    }

    fn close(&mut self) {
        self.ended = true;
    }
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
            frames: None,
        }
    }

    /// Reads at most `limit` bytes of a Gemini Live session's client frames looking for its
    /// first message's `setup.model` (its `models/` prefix dropped).
    pub fn live_setup(limit: usize) -> RequestModel {
        RequestModel {
            capture: Some(JsonCapture::new(
                LIVE_SETUP_PATHS,
                MAX_MODEL_LEN.saturating_add(2),
            )),
            budget: limit,
            model: None,
            frames: Some(WsFrames::default()),
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
        let mut first_ended = false;
        match self.frames.as_mut() {
            Some(frames) => {
                let mut sink = FirstMessage {
                    capture,
                    ended: false,
                };
                frames.feed(now, &mut sink);
                first_ended = sink.ended;
            }
            None => capture.feed(now),
        }
        // The first top-level `model` decides, whatever it holds (a number, an overlong name).
        let first = capture.drain().into_iter().next();
        let found = first.is_some();
        if let Some(first) = first.filter(|c| !c.overflowed) {
            self.model = serde_json::from_slice::<String>(&first.value)
                .ok()
                .map(|m| m.strip_prefix("models/").map(str::to_string).unwrap_or(m))
                .filter(|m| !m.is_empty());
        }
        if found || first_ended || capture.broken() || self.budget == 0 {
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

    /// A client frame (masked, as clients send) holding `payload`.
    fn client_frame(payload: &[u8], opcode: u8) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![0x80 | opcode];
        assert!(payload.len() < 126);
        frame.push(0x80 | u8::try_from(payload.len()).unwrap());
        frame.extend(mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    #[test]
    fn gemini_live_names_its_model_in_the_first_client_message_at_every_split() {
        let setup = br#"{"setup":{"model":"models/gemini-live-x","generationConfig":{}}}"#;
        let mut session = client_frame(setup, 0x2);
        session.extend(client_frame(br#"{"setup":{"model":"later"}}"#, 0x1));
        for split in 0..=session.len() {
            let mut reader = RequestModel::live_setup(1 << 20);
            let (a, b) = session.split_at(split);
            reader.feed(a);
            reader.feed(b);
            assert_eq!(reader.model(), Some("gemini-live-x"), "split at {split}");
        }
        // A first message without a setup model: nothing, and the second is never read.
        let mut other = client_frame(br#"{"clientContent":{}}"#, 0x1);
        other.extend(client_frame(setup, 0x1));
        let mut reader = RequestModel::live_setup(1 << 20);
        reader.feed(&other);
        assert_eq!((reader.model(), reader.wants_more()), (None, false));
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
