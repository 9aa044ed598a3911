//! Per-token rate limiting behind a trait, with an in-memory fixed-window implementation.
//!
//! Why not `governor`: its keyed limiters share one quota across all keys, while each token
//! here may carry its own `N/SECONDS` (and the default can differ from all of them). A fixed
//! window per hash is a few lines, gives an exact "seconds until reset" for `Retry-After`, and
//! is the same algorithm a Redis backend (INCR + EXPIRE) would use when replicas share counters.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::token::RateLimit;

/// The limiter's answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Within the quota; the hit was counted.
    Allowed,
    /// Over the quota; retry after this many seconds (at least 1).
    Limited {
        /// Seconds until the current window resets, rounded up, at least 1.
        retry_after_s: u64,
    },
}

/// A limiter failure. The check API fails open on it (abuse damping, not a security boundary).
#[derive(Debug, thiserror::Error)]
#[error("rate limiter unavailable: {0}")]
pub struct RateLimitError(pub String);

/// Counts requests per key against a quota.
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one request for `key` under `quota` and says whether it may proceed.
    async fn hit(&self, key: &str, quota: RateLimit) -> Result<RateDecision, RateLimitError>;
}

#[derive(Debug, Clone, Copy)]
struct Window {
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
}

impl InMemoryRateLimiter {
    /// An empty limiter.
    pub fn new() -> InMemoryRateLimiter {
        InMemoryRateLimiter::default()
    }

    /// The decision at an explicit instant (the trait uses `Instant::now()`); lets tests walk
    /// through windows without sleeping.
    pub fn hit_at(&self, key: &str, quota: RateLimit, now: Instant) -> RateDecision {
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
        let window = windows.entry(key.to_owned()).or_insert(Window {
            started: now,
            length,
            count: 0,
        });
        // A new window starts at the first hit after the old one ended (or if the quota's
        // window changed, e.g. the default was reconfigured).
        if now.duration_since(window.started) >= window.length || window.length != length {
            *window = Window {
                started: now,
                length,
                count: 0,
            };
        }
        if window.count < quota.limit {
            window.count += 1;
            return RateDecision::Allowed;
        }
        let left = window
            .length
            .saturating_sub(now.duration_since(window.started));
        let retry_after_s = left.as_millis().div_ceil(1000).max(1);
        RateDecision::Limited {
            retry_after_s: u64::try_from(retry_after_s).unwrap_or(u64::MAX),
        }
    }
}

#[async_trait]
impl RateLimiter for InMemoryRateLimiter {
    async fn hit(&self, key: &str, quota: RateLimit) -> Result<RateDecision, RateLimitError> {
        Ok(self.hit_at(key, quota, Instant::now()))
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
