//! OpenAI's usage objects, mapped to [`TokenUsage`]. Chat Completions and Embeddings spell
//! them `prompt_tokens` / `completion_tokens` with `*_tokens_details`; Responses spells them
//! `input_tokens` / `output_tokens` with `input_tokens_details`; Realtime with
//! `input_token_details` (singular). OpenAI's input already includes cached tokens and its
//! output already includes reasoning tokens, which is the normalised definition. Every field
//! is optional here: older responses omit details, and a missing count is zero, not an error.

use serde::Deserialize;

use super::tokens::TokenUsage;

#[derive(Debug, Default, Deserialize)]
struct InputDetails {
    cached_tokens: Option<u64>,
    cache_write_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct OutputDetails {
    reasoning_tokens: Option<u64>,
}

/// Every spelling of OpenAI's usage object at once (unknown fields are ignored).
#[derive(Debug, Default, Deserialize)]
struct Usage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    prompt_tokens_details: Option<InputDetails>,
    input_tokens_details: Option<InputDetails>,
    input_token_details: Option<InputDetails>,
    completion_tokens_details: Option<OutputDetails>,
    output_tokens_details: Option<OutputDetails>,
}

/// The usage in `json` (an OpenAI usage object), or `None` if it is `null` or not one.
pub fn decode(json: &[u8]) -> Option<TokenUsage> {
    let usage: Option<Usage> = serde_json::from_slice(json).ok()?;
    let usage = usage?;
    let input_details = usage
        .prompt_tokens_details
        .or(usage.input_tokens_details)
        .or(usage.input_token_details)
        .unwrap_or_default();
    let output_details = usage
        .completion_tokens_details
        .or(usage.output_tokens_details)
        .unwrap_or_default();
    Some(TokenUsage {
        input: usage.prompt_tokens.or(usage.input_tokens).unwrap_or(0),
        cached_input: input_details.cached_tokens.unwrap_or(0),
        cache_write: input_details.cache_write_tokens.unwrap_or(0),
        output: usage.completion_tokens.or(usage.output_tokens).unwrap_or(0),
        reasoning: output_details.reasoning_tokens.unwrap_or(0),
    })
}

/// Whether a Responses stream event (`type`) ends one response and carries its final usage:
/// `response.completed`, `response.incomplete` and `response.failed` each carry the whole
/// `Response`; over a WebSocket one connection can carry many, each summed once.
pub fn is_terminal_response_event(event_type: &str) -> bool {
    matches!(
        event_type,
        "response.completed" | "response.incomplete" | "response.failed"
    )
}
