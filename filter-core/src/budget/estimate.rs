//! A request's budget estimate: its input plus the output cap the body names (`max_tokens`,
//! `max_output_tokens`, `max_completion_tokens`, Gemini's `generationConfig.maxOutputTokens`),
//! else the configured default of the provider (`limits.default_output_tokens`,
//! `limits.output_tokens`), times the completions it asks for (`n`, `best_of`, Gemini's
//! `candidateCount`): each is billed up to the cap.
//!
//! The input is the body's bytes (an upper bound on the input tokens it carries for every
//! provider's tokenizer), unless the body references input it does not carry (a stored
//! conversation, a file, a fetched URL, a server-side tool: [`super::referenced`]): then the
//! provider's context bound (`limits.context_tokens`). The body is read strictly
//! ([`super::strict`]): one the filter cannot read as the provider does is [`Unreadable`], and
//! refused under a budget rather than estimated with a guess.

use ptk_wire::UsageApi;
use serde::Deserialize;
use serde_json::Value;

use super::referenced::{referenced, Reference};
use super::strict::parse_strict;

/// The output caps and completion counts a JSON body may name (read from the strictly parsed
/// body: escapes decoded, no key repeated). Values are read as the providers read them
/// ([`count`]).
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

fn named(body: &Value) -> Option<Named> {
    let caps = Caps::deserialize(body).ok()?;
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

/// The estimate of a request whose body cannot be read: `input_bytes` plus its output cap, or
/// `default_cap`.
pub fn estimate(input_bytes: u64, cap: Option<u64>, default_cap: u64) -> u64 {
    input_bytes.saturating_add(cap.unwrap_or(default_cap))
}

/// What bounds a provider's request where its body does not: the configured defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The output tokens of a body that names no cap (`limits.output_tokens`).
    pub default_output: u64,
    /// The input tokens of a body that references input (`limits.context_tokens`).
    pub context: u64,
}

/// A budgeted body the filter cannot read as the provider does (not a JSON object, a key
/// repeated, invalid UTF-8, a cap object of the wrong type): its cap, or what it references,
/// could be read one way here and another upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable;

/// A body's estimate, and the input it references (why its input is the context bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Tokens to spend from the grant.
    pub tokens: u64,
    /// The first input the body references without carrying it, if any.
    pub referenced: Option<Reference>,
}

/// The estimate of a request of `api` whose whole `body` was read: its input (bytes, or the
/// context bound when it references input) plus its output cap (or the default) times the
/// completions it asks for (the prompt is billed once, each completion up to the cap).
pub fn body_estimate(body: &[u8], api: UsageApi, bounds: Bounds) -> Result<Estimate, Unreadable> {
    let value = parse_strict(body).ok_or(Unreadable)?;
    let named = named(&value).ok_or(Unreadable)?;
    let bytes = u64::try_from(body.len()).unwrap_or(u64::MAX);
    let found = referenced(api, &value);
    let input = match found {
        Some(_) => bytes.max(bounds.context),
        None => bytes,
    };
    let output = named
        .cap
        .unwrap_or(bounds.default_output)
        .saturating_mul(named.completions);
    Ok(Estimate {
        tokens: input.saturating_add(output),
        referenced: found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest cap a readable body names.
    fn output_cap(body: &[u8]) -> Option<u64> {
        named(&parse_strict(body)?)?.cap
    }

    /// The estimate of a readable Chat Completions body with `default_cap`.
    fn body_estimate(body: &[u8], default_cap: u64) -> u64 {
        let bounds = Bounds {
            default_output: default_cap,
            context: 1_000_000,
        };
        match super::body_estimate(body, UsageApi::ChatCompletions, bounds) {
            Ok(estimate) => estimate.tokens,
            Err(Unreadable) => unreachable!("{}", String::from_utf8_lossy(body)),
        }
    }

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

    #[test]
    fn a_body_the_provider_may_read_otherwise_is_unreadable() {
        let bounds = Bounds {
            default_output: 4096,
            context: 1_000_000,
        };
        let unreadable: [&[u8]; 7] = [
            // Last-key-wins servers honour the larger cap.
            br#"{"max_tokens":1,"messages":[],"max_tokens":90000}"#,
            br#"{"generationConfig":{"maxOutputTokens":1,"max_output_tokens":90000}}"#,
            b"{\"max_tokens\":1,\"messages\":[{\"content\":\"\xff\"}]}",
            b"not json",
            b"",
            br#"[{"max_tokens":1}]"#,
            br#"{"generationConfig":"x"}"#,
        ];
        for body in unreadable {
            let got = super::body_estimate(body, UsageApi::ChatCompletions, bounds);
            assert_eq!(got, Err(Unreadable), "{}", String::from_utf8_lossy(body));
        }
        // A byte order mark is skipped, as some parsers do.
        let bom = b"\xEF\xBB\xBF{\"max_tokens\":5}";
        assert_eq!(body_estimate(bom, 4096), 3 + 16 + 5);
    }

    #[test]
    fn referenced_input_is_estimated_at_the_context_bound() {
        let bounds = Bounds {
            default_output: 4096,
            context: 1_000_000,
        };
        let body = br#"{"input":"and then?","max_output_tokens":16,"previous_response_id":"r"}"#;
        let got = super::body_estimate(body, UsageApi::Responses, bounds);
        let want = Estimate {
            tokens: 1_000_016,
            referenced: Some(Reference("previous_response_id")),
        };
        assert_eq!(got, Ok(want));
        // The bytes, when they are more than the bound; completions multiply only the output.
        let small = Bounds {
            context: 10,
            ..bounds
        };
        let n = br#"{"n":2,"max_tokens":5,"messages":[],"web_search_options":{}}"#;
        let got = super::body_estimate(n, UsageApi::ChatCompletions, small);
        assert_eq!(got.map(|e| e.tokens), Ok(60 + 10));
        // Carried input: the bytes.
        let plain = br#"{"input":"hi","max_output_tokens":16}"#;
        let got = super::body_estimate(plain, UsageApi::Responses, bounds);
        assert_eq!(got.map(|e| (e.tokens, e.referenced)), Ok((37 + 16, None)));
    }
}
