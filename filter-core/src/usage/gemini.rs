//! Gemini's `usageMetadata`, mapped to [`TokenUsage`]. `promptTokenCount` includes cached
//! content; tool-use prompt tokens are input too; `candidatesTokenCount` (generateContent) or
//! `responseTokenCount` (Live) **excludes** `thoughtsTokenCount`, which the normalised output
//! includes. In a stream every chunk may repeat a cumulative snapshot, complete only in the
//! last one: the last snapshot wins, never a sum.

use serde::Deserialize;

use super::tokens::TokenUsage;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: Option<u64>,
    cached_content_token_count: Option<u64>,
    candidates_token_count: Option<u64>,
    response_token_count: Option<u64>,
    thoughts_token_count: Option<u64>,
    tool_use_prompt_token_count: Option<u64>,
}

/// The usage in `json` (a `usageMetadata` object), or `None` if it is not one.
pub fn decode(json: &[u8]) -> Option<TokenUsage> {
    let meta: UsageMetadata = serde_json::from_slice::<Option<UsageMetadata>>(json).ok()??;
    let thoughts = meta.thoughts_token_count.unwrap_or(0);
    let answer = meta
        .candidates_token_count
        .or(meta.response_token_count)
        .unwrap_or(0);
    Some(TokenUsage {
        input: meta
            .prompt_token_count
            .unwrap_or(0)
            .saturating_add(meta.tool_use_prompt_token_count.unwrap_or(0)),
        cached_input: meta.cached_content_token_count.unwrap_or(0),
        cache_write: 0,
        output: answer.saturating_add(thoughts),
        reasoning: thoughts,
    })
}
