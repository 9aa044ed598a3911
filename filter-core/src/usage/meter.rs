//! Meters one HTTP response body as it passes: fed every chunk in order, never holding the body.
//! A JSON body is one document; an SSE body is one document per event. Each document's values
//! at the API's usage paths are captured (last one per path wins within a document, which is
//! right for Gemini's JSON array of snapshots), then applied with the API's merge rule:
//! overwrite for cumulative snapshots (Chat Completions' last usage chunk, Anthropic's deltas,
//! Gemini's `usageMetadata`), sum for per-response counts (Responses' terminal events).

use super::anthropic::AnthropicUsage;
use super::json_capture::{JsonCapture, Path};
use super::sse::{SseFramer, SseSink};
use super::tokens::TokenUsage;
use super::ws::{WsFrames, WsSink};
use super::{gemini, openai};
pub use ptk_wire::UsageApi;

/// How the response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One JSON document (or a JSON array of them, Gemini's stream without `alt=sse`).
    Json,
    /// Server-sent events, one JSON document per event.
    Sse,
    /// WebSocket frames (server to client), one JSON document per text or binary message.
    WebSocket,
}

/// What was metered when the response ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeteredUsage {
    /// The counts seen (zero if none were).
    pub usage: TokenUsage,
    /// The model the provider says answered, if it said.
    pub model: Option<String>,
    /// The provider's final usage was seen, the body ended normally and nothing was too long
    /// to read; otherwise the counts are what was seen before the end (aborted streams,
    /// upstream errors, disconnects).
    pub complete: bool,
}

/// Each captured value is kept up to this many bytes (usage objects are a few hundred).
const VALUE_LIMIT: usize = 4096;

const USAGE: Path = &["usage"];
const MODEL: Path = &["model"];
const TYPE: Path = &["type"];
const CHAT_PATHS: &[Path] = &[USAGE, MODEL];
const RESPONSES_PATHS: &[Path] = &[
    USAGE,
    MODEL,
    TYPE,
    &["response", "usage"],
    &["response", "model"],
];
const ANTHROPIC_PATHS: &[Path] = &[
    USAGE,
    MODEL,
    TYPE,
    &["message", "usage"],
    &["message", "model"],
];
const REALTIME_PATHS: &[Path] = &[
    TYPE,
    &["response", "usage"],
    &["response", "model"],
    &["session", "model"],
];
const LIVE_PATHS: &[Path] = &[&["usageMetadata"], &["serverContent", "turnComplete"]];
const GEMINI_PATHS: &[Path] = &[
    &["usageMetadata"],
    &["modelVersion"],
    &["candidates", "finishReason"],
];

/// Where usage lives in each API's documents (response bodies, events, messages).
fn paths(api: UsageApi) -> &'static [Path] {
    match api {
        UsageApi::ChatCompletions | UsageApi::Embeddings => CHAT_PATHS,
        UsageApi::Responses => RESPONSES_PATHS,
        UsageApi::Messages => ANTHROPIC_PATHS,
        UsageApi::GenerateContent => GEMINI_PATHS,
        UsageApi::Realtime => REALTIME_PATHS,
        UsageApi::Live => LIVE_PATHS,
        UsageApi::Other => &[],
    }
}

/// The current document's captured values, one slot per path (the last capture wins).
#[derive(Debug, Clone)]
struct Document {
    capture: JsonCapture,
    values: Vec<Option<Vec<u8>>>,
    overflowed: bool,
}

impl Document {
    fn collect(&mut self) {
        for captured in self.capture.drain() {
            self.overflowed |= captured.overflowed;
            if let Some(slot) = self.values.get_mut(captured.path) {
                *slot = Some(captured.value);
            }
        }
    }

    fn value(&self, path: usize) -> Option<&[u8]> {
        self.values.get(path).and_then(|v| v.as_deref())
    }

    fn string(&self, path: usize) -> Option<String> {
        serde_json::from_slice(self.value(path)?).ok()
    }
}

/// What the documents so far added up to.
#[derive(Debug, Clone, Default)]
struct Totals {
    /// Per-response counts already summed (Responses' terminal events).
    summed: TokenUsage,
    /// The latest cumulative snapshot (overwrite semantics).
    latest: Option<TokenUsage>,
    /// Anthropic's raw counts, merged field by field.
    anthropic: Option<AnthropicUsage>,
    model: Option<String>,
    final_seen: bool,
    /// WebSocket: a close frame arrived; a compressed message was skipped.
    closed: bool,
    compressed: bool,
    /// Responses (Live: turns) that started and that ended, in a session (for its budget).
    started: u64,
    done: u64,
}

