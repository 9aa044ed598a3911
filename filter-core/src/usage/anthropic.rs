//! Anthropic's usage objects, mapped to [`TokenUsage`]. `input_tokens` excludes cache reads
//! and writes (the normalised input is the sum of all three); `output_tokens` includes
//! thinking. In a stream, `message_start` carries the first counts and every `message_delta`
//! carries **cumulative** values for the fields it has, which overwrite (never add to) what
//! came before; a field a delta omits keeps its earlier value.

use serde::Deserialize;

use super::tokens::TokenUsage;

#[derive(Debug, Default, Clone, Copy, Deserialize)]
struct OutputDetails {
    thinking_tokens: Option<u64>,
}

/// Anthropic's counts as sent; each may be absent from a `message_delta`.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct AnthropicUsage {
    input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    output_tokens_details: Option<OutputDetails>,
}

impl AnthropicUsage {
    /// The counts in `json` (an Anthropic usage object), or `None` if it is not one.
    pub fn decode(json: &[u8]) -> Option<AnthropicUsage> {
        serde_json::from_slice::<Option<AnthropicUsage>>(json).ok()?
    }

    /// Overwrites every count `newer` carries (cumulative deltas), keeping the others.
    pub fn overwrite_with(&mut self, newer: &AnthropicUsage) {
        fn keep(old: &mut Option<u64>, new: Option<u64>) {
            if new.is_some() {
                *old = new;
            }
        }
        keep(&mut self.input_tokens, newer.input_tokens);
        keep(
            &mut self.cache_creation_input_tokens,
            newer.cache_creation_input_tokens,
        );
        keep(
            &mut self.cache_read_input_tokens,
            newer.cache_read_input_tokens,
        );
        keep(&mut self.output_tokens, newer.output_tokens);
        let thinking = newer.output_tokens_details.and_then(|d| d.thinking_tokens);
        if thinking.is_some() {
            self.output_tokens_details = Some(OutputDetails {
                thinking_tokens: thinking,
            });
        }
    }

    /// In the normalised definitions.
    pub fn normalised(&self) -> TokenUsage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let write = self.cache_creation_input_tokens.unwrap_or(0);
        TokenUsage {
            input: self
                .input_tokens
                .unwrap_or(0)
                .saturating_add(read)
                .saturating_add(write),
            cached_input: read,
            cache_write: write,
            output: self.output_tokens.unwrap_or(0),
            reasoning: self
                .output_tokens_details
                .and_then(|d| d.thinking_tokens)
                .unwrap_or(0),
        }
    }
}
