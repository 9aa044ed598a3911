//! Reservations in Redis, shared by every token-service replica; each operation is one Lua
//! script (atomic, timed by Redis's clock), with the semantics of [`super::reserve`].
//!
//! Keys: `ptk:bud:r:<budget key>` (hash: grant id → units reserved) and `ptk:bud:x:<budget
//! key>` (sorted set: grant id → lapse time, ms) per budget and period; `ptk:bud:g:<id>` per
//! grant (tokens left, lapse, its budget keys, units per token and scopes); `ptk:bud:e:<scope>`
//! (epoch) and `ptk:bud:seq` (grant ids). Scripts build key names from their arguments, so
//! this needs one Redis (or a primary with replicas), not Redis Cluster. Integers travel as
//! text formatted with `%d` (Lua numbers are doubles: exact to 2^53, far above any budget in
//! nanodollars this service accepts).

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::Script;

use super::reserve::{valid_grant_id, Hold, Reservations, Reserved, Sizing};
use crate::ratelimit::RateLimitError;

/// Shared by the scripts: Redis's clock in ms, integer formatting, lapsed-entry purge and sum.
const PRELUDE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function int(x) return string.format('%d', x) end
local function reserved(key)
  local rk, xk = 'ptk:bud:r:' .. key, 'ptk:bud:x:' .. key
  for _, g in ipairs(redis.call('ZRANGEBYSCORE', xk, '-inf', now)) do
    redis.call('HDEL', rk, g)
  end
  redis.call('ZREMRANGEBYSCORE', xk, '-inf', now)
  local sum = 0
  for _, v in ipairs(redis.call('HVALS', rk)) do sum = sum + tonumber(v) end
  return sum
end
";

