//! Which client messages of a WebSocket session ask the provider for a response: OpenAI's
//! `response.create` (Realtime, Responses over a WebSocket); Gemini Live's `clientContent` with
//! `turnComplete: true` and `toolResponse` (the model goes on with its turn).
//!
//! A message up to [`MESSAGE_LIMIT`] bytes is decoded with serde as the provider would read it:
//! escapes decoded, Live's proto-JSON field names in either spelling (`turnComplete`,
//! `turn_complete`); one that cannot be decoded, or names a field twice, counts as asking (the
//! provider refuses it or reads one of them: it costs the sender's own headroom, never the
//! budget). A longer message (audio) is not held whole: the values are streamed out of it
//! (`usage::json_capture`), and it asks when one of them says so.

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::usage::json_capture::{JsonCapture, Path};
use crate::usage::ws::WsSink;

/// Client messages up to this many bytes are decoded whole.
pub const MESSAGE_LIMIT: usize = 64 * 1024;

/// A streamed value is kept up to this many bytes (`"response.create"` fits; a longer one is
/// none of ours, a `toolResponse` only needs to be present).
const VALUE_LIMIT: usize = 64;

const OPENAI_PATHS: &[Path] = &[&["type"]];
const LIVE_PATHS: &[Path] = &[
    &["clientContent", "turnComplete"],
    &["clientContent", "turn_complete"],
    &["client_content", "turnComplete"],
    &["client_content", "turn_complete"],
    &["toolResponse"],
    &["tool_response"],
];

/// An OpenAI client event, as far as asking goes.
#[derive(Deserialize)]
struct OpenaiEvent {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// A Gemini Live client message, as far as asking goes.
#[derive(Deserialize)]
struct LiveMessage {
    #[serde(rename = "clientContent", alias = "client_content")]
    client_content: Option<ClientContent>,
    #[serde(rename = "toolResponse", alias = "tool_response")]
    tool_response: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ClientContent {
    #[serde(rename = "turnComplete", alias = "turn_complete")]
    turn_complete: Option<bool>,
}

/// Whether the whole message `bytes` asks for a response.
fn decoded_asks(live: bool, bytes: &[u8]) -> bool {
    if live {
        serde_json::from_slice::<LiveMessage>(bytes).map_or(true, |m| {
            let turn = m.client_content.and_then(|c| c.turn_complete);
            turn == Some(true) || m.tool_response.is_some()
        })
    } else {
        serde_json::from_slice::<OpenaiEvent>(bytes)
            .map_or(true, |e| e.kind.as_deref() == Some("response.create"))
    }
}

/// Reads one client message at a time and counts the ones that ask for a response.
#[derive(Debug, Clone)]
pub struct Asks {
    live: bool,
    /// The current message while it is short enough to decode whole.
    message: Vec<u8>,
    over: bool,
    capture: JsonCapture,
    /// The current (long) message's streamed values say it asks.
    streamed_asks: bool,
    /// Messages that ended, and of those, the ones that asked for a response.
    pub ended: u64,
    /// See [`Asks::ended`].
    pub asked: u64,
}

impl Asks {
    /// A reader for Gemini Live's messages (`live`) or OpenAI's events.
    pub fn new(live: bool) -> Asks {
        let paths = if live { LIVE_PATHS } else { OPENAI_PATHS };
        Asks {
            live,
            message: Vec::new(),
            over: false,
            capture: JsonCapture::new(paths, VALUE_LIMIT),
            streamed_asks: false,
            ended: 0,
            asked: 0,
        }
    }

    fn collect(&mut self) {
        for c in self.capture.drain() {
            let asks = match (self.live, c.path) {
                (false, _) => serde_json::from_slice::<String>(&c.value)
                    .is_ok_and(|kind| kind == "response.create"),
                (true, 0..=3) => c.value == b"true",
                // A tool's answer: the model goes on with the turn.
                (true, _) => true,
            };
            self.streamed_asks |= asks;
        }
    }
}

impl WsSink for Asks {
    fn data(&mut self, bytes: &[u8]) {
        if !self.over {
            if self.message.len().saturating_add(bytes.len()) > MESSAGE_LIMIT {
                self.over = true;
                self.message = Vec::new();
            } else {
                self.message.extend_from_slice(bytes);
            }
        }
        self.capture.feed(bytes);
        self.collect();
    }

    fn message_end(&mut self) {
        self.capture.end_document();
        self.collect();
        let asks = if self.over {
            self.streamed_asks
        } else {
            decoded_asks(self.live, &self.message)
        };
        self.message.clear();
        self.over = false;
        self.streamed_asks = false;
        self.ended = self.ended.saturating_add(1);
        if asks {
            self.asked = self.asked.saturating_add(1);
        }
    }

    // A compressed message cannot be read: the filter never offers the extension upstream,
    // so a client that compresses anyway gets nothing from it but the headroom check.
    fn compressed(&mut self) {}

    fn close(&mut self) {}
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn asks(live: bool, text: &str) -> bool {
        let mut a = Asks::new(live);
        a.data(text.as_bytes());
        a.message_end();
        a.asked == 1
    }

    #[test]
    fn openai_asks_with_response_create_however_it_is_spelled() {
        assert!(asks(false, r#"{"event_id":"e","type":"response.create"}"#));
        assert!(asks(false, r#"{"type":"response\u002ecreate"}"#));
        assert!(asks(false, r#"{"\u0074ype":"response.create"}"#));
        // Named twice, or not JSON: counted (the provider refuses it or reads one).
        assert!(asks(
            false,
            r#"{"type":"session.update","type":"response.create"}"#
        ));
        assert!(asks(false, "not json"));
        assert!(!asks(
            false,
            r#"{"type":"input_audio_buffer.append","audio":"AA"}"#
        ));
        assert!(!asks(
            false,
            r#"{"type":"conversation.item.create","item":{}}"#
        ));
    }

    #[test]
    fn live_asks_at_a_turn_end_or_a_tool_answer_in_either_spelling() {
        assert!(asks(
            true,
            r#"{"clientContent":{"turns":[],"turnComplete":true}}"#
        ));
        assert!(asks(true, r#"{"client_content":{"turn_complete":true}}"#));
        assert!(asks(true, r#"{"toolResponse":{"functionResponses":[]}}"#));
        assert!(asks(true, r#"{"tool_response":{}}"#));
        assert!(!asks(true, r#"{"clientContent":{"turns":[]}}"#));
        assert!(!asks(true, r#"{"realtimeInput":{"audio":{"data":"AA"}}}"#));
        assert!(!asks(true, r#"{"setup":{"model":"models/x"}}"#));
    }

    #[test]
    fn a_long_message_is_read_streamed() {
        let pad = "A".repeat(MESSAGE_LIMIT);
        let append = format!(r#"{{"type":"input_audio_buffer.append","audio":"{pad}"}}"#);
        let create = format!(r#"{{"type":"response.create","instructions":"{pad}"}}"#);
        let mut a = Asks::new(false);
        for text in [&append, &create] {
            // In pieces, as frames arrive.
            for piece in text.as_bytes().chunks(1000) {
                a.data(piece);
            }
            a.message_end();
        }
        assert_eq!((a.ended, a.asked), (2, 1));
        assert!(a.message.capacity() <= MESSAGE_LIMIT);
        let turn = format!(r#"{{"clientContent":{{"turns":"{pad}","turn_complete":true}}}}"#);
        assert!(asks(true, &turn));
    }
}
