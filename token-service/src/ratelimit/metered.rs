//! A [`RateLimiter`] that counts its backend's failures in [`Metrics`] by operation. Checks
//! fail open on limiter errors, so this counter is how an operator learns Redis is down.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Acquired, RateDecision, RateLimit, RateLimitError, RateLimiter};
use crate::metrics::Metrics;

/// Wraps a limiter; answers exactly as it does.
pub struct MeteredLimiter {
    inner: Arc<dyn RateLimiter>,
    metrics: Arc<Metrics>,
}

impl MeteredLimiter {
    /// Counts `inner`'s failures in `metrics`.
    pub fn new(inner: Arc<dyn RateLimiter>, metrics: Arc<Metrics>) -> MeteredLimiter {
        MeteredLimiter { inner, metrics }
    }

    fn count<T>(
        &self,
        operation: &'static str,
        result: Result<T, RateLimitError>,
    ) -> Result<T, RateLimitError> {
        if result.is_err() {
            self.metrics.limiter_error(operation);
        }
        result
    }
}

#[async_trait]
impl RateLimiter for MeteredLimiter {
    async fn acquire(
        &self,
        key: &str,
        quota: RateLimit,
        max_lease: u32,
    ) -> Result<Acquired, RateLimitError> {
        self.count("acquire", self.inner.acquire(key, quota, max_lease).await)
    }

    async fn hit(&self, key: &str, quota: RateLimit) -> Result<RateDecision, RateLimitError> {
        self.count("hit", self.inner.hit(key, quota).await)
    }

    async fn credit(&self, key: &str, window: u64, units: u32) -> Result<(), RateLimitError> {
        self.count("credit", self.inner.credit(key, window, units).await)
    }

    async fn ping(&self) -> Result<(), RateLimitError> {
        self.count("ping", self.inner.ping().await)
    }

    async fn refuse_key(&self, fingerprint: &str, ttl_s: u64) -> Result<(), RateLimitError> {
        let result = self.inner.refuse_key(fingerprint, ttl_s).await;
        self.count("refuse_key", result)
    }

    async fn refused_until(
        &self,
        fingerprints: &[String],
    ) -> Result<Vec<Option<u64>>, RateLimitError> {
        let result = self.inner.refused_until(fingerprints).await;
        self.count("refused_until", result)
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}
