//! Provider key pools on the wire (1.2): the keys an allow may rotate over, and what the
//! filter saw of them upstream.
//!
//! Both are information an older reader may drop: an older filter ignores `pool` and uses
//! `key` (the first healthy key of the pool); an older token-service ignores `key_events`.

use serde::{Deserialize, Serialize};

use crate::Provider;

/// One real key of a pool, with the name it goes by everywhere else (logs, metrics, the
/// dashboard, key events): its label, or `...` and its last 4 characters. `Debug` never
/// prints the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolKey {
    /// The key's name (a label or `...` + last 4 characters), unique per provider.
    pub id: String,
    /// The real key.
    pub key: String,
}

impl std::fmt::Debug for PoolKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolKey")
            .field("id", &self.id)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// What happened to a pool key upstream, seen by a filter. Unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEvent {
    /// The provider the key belongs to.
    pub provider: Provider,
    /// The key's name ([`PoolKey::id`]), never the key.
    pub key: String,
    /// What the provider said.
    pub event: KeyEventKind,
    /// For `rate_limited`: how long the key cools down on that Envoy (milliseconds), so the
    /// dashboard can say until when. Absent from older filters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooling_ms: Option<u64>,
}

/// The kinds of [`KeyEvent`]. A kind this build does not know reads as `Other` (ignored), so
/// a newer filter's report is never lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyEventKind {
    /// The provider refused the key itself (401, or Gemini's `API_KEY_INVALID`).
    Refused,
    /// The provider rate-limited the key (429): it cools down on that Envoy.
    RateLimited,
    /// A kind this build does not know.
    #[serde(other)]
    Other,
}
