//! A request's budget estimate: its body's bytes (an upper bound on its input tokens for every
//! provider's tokenizer) plus the output cap the body names (`max_tokens`,
//! `max_output_tokens`, `max_completion_tokens`, Gemini's `generationConfig.maxOutputTokens`),
//! else the configured default of the provider (`limits.default_output_tokens`,
//! `limits.output_tokens`), times the completions it asks for (`n`, `best_of`, Gemini's
//! `candidateCount`): each is billed up to the cap.

use serde::Deserialize;
use serde_json::Value;

/// The output caps and completion counts a JSON body may name, read with serde (escapes
/// decoded; a duplicate key makes the body unreadable, and the default cap applies). Values
/// are read as the providers read them ([`count`]).
#[derive(Deserialize)]
struct Caps {
    max_tokens: Option<Value>,
    max_output_tokens: Option<Value>,
    max_completion_tokens: Option<Value>,
    /// OpenAI Chat Completions' and Completions' choices, each up to the cap.
    n: Option<Value>,
    /// OpenAI Completions: generated (and billed) server-side, `n` of them returned.
    best_of: Option<Value>,
    #[serde(rename = "generationConfig", alias = "generation_config")]
    generation: Option<Generation>,
}

/// Gemini's `generationConfig` (protobuf JSON also accepts the field's own snake_case name).
#[derive(Deserialize)]
struct Generation {
    #[serde(rename = "maxOutputTokens", alias = "max_output_tokens")]
    max_output_tokens: Option<Value>,
    #[serde(rename = "candidateCount", alias = "candidate_count")]
    candidate_count: Option<Value>,
}

/// A count as a provider reads it: a JSON integer, an integral number (`100.0`, `1e3`), or a
/// decimal string (protobuf JSON, so Gemini, takes `"65536"` for an integer field). Anything
/// else the provider refuses, so it spends nothing.
fn count(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Number(n) => n.as_u64().or_else(|| {
            let f = n.as_f64()?;
            // Saturates: a count too large to hold is as good as unbounded.
            (f >= 0.0 && f.fract() == 0.0).then_some(f as u64)
        }),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<u64>()
                .ok()
                .or_else(|| count(Some(&Value::Number(s.parse().ok()?))))
        }
        _ => None,
    }
}

/// What a readable body names: its largest output cap and its number of completions.
struct Named {
    cap: Option<u64>,
    completions: u64,
}

fn named(body: &[u8]) -> Option<Named> {
    let caps: Caps = serde_json::from_slice(body).ok()?;
    let generation = caps.generation.as_ref();
    let cap = [
        count(caps.max_tokens.as_ref()),
        count(caps.max_output_tokens.as_ref()),
        count(caps.max_completion_tokens.as_ref()),
        generation.and_then(|g| count(g.max_output_tokens.as_ref())),
    ]
    .into_iter()
    .flatten()
    .max();
    let completions = [
        count(caps.n.as_ref()),
        count(caps.best_of.as_ref()),
        generation.and_then(|g| count(g.candidate_count.as_ref())),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(1)
    .max(1);
    Some(Named { cap, completions })
}

/// The largest output cap `body` names, `None` if it names none or is not a JSON object we
/// can read. The largest: a body naming two caps is bounded by neither alone.
pub fn output_cap(body: &[u8]) -> Option<u64> {
    named(body)?.cap
}

/// The estimate of a request: `input_bytes` plus its output cap, or `default_cap`.
pub fn estimate(input_bytes: u64, cap: Option<u64>, default_cap: u64) -> u64 {
    input_bytes.saturating_add(cap.unwrap_or(default_cap))
}

/// The estimate of a request whose whole `body` was read: its bytes plus its output cap (or
/// `default_cap`) times the completions it asks for (the prompt is billed once, each
/// completion up to the cap).
pub fn body_estimate(body: &[u8], default_cap: u64) -> u64 {
    let input = u64::try_from(body.len()).unwrap_or(u64::MAX);
    let (cap, completions) = match named(body) {
        Some(n) => (n.cap, n.completions),
        None => (None, 1),
    };
    let output = cap.unwrap_or(default_cap).saturating_mul(completions);
    input.saturating_add(output)
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

    #[test]
    fn every_completion_asked_for_is_estimated_up_to_the_cap() {
        // OpenAI Chat Completions' n: each choice up to max_tokens.
        let chat = br#"{"max_tokens":100,"n":8}"#;
        assert_eq!(body_estimate(chat, 4096), 24 + 800);
        // Completions' best_of is generated (and billed) server-side, n of them returned.
        let legacy = br#"{"max_tokens":100,"n":1,"best_of":20}"#;
        assert_eq!(body_estimate(legacy, 4096), 37 + 2000);
        // Gemini's candidateCount; the default cap is multiplied too.
        let gemini = br#"{"generationConfig":{"maxOutputTokens":64,"candidateCount":4}}"#;
        assert_eq!(body_estimate(gemini, 4096), 62 + 256);
        assert_eq!(body_estimate(br#"{"n":3}"#, 1000), 7 + 3000);
        // n 0 (refused by the provider) is no discount.
        assert_eq!(body_estimate(br#"{"max_tokens":10,"n":0}"#, 1), 23 + 10);
        assert_eq!(body_estimate(b"not json", 50), 8 + 50);
        let huge = br#"{"max_tokens":100,"n":18446744073709551615}"#;
        assert_eq!(body_estimate(huge, 1), u64::MAX);
    }

    #[test]
    fn caps_are_read_in_every_spelling_a_provider_accepts() {
        // Protobuf JSON (Gemini) takes integers as strings; integral numbers are integers.
        let string = br#"{"generationConfig":{"maxOutputTokens":"65536"}}"#;
        assert_eq!(output_cap(string), Some(65536));
        assert_eq!(output_cap(br#"{"max_tokens":60000.0}"#), Some(60000));
        assert_eq!(output_cap(br#"{"max_tokens":6e4}"#), Some(60000));
        assert_eq!(output_cap(br#"{"max_tokens":"6e4"}"#), Some(60000));
        let count = br#"{"generationConfig":{"maxOutputTokens":10,"candidateCount":"8"}}"#;
        assert_eq!(body_estimate(count, 1), 64 + 80);
        // Not a count: the provider refuses it (nothing spent), the default applies.
        assert_eq!(output_cap(br#"{"max_tokens":1.5}"#), None);
        assert_eq!(output_cap(br#"{"max_tokens":true}"#), None);
        assert_eq!(output_cap(br#"{"max_tokens":null}"#), None);
    }
}
