//! How a token looks as JSON, one shape for the admin API and the CLI's `--json` (create and
//! list). Never carries a real key; the plaintext only in [`Created`], once.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::{TokenListing, TokenRecord};

/// A token's quota as `{"count", "window_s"}`.
#[derive(Debug, Serialize)]
pub struct RateLimitView {
    count: u32,
    window_s: u32,
}

/// One token in API responses.
#[derive(Debug, Serialize)]
pub struct TokenView {
    hash: String,
    label: String,
    last4: String,
    providers: Vec<&'static str>,
    status: &'static str,
    /// What a check would see now: active, disabled, expired or bad-expiry.
    state: &'static str,
    created_at: String,
    expires_at: Option<String>,
    last_used: Option<String>,
    rate_limit: Option<RateLimitView>,
}

impl TokenView {
    /// The view of `record` (with its last-used stamp) at `now`.
    pub fn new(record: &TokenRecord, last_used: Option<String>, now: DateTime<Utc>) -> TokenView {
        TokenView {
            hash: record.hash.clone(),
            label: record.label.clone(),
            last4: record.last4.clone(),
            providers: record.providers.iter().map(|p| p.as_str()).collect(),
            status: record.status.as_str(),
            state: record.state(now),
            created_at: record.created_at.clone(),
            expires_at: record.expires_at.clone(),
            last_used,
            rate_limit: record.rate_limit.map(|rl| RateLimitView {
                count: rl.limit,
                window_s: rl.window_s,
            }),
        }
    }

    /// The view of a listing.
    pub fn of_listing(listing: &TokenListing, now: DateTime<Utc>) -> TokenView {
        TokenView::new(&listing.record, listing.last_used.clone(), now)
    }
}

/// The answer to a create: the plaintext token (shown once) and the stored token.
#[derive(Serialize)]
pub struct Created {
    /// The plaintext; the store only has its hash.
    pub token: String,
    /// The stored token.
    #[serde(flatten)]
    pub view: TokenView,
}

/// The answer to a list.
#[derive(Debug, Serialize)]
pub struct TokenList {
    /// Newest first.
    pub tokens: Vec<TokenView>,
}
