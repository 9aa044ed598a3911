//! The Redis backend: windows shared by every token-service replica, so the limit (and its
//! leases) holds across a fleet of Envoys served by several replicas, with the semantics in
//! [`super`]'s docs.
//!
//! Each decision is one Lua script, atomic in Redis and timed by Redis's own clock, so replicas
//! never disagree on a window. A key's window is one Redis hash, `ptk:rl:{key}`, holding when
//! the window started (ms), its length (ms) and the units used; it expires a second after the
//! window ends. The window id handed out with a lease is the start in milliseconds: a credit
//! lands only while that window is still the key's current one.

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::Script;

use super::{retry_after_s, unix_seconds, Acquired, RateLimit, RateLimitError, RateLimiter};

/// Counts one request (ARGV: limit, window length in ms, max lease) and leases a quarter of
/// what is left; starts a new window at the first hit after the last one ended or when the
/// length changed. Returns `{lease, window start ms, ms left in the window, limited (0|1)}`.
const ACQUIRE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])
local w = redis.call('HMGET', KEYS[1], 'start', 'len', 'used')
local start = tonumber(w[1])
local used = tonumber(w[3])
if start == nil or tonumber(w[2]) ~= window_ms or now - start >= window_ms then
  start = now
  used = 0
  redis.call('HSET', KEYS[1], 'start', start, 'len', window_ms, 'used', 0)
  redis.call('PEXPIRE', KEYS[1], window_ms + 1000)
end
local left = start + window_ms - now
if used >= limit then return {0, start, left, 1} end
used = used + 1
local lease = math.min(tonumber(ARGV[3]), math.floor((limit - used) / 4))
redis.call('HINCRBY', KEYS[1], 'used', 1 + lease)
return {lease, start, left, 0}
";

/// Gives back ARGV[2] units to the window that started at ARGV[1] ms, if it is still current.
const CREDIT: &str = r"
local w = redis.call('HMGET', KEYS[1], 'start', 'used')
if tonumber(w[1]) ~= tonumber(ARGV[1]) then return 0 end
local units = math.min(tonumber(w[2]), tonumber(ARGV[2]))
redis.call('HINCRBY', KEYS[1], 'used', -units)
return units
";

/// A rate limiter whose windows live in Redis.
pub struct RedisRateLimiter {
    conn: ConnectionManager,
    acquire: Script,
    credit: Script,
}

fn failed(e: redis::RedisError) -> RateLimitError {
    // The error text names the operation and Redis's answer, never a token or key.
    RateLimitError(format!("redis: {e}"))
}

fn window_key(key: &str) -> String {
    format!("ptk:rl:{key}")
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
        let window_ms = u64::from(quota.window_s).saturating_mul(1000);
        let mut conn = self.conn.clone();
        let (lease, start, left, limited): (u32, u64, u64, u8) = self
            .acquire
            .key(window_key(key))
            .arg(quota.limit)
            .arg(window_ms)
            .arg(max_lease)
            .invoke_async(&mut conn)
            .await
            .map_err(failed)?;
        if limited == 1 {
            return Ok(Acquired::Limited {
                retry_after_s: retry_after_s(left),
            });
        }
        Ok(Acquired::Allowed {
            lease,
            window: start,
            window_left_ms: left,
        })
    }

    async fn credit(&self, key: &str, window: u64, units: u32) -> Result<(), RateLimitError> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .credit
            .key(window_key(key))
            .arg(window)
            .arg(units)
            .invoke_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn refuse_key(&self, fingerprint: &str, ttl_s: u64) -> Result<(), RateLimitError> {
        let mut conn = self.conn.clone();
        let ttl_s = ttl_s.max(1);
        // The value is the end (unix seconds), for the dashboard; the expiry does the work.
        let _: () = redis::cmd("SET")
            .arg(format!("ptk:keyref:{fingerprint}"))
            .arg(unix_seconds().saturating_add(ttl_s))
            .arg("EX")
            .arg(ttl_s)
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn refused_until(
        &self,
        fingerprints: &[String],
    ) -> Result<Vec<Option<u64>>, RateLimitError> {
        if fingerprints.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut mget = redis::cmd("MGET");
        for fingerprint in fingerprints {
            mget.arg(format!("ptk:keyref:{fingerprint}"));
        }
        let found: Vec<Option<String>> = mget.query_async(&mut conn).await.map_err(failed)?;
        // An entry whose value is no time (an older build wrote `1`) is refused, end unknown.
        Ok(found
            .into_iter()
            .map(|v| v.map(|v| v.parse().unwrap_or(0)))
            .collect())
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
}
