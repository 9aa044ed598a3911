//! Shared helpers for the filter-core table tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ptk_filter_core::key_pool::first_key;
use ptk_filter_core::RequestHead;

/// Builds a request head from `(name, value)` pairs.
pub fn head(pairs: &[(&str, &str)]) -> RequestHead {
    RequestHead::new(
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    )
}

use ptk_filter_core::guard::outbound;
use ptk_filter_core::{
    decide_check_response, decide_headers, CheckDecision, FilterConfig, HeadersDecision, Refused,
};
use ptk_wire::Provider;

/// What the filter does with a request whose token the token-service allows with `key`.
#[derive(Debug)]
pub enum Outcome {
    /// Forwarded: the headers as they go upstream (head with the plan applied).
    Forwarded(Vec<(String, String)>),
    /// Relayed untouched as a provider ephemeral credential: the headers as they go upstream.
    Passthrough(Vec<(String, String)>),
    /// An OpenAI client secret, as it would go upstream if the proxy had seen it minted for a
    /// valid token (the worst case: an unknown secret gets 401 instead).
    Secret(Vec<(String, String)>),
    /// A keyless upload leg, as it would go upstream if its session were known and its token
    /// valid (the worst case: an unknown session gets 401 instead).
    Leg(Vec<(String, String)>),
    /// Answered locally.
    Refused(Refused),
}

/// Runs the core on `head` as the shim would, assuming the token-service allows the token
/// with `key` (the cached-verdict path: `PendingCheck::allow`).
pub fn run(config: &FilterConfig, head: &RequestHead, key: &str) -> Outcome {
    run_on(config, head, key, false)
}

/// [`run`], on the fresh-check path (`decide_check_response` with an allow) when `fresh`.
pub fn run_on(config: &FilterConfig, head: &RequestHead, key: &str, fresh: bool) -> Outcome {
    let upstream = |plan| {
        outbound(head, plan)
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    };
    match decide_headers(config, head) {
        HeadersDecision::Preflight(_) => panic!("unexpected preflight"),
        HeadersDecision::UploadLeg(leg) => {
            match leg.allow(head, &config.upstream(Provider::Gemini).authority) {
                Ok(plan) => Outcome::Leg(upstream(&plan)),
                Err(refused) => Outcome::Refused(refused),
            }
        }
        HeadersDecision::Passthrough(plan) => Outcome::Passthrough(upstream(&plan)),
        HeadersDecision::ClientSecret(secret) => {
            match secret.allow(head, config.upstream(Provider::Openai)) {
                Ok(plan) => Outcome::Secret(upstream(&plan)),
                Err(refused) => Outcome::Refused(refused),
            }
        }
        HeadersDecision::Reply(refused) => Outcome::Refused(refused),
        HeadersDecision::Check(pending) if fresh => {
            let allow = serde_json::json!({"verdict": "allow", "key": key, "cache_ttl_ms": 1000});
            let body = serde_json::to_vec(&allow).unwrap_or_default();
            match decide_check_response(
                config,
                head,
                &pending,
                Some(200),
                Some(&body),
                1,
                first_key,
            ) {
                CheckDecision::Forward { plan, .. } => Outcome::Forwarded(upstream(&plan)),
                CheckDecision::Refuse { refused, .. } | CheckDecision::Reply { refused, .. } => {
                    Outcome::Refused(refused)
                }
            }
        }
        HeadersDecision::Check(pending) => match pending.allow(config, head, key) {
            Ok(plan) => Outcome::Forwarded(upstream(&plan)),
            Err(refused) => Outcome::Refused(refused),
        },
    }
}

/// Parses a plugin config, panicking on error (tests only).
pub fn config(json: &str) -> FilterConfig {
    FilterConfig::parse(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"))
}

/// True when `needle` occurs in any header name or value, raw or percent-decoded (up to three
/// layers; in the path also with `+` as a space), ignoring ASCII case: the test-side twin of
/// the final guard.
pub fn anywhere(headers: &[(String, String)], needle: &str) -> bool {
    let needle = needle.to_ascii_lowercase();
    headers.iter().any(|(name, value)| {
        let mut layers = vec![name.to_ascii_lowercase(), value.to_ascii_lowercase()];
        for plus in [false, name == ":path"] {
            let mut text = value.clone();
            for _ in 0..3 {
                let spaced = if plus {
                    text.replace('+', " ")
                } else {
                    text.clone()
                };
                text = percent_encoding::percent_decode_str(&spaced)
                    .decode_utf8_lossy()
                    .into_owned();
                layers.push(text.to_ascii_lowercase());
            }
        }
        layers.iter().any(|l| l.contains(&needle))
    })
}
