//! What a forwarded request adds to Envoy's access log: its provider, the token that sent it
//! (by a prefix of its hash, generated tokens only), and when its call is metered the model and
//! the usage. The filter writes each as a proxy-wasm property, which Envoy keeps in the
//! request's filter state as `wasm.<name>`; the access log prints it with
//! `%FILTER_STATE(wasm.<name>:PLAIN)%` ("-" when unset).
//!
//! Never a token or a key: only a hash prefix, and only of a generated token (192 random bits:
//! its unsalted hash reveals nothing). A custom token may be weak, and a prefix of its unsalted
//! SHA-256 would confirm a dictionary guess offline as well as the whole hash: it logs as
//! `custom`. Every value is reduced to characters that cannot forge another field or line.

use ptk_wire::{has_generated_shape, TokenUsage};

/// Filter-state name of the provider a request was forwarded to (`openai`, or a configured
/// provider's name).
pub const PROVIDER_FIELD: &str = "ptk_provider";
/// Filter-state name of the token field ([`token_field`]).
pub const TOKEN_FIELD: &str = "ptk_token";
/// Filter-state name of the model a metered response named ([`model_field`]).
pub const MODEL_FIELD: &str = "ptk_model";
/// Filter-state name of a metered response's usage ([`usage_field`]).
pub const USAGE_FIELD: &str = "ptk_usage";

/// Hex characters of the hash a generated token logs as: 48 bits, as many as `tokens usage`
/// and the admin API need to find it among millions, never ambiguous in practice.
pub const HASH_PREFIX_LEN: usize = 12;

/// Longest model name logged; a longer one is cut (provider model names are far shorter).
pub const MODEL_FIELD_MAX: usize = 96;

/// The token as the access log names it: the first [`HASH_PREFIX_LEN`] hex characters of
/// `hash` (its SHA-256, lowercase hex) for a generated token (`ptk_` and 32 URL-safe
/// characters), `custom` for any other token.
pub fn token_field<'h>(token: &str, hash: &'h str) -> &'h str {
    if has_generated_shape(token) {
        hash.get(..HASH_PREFIX_LEN).unwrap_or("custom")
    } else {
        "custom"
    }
}

/// A model name as logged: at most [`MODEL_FIELD_MAX`] characters, each outside
/// `[A-Za-z0-9._:/@+-]` replaced by `_` (the provider chose the name, often echoing the
/// client's: no space, quote or line break may reach the log); `-` when empty.
pub fn model_field(model: &str) -> String {
    if model.is_empty() {
        return "-".into();
    }
    model
        .chars()
        .take(MODEL_FIELD_MAX)
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '_' | ':' | '/' | '@' | '+' | '-' => c,
            _ => '_',
        })
        .collect()
}

/// A metered response's usage as logged, e.g.
/// `input=120,cached=100,cache_write=7,output=30,reasoning=12,complete` (OpenTelemetry GenAI
/// definitions: input includes cached and cache writes, output includes reasoning);
/// `incomplete` when the response ended
/// without its final usage (the counts are what was seen).
pub fn usage_field(usage: &TokenUsage, complete: bool) -> String {
    let end = if complete { "complete" } else { "incomplete" };
    format!(
        "input={},cached={},cache_write={},output={},reasoning={},{end}",
        usage.input, usage.cached_input, usage.cache_write, usage.output, usage.reasoning
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_generated_token_logs_as_its_hash_prefix_any_other_as_custom() {
        let generated = format!("ptk_{}", "aB3-_".repeat(6) + "xy");
        assert_eq!(generated.len(), 36);
        assert_eq!(token_field(&generated, HASH), "0123456789ab");
        for other in [
            "my-team-secret-2024",
            "ptk_short",
            &format!("{generated}z"),
            &format!("PTK_{}", &generated[4..]),
            &format!("ptk_{}", "a".repeat(31) + "="),
            "",
        ] {
            assert_eq!(token_field(other, HASH), "custom", "{other}");
        }
        assert_eq!(token_field(&generated, "short"), "custom");
    }

    #[test]
    fn a_model_name_cannot_forge_a_field_or_a_line() {
        assert_eq!(model_field("gpt-4o-2024-08-06"), "gpt-4o-2024-08-06");
        assert_eq!(
            model_field("models/gemini-2.5-flash"),
            "models/gemini-2.5-flash"
        );
        assert_eq!(
            model_field("x\" 200 ptk_token=abc\n[fake] line"),
            "x__200_ptk_token_abc__fake__line"
        );
        assert_eq!(model_field("é"), "_");
        assert_eq!(model_field(&"m".repeat(500)).len(), MODEL_FIELD_MAX);
        assert_eq!(model_field(""), "-");
    }

    #[test]
    fn usage_prints_every_count_and_whether_it_is_complete() {
        let usage = TokenUsage {
            input: 120,
            cached_input: 100,
            cache_write: 7,
            output: 30,
            reasoning: 12,
        };
        assert_eq!(
            usage_field(&usage, true),
            "input=120,cached=100,cache_write=7,output=30,reasoning=12,complete"
        );
        assert!(usage_field(&TokenUsage::default(), false).ends_with(",incomplete"));
    }
}
