//! Per-token rate limiting: one [`RateLimiter`] trait, a backend per deployment shape (process
//! memory for one replica, Redis for several), chosen by [`LimiterBackend`] in the settings,
//! and one semantics that `tests/limiter_contract.rs` runs against both backends.
//!
//! The semantics, identical in both backends:
//! - **Fixed windows that start at a key's first hit.** A window lasts the quota's `window_s`
//!   from the first request counted in it; the first request after it ends starts the next
//!   one. Windows are not aligned to the clock (Redis's used to be, to multiples of the length
//!   since the epoch). Why first-hit: a quota reads as "N requests in the S seconds from the
//!   first", so `Retry-After` after a burst is the same whenever the burst happens; a burst of
//!   N requests is never split in two by a boundary it happened to straddle; and the windows of
//!   different tokens end at different instants instead of all at :00, so the filters' lease
//!   renewals do not arrive together.
//! - A request is counted when allowed, and so is its **lease**: a quarter of what is left in
//!   the window (rounded down, at most the caller's `max_lease`), so requests plus leased units
//!   never exceed the limit. Unspent units **credited** back count again only in the window they
//!   were leased from; window ids are opaque and never reused by one key.
//! - Over the limit the answer is `Limited` with `retry_after_s`: the time left in the window,
//!   rounded up to whole seconds, at least 1.
//! - A quota whose window length changes (the default was reconfigured) starts a fresh window.
//! - Any `u32` window length is counted the same way by both backends; the input (CLI, settings,
//!   admin API) refuses windows longer than [`MAX_WINDOW_S`] before they get here.
//! - A backend failure is an error, never a verdict; the check API fails open on it (abuse
//!   damping, not a security boundary) and [`metered::MeteredLimiter`] counts it.
//!
//! Why not `governor`: its keyed limiters share one quota across all keys, while each token
//! here may carry its own `N/SECONDS`; and leases and credits need the window's count.

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret as _, SecretString};

pub mod memory;
pub mod metered;
mod quota;
pub mod redis;

pub use memory::InMemoryRateLimiter;
pub use quota::{RateLimit, MAX_WINDOW_S};
pub use redis::RedisRateLimiter;

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

/// The limiter's answer when it may also lease units to the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// This request is counted, and `lease` more units are counted in advance for the filter
    /// to spend locally within `window`, which ends in `window_left_ms`.
    Allowed {
        /// Units leased (already counted as used).
        lease: u32,
        /// Identifies the window, so returned units are only credited to it.
        window: u64,
        /// Milliseconds until the window ends (leased units must not outlive it).
        window_left_ms: u64,
    },
    /// Over the quota.
    Limited {
        /// Seconds until the current window resets, at least 1.
        retry_after_s: u64,
    },
}

/// Counts requests per key against a quota, with the semantics in the module docs. Backends
/// implement [`RateLimiter::acquire`]; a plain hit is an acquire that leases nothing.
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one request and, if the quota has room, leases up to `max_lease` more units
    /// (a quarter of what is left, so leases shrink as the token nears its limit).
    async fn acquire(
        &self,
        key: &str,
        quota: RateLimit,
        max_lease: u32,
    ) -> Result<Acquired, RateLimitError>;

    /// Counts one request for `key` under `quota` and says whether it may proceed.
    async fn hit(&self, key: &str, quota: RateLimit) -> Result<RateDecision, RateLimitError> {
        Ok(self.acquire(key, quota, 0).await?.into())
    }

    /// Gives back `units` leased in `window` that were never spent (ignored once the window
    /// has ended).
    async fn credit(&self, key: &str, window: u64, units: u32) -> Result<(), RateLimitError> {
        let _ = (key, window, units);
        Ok(())
    }

    /// Marks the provider key with `fingerprint` (`key_health::fingerprint`) refused for
    /// `ttl_s` seconds: every replica sharing the backend stops handing it out.
    async fn refuse_key(&self, fingerprint: &str, ttl_s: u64) -> Result<(), RateLimitError> {
        let _ = (fingerprint, ttl_s);
        Ok(())
    }

    /// Until when each of `fingerprints` is refused (unix seconds; same order), `None` for a
    /// key not refused now.
    async fn refused_until(
        &self,
        fingerprints: &[String],
    ) -> Result<Vec<Option<u64>>, RateLimitError> {
        Ok(vec![None; fingerprints.len()])
    }

    /// Proves the backend answers (readiness). An in-process limiter always does.
    async fn ping(&self) -> Result<(), RateLimitError> {
        Ok(())
    }

    /// The backend's name for the readiness report (`memory`, `redis`).
    fn backend(&self) -> &'static str {
        "memory"
    }
}

/// Now as unix seconds (0 if the clock is before 1970).
pub(crate) fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl From<Acquired> for RateDecision {
    fn from(a: Acquired) -> RateDecision {
        match a {
            Acquired::Allowed { .. } => RateDecision::Allowed,
            Acquired::Limited { retry_after_s } => RateDecision::Limited { retry_after_s },
        }
    }
}

/// `Retry-After` for a window with `left_ms` to go: whole seconds rounded up, at least 1.
pub(crate) fn retry_after_s(left_ms: u64) -> u64 {
    left_ms.div_ceil(1000).max(1)
}

/// Where the rate-limit windows live, chosen in the settings. `Debug` shows no secret (a Redis
/// URL may hold a password).
#[derive(Debug, Clone, Default)]
pub enum LimiterBackend {
    /// In this process: each replica keeps its own windows.
    #[default]
    Memory,
    /// In Redis at this URL (`redis://[:password@]host:port/db`), shared by every replica.
    Redis(SecretString),
}

impl LimiterBackend {
    /// The backend for an optional Redis URL (`PTK_REDIS_URL`).
    pub fn pick(redis_url: Option<&SecretString>) -> LimiterBackend {
        redis_url.map_or(LimiterBackend::Memory, |url| {
            LimiterBackend::Redis(url.clone())
        })
    }

    /// Opens the backend: Redis is connected once here (and reconnected on demand later), so a
    /// wrong URL or a Redis that is down stops the start-up with a message.
    pub async fn open(&self) -> Result<Arc<dyn RateLimiter>, RateLimitError> {
        Ok(match self {
            LimiterBackend::Memory => Arc::new(InMemoryRateLimiter::new()),
            LimiterBackend::Redis(url) => {
                Arc::new(RedisRateLimiter::connect(url.expose_secret()).await?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(retry_after_s(0), 1);
        assert_eq!(retry_after_s(1), 1);
        assert_eq!(retry_after_s(1000), 1);
        assert_eq!(retry_after_s(1001), 2);
        assert_eq!(retry_after_s(59_999), 60);
    }

    #[test]
    fn the_backend_is_redis_with_a_url_and_never_shows_it() {
        assert!(matches!(LimiterBackend::pick(None), LimiterBackend::Memory));
        let url = SecretString::from("redis://:pw-never-shown@cache:6379/0");
        let backend = LimiterBackend::pick(Some(&url));
        assert!(matches!(backend, LimiterBackend::Redis(_)));
        assert!(!format!("{backend:?}").contains("pw-never-shown"));
    }
}