impl Totals {
    fn apply(&mut self, api: UsageApi, doc: &Document) {
        match api {
            UsageApi::ChatCompletions | UsageApi::Embeddings => self.apply_chat(doc),
            UsageApi::Responses => self.apply_responses(doc),
            UsageApi::Messages => self.apply_anthropic(doc),
            UsageApi::GenerateContent => self.apply_gemini(doc),
            UsageApi::Realtime => self.apply_realtime(doc),
            UsageApi::Live => self.apply_live(doc),
            UsageApi::Other => {}
        }
    }

    fn note_model(&mut self, model: Option<String>) {
        if self.model.is_none() {
            self.model = model.filter(|m| !m.is_empty());
        }
    }

    // Paths by index: see CHAT_PATHS and the others above.
    fn apply_chat(&mut self, doc: &Document) {
        self.note_model(doc.string(1));
        if let Some(usage) = doc.value(0).and_then(openai::decode) {
            self.latest = Some(usage);
            self.final_seen = true;
        }
    }

    fn apply_responses(&mut self, doc: &Document) {
        self.note_model(doc.string(1).or_else(|| doc.string(4)));
        match doc.string(2) {
            Some(event) if event == "response.created" => {
                self.started = self.started.saturating_add(1)
            }
            Some(event) if openai::is_terminal_response_event(&event) => {
                self.done = self.done.saturating_add(1);
                if let Some(usage) = doc.value(3).and_then(openai::decode) {
                    self.summed.add(&usage);
                    self.final_seen = true;
                }
            }
            Some(_) => {}
            // No `type`: a plain JSON response.
            None => self.apply_chat(doc),
        }
    }

    fn apply_anthropic(&mut self, doc: &Document) {
        self.note_model(doc.string(1).or_else(|| doc.string(4)));
        match doc.string(2).as_deref() {
            Some("message_start") => {
                self.anthropic = doc.value(3).and_then(AnthropicUsage::decode);
            }
            Some("message_delta") => {
                if let Some(delta) = doc.value(0).and_then(AnthropicUsage::decode) {
                    self.anthropic
                        .get_or_insert_with(AnthropicUsage::default)
                        .overwrite_with(&delta);
                }
            }
            Some("message_stop") => self.final_seen = true,
            // A plain JSON response (`"type":"message"`).
            Some("message") | None => {
                if let Some(usage) = doc.value(0).and_then(AnthropicUsage::decode) {
                    self.anthropic = Some(usage);
                    self.final_seen = true;
                }
            }
            Some(_) => {}
        }
    }

    fn apply_gemini(&mut self, doc: &Document) {
        self.note_model(doc.string(1));
        if let Some(usage) = doc.value(0).and_then(gemini::decode) {
            self.latest = Some(usage);
        }
        if doc.value(2).is_some() {
            self.final_seen = true;
        }
    }

    /// OpenAI Realtime: every `response.done` carries that response's usage ("always emitted,
    /// no matter the final state"); each already counts the conversation so far as input, so
    /// they are summed, never overwritten.
    fn apply_realtime(&mut self, doc: &Document) {
        self.note_model(doc.string(3).or_else(|| doc.string(2)));
        match doc.string(0).as_deref() {
            Some("response.created") => self.started = self.started.saturating_add(1),
            Some("response.done") => {
                self.done = self.done.saturating_add(1);
                if let Some(usage) = doc.value(1).and_then(openai::decode) {
                    self.summed.add(&usage);
                }
            }
            _ => {}
        }
    }

    /// Gemini Live: a message may carry `usageMetadata` beside its payload; within a turn the
    /// last one wins, and each completed turn's is added to the session's total.
    fn apply_live(&mut self, doc: &Document) {
        if let Some(usage) = doc.value(0).and_then(gemini::decode) {
            self.latest = Some(usage);
        }
        if doc.value(1) == Some(b"true".as_slice()) {
            self.done = self.done.saturating_add(1);
            if let Some(turn) = self.latest.take() {
                self.summed.add(&turn);
            }
        }
    }

    fn usage(&self) -> TokenUsage {
        let mut usage = self.summed;
        if let Some(latest) = &self.latest {
            usage.add(latest);
        }
        if let Some(anthropic) = &self.anthropic {
            usage.add(&anthropic.normalised());
        }
        usage
    }
}

/// Feeds SSE data into the document capture and applies each event as it ends.
struct Events<'a> {
    api: UsageApi,
    doc: &'a mut Document,
    totals: &'a mut Totals,
}

