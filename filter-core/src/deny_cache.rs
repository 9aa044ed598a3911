//! A small per-worker memory of recent refusals, so a client hammering with a revoked or
//! out-of-scope token costs one check per second instead of one per request.
//!
//! Local to each worker (not shared data): proxy-wasm shared data cannot delete keys, so a
//! flood of random tokens would grow it without bound; this map is capped and simply cleared
//! when full.

use std::collections::HashMap;

use crate::refusal::Refusal;

/// Refusals remembered per cache key, each until a host time in ms.
#[derive(Debug)]
pub struct DenyCache {
    entries: HashMap<String, (u64, Refusal)>,
    ttl_ms: u64,
    capacity: usize,
}

impl DenyCache {
    /// A cache keeping refusals for `ttl_ms` (0 disables it), at most `capacity` of them.
    pub fn new(ttl_ms: u64, capacity: usize) -> DenyCache {
        DenyCache {
            entries: HashMap::new(),
            ttl_ms,
            capacity,
        }
    }

    /// A remembered refusal still in force at `now_ms`.
    pub fn get(&self, key: &str, now_ms: u64) -> Option<Refusal> {
        self.entries
            .get(key)
            .filter(|(until, _)| now_ms < *until)
            .map(|(_, refusal)| *refusal)
    }

    /// Remembers a refusal that reflects the token's state (invalid, expired, out of scope).
    /// Infrastructure failures and rate limits are never remembered.
    pub fn put(&mut self, key: &str, refusal: Refusal, now_ms: u64) {
        let stable = matches!(
            refusal,
            Refusal::Invalid | Refusal::Expired | Refusal::ProviderNotAllowed
        );
        if !stable || self.ttl_ms == 0 || self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity {
            self.entries.clear();
        }
        self.entries.insert(
            key.to_string(),
            (now_ms.saturating_add(self.ttl_ms), refusal),
        );
    }

    /// Forgets a key (the token-service just allowed it).
    pub fn forget(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_stable_refusals_until_the_ttl() {
        let mut c = DenyCache::new(1_000, 10);
        c.put("a", Refusal::Invalid, 0);
        assert_eq!(c.get("a", 999), Some(Refusal::Invalid));
        assert_eq!(c.get("a", 1_000), None);
        assert_eq!(c.get("b", 0), None);
        c.forget("a");
        assert_eq!(c.get("a", 0), None);
    }

    #[test]
    fn never_remembers_transient_refusals() {
        let mut c = DenyCache::new(1_000, 10);
        c.put("s", Refusal::TokenServiceUnavailable, 0);
        c.put("r", Refusal::RateLimited { retry_after_s: 1 }, 0);
        c.put("p", Refusal::ProviderUnconfigured, 0);
        assert_eq!(
            (c.get("s", 1), c.get("r", 1), c.get("p", 1)),
            (None, None, None)
        );
    }

    #[test]
    fn bounded_and_disableable() {
        let mut c = DenyCache::new(1_000, 2);
        c.put("a", Refusal::ProviderNotAllowed, 0);
        c.put("b", Refusal::ProviderNotAllowed, 0);
        c.put("c", Refusal::ProviderNotAllowed, 0);
        assert!(c.entries.len() <= 2);
        assert_eq!(c.get("c", 1), Some(Refusal::ProviderNotAllowed));
        let mut off = DenyCache::new(0, 10);
        off.put("a", Refusal::Invalid, 0);
        assert_eq!(off.get("a", 0), None);
    }
}
