//! Rate-limit windows in Redis, shared by every token-service replica, so the limit (and its
//! leases) holds across a fleet of Envoys served by several replicas.
//!
//! Each decision is one Lua script, atomic in Redis and timed by Redis's own clock, so replicas
//! never disagree on the window. Windows are aligned to the epoch (`now / window`), the same
//! counting as the in-memory limiter otherwise: a request and its lease are counted when
//! granted, units handed back are credited only to the window they came from.

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::Script;

use crate::ratelimit::{Acquired, RateLimitError, RateLimiter};
use crate::token::RateLimit;

/// Counts one request and leases a quarter of what is left (at most ARGV[3]); returns
/// `{lease, window index, ms left in the window, limited (0|1)}`.
const ACQUIRE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window_ms = tonumber(ARGV[2])
local idx = math.floor(now / window_ms)
local left = window_ms - (now % window_ms)
local key = KEYS[1] .. ':' .. idx
local used = tonumber(redis.call('GET', key) or '0')
local limit = tonumber(ARGV[1])
if used >= limit then return {0, idx, left, 1} end
used = used + 1
local lease = math.min(tonumber(ARGV[3]), math.floor((limit - used) / 4))
redis.call('INCRBY', key, 1 + lease)
redis.call('PEXPIRE', key, left + 1000)
return {lease, idx, left, 0}
";

/// Gives back ARGV[2] units to window ARGV[1] if that window's counter still exists.
const CREDIT: &str = r"
local key = KEYS[1] .. ':' .. ARGV[1]
local used = tonumber(redis.call('GET', key) or '-1')
if used < 0 then return 0 end
local units = math.min(used, tonumber(ARGV[2]))
redis.call('DECRBY', key, units)
return units
";

/// Bits of a window id that carry the window length (seconds), so a credit finds its key.
/// Windows are at most `token::MAX_WINDOW_S` (refused at input beyond), which fits.
const LENGTH_BITS: u32 = 20;
const _: () = assert!(crate::token::MAX_WINDOW_S < 1 << LENGTH_BITS);

/// A rate limiter whose counters live in Redis.
pub struct RedisRateLimiter {
    conn: ConnectionManager,
    acquire: Script,
    credit: Script,
}

fn failed(e: redis::RedisError) -> RateLimitError {
    // The error text names the operation and Redis's answer, never a token or key.
    RateLimitError(format!("redis: {e}"))
}

fn prefix(key: &str, window_s: u32) -> String {
    format!("ptk:rl:{key}:{window_s}")
}

impl RedisRateLimiter {
    /// Connects (and keeps reconnecting) to `url`, e.g. `redis://127.0.0.1:6379/0`.
    pub async fn connect(url: &str) -> Result<RedisRateLimiter, RateLimitError> {
        let client = redis::Client::open(url).map_err(failed)?;
        let conn = ConnectionManager::new(client).await.map_err(failed)?;
        Ok(RedisRateLimiter {
            conn,
            acquire: Script::new(ACQUIRE),
            credit: Script::new(CREDIT),
        })
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn acquire(
        &self,
        key: &str,
        quota: RateLimit,
        max_lease: u32,
    ) -> Result<Acquired, RateLimitError> {
        let window_ms = u64::from(quota.window_s) * 1000;
        let mut conn = self.conn.clone();
        let (lease, idx, left, limited): (u32, u64, u64, u8) = self
            .acquire
            .key(prefix(key, quota.window_s))
            .arg(quota.limit)
            .arg(window_ms)
            .arg(max_lease)
            .invoke_async(&mut conn)
            .await
            .map_err(failed)?;
        if limited == 1 {
            return Ok(Acquired::Limited {
                retry_after_s: left.div_ceil(1000).max(1),
            });
        }
        Ok(Acquired::Allowed {
            lease,
            window: (idx << LENGTH_BITS) | u64::from(quota.window_s & ((1 << LENGTH_BITS) - 1)),
            window_left_ms: left,
        })
    }

    async fn ping(&self) -> Result<(), RateLimitError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn credit(&self, key: &str, window: u64, units: u32) -> Result<(), RateLimitError> {
        let window_s = u32::try_from(window & ((1 << LENGTH_BITS) - 1)).unwrap_or(0);
        let idx = window >> LENGTH_BITS;
        let mut conn = self.conn.clone();
        let _: i64 = self
            .credit
            .key(prefix(key, window_s))
            .arg(idx)
            .arg(units)
            .invoke_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(())
    }
}