impl SseSink for Events<'_> {
    fn data(&mut self, bytes: &[u8]) {
        // `[DONE]` and other non-JSON data only mark the capture broken until the event ends.
        self.doc.capture.feed(bytes);
        self.doc.collect();
    }

    fn dispatch(&mut self, _name: Option<&[u8]>) {
        end_document(self.api, self.doc, self.totals);
    }
}

/// Feeds WebSocket message payloads into the document capture, one document per message.
struct Messages<'a> {
    api: UsageApi,
    doc: &'a mut Document,
    totals: &'a mut Totals,
}

impl WsSink for Messages<'_> {
    fn data(&mut self, bytes: &[u8]) {
        self.doc.capture.feed(bytes);
        self.doc.collect();
    }

    fn message_end(&mut self) {
        end_document(self.api, self.doc, self.totals);
    }

    fn compressed(&mut self) {
        self.totals.compressed = true;
    }

    fn close(&mut self) {
        self.totals.closed = true;
    }
}

fn end_document(api: UsageApi, doc: &mut Document, totals: &mut Totals) {
    doc.capture.end_document();
    doc.collect();
    totals.apply(api, doc);
    doc.values.iter_mut().for_each(|v| *v = None);
}

/// Meters one response body; see the module docs.
#[derive(Debug, Clone)]
pub struct UsageMeter {
    api: UsageApi,
    framing: Framing,
    sse: Option<SseFramer>,
    ws: Option<WsFrames>,
    doc: Document,
    totals: Totals,
}

impl UsageMeter {
    /// A meter for a response of `api` framed as `framing`.
    pub fn new(api: UsageApi, framing: Framing) -> UsageMeter {
        let paths = paths(api);
        UsageMeter {
            api,
            framing,
            sse: (framing == Framing::Sse).then(SseFramer::default),
            ws: (framing == Framing::WebSocket).then(WsFrames::default),
            doc: Document {
                capture: JsonCapture::new(paths, VALUE_LIMIT),
                values: vec![None; paths.len()],
                overflowed: false,
            },
            totals: Totals::default(),
        }
    }

    /// Reads the next chunk of the body (any size, split anywhere).
    pub fn feed(&mut self, chunk: &[u8]) {
        if let Some(frames) = &mut self.ws {
            let mut messages = Messages {
                api: self.api,
                doc: &mut self.doc,
                totals: &mut self.totals,
            };
            frames.feed(chunk, &mut messages);
        } else if let Some(framer) = &mut self.sse {
            let mut events = Events {
                api: self.api,
                doc: &mut self.doc,
                totals: &mut self.totals,
            };
            framer.feed(chunk, &mut events);
        } else {
            self.doc.capture.feed(chunk);
            self.doc.collect();
        }
    }

    /// Input plus output tokens read so far (a session's running charge).
    pub fn seen_tokens(&self) -> u64 {
        let usage = self.totals.usage();
        usage.input.saturating_add(usage.output)
    }

    /// Responses (Live: turns) of a session seen ending so far.
    pub fn responses_done(&self) -> u64 {
        self.totals.done
    }

    /// Whether a session's response (Live: turn) started and has not ended yet.
    pub fn response_open(&self) -> bool {
        self.totals.started > self.totals.done || self.totals.latest.is_some()
    }

    /// The body ended: `normally` when the stream reached its end (not reset, not cut off).
    /// A WebSocket session is complete when the upstream sent its close frame, no message was
    /// compressed, and no Live turn was still open, however the stream ended after that: the
    /// close handshake is the session's own end, and the server then closes the connection
    /// (RFC 6455 §7.1.1), which Envoy reports as a reset (`UC`), never as an end of stream.
    pub fn finish(&mut self, normally: bool) -> MeteredUsage {
        match self.framing {
            Framing::Sse => {
                if let Some(framer) = &mut self.sse {
                    let mut events = Events {
                        api: self.api,
                        doc: &mut self.doc,
                        totals: &mut self.totals,
                    };
                    framer.finish(&mut events);
                }
            }
            Framing::Json => end_document(self.api, &mut self.doc, &mut self.totals),
            // A message cut off by the end of the stream is not read: its usage never came.
            Framing::WebSocket => {}
        }
        let t = &self.totals;
        let finished = match self.framing {
            Framing::WebSocket => t.closed && !t.compressed && t.latest.is_none(),
            Framing::Json | Framing::Sse => normally && t.final_seen,
        };
        MeteredUsage {
            usage: t.usage(),
            model: t.model.clone(),
            complete: finished && !self.doc.overflowed,
        }
    }
}
