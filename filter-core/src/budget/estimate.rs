//! A request's budget estimate: its body's bytes (an upper bound on its input tokens for every
//! provider's tokenizer) plus the output cap the body names (`max_tokens`,
//! `max_output_tokens`, `max_completion_tokens`, Gemini's `generationConfig.maxOutputTokens`),
//! else the configured default of the provider (`limits.default_output_tokens`,
//! `limits.output_tokens`).

use serde::Deserialize;

/// The output caps a JSON body may name, read with serde (escapes decoded; a duplicate key
/// makes the body unreadable, and the default cap applies).
#[derive(Deserialize)]
struct Caps {
    max_tokens: Option<u64>,
    max_output_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    #[serde(rename = "generationConfig", alias = "generation_config")]
    generation: Option<Generation>,
}

/// Gemini's `generationConfig` (protobuf JSON also accepts the field's own snake_case name).
#[derive(Deserialize)]
struct Generation {
    #[serde(rename = "maxOutputTokens", alias = "max_output_tokens")]
    max_output_tokens: Option<u64>,
}

/// The largest output cap `body` names, `None` if it names none or is not a JSON object we
/// can read. The largest: a body naming two caps is bounded by neither alone.
pub fn output_cap(body: &[u8]) -> Option<u64> {
    let caps: Caps = serde_json::from_slice(body).ok()?;
    let gemini = caps.generation.and_then(|g| g.max_output_tokens);
    [
        caps.max_tokens,
        caps.max_output_tokens,
        caps.max_completion_tokens,
        gemini,
    ]
    .into_iter()
    .flatten()
    .max()
}

/// The estimate of a request: `input_bytes` plus its output cap, or `default_cap`.
pub fn estimate(input_bytes: u64, cap: Option<u64>, default_cap: u64) -> u64 {
    input_bytes.saturating_add(cap.unwrap_or(default_cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_providers_cap_is_read_and_the_largest_wins() {
        assert_eq!(output_cap(br#"{"model":"m","max_tokens":100}"#), Some(100));
        assert_eq!(output_cap(br#"{"max_output_tokens":7}"#), Some(7));
        assert_eq!(output_cap(br#"{"max_completion_tokens":9}"#), Some(9));
        let gemini = br#"{"generationConfig":{"maxOutputTokens":64}}"#;
        assert_eq!(output_cap(gemini), Some(64));
        let snake = br#"{"generation_config":{"max_output_tokens":65}}"#;
        assert_eq!(output_cap(snake), Some(65));
        let two = br#"{"max_tokens":10,"max_completion_tokens":30}"#;
        assert_eq!(output_cap(two), Some(30));
        // Escaped key names are decoded.
        assert_eq!(output_cap(br#"{"max\u005ftokens":5}"#), Some(5));
    }

    #[test]
    fn no_readable_cap_means_the_default() {
        assert_eq!(output_cap(br#"{"model":"m"}"#), None);
        assert_eq!(output_cap(b"not json"), None);
        // A duplicate cap is not guessed at: the default applies.
        assert_eq!(output_cap(br#"{"max_tokens":1,"max_tokens":900}"#), None);
        assert_eq!(output_cap(br#"{"max_tokens":-1}"#), None);
        assert_eq!(estimate(100, None, 4096), 4196);
        assert_eq!(estimate(100, Some(5), 4096), 105);
        assert_eq!(estimate(u64::MAX, Some(5), 1), u64::MAX);
    }
}
