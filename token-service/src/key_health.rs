//! Which provider keys the service hands out: a key a filter reported refused by its provider
//! (401, Gemini's `API_KEY_INVALID`) leaves every pool for [`REFUSED_TTL_S`], on every replica
//! (the state lives in the rate limiter's backend: process memory, or Redis when scaled out).
//!
//! A refused key is remembered by a fingerprint (16 hex of the SHA-256 of the key), never the
//! key: a rotated key (same label, new value) is a new key, usable at once, while the same
//! key reloaded stays out until its time is up (and goes out again if still refused).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ptk_wire::{KeyEvent, KeyEventKind, PoolKey, Provider};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};

use crate::key_pools::NamedKey;
use crate::keys::{expose, ProviderKeys};
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;

/// How long a refused key stays out of rotation (seconds): long enough not to hammer a
/// revoked key, short enough that a key refused by a passing fault comes back by itself.
pub const REFUSED_TTL_S: u64 = 3600;

/// The fingerprint a refused key is remembered by.
pub fn fingerprint(key: &SecretString) -> String {
    let digest = Sha256::digest(key.expose_secret().as_bytes());
    hex::encode(digest.get(..8).unwrap_or_default())
}

/// The refused-key state and its metrics.
pub struct KeyHealth {
    limiter: Arc<dyn RateLimiter>,
    metrics: Option<Arc<Metrics>>,
    /// Until when (unix ms) a filter said a key cools down, by provider and key name: for the
    /// dashboard only (cooling is each Envoy's own; this replica keeps what it was told).
    cooling: Mutex<HashMap<(&'static str, String), u64>>,
}

/// What the dashboard shows of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Handed out.
    Usable,
    /// A filter reported a 429: it cools down on that Envoy until then (unix ms).
    Cooling {
        /// Unix milliseconds.
        until_ms: u64,
    },
    /// Refused by its provider: out of every pool until then (unix seconds; 0: unknown).
    Refused {
        /// Unix seconds.
        until_s: u64,
    },
}

impl KeyHealth {
    /// Keeps its state in `limiter`'s backend.
    pub fn new(limiter: Arc<dyn RateLimiter>) -> KeyHealth {
        KeyHealth {
            limiter,
            metrics: None,
            cooling: Mutex::default(),
        }
    }

    /// Also raises `ptk_provider_key_state` and counts key events in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> KeyHealth {
        self.metrics = Some(metrics);
        self
    }

    /// The keys of `pool` not refused, in order. A pool of one key is not looked up (it
    /// rotates nowhere, and filters report no events for it); if the backend fails, every
    /// key is usable (fail open: the provider still refuses a bad key).
    pub async fn usable<'a>(&self, provider: Provider, pool: &'a [NamedKey]) -> Vec<&'a NamedKey> {
        if pool.len() < 2 {
            return pool.iter().collect();
        }
        let prints: Vec<String> = pool.iter().map(|k| fingerprint(k.secret())).collect();
        let refused = match self.limiter.refused_until(&prints).await {
            Ok(refused) => refused,
            Err(e) => {
                tracing::warn!(error = %e, "key state lookup failed; every key is usable");
                vec![None; pool.len()]
            }
        };
        let mut usable = Vec::with_capacity(pool.len());
        for (key, refused) in pool.iter().zip(refused) {
            let refused = refused.is_some();
            if let Some(metrics) = &self.metrics {
                metrics.key_state(provider.as_str(), &key.id, refused);
            }
            if !refused {
                usable.push(key);
            }
        }
        usable
    }

    /// Acts on what filters saw: refused keys leave rotation (every pool they are in), and
    /// every event is counted. An id no configured key has (reloaded away) is ignored.
    pub async fn report(&self, keys: &ProviderKeys, events: &[KeyEvent]) {
        for event in events {
            let known = keys.keys_of(event.provider);
            let Some((key, _)) = known.iter().find(|(k, _)| k.id == event.key) else {
                continue;
            };
            let kind = match event.event {
                KeyEventKind::Refused => "refused",
                KeyEventKind::RateLimited => "rate_limited",
                KeyEventKind::Other => continue,
            };
            if let Some(ms) = event.cooling_ms {
                self.cooled(event.provider, &key.id, ms);
            }
            if let Some(metrics) = &self.metrics {
                metrics.key_event(event.provider.as_str(), &key.id, kind);
            }
            if event.event != KeyEventKind::Refused {
                continue;
            }
            tracing::warn!(
                provider = event.provider.as_str(),
                key = %key.id,
                "provider refused a pool key; out of rotation for {REFUSED_TTL_S}s"
            );
            if let Err(e) = self
                .limiter
                .refuse_key(&fingerprint(key.secret()), REFUSED_TTL_S)
                .await
            {
                tracing::warn!(error = %e, "could not record a refused key");
            }
            if let Some(metrics) = &self.metrics {
                metrics.key_state(event.provider.as_str(), &key.id, true);
            }
        }
    }
}

impl KeyHealth {
    /// Remembers that a filter cools `id` down for `ms` from now (the report may arrive up to
    /// a report interval late, so the end shown is at most that much late).
    fn cooled(&self, provider: Provider, id: &str, ms: u64) {
        let until = unix_ms().saturating_add(ms);
        let mut cooling = self.cooling.lock().unwrap_or_else(|e| e.into_inner());
        let now = unix_ms();
        cooling.retain(|_, end| *end > now);
        cooling.insert((provider.as_str(), id.to_owned()), until);
    }

