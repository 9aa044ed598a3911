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
