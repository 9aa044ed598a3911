//! Last-used stamps: written off the response path, at most once per token per interval.
//!
//! The original throttled to one write per day because its store charged per write; here the
//! dashboard wants a fresher value and SQLite writes are cheap, so the interval is a minute.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::expiry::now_timestamp;
use crate::store::TokenStore;

/// Default minimum time between two stamps of the same token.
pub const STAMP_INTERVAL: Duration = Duration::from_secs(60);

/// Above this many remembered claims, stale ones are dropped on the next claim.
const PRUNE_ABOVE: usize = 10_000;

/// Remembers when each token was last stamped and writes new stamps in the background.
pub struct LastUsedStamper {
    store: Arc<dyn TokenStore>,
    interval: Duration,
    claims: Mutex<HashMap<String, Instant>>,
}

impl LastUsedStamper {
    /// A stamper writing to `store` at most once per `interval` per token.
    pub fn new(store: Arc<dyn TokenStore>, interval: Duration) -> LastUsedStamper {
        LastUsedStamper {
            store,
            interval,
            claims: Mutex::new(HashMap::new()),
        }
    }

    /// Claims the right to stamp `hash` at `now`. The claim is taken synchronously, before any
    /// write starts, so concurrent requests for the same token produce one write.
    fn claim(&self, hash: &str, now: Instant) -> bool {
        let mut claims = self.claims.lock().unwrap_or_else(PoisonError::into_inner);
        if claims.len() > PRUNE_ABOVE {
            claims.retain(|_, at| now.duration_since(*at) < self.interval);
        }
        match claims.get(hash) {
            Some(at) if now.duration_since(*at) < self.interval => false,
            _ => {
                claims.insert(hash.to_owned(), now);
                true
            }
        }
    }

    /// Gives a claim back after a failed write, so a later request may retry.
    fn release(&self, hash: &str) {
        self.claims
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(hash);
    }

    /// Stamps `hash` as used now, in a background task, unless it was stamped recently.
    /// Must be called inside a Tokio runtime.
    pub fn touch(self: &Arc<Self>, hash: &str) {
        if !self.claim(hash, Instant::now()) {
            return;
        }
        let this = Arc::clone(self);
        let hash = hash.to_owned();
        tokio::spawn(async move {
            if let Err(e) = this.store.stamp_last_used(&hash, &now_timestamp()).await {
                tracing::warn!(error_class = e.class(), "lastUsed stamp failed");
                this.release(&hash);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::store::SqliteStore;

    fn stamper() -> (LastUsedStamper, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db")).unwrap();
        (LastUsedStamper::new(Arc::new(store), STAMP_INTERVAL), dir)
    }

    #[test]
    fn one_claim_per_token_per_interval() {
        let (s, _dir) = stamper();
        let t0 = Instant::now();
        assert!(s.claim("a", t0));
        assert!(!s.claim("a", t0 + Duration::from_secs(59)));
        assert!(s.claim("b", t0), "tokens are independent");
        assert!(s.claim("a", t0 + Duration::from_secs(60)));
    }

    #[test]
    fn a_released_claim_can_be_taken_again() {
        let (s, _dir) = stamper();
        let t0 = Instant::now();
        assert!(s.claim("a", t0));
        s.release("a");
        assert!(s.claim("a", t0));
    }

    #[test]
    fn stale_claims_are_pruned_when_the_map_grows() {
        let (s, _dir) = stamper();
        let t0 = Instant::now();
        for i in 0..=PRUNE_ABOVE {
            s.claim(&i.to_string(), t0);
        }
        s.claim("late", t0 + STAMP_INTERVAL);
        assert_eq!(s.claims.lock().unwrap().len(), 1);
    }
}
