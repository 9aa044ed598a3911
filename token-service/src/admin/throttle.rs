//! The login throttle: 10 attempts per 60 s per client IP, counted in the same rate limiter
//! as the tokens (key `admin-login:<ip>`), so with `PTK_REDIS_URL` every replica counts into
//! one window and spreading guesses over replicas gains nothing. If that limiter fails, this
//! replica throttles on its own rather than not at all.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::ratelimit::{InMemoryRateLimiter, RateDecision, RateLimit, RateLimiter};

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

    /// Counts one attempt from `client_ip` (IPv6 per /64, as one host typically owns one).
    pub async fn hit(&self, client_ip: IpAddr) -> RateDecision {
        let key = format!("admin-login:{}", bucket(client_ip));
        match self.shared.hit(&key, LOGIN_QUOTA).await {
            Ok(decision) => decision,
            Err(e) => {
                tracing::warn!(error = %e, "login throttle: shared limiter failed; counting here");
                self.local.hit_at(&key, LOGIN_QUOTA, Instant::now())
            }
        }
    }
}

/// The bucket of an address: IPv4 as is (an IPv4-mapped IPv6 address as its IPv4), other IPv6
/// addresses by their /64, so rotating through one host's addresses gains nothing.
fn bucket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
            }
        },
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
            assert_eq!(throttle.hit(ip("10.0.0.1")).await, RateDecision::Allowed);
        }
        assert!(matches!(
            throttle.hit(ip("10.0.0.1")).await,
            RateDecision::Limited { .. }
        ));
        assert_eq!(throttle.hit(ip("10.0.0.2")).await, RateDecision::Allowed);
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[tokio::test]
    async fn ipv6_addresses_share_their_64() {
        let throttle = LoginThrottle::new(Arc::new(InMemoryRateLimiter::new()));
        for n in 0..10 {
            let addr = ip(&format!("2001:db8:1:2::{n:x}"));
            assert_eq!(throttle.hit(addr).await, RateDecision::Allowed);
        }
        assert!(matches!(
            throttle.hit(ip("2001:db8:1:2:ffff::1")).await,
            RateDecision::Limited { .. }
        ));
        assert_eq!(
            throttle.hit(ip("2001:db8:1:3::1")).await,
            RateDecision::Allowed
        );
        assert_eq!(bucket(ip("::ffff:10.0.0.9")), "10.0.0.9");
    }

    #[tokio::test]
    async fn a_failing_shared_limiter_still_throttles_locally() {
        let throttle = LoginThrottle::new(Arc::new(Broken));
        for _ in 0..10 {
            assert_eq!(throttle.hit(ip("10.0.0.1")).await, RateDecision::Allowed);
        }
        assert!(matches!(
            throttle.hit(ip("10.0.0.1")).await,
            RateDecision::Limited { .. }
        ));
    }
}
