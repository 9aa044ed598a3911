//! How a token looks as JSON, one shape for the admin API and the CLI's `--json` (create and
//! list). Never carries a real key; the plaintext only in [`Created`], once.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::expiry::{expiry_state, ExpiryState};
use crate::store::{TokenListing, TokenRecord, TokenStatus};

/// The state a check would see, for display (admin API, dashboard rows, CLI table): stored
/// status first (as the check does), then the states derived from the expiry (`active`,
/// `expired`, `bad-expiry`). Records hold data; what they look like is decided here.
pub fn display_state(record: &TokenRecord, now: DateTime<Utc>) -> &'static str {
    if record.status == TokenStatus::Disabled {
        return "disabled";
    }
    match expiry_state(record.expires_at.as_deref(), now) {
        ExpiryState::Unparseable => "bad-expiry",
        ExpiryState::Expired => "expired",
        ExpiryState::Never | ExpiryState::Until(_) => "active",
    }
}

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
    /// The named provider key pool (`None`: the default pool).
    key_pool: Option<String>,
    /// The model allow-list; `null`: any model.
    models: Option<Vec<String>>,
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
            state: display_state(record, now),
            created_at: record.created_at.clone(),
            expires_at: record.expires_at.clone(),
            last_used,
            rate_limit: record.rate_limit.map(|rl| RateLimitView {
                count: rl.limit,
                window_s: rl.window_s,
            }),
            key_pool: record.key_pool.clone(),
            models: record.models.clone(),
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

/// The answer to a list: one page.
#[derive(Debug, Serialize)]
pub struct TokenList {
    /// Newest first.
    pub tokens: Vec<TokenView>,
    /// The `after` of the next page; `null` on the last page.
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::store::contract::sample_record;

    #[test]
    fn the_display_state_puts_the_stored_status_before_the_expiry() {
        let now: DateTime<Utc> = "2026-07-08T12:00:00Z".parse().unwrap();
        let mut r = sample_record("ab");
        let state = |r: &TokenRecord| display_state(r, now);
        assert_eq!(state(&r), "active");
        r.expires_at = Some("2026-07-08T12:00:01.000Z".into());
        assert_eq!(state(&r), "active");
        r.expires_at = Some("2026-07-08T11:59:59.000Z".into());
        assert_eq!(state(&r), "expired");
        r.expires_at = Some("soon".into());
        assert_eq!(state(&r), "bad-expiry");
        r.status = TokenStatus::Disabled;
        assert_eq!(state(&r), "disabled", "disabled wins over a bad expiry");
        r.expires_at = Some("2020-01-01T00:00:00.000Z".into());
        assert_eq!(state(&r), "disabled", "disabled wins over expired");
    }
}
