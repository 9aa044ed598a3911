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
}

impl RawRow {
    /// The listing, or `Corrupt` naming the column, so callers fail closed instead of guessing.
    pub(super) fn decode(self) -> Result<TokenListing, StoreError> {
        let hash = self.hash;
        let corrupt = |what: &str| StoreError::Corrupt(format!("{what} of token {:.12}", hash));
        let providers: Vec<Provider> =
            serde_json::from_str(&self.providers).map_err(|_| corrupt("providers"))?;
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
        let record = TokenRecord {
            label: self.label,
            last4: self.last4,
            providers,
            status,
            created_at: self.created_at,
            expires_at: self.expires_at,
            rate_limit,
            hash,
        };
        Ok(TokenListing {
            record,
            last_used: self.last_used,
        })
    }
}