/// ARGV: scope count, scopes, their expected epochs, hold count, (key, cap, per_token) per
/// hold, want, min, max, lapse ms, where the grant ids start if `ptk:bud:seq` is unset, the
/// proposed grant id (`''` for none; text, never `tonumber`ed: see `int`).
/// Returns `{0, id, tokens}`, `{1, tightest index, 0}`, `{2, 0, 0}` (stale epochs) or
/// `{3, 0, 0}` (the proposed id is a live grant's).
const RESERVE: &str = r"
local proposed = ARGV[#ARGV]
if proposed ~= '' and redis.call('EXISTS', 'ptk:bud:g:' .. proposed) == 1 then
  return {3, 0, 0}
end
local i = 1
local ns = tonumber(ARGV[i]); i = i + 1
local scopes = {}
for s = 1, ns do scopes[s] = ARGV[i]; i = i + 1 end
for s = 1, ns do
  local e = tonumber(redis.call('GET', 'ptk:bud:e:' .. scopes[s]) or '0')
  if e ~= tonumber(ARGV[i]) then return {2, 0, 0} end
  i = i + 1
end
local nh = tonumber(ARGV[i]); i = i + 1
local keys, pers = {}, {}
local room, tightest = -1, 0
for h = 1, nh do
  local key, cap, per = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  i = i + 3
  keys[h], pers[h] = key, per
  local free = cap - reserved(key)
  if free < 0 then free = 0 end
  local tokens = math.floor(free / per)
  if room < 0 or tokens < room then room, tightest = tokens, h - 1 end
end
local want, mn, mx, lapse = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
if room <= 0 or room < want then return {1, tightest, 0} end
local base = math.min(math.max(math.floor(room / 4), math.min(mn, room)), mx)
local g = math.min(math.max(base, want), room)
-- A sequence that starts at random (a Redis emptied or replaced starts it again), so that a
-- release of a grant from before is not taken for another token's new grant. The id is text
-- from here on: Lua's own number-to-text (`..`) keeps 14 digits and would mangle it.
local id = proposed
if id == '' then
  redis.call('SET', 'ptk:bud:seq', ARGV[i + 4], 'NX')
  id = int(redis.call('INCR', 'ptk:bud:seq'))
end
local lapse_at = now + lapse
for h = 1, nh do
  local rk, xk = 'ptk:bud:r:' .. keys[h], 'ptk:bud:x:' .. keys[h]
  redis.call('HSET', rk, id, int(g * pers[h]))
  redis.call('ZADD', xk, int(lapse_at), id)
  if redis.call('PTTL', rk) < lapse + 1000 then
    redis.call('PEXPIRE', rk, int(lapse + 1000))
    redis.call('PEXPIRE', xk, int(lapse + 1000))
  end
end
local gk = 'ptk:bud:g:' .. id
local per_text = {}
for h = 1, nh do per_text[h] = int(pers[h]) end
redis.call('HSET', gk, 'tokens', int(g), 'lapse', int(lapse_at), 'keys', table.concat(keys, ' '),
  'pers', table.concat(per_text, ' '), 'scopes', table.concat(scopes, ' '))
redis.call('PEXPIRE', gk, int(lapse + 1000))
return {0, id, int(g)}
";

/// ARGV: grant id, tokens. Returns the tokens released.
const RELEASE: &str = r"
local id = ARGV[1]
local gk = 'ptk:bud:g:' .. id
local g = redis.call('HMGET', gk, 'tokens', 'lapse', 'keys', 'pers', 'scopes')
if not g[1] or tonumber(g[2]) <= now then return 0 end
local left = tonumber(g[1])
local r = math.min(left, tonumber(ARGV[2]))
left = left - r
local pers = {}
for p in string.gmatch(g[4], '%S+') do pers[#pers + 1] = tonumber(p) end
local h = 0
for key in string.gmatch(g[3], '%S+') do
  h = h + 1
  local rk, xk = 'ptk:bud:r:' .. key, 'ptk:bud:x:' .. key
  if left == 0 then
    redis.call('HDEL', rk, id)
    redis.call('ZREM', xk, id)
  else
    local u = tonumber(redis.call('HGET', rk, id) or '0') - r * pers[h]
    if u < 0 then u = 0 end
    redis.call('HSET', rk, id, int(u))
  end
end
for scope in string.gmatch(g[5], '%S+') do redis.call('INCR', 'ptk:bud:e:' .. scope) end
if left == 0 then redis.call('DEL', gk) else redis.call('HSET', gk, 'tokens', int(left)) end
return int(r)
";

/// ARGV: budget key. Returns what is reserved against it.
const RESERVED: &str = "return int(reserved(ARGV[1]))";

/// Reservations in one Redis.
pub struct RedisReservations {
    conn: ConnectionManager,
    reserve: Script,
    release: Script,
    reserved: Script,
}

fn failed(e: redis::RedisError) -> RateLimitError {
    RateLimitError(format!("redis (budgets): {e}"))
}

impl RedisReservations {
    /// Connects (and keeps reconnecting) to `url`.
    pub async fn connect(url: &str) -> Result<RedisReservations, RateLimitError> {
        let client = redis::Client::open(url).map_err(failed)?;
        let conn = ConnectionManager::new(client).await.map_err(failed)?;
        let script = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Ok(RedisReservations {
            conn,
            reserve: script(RESERVE),
            release: script(RELEASE),
            reserved: script(RESERVED),
        })
    }
}

#[async_trait]
impl Reservations for RedisReservations {
    async fn epochs(&self, scopes: &[String]) -> Result<Vec<u64>, RateLimitError> {
        if scopes.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = scopes.iter().map(|s| format!("ptk:bud:e:{s}")).collect();
        let mut conn = self.conn.clone();
        let values: Vec<Option<u64>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(values.into_iter().map(Option::unwrap_or_default).collect())
    }

    async fn reserve(
        &self,
        holds: &[Hold],
        scopes: &[String],
        epochs: &[u64],
        sizing: Sizing,
        lapse_ms: u64,
        proposed: Option<u64>,
    ) -> Result<Reserved, RateLimitError> {
        if proposed.is_some_and(|id| !valid_grant_id(id)) {
            return Ok(Reserved::IdTaken);
        }
        let mut invocation = self.reserve.prepare_invoke();
        invocation.arg(scopes.len()).arg(scopes).arg(epochs);
        invocation.arg(holds.len());
        for hold in holds {
            invocation
                .arg(&hold.key)
                .arg(hold.cap)
                .arg(hold.per_token.max(1));
        }
        invocation
            .arg(sizing.want)
            .arg(sizing.min)
            .arg(sizing.max)
            .arg(lapse_ms)
            .arg(super::reserve::first_grant_id())
            .arg(proposed.map(|id| id.to_string()).unwrap_or_default());
        let mut conn = self.conn.clone();
        let (outcome, a, b): (u8, u64, u64) =
            invocation.invoke_async(&mut conn).await.map_err(failed)?;
        Ok(match outcome {
            0 => Reserved::Granted { id: a, tokens: b },
            1 => Reserved::Exhausted {
                index: usize::try_from(a).unwrap_or(0),
            },
            3 => Reserved::IdTaken,
            _ => Reserved::Stale,
        })
    }

    async fn release(&self, grant: u64, tokens: u64) -> Result<(), RateLimitError> {
        let mut conn = self.conn.clone();
        let _: u64 = self
            .release
            .arg(grant)
            .arg(tokens)
            .invoke_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn reserved(&self, key: &str) -> Result<u64, RateLimitError> {
        let mut conn = self.conn.clone();
        self.reserved
            .arg(key)
            .invoke_async(&mut conn)
            .await
            .map_err(failed)
    }
}
