//! Which provider keys the service hands out: a key a filter reported refused by its provider
//! (401, Gemini's `API_KEY_INVALID`) leaves every pool for [`REFUSED_TTL_S`], on every replica
//! (the state lives in the rate limiter's backend: process memory, or Redis when scaled out).
//!
//! A refused key is remembered by a fingerprint (16 hex of the SHA-256 of the key), never the
//! key: a rotated key (same label, new value) is a new key, usable at once, while the same
//! key reloaded stays out until its time is up (and goes out again if still refused).

use std::sync::Arc;

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
}

impl KeyHealth {
    /// Keeps its state in `limiter`'s backend.
    pub fn new(limiter: Arc<dyn RateLimiter>) -> KeyHealth {
        KeyHealth {
            limiter,
            metrics: None,
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
        let refused = match self.limiter.refused_keys(&prints).await {
            Ok(refused) => refused,
            Err(e) => {
                tracing::warn!(error = %e, "key state lookup failed; every key is usable");
                vec![false; pool.len()]
            }
        };
        let mut usable = Vec::with_capacity(pool.len());
        for (key, refused) in pool.iter().zip(refused) {
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
