//! The in-memory backend: windows per key in this process (one token-service replica), with
//! the semantics in [`super`]'s docs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{
    retry_after_s, unix_seconds, Acquired, RateDecision, RateLimit, RateLimitError, RateLimiter,
};

#[derive(Debug, Clone, Copy)]
struct Window {
    id: u64,
    started: Instant,
    length: Duration,
    count: u32,
}

/// Above this many tracked keys, windows that have ended are dropped on the next hit. Only
/// tokens that passed validation reach the limiter, so the map is bounded by live tokens anyway.
const PRUNE_ABOVE: usize = 10_000;

/// Fixed windows per key, in process memory (one token-service replica).
#[derive(Debug, Default)]
pub struct InMemoryRateLimiter {
    windows: Mutex<HashMap<String, Window>>,
    next_window: std::sync::atomic::AtomicU64,
    /// Refused provider keys (by fingerprint) and until when.
    refused: Mutex<HashMap<String, Instant>>,
}

impl InMemoryRateLimiter {
    /// An empty limiter.
    pub fn new() -> InMemoryRateLimiter {
        InMemoryRateLimiter::default()
    }

    /// The decision at an explicit instant (the trait uses `Instant::now()`); lets tests walk
    /// through windows without sleeping.
    pub fn hit_at(&self, key: &str, quota: RateLimit, now: Instant) -> RateDecision {
        self.acquire_at(key, quota, 0, now).into()
    }

    /// [`RateLimiter::acquire`] at an explicit instant.
    pub fn acquire_at(
        &self,
        key: &str,
        quota: RateLimit,
        max_lease: u32,
        now: Instant,
    ) -> Acquired {
        // A poisoned lock only means another thread panicked mid-update of plain counters;
        // the data is still usable, so recover it rather than failing every request.
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() > PRUNE_ABOVE {
            windows.retain(|_, w| now.duration_since(w.started) < w.length);
        }
        let length = Duration::from_secs(u64::from(quota.window_s));
        let fresh = || Window {
            id: self
                .next_window
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .wrapping_add(1),
            started: now,
            length,
            count: 0,
        };
        let window = windows.entry(key.to_owned()).or_insert_with(fresh);
        // A new window starts at the first hit after the old one ended (or if the quota's
        // window changed, e.g. the default was reconfigured).
        if now.duration_since(window.started) >= window.length || window.length != length {
            *window = fresh();
        }
        let left = window
            .length
            .saturating_sub(now.duration_since(window.started));
        let left_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
        if window.count >= quota.limit {
            return Acquired::Limited {
                retry_after_s: retry_after_s(left_ms),
            };
        }
        window.count += 1;
        let lease = ((quota.limit - window.count) / 4).min(max_lease);
        window.count += lease;
        Acquired::Allowed {
            lease,
            window: window.id,
            window_left_ms: left_ms,
        }
    }

    /// [`RateLimiter::credit`], synchronously.
    pub fn credit_now(&self, key: &str, window: u64, units: u32) {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(w) = windows.get_mut(key).filter(|w| w.id == window) {
            w.count = w.count.saturating_sub(units);
        }
    }
}

#[async_trait]
impl RateLimiter for InMemoryRateLimiter {
    async fn acquire(
        &self,
        key: &str,
        quota: RateLimit,
        max_lease: u32,
    ) -> Result<Acquired, RateLimitError> {
        Ok(self.acquire_at(key, quota, max_lease, Instant::now()))
    }

    async fn refuse_key(&self, fingerprint: &str, ttl_s: u64) -> Result<(), RateLimitError> {
        let until = Instant::now() + Duration::from_secs(ttl_s);
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        refused.retain(|_, until| *until > now);
        refused.insert(fingerprint.to_owned(), until);
        Ok(())
    }

    async fn refused_until(
        &self,
        fingerprints: &[String],
    ) -> Result<Vec<Option<u64>>, RateLimitError> {
        let refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let unix_now = unix_seconds();
        Ok(fingerprints
            .iter()
            .map(|f| {
                let left = refused.get(f)?.checked_duration_since(now)?;
                // Rounded up: a key refused for 0.4 s more is still refused at that second.
                Some(
                    unix_now
                        .saturating_add(left.as_secs())
                        .saturating_add(u64::from(left.subsec_nanos() > 0)),
                )
            })
            .collect())
    }

    async fn credit(&self, key: &str, window: u64, units: u32) -> Result<(), RateLimitError> {
        self.credit_now(key, window, units);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const Q3_60: RateLimit = RateLimit {
        limit: 3,
        window_s: 60,
    };

    #[test]
    fn allows_the_quota_then_limits_until_the_window_ends() {
        let rl = InMemoryRateLimiter::new();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(rl.hit_at("h", Q3_60, t0), RateDecision::Allowed);
        }
        assert_eq!(
            rl.hit_at("h", Q3_60, t0),
            RateDecision::Limited { retry_after_s: 60 }
        );
        assert_eq!(
            rl.hit_at("h", Q3_60, t0 + Duration::from_millis(20_500)),
            RateDecision::Limited { retry_after_s: 40 },
            "rounded up"
        );
        assert_eq!(
            rl.hit_at("h", Q3_60, t0 + Duration::from_millis(59_999)),
            RateDecision::Limited { retry_after_s: 1 },
            "never 0"
        );
        assert_eq!(
            rl.hit_at("h", Q3_60, t0 + Duration::from_secs(60)),
            RateDecision::Allowed,
            "a new window"
        );
    }

