//! Provider key pools in the filter: the keys an allow carries, kept with the cached verdict,
//! and the per-request pick.
//!
//! **Where the pool lives.** The verdict cache keeps one string per verdict where it kept the
//! real key; with a pool that string is the pool itself (`encode`): entries `id\x02key`, each
//! after a `\x01`. A real key is an HTTP header value, which can never hold those control
//! bytes, so a plain key and a pool never read as each other.
//!
//! **Policy.** Round robin over the pool's keys that are neither cooling down (an upstream
//! 429) nor refused (an upstream 401), as this Envoy's shared data says (`key_state.rs`).
//! The counter is per worker: a cross-worker counter would cost a compare-and-swap of shared
//! data on every request, and Envoy spreads connections over workers, so per-worker turns
//! still share the load evenly overall. Every key cooling: 429 with `Retry-After` of the
//! soonest end (the provider is not hammered); every key refused: 503, as with no key.

use ptk_wire::PoolKey;

use crate::key_state::KeyStates;
use crate::refusal::Refusal;

const ENTRY: char = '\u{1}';
const SEP: char = '\u{2}';

/// The string the verdict cache keeps for `key` and `pool`: the key alone without a pool.
pub fn encode(key: &str, pool: &[PoolKey]) -> String {
    if pool.is_empty() {
        return key.to_owned();
    }
    let mut out = String::new();
    for entry in pool {
        out.push(ENTRY);
        out.push_str(&entry.id);
        out.push(SEP);
        out.push_str(&entry.key);
    }
    out
}

/// The pool in a cached string, as `(id, key)` pairs; `None` for a plain key.
pub fn decode(stored: &str) -> Option<Vec<(&str, &str)>> {
    let rest = stored.strip_prefix(ENTRY)?;
    Some(
        rest.split(ENTRY)
            .filter_map(|entry| entry.split_once(SEP))
            .collect(),
    )
}

/// The key a request goes upstream with, and its name when it came from a pool.
#[derive(Clone, PartialEq, Eq)]
pub struct Chosen {
    /// The real key.
    pub key: String,
    /// The pool key's name (`None`: a plain key, nothing to report about it).
    pub id: Option<String>,
}

impl std::fmt::Debug for Chosen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chosen")
            .field("key", &"[redacted]")
            .field("id", &self.id)
            .finish()
    }
}

/// Picks the key for one request from a cached string: the plain key, or the next healthy
/// pool key after `turn` (this worker's counter; the caller advances it).
pub fn choose(
    stored: &str,
    states: &KeyStates,
    turn: usize,
    now_ms: u64,
) -> Result<Chosen, Refusal> {
    let Some(pool) = decode(stored) else {
        return Ok(Chosen {
            key: stored.to_owned(),
            id: None,
        });
    };
    // Turns go round the healthy keys only, so a key out of rotation does not hand its
    // turns to one neighbour: the rest share the load evenly.
    let healthy: Vec<&(&str, &str)> = pool
        .iter()
        .filter(|(id, _)| states.usable(id, now_ms))
        .collect();
    let index = turn.checked_rem(healthy.len()).unwrap_or(0);
    if let Some((id, key)) = healthy.get(index) {
        return Ok(Chosen {
            key: (*key).to_owned(),
            id: Some((*id).to_owned()),
        });
    }
    let soonest = pool
        .iter()
        .filter_map(|(id, _)| states.cooling_until(id, now_ms))
        .min();
    match soonest {
        Some(until) => Err(Refusal::RateLimited {
            retry_after_s: until.saturating_sub(now_ms).div_ceil(1000).max(1),
        }),
        None => Err(Refusal::ProviderUnconfigured),
    }
}

/// The first key of a cached string, with no key states: for callers without shared data
/// (tests, tools).
pub fn first_key(stored: &str) -> Result<Chosen, Refusal> {
    choose(stored, &KeyStates::default(), 0, 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::key_state::Mark;

    fn pool() -> Vec<PoolKey> {
        ["a", "b", "c"]
            .iter()
            .map(|id| PoolKey {
                id: (*id).to_owned(),
                key: format!("sk-{id}-secret"),
            })
            .collect()
    }

    fn ids(stored: &str, states: &KeyStates, now: u64) -> Vec<String> {
        (0..6)
            .map(|turn| match choose(stored, states, turn, now) {
                Ok(c) => c.id.unwrap(),
                Err(r) => format!("{r:?}"),
            })
            .collect()
    }

    #[test]
    fn a_plain_key_is_its_own_choice_and_a_pool_round_trips() {
        let states = KeyStates::default();
        let plain = choose("sk-plain", &states, 7, 0).unwrap();
        assert_eq!(
            (plain.key.as_str(), plain.id.as_deref()),
            ("sk-plain", None)
        );
        let stored = encode("sk-a-secret", &pool());
        assert_eq!(decode(&stored).unwrap()[2], ("c", "sk-c-secret"));
        assert_eq!(encode("sk-x", &[]), "sk-x");
        assert!(!format!("{plain:?}").contains("sk-plain"));
    }

    #[test]
    fn round_robin_skips_cooling_and_refused_keys() {
        let stored = encode("sk-a-secret", &pool());
        let mut states = KeyStates::default();
        assert_eq!(ids(&stored, &states, 0), ["a", "b", "c", "a", "b", "c"]);
        states.mark("b", Mark::Cooldown { until_ms: 5_000 }, 0);
        assert_eq!(ids(&stored, &states, 1_000), ["a", "c", "a", "c", "a", "c"]);
        // The cooldown ends: the key is used again.
        assert_eq!(ids(&stored, &states, 5_000), ["a", "b", "c", "a", "b", "c"]);
        states.mark("c", Mark::Refused { until_ms: 60_000 }, 0);
        assert_eq!(ids(&stored, &states, 5_000)[..3], ["a", "b", "a"]);
    }

    #[test]
    fn every_key_cooling_is_a_429_until_the_soonest_end_every_key_refused_a_503() {
        let stored = encode("sk-a-secret", &pool());
        let mut states = KeyStates::default();
        states.mark("a", Mark::Cooldown { until_ms: 30_500 }, 0);
        states.mark("b", Mark::Cooldown { until_ms: 12_001 }, 0);
        states.mark("c", Mark::Refused { until_ms: 99_000 }, 0);
        assert_eq!(
            choose(&stored, &states, 0, 2_000),
            Err(Refusal::RateLimited { retry_after_s: 11 })
        );
        states.mark("a", Mark::Refused { until_ms: 99_000 }, 0);
        states.mark("b", Mark::Refused { until_ms: 99_000 }, 0);
        assert_eq!(
            choose(&stored, &states, 0, 2_000),
            Err(Refusal::ProviderUnconfigured)
        );
    }
}
