//! The one normalised shape of token usage every provider's counts are mapped into: the
//! filter's meters produce it, usage reports carry it, the token-service stores and prices it.
//!
//! Definitions (the OpenTelemetry GenAI conventions' `gen_ai.usage.*`, which follow OpenAI's):
//! `input` is every input token, cached ones included; `cached_input` and `cache_write` are the
//! parts of `input` read from and written to a prompt cache; `output` is every output token,
//! reasoning included; `reasoning` is the part of `output` spent thinking. Each provider's
//! parser maps its own definitions onto these (Anthropic's `input_tokens` excludes cache reads
//! and writes; Gemini's `candidatesTokenCount` excludes thoughts).

use serde::{Deserialize, Serialize};

/// Token counts of one or more responses, in the normalised definitions above.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Every input token, cached ones included.
    pub input: u64,
    /// The part of `input` read from a prompt cache.
    pub cached_input: u64,
    /// The part of `input` written to a prompt cache.
    pub cache_write: u64,
    /// Every output token, reasoning included.
    pub output: u64,
    /// The part of `output` spent on reasoning ("thinking").
    pub reasoning: u64,
}

impl TokenUsage {
    /// Adds `other` (per-response counts of a session are summed); saturates, never wraps.
    pub fn add(&mut self, other: &TokenUsage) {
        self.input = self.input.saturating_add(other.input);
        self.cached_input = self.cached_input.saturating_add(other.cached_input);
        self.cache_write = self.cache_write.saturating_add(other.cache_write);
        self.output = self.output.saturating_add(other.output);
        self.reasoning = self.reasoning.saturating_add(other.reasoning);
    }

    /// Whether every count is zero.
    pub fn is_zero(&self) -> bool {
        *self == TokenUsage::default()
    }
}

/// The provider API a metered response came from. A name this version does not know (a newer
/// filter's) reads as [`UsageApi::Other`], so a report is never refused for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageApi {
    /// OpenAI Chat Completions and the OpenAI-compatible ones (Gemini's, configured providers').
    ChatCompletions,
    /// OpenAI Responses.
    Responses,
    /// OpenAI Embeddings.
    Embeddings,
    /// Anthropic Messages.
    Messages,
    /// Gemini `generateContent` / `streamGenerateContent`.
    GenerateContent,
    /// OpenAI Realtime (WebSocket).
    Realtime,
    /// Gemini Live (WebSocket).
    Live,
    /// An API this version does not know.
    #[serde(other)]
    Other,
}

impl UsageApi {
    /// The wire spelling (also the stored and displayed one).
    pub fn as_str(self) -> &'static str {
        match self {
            UsageApi::ChatCompletions => "chat_completions",
            UsageApi::Responses => "responses",
            UsageApi::Embeddings => "embeddings",
            UsageApi::Messages => "messages",
            UsageApi::GenerateContent => "generate_content",
            UsageApi::Realtime => "realtime",
            UsageApi::Live => "live",
            UsageApi::Other => "other",
        }
    }
}

/// Input tokens above which a response is priced at a model's long-context tier (Gemini's and
/// Anthropic's 200k rule).
pub const LONG_CONTEXT_TOKENS: u64 = 200_000;

/// Longest model name a report carries (longer names are cut; providers' are far shorter).
pub const MAX_MODEL_LEN: usize = 128;

/// Token usage of one token's requests with the same provider, API, model, status and
/// streaming, summed over one worker's flush interval. Unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEntry {
    /// Token hash.
    pub hash: String,
    /// Provider name (`openai`, `anthropic`, `gemini`, or an operator-configured one).
    pub provider: String,
    /// The API the responses came from.
    pub api: UsageApi,
    /// The model the provider said answered (`""` when it did not say), at most
    /// [`MAX_MODEL_LEN`] bytes.
    pub model: String,
    /// The response's HTTP status (101 for WebSocket sessions).
    pub status: u16,
    /// Whether the responses were streamed (SSE or WebSocket).
    pub streamed: bool,
    /// Every response summed here had more than [`LONG_CONTEXT_TOKENS`] input tokens (priced at
    /// the long-context tier where a model has one; the filter never sums across the tiers).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub long_context: bool,
    /// Responses summed here.
    pub requests: u64,
    /// How many of them ended without their final usage (aborted streams, upstream errors,
    /// disconnects): their counts are what was seen before the end.
    pub incomplete: u64,
    /// The summed counts.
    pub usage: TokenUsage,
    /// Budget top-up of the incomplete requests (wire 1.2): for each request that ended without
    /// its final usage, its estimate minus the tokens seen, when positive; summed. Budgets charge
    /// an incomplete request max(seen, estimate), never just what was seen (an aborted stream
    /// may have been billed for more), as output tokens of this entry's model. The usage
    /// rollups (what the provider metered) do not include it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shortfall_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
