//! "Has anyone sent this yet?": a claim per notification key, so one crossing is sent once
//! however many replicas see it. In this process, or in Redis when replicas share one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::ConnectionManager;

/// Claims notification keys. `claim` is true for exactly one caller per key while the claim
/// lasts (`ttl`).
#[async_trait]
pub trait Claims: Send + Sync {
    /// True when this caller now holds `key` (nobody held it), false when someone does.
    /// A backend failure answers true: a notification sent twice beats one never sent.
    async fn claim(&self, key: &str, ttl: Duration) -> bool;
}

/// Claims in this process (one replica, or tests).
#[derive(Default)]
pub struct MemoryClaims {
    held: Mutex<HashMap<String, Instant>>,
}

impl MemoryClaims {
    /// [`Claims::claim`] without waiting (a lock held for a map lookup).
    pub fn claim_now(&self, key: &str, ttl: Duration) -> bool {
        let now = Instant::now();
        let Ok(mut held) = self.held.lock() else {
            return true;
        };
        // Claims live as long as a budget period at most: forget the lapsed ones as we go.
        held.retain(|_, until| *until > now);
        if held.contains_key(key) {
            return false;
        }
        held.insert(key.to_owned(), now.checked_add(ttl).unwrap_or(now));
        true
    }
}

#[async_trait]
impl Claims for MemoryClaims {
    async fn claim(&self, key: &str, ttl: Duration) -> bool {
        self.claim_now(key, ttl)
    }
}

/// Claims in Redis (`SET key 1 NX PX ttl`), shared by every replica on it.
pub struct RedisClaims {
    conn: ConnectionManager,
}

impl RedisClaims {
    /// Connects (and keeps reconnecting) to `url`.
    pub async fn connect(url: &str) -> Result<RedisClaims, redis::RedisError> {
        let client = redis::Client::open(url)?;
        Ok(RedisClaims {
            conn: ConnectionManager::new(client).await?,
        })
    }
}

#[async_trait]
impl Claims for RedisClaims {
    async fn claim(&self, key: &str, ttl: Duration) -> bool {
        let mut conn = self.conn.clone();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Result<Option<String>, _> = redis::cmd("SET")
            .arg(key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ms)
            .query_async(&mut conn)
            .await;
        match set {
            Ok(reply) => reply.is_some(),
            Err(e) => {
                tracing::warn!(error = %e, "budget notification claim failed in redis; sending anyway");
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[tokio::test]
    async fn a_key_is_claimed_once_until_it_lapses() {
        let claims = MemoryClaims::default();
        assert!(claims.claim("a", Duration::from_millis(50)).await);
        assert!(!claims.claim("a", Duration::from_millis(50)).await);
        assert!(claims.claim("b", Duration::from_millis(50)).await);
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(claims.claim("a", Duration::from_secs(1)).await, "lapsed");
    }
}
