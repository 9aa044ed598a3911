//! The login throttle: 10 attempts per 60 s per client IP, counted in the same rate limiter
//! as the tokens (key `admin-login:<ip>`), so with `PTK_REDIS_URL` every replica counts into
//! one window and spreading guesses over replicas gains nothing. If that limiter fails, this
//! replica throttles on its own rather than not at all.

use std::sync::Arc;
use std::time::Instant;

use crate::ratelimit::{InMemoryRateLimiter, RateDecision, RateLimiter};
use crate::token::RateLimit;

/// Login attempts allowed per client IP per window.
pub const LOGIN_QUOTA: RateLimit = RateLimit {
    limit: 10,
    window_s: 60,
};

/// Counts login attempts per client IP.
pub struct LoginThrottle {
    shared: Arc<dyn RateLimiter>,
    local: InMemoryRateLimiter,
}

impl LoginThrottle {
    /// A throttle counting in `shared` (the service's rate limiter).
    pub fn new(shared: Arc<dyn RateLimiter>) -> LoginThrottle {
        LoginThrottle {
            shared,
            local: InMemoryRateLimiter::new(),
        }
    }

    /// Counts one attempt from `client_ip`.
    pub async fn hit(&self, client_ip: &str) -> RateDecision {
        let key = format!("admin-login:{client_ip}");
        match self.shared.hit(&key, LOGIN_QUOTA).await {
            Ok(decision) => decision,
            Err(e) => {
                tracing::warn!(error = %e, "login throttle: shared limiter failed; counting here");
                self.local.hit_at(&key, LOGIN_QUOTA, Instant::now())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::ratelimit::{Acquired, RateLimitError};
    use async_trait::async_trait;

    struct Broken;
    #[async_trait]
    impl RateLimiter for Broken {
        async fn acquire(&self, _: &str, _: RateLimit, _: u32) -> Result<Acquired, RateLimitError> {
            Err(RateLimitError("down".into()))
        }
    }

    #[tokio::test]
    async fn ten_attempts_per_ip_then_limited() {
        let throttle = LoginThrottle::new(Arc::new(InMemoryRateLimiter::new()));
        for _ in 0..10 {
            assert_eq!(throttle.hit("10.0.0.1").await, RateDecision::Allowed);
        }
        assert!(matches!(
            throttle.hit("10.0.0.1").await,
            RateDecision::Limited { .. }
        ));
        assert_eq!(throttle.hit("10.0.0.2").await, RateDecision::Allowed);
    }

    #[tokio::test]
    async fn a_failing_shared_limiter_still_throttles_locally() {
        let throttle = LoginThrottle::new(Arc::new(Broken));
        for _ in 0..10 {
            assert_eq!(throttle.hit("10.0.0.1").await, RateDecision::Allowed);
        }
        assert!(matches!(
            throttle.hit("10.0.0.1").await,
            RateDecision::Limited { .. }
        ));
    }
}
