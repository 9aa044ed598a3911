//! Admin sessions ended server-side (logout), apart from the tokens: their own small trait.
//! Each backend keeps them in its own table (`revoked_sessions`) of the token database, so
//! every replica refuses a session that any replica ended, and they pass their own contract
//! (`contract.rs`, `revoked_sessions_are_remembered_until_they_expire`).

use async_trait::async_trait;

use super::StoreError;

/// Which admin sessions were ended before their cookie expired.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Ends an admin session server-side: `id` (the session's random nonce) is refused until
    /// `until` (when the cookie would have expired anyway). Entries whose `until` is before
    /// `now` are dropped on the way, so the table only holds sessions that could still be
    /// presented. Timestamps are the store's RFC 3339 UTC form (they compare as text).
    async fn revoke_session(&self, id: &str, until: &str, now: &str) -> Result<(), StoreError>;
    /// Whether `id` was ended by [`SessionStore::revoke_session`].
    async fn session_revoked(&self, id: &str) -> Result<bool, StoreError>;
}