    /// The state of each of `keys` (same order), for the dashboard. Refused wins over
    /// cooling; if the backend fails, refusals are not known and keys read usable.
    pub async fn states(&self, provider: Provider, keys: &[&NamedKey]) -> Vec<KeyState> {
        let prints: Vec<String> = keys.iter().map(|k| fingerprint(k.secret())).collect();
        let refused = self
            .limiter
            .refused_until(&prints)
            .await
            .unwrap_or_else(|_| vec![None; keys.len()]);
        let cooling = self.cooling.lock().unwrap_or_else(|e| e.into_inner());
        let now = unix_ms();
        keys.iter()
            .zip(refused)
            .map(|(key, refused)| {
                if let Some(until_s) = refused {
                    return KeyState::Refused { until_s };
                }
                match cooling.get(&(provider.as_str(), key.id.clone())) {
                    Some(&until_ms) if until_ms > now => KeyState::Cooling { until_ms },
                    _ => KeyState::Usable,
                }
            })
            .collect()
    }
}

/// Now as unix milliseconds.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The pool an allow carries: the usable keys with their names (empty for a single key, which
/// needs no rotation: the answer then stays as it was before pools).
pub fn wire_pool(usable: &[&NamedKey]) -> Vec<PoolKey> {
    if usable.len() < 2 {
        return Vec::new();
    }
    usable
        .iter()
        .map(|k| PoolKey {
            id: k.id.clone(),
            key: expose(k.secret()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::key_pools::parse_list;
    use crate::ratelimit::InMemoryRateLimiter;

    fn event(id: &str, kind: KeyEventKind) -> KeyEvent {
        KeyEvent {
            provider: Provider::Openai,
            key: id.to_owned(),
            event: kind,
            cooling_ms: (kind == KeyEventKind::RateLimited).then_some(60_000),
        }
    }

    #[tokio::test]
    async fn a_refused_key_leaves_every_pool_it_is_in() {
        let pool = parse_list("[a]sk-key-aaaa,[b]sk-key-bbbb,[c]sk-key-cccc", "K").unwrap();
        let keys = ProviderKeys::none()
            .with_pool(Provider::Openai, None, pool.clone())
            .with_pool(Provider::Openai, Some("team"), pool[1..].to_vec());
        let health = KeyHealth::new(Arc::new(InMemoryRateLimiter::new()));
        let ids = |v: Vec<&NamedKey>| v.iter().map(|k| k.id.clone()).collect::<Vec<_>>();
        assert_eq!(
            ids(health.usable(Provider::Openai, &pool).await),
            ["a", "b", "c"]
        );
        let events = [
            event("b", KeyEventKind::Refused),
            event("a", KeyEventKind::RateLimited),
            event("zz", KeyEventKind::Refused),
        ];
        health.report(&keys, &events).await;
        assert_eq!(
            ids(health.usable(Provider::Openai, &pool).await),
            ["a", "c"]
        );
        let team = keys.pool(Provider::Openai, Some("team"));
        assert_eq!(ids(health.usable(Provider::Openai, team).await), ["c"]);
        // A pool of one is never looked up: nothing to rotate to.
        assert_eq!(
            ids(health.usable(Provider::Openai, &pool[1..2]).await),
            ["b"]
        );
    }

    #[tokio::test]
    async fn states_say_refused_over_cooling_and_until_when() {
        let pool = parse_list("[a]sk-key-aaaa,[b]sk-key-bbbb,[c]sk-key-cccc", "K").unwrap();
        let keys = ProviderKeys::none().with_pool(Provider::Openai, None, pool.clone());
        let health = KeyHealth::new(Arc::new(InMemoryRateLimiter::new()));
        let refs: Vec<&NamedKey> = pool.iter().collect();
        let before = unix_ms();
        let events = [
            event("a", KeyEventKind::RateLimited),
            event("b", KeyEventKind::RateLimited),
            event("b", KeyEventKind::Refused),
        ];
        health.report(&keys, &events).await;
        let states = health.states(Provider::Openai, &refs).await;
        let KeyState::Cooling { until_ms } = states[0] else {
            panic!("{states:?}")
        };
        assert!((before + 60_000..=unix_ms() + 60_000).contains(&until_ms));
        let KeyState::Refused { until_s } = states[1] else {
            panic!("{states:?}")
        };
        let hour = before / 1000 + REFUSED_TTL_S;
        assert!((hour..=hour + 2).contains(&until_s), "{until_s}");
        assert_eq!(states[2], KeyState::Usable);
        // Another provider's key of the same name is not cooling.
        let other = health.states(Provider::Anthropic, &refs[..1]).await;
        assert_eq!(other, [KeyState::Usable]);
    }

    #[test]
    fn the_wire_pool_names_keys_and_is_empty_for_one_key() {
        let pool = parse_list("[a]sk-key-aaaa,sk-key-bbbb", "K").unwrap();
        let refs: Vec<&NamedKey> = pool.iter().collect();
        let wire = wire_pool(&refs);
        assert_eq!(wire[1].id, "...bbbb");
        assert_eq!(wire[1].key, "sk-key-bbbb");
        assert!(wire_pool(&refs[..1]).is_empty());
        assert_ne!(fingerprint(pool[0].secret()), fingerprint(pool[1].secret()));
        assert!(!fingerprint(pool[0].secret()).contains("aaaa"));
    }
}
