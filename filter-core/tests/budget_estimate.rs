//! No body panics the budget estimator: any bytes, and any JSON document (deep, wide, with the
//! reference members of every provider at any place), for every metered API.

#![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]

use proptest::prelude::*;
use ptk_filter_core::budget::estimate::{body_estimate, Bounds};
use ptk_wire::UsageApi;
use serde_json::{Map, Value};

const APIS: [UsageApi; 5] = [
    UsageApi::ChatCompletions,
    UsageApi::Responses,
    UsageApi::Embeddings,
    UsageApi::Messages,
    UsageApi::GenerateContent,
];

/// Member names the estimator reads, and some it does not.
const KEYS: [&str; 22] = [
    "model",
    "messages",
    "input",
    "contents",
    "system",
    "tools",
    "type",
    "source",
    "url",
    "image_url",
    "file_id",
    "fileData",
    "previous_response_id",
    "max_tokens",
    "n",
    "generationConfig",
    "maxOutputTokens",
    "candidateCount",
    "cachedContent",
    "input_schema",
    "args",
    "id",
];

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            Just("function".to_string()),
            Just("url".to_string()),
            ".{0,12}"
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(&KEYS[..]), inner), 0..6).prop_map(
                |members| {
                    let map: Map<String, Value> = members
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect();
                    Value::Object(map)
                }
            ),
        ]
    })
}

const BOUNDS: Bounds = Bounds {
    default_output: 4096,
    context: 1_000_000,
};

proptest! {
    #[test]
    fn no_bytes_panic_the_estimator(body in prop::collection::vec(any::<u8>(), 0..512)) {
        for api in APIS {
            let _ = body_estimate(&body, api, BOUNDS);
        }
    }

    #[test]
    fn a_readable_document_is_estimated_at_least_at_its_bytes(doc in json()) {
        let body = serde_json::to_vec(&doc).unwrap();
        for api in APIS {
            if let Ok(estimate) = body_estimate(&body, api, BOUNDS) {
                prop_assert!(estimate.tokens >= body.len() as u64);
                if estimate.referenced.is_some() {
                    prop_assert!(estimate.tokens >= BOUNDS.context);
                }
            }
        }
    }
}

/// Nesting past the parser's limit is unreadable, not a stack overflow.
#[test]
fn deep_nesting_is_unreadable() {
    let deep = format!(
        "{{\"input\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    for api in APIS {
        assert!(body_estimate(deep.as_bytes(), api, BOUNDS).is_err());
    }
}