    #[test]
    fn keys_and_quotas_are_independent() {
        let rl = InMemoryRateLimiter::new();
        let t0 = Instant::now();
        let one = RateLimit {
            limit: 1,
            window_s: 10,
        };
        assert_eq!(rl.hit_at("a", one, t0), RateDecision::Allowed);
        assert!(matches!(
            rl.hit_at("a", one, t0),
            RateDecision::Limited { retry_after_s: 10 }
        ));
        assert_eq!(rl.hit_at("b", one, t0), RateDecision::Allowed);
        for _ in 0..3 {
            assert_eq!(rl.hit_at("c", Q3_60, t0), RateDecision::Allowed);
        }
    }

    #[test]
    fn a_changed_window_length_starts_over() {
        let rl = InMemoryRateLimiter::new();
        let t0 = Instant::now();
        let one = RateLimit {
            limit: 1,
            window_s: 60,
        };
        assert_eq!(rl.hit_at("a", one, t0), RateDecision::Allowed);
        let other = RateLimit {
            limit: 1,
            window_s: 5,
        };
        assert_eq!(rl.hit_at("a", other, t0), RateDecision::Allowed);
        assert!(matches!(
            rl.hit_at("a", other, t0),
            RateDecision::Limited { retry_after_s: 5 }
        ));
    }

    #[test]
    fn ended_windows_are_pruned_when_the_map_grows() {
        let rl = InMemoryRateLimiter::new();
        let t0 = Instant::now();
        let q = RateLimit {
            limit: 1,
            window_s: 1,
        };
        for i in 0..=PRUNE_ABOVE {
            rl.hit_at(&i.to_string(), q, t0);
        }
        rl.hit_at("late", q, t0 + Duration::from_secs(2));
        assert_eq!(rl.windows.lock().unwrap().len(), 1);
    }

    const Q100: RateLimit = RateLimit {
        limit: 100,
        window_s: 60,
    };

    fn lease_of(a: Acquired) -> u32 {
        match a {
            Acquired::Allowed { lease, .. } => lease,
            Acquired::Limited { .. } => panic!("limited"),
        }
    }

    #[test]
    fn leases_shrink_near_the_limit_and_never_exceed_it() {
        let rl = InMemoryRateLimiter::new();
        let t0 = Instant::now();
        let mut allowed = 0u32;
        let mut leases = vec![];
        while let Acquired::Allowed { lease, .. } = rl.acquire_at("h", Q100, 1000, t0) {
            allowed += 1 + lease;
            leases.push(lease);
        }
        assert_eq!(allowed, 100, "leased units count against the limit exactly");
        assert_eq!(leases[0], 24);
        assert!(leases.windows(2).all(|w| w[1] <= w[0]), "{leases:?}");
        assert_eq!(*leases.last().unwrap(), 0);
    }

    #[test]
    fn max_lease_caps_and_zero_disables() {
        let rl = InMemoryRateLimiter::new();
        let t0 = Instant::now();
        assert_eq!(lease_of(rl.acquire_at("a", Q100, 5, t0)), 5);
        assert_eq!(lease_of(rl.acquire_at("b", Q100, 0, t0)), 0);
    }

    #[test]
    fn credited_units_come_back_only_in_their_window() {
        let rl = InMemoryRateLimiter::new();
        let t0 = Instant::now();
        let Acquired::Allowed { lease, window, .. } = rl.acquire_at("h", Q3_60, 10, t0) else {
            panic!("limited");
        };
        assert_eq!(lease, 0, "(3-1)/4 = 0");
        assert_eq!(rl.hit_at("h", Q3_60, t0), RateDecision::Allowed);
        assert_eq!(rl.hit_at("h", Q3_60, t0), RateDecision::Allowed);
        assert!(matches!(
            rl.hit_at("h", Q3_60, t0),
            RateDecision::Limited { .. }
        ));
        rl.credit_now("h", window, 2);
        assert_eq!(rl.hit_at("h", Q3_60, t0), RateDecision::Allowed);
        rl.credit_now("h", window + 1, 2);
        assert_eq!(rl.hit_at("h", Q3_60, t0), RateDecision::Allowed);
        assert!(matches!(
            rl.hit_at("h", Q3_60, t0),
            RateDecision::Limited { .. }
        ));
        let later = t0 + Duration::from_secs(60);
        assert_eq!(rl.hit_at("h", Q3_60, later), RateDecision::Allowed);
        rl.credit_now("h", window, 3);
        assert_eq!(rl.hit_at("h", Q3_60, later), RateDecision::Allowed);
        assert_eq!(rl.hit_at("h", Q3_60, later), RateDecision::Allowed);
        assert!(
            matches!(rl.hit_at("h", Q3_60, later), RateDecision::Limited { .. }),
            "old window credit ignored"
        );
    }

    #[tokio::test]
    async fn the_trait_counts_too() {
        let rl = InMemoryRateLimiter::new();
        let one = RateLimit {
            limit: 1,
            window_s: 60,
        };
        assert_eq!(rl.hit("k", one).await.unwrap(), RateDecision::Allowed);
        assert!(matches!(
            rl.hit("k", one).await.unwrap(),
            RateDecision::Limited { .. }
        ));
    }
}
