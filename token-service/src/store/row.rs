//! A stored token row as plain values, and the one decoder both backends use, so SQLite and
//! PostgreSQL refuse exactly the same corrupt rows.

use ptk_wire::Provider;

use super::{StoreError, TokenListing, TokenRecord, TokenStatus};
use crate::ratelimit::RateLimit;

/// The columns of a token row joined with its last-used stamp, as read from a backend.
pub(super) struct RawRow {
    pub hash: String,
    pub label: String,
    pub last4: String,
    /// JSON array of provider names.
    pub providers: String,
    pub status: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub rate_limit: Option<i64>,
    pub rate_window_s: Option<i64>,
    pub last_used: Option<String>,
    pub key_pool: Option<String>,
    /// JSON array of model names and patterns; `None`: any model.
    pub models: Option<String>,
}

impl RawRow {
    /// The listing, or `Corrupt` naming the column, so callers fail closed instead of guessing.
    pub(super) fn decode(self) -> Result<TokenListing, StoreError> {
        let hash = self.hash;
        let corrupt = |what: &str| StoreError::Corrupt(format!("{what} of token {:.12}", hash));
        // A name this service does not know (a configured provider since removed from
        // PTK_PROVIDERS) grants nothing: it is left out of the record, so the token keeps
        // working for its other providers and still lists. The stored scope is untouched (no
        // write rewrites it), so configuring the provider again brings it back.
        let names: Vec<String> =
            serde_json::from_str(&self.providers).map_err(|_| corrupt("providers"))?;
        let providers: Vec<Provider> = names.iter().filter_map(|n| Provider::parse(n)).collect();
        let status = TokenStatus::parse(&self.status).ok_or_else(|| corrupt("status"))?;
        let positive = |v: i64, what: &str| {
            u32::try_from(v)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| corrupt(what))
        };
        let rate_limit = match (self.rate_limit, self.rate_window_s) {
            (Some(limit), Some(window)) => Some(RateLimit {
                limit: positive(limit, "rate_limit")?,
                window_s: positive(window, "rate_window_s")?,
            }),
            (None, None) => None,
            _ => return Err(corrupt("rate limit columns")),
        };
        // An allow-list that does not read back as one must not become "any model".
        let models = match self.models.as_deref() {
            None => None,
            Some(text) => Some(
                serde_json::from_str::<Vec<String>>(text)
                    .ok()
                    .filter(|m| !m.is_empty())
                    .ok_or_else(|| corrupt("models"))?,
            ),
        };
        let record = TokenRecord {
            label: self.label,
            last4: self.last4,
            providers,
            status,
            created_at: self.created_at,
            expires_at: self.expires_at,
            rate_limit,
            hash,
            key_pool: self.key_pool,
            models,
        };
        Ok(TokenListing {
            record,
            last_used: self.last_used,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn row(providers: &str) -> RawRow {
        RawRow {
            hash: "a".repeat(64),
            label: "l".into(),
            last4: "WXYZ".into(),
            providers: providers.into(),
            status: "active".into(),
            created_at: "2026-11-29T00:00:00.000Z".into(),
            expires_at: None,
            rate_limit: None,
            rate_window_s: None,
            last_used: None,
            key_pool: None,
            models: None,
        }
    }

    #[test]
    fn a_provider_no_longer_configured_grants_nothing_and_the_row_still_reads() {
        let listing = row(r#"["openai","removed-llm","gemini"]"#)
            .decode()
            .unwrap();
        assert_eq!(
            listing.record.providers,
            vec![Provider::Openai, Provider::Gemini]
        );
        let only_removed = row(r#"["removed-llm"]"#).decode().unwrap();
        assert!(only_removed.record.providers.is_empty());
        // What is not a list of names is still corrupt (fail closed).
        for bad in [r#"{"openai":true}"#, r#"["openai",7]"#, "not json"] {
            assert!(
                matches!(row(bad).decode(), Err(StoreError::Corrupt(_))),
                "{bad}"
            );
        }
    }
}
