//! Revalidation of tokens whose requests are still open (long SSE streams, WebSockets): the
//! filter asks, in one batch per tick per worker, whether tokens it forwarded earlier are still
//! valid, and closes the streams of those that are not. Unlike a check, a revalidation charges
//! no rate-limit unit and carries no key.
//!
//! Unknown fields are ignored in both directions, so either side can be upgraded first.

use serde::{Deserialize, Serialize};

use crate::{DenyReason, Limits, Provider};

/// Path of the revalidation endpoint on the token-service (same listener and secret as
/// [`crate::CHECK_PATH`]).
pub const REVALIDATE_PATH: &str = "/v1/revalidate";

/// Most entries one revalidation may carry; the token-service refuses larger batches.
pub const MAX_REVALIDATE_ENTRIES: usize = 1024;

/// One token the filter still has open requests for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevalidateEntry {
    /// Lowercase hex SHA-256 of the token.
    pub hash: String,
    /// The coarse provider its open requests go to.
    pub provider: Provider,
}

/// `POST /v1/revalidate` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevalidateRequest {
    /// The tokens to revalidate.
    pub entries: Vec<RevalidateEntry>,
}

/// The answer for one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "lowercase")]
pub enum Revalidation {
    /// Still valid; the filter may trust this for `ttl_ms` (never past the token's expiry).
    Valid {
        /// Token hash, as asked.
        hash: String,
        /// Provider, as asked.
        provider: Provider,
        /// How long (ms) the answer holds.
        ttl_ms: u64,
        /// The token's limits now (wire 1.1; `None`: none). An open request whose model they
        /// no longer allow is closed like a refused token's; a filter that does not know
        /// this field never forwarded a limited token's request (it refuses `allow_limited`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limits: Option<Limits>,
    },
    /// Refused now (disabled, deleted, expired, out of scope, ...): close its streams.
    Refused {
        /// Token hash, as asked.
        hash: String,
        /// Provider, as asked.
        provider: Provider,
        /// Why, with the same meaning as a check's deny.
        reason: DenyReason,
    },
}

/// `POST /v1/revalidate` answer: one verdict per entry, in any order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevalidateResponse {
    /// The verdicts.
    pub verdicts: Vec<Revalidation>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_parse_and_ignore_unknown_fields() {
        let body = r#"{"verdicts":[
            {"verdict":"valid","hash":"aa","provider":"openai","ttl_ms":1000,"new":1},
            {"verdict":"refused","hash":"bb","provider":"gemini","reason":"expired"}
        ],"also":"new"}"#;
        let parsed: RevalidateResponse = serde_json::from_str(body).unwrap();
        assert_eq!(
            parsed.verdicts,
            vec![
                Revalidation::Valid {
                    hash: "aa".into(),
                    provider: Provider::Openai,
                    ttl_ms: 1000,
                    limits: None,
                },
                Revalidation::Refused {
                    hash: "bb".into(),
                    provider: Provider::Gemini,
                    reason: DenyReason::Expired
                },
            ]
        );
        let limited = r#"{"verdicts":[{"verdict":"valid","hash":"aa","provider":"openai",
            "ttl_ms":1,"limits":{"models":["gpt-5*"]}}]}"#;
        let parsed: RevalidateResponse = serde_json::from_str(limited).unwrap();
        let Some(Revalidation::Valid { limits, .. }) = parsed.verdicts.first() else {
            panic!("{parsed:?}");
        };
        assert_eq!(
            limits.clone().and_then(|l| l.models),
            Some(vec!["gpt-5*".to_string()])
        );
        let odd = r#"{"verdicts":[{"verdict":"maybe","hash":"a","provider":"openai"}]}"#;
        assert!(serde_json::from_str::<RevalidateResponse>(odd).is_err());
    }
}
