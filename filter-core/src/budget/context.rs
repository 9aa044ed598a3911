//! The context bound of a provider: the most input tokens one request can be billed when its
//! body references input it does not carry (`limits.context_tokens` in the plugin
//! configuration, per provider name, over these defaults). Each default is the largest context
//! window among the provider's current models, as its model documentation gives it:
//! - OpenAI: 1,050,000 (GPT-5.4 and later: 922K input + 128K output,
//!   platform.openai.com/docs/models);
//! - Anthropic: 1,000,000 (Claude Opus 4.6+, Sonnet 4.6+: docs.claude.com, "Context windows");
//! - Gemini: 1,048,576 (Gemini 2.5 Pro, 3 Pro input limit: ai.google.dev/gemini-api/docs/models);
//! - an operator-configured OpenAI-compatible provider: the largest of these, 1,050,000 (its
//!   models are unknown here: set it per provider when they are larger).

use ptk_wire::Provider;

/// OpenAI's default context bound.
pub const OPENAI_CONTEXT_TOKENS: u64 = 1_050_000;
/// Anthropic's default context bound.
pub const ANTHROPIC_CONTEXT_TOKENS: u64 = 1_000_000;
/// Gemini's default context bound.
pub const GEMINI_CONTEXT_TOKENS: u64 = 1_048_576;

/// The default context bound of `provider`.
pub fn default_context_tokens(provider: Provider) -> u64 {
    match provider {
        Provider::Openai | Provider::Configured(_) => OPENAI_CONTEXT_TOKENS,
        Provider::Anthropic => ANTHROPIC_CONTEXT_TOKENS,
        Provider::Gemini => GEMINI_CONTEXT_TOKENS,
    }
}
