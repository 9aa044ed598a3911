//! The verdict cache: allow-verdicts and rate-limit leases per token hash and provider, kept in
//! proxy-wasm shared data so every Envoy worker spends the same lease.
//!
//! `verdict_store.rs` runs the compare-and-swap protocol over shared data; this module decides
//! what to write. An entry is a binary record, cheap to decode on the hot path:
//! `version(2) | valid_until_ms(u64 LE) | units(u32 LE) | window(u64 LE) |
//! limits_len(u32 LE) | limits (JSON of the verdict's `Limits`; empty: none) | key bytes`.
//!
//! Version 2 added the limits, so a cache hit enforces them as a fresh check does, and made the
//! key bytes a key *or a key pool* (`key_pool::encode`). A record of another version (version 1
//! had neither) is never read: it is a miss, never "no limits", and an older plugin sharing the
//! VM's data during a reload never takes a pool for a key.

use ptk_wire::{Lease, Limits, Provider};

const VERSION: u8 = 2;
const HEADER: usize = 1 + 8 + 4 + 8 + 4;

/// Shared-data key of a token's entry for one provider. Keys never collide across tokens or
/// providers, so a verdict cached for one is never used for another.
pub fn cache_key(hash: &str, provider: Provider) -> String {
    format!("ptk/v1/{}/{hash}", provider.as_str())
}

/// One cached allow-verdict with its lease.
#[derive(Clone, PartialEq, Eq)]
pub struct CachedVerdict {
    /// Host time (ms since the epoch) until which the verdict may be reused.
    pub valid_until_ms: u64,
    /// Lease units left to spend locally.
    pub units: u32,
    /// The rate-limit window the units belong to.
    pub window: u64,
    /// The real provider key, or the key pool (`key_pool::encode`).
    pub key: String,
    /// What the allow is narrowed to (`None`: nothing).
    pub limits: Option<Limits>,
}

/// What a cached allow grants one request: the real key and the limits it comes with.
#[derive(Clone, PartialEq, Eq)]
pub struct Grant {
    /// The real provider key.
    pub key: String,
    /// What the allow is narrowed to (`None`: nothing).
    pub limits: Option<Limits>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("key", &"[redacted]")
            .field("limits", &self.limits)
            .finish()
    }
}

impl std::fmt::Debug for CachedVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedVerdict")
            .field("valid_until_ms", &self.valid_until_ms)
            .field("units", &self.units)
            .field("window", &self.window)
            .field("key", &"[redacted]")
            .field("limits", &self.limits)
            .finish()
    }
}

impl CachedVerdict {
    /// The binary record.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain fields cannot fail; limits are only ever written with them.
        let limits = self
            .limits
            .as_ref()
            .and_then(|l| serde_json::to_vec(l).ok())
            .unwrap_or_default();
        let limits_len = u32::try_from(limits.len()).unwrap_or(u32::MAX);
        let size = HEADER
            .saturating_add(limits.len())
            .saturating_add(self.key.len());
        let mut out = Vec::with_capacity(size);
        out.push(VERSION);
        out.extend_from_slice(&self.valid_until_ms.to_le_bytes());
        out.extend_from_slice(&self.units.to_le_bytes());
        out.extend_from_slice(&self.window.to_le_bytes());
        out.extend_from_slice(&limits_len.to_le_bytes());
        out.extend_from_slice(&limits);
        out.extend_from_slice(self.key.as_bytes());
        out
    }

    /// What it grants a request.
    pub fn grant(&self) -> Grant {
        Grant {
            key: self.key.clone(),
            limits: self.limits.clone(),
        }
    }

    /// Parses a record; `None` for anything malformed (treated as a miss).
    pub fn decode(bytes: &[u8]) -> Option<CachedVerdict> {
        if bytes.len() < HEADER || bytes.first() != Some(&VERSION) {
            return None;
        }
        let valid_until_ms = u64::from_le_bytes(bytes.get(1..9)?.try_into().ok()?);
        let units = u32::from_le_bytes(bytes.get(9..13)?.try_into().ok()?);
        let window = u64::from_le_bytes(bytes.get(13..21)?.try_into().ok()?);
        let limits_len = u32::from_le_bytes(bytes.get(21..HEADER)?.try_into().ok()?);
        let key_at = HEADER.checked_add(usize::try_from(limits_len).ok()?)?;
        let limits = match bytes.get(HEADER..key_at)? {
            [] => None,
            // Limits that do not read back are a miss, never "no limits".
            json => Some(serde_json::from_slice::<Limits>(json).ok()?),
        };
        let key = std::str::from_utf8(bytes.get(key_at..)?).ok()?.to_string();
        Some(CachedVerdict {
            valid_until_ms,
            units,
            window,
            key,
            limits,
        })
    }

    fn valid_at(&self, now_ms: u64) -> bool {
        now_ms < self.valid_until_ms && !self.key.is_empty()
    }
}

/// Below this many units in the shared entry, a worker takes one unit at a time, so near a
/// token's limit no unit can sit in one worker's pool while another worker refuses.
pub const BATCH_FROM: u32 = 32;

/// Most units one worker takes from the shared entry at once.
pub const MAX_BATCH: u32 = 64;

/// Units a worker takes from a shared entry holding `units`: one, or for a large lease an
/// eighth of it (so every worker still finds units), the rest kept in its local pool.
pub fn batch_size(units: u32) -> u32 {
    if units >= BATCH_FROM {
        (units / 8).clamp(1, MAX_BATCH)
    } else {
        units.min(1)
    }
}

/// What the cache says about one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Spend {
    /// Allowed from the cache: write `updated` back (with the CAS it was read with), then
    /// forward with `key`; `taken - 1` more units go to this worker's local pool.
    Hit {
        /// The real key and the limits.
        grant: Grant,
        /// The entry with `taken` units fewer.
        updated: Vec<u8>,
        /// Units taken (at least one: this request's).
        taken: u32,
        /// Until when the taken units may be spent.
        valid_until_ms: u64,
        /// The window they belong to.
        window: u64,
    },
    /// Ask the token-service. If `reclaim` is set, first write its entry back (CAS) to take
    /// the expired lease's units, and hand them back on the check.
    Miss {
        /// Units of an expired lease, and the entry without them.
        reclaim: Option<(Lease, Vec<u8>)>,
    },
}

/// Tries to spend one unit of the stored entry at host time `now_ms`.
pub fn spend(stored: Option<&[u8]>, now_ms: u64) -> Spend {
    let Some(mut entry) = stored.and_then(CachedVerdict::decode) else {
        return Spend::Miss { reclaim: None };
    };
    if entry.units == 0 {
        return Spend::Miss { reclaim: None };
    }
    if entry.valid_at(now_ms) {
        let taken = batch_size(entry.units);
        // `batch_size` never takes more than there is.
        entry.units = entry.units.saturating_sub(taken);
        return Spend::Hit {
            grant: entry.grant(),
            updated: entry.encode(),
            taken,
            valid_until_ms: entry.valid_until_ms,
            window: entry.window,
        };
    }
    let lease = Lease {
        units: entry.units,
        window: entry.window,
    };
    entry.units = 0;
    Spend::Miss {
        reclaim: Some((lease, entry.encode())),
    }
}

/// The entry to store after a fresh grant: the grant, plus any units still valid in the stored
/// entry for the same window (another worker's lease, not yet spent). `None` when the grant
/// leases nothing: an entry without units never allows a request, and writing one would
/// wipe the units another worker's lease put there.
pub fn merge(stored: Option<&[u8]>, now_ms: u64, grant: &CachedVerdict) -> Option<Vec<u8>> {
    if grant.units == 0 {
        return None;
    }
    let carried = stored
        .and_then(CachedVerdict::decode)
        .filter(|e| e.valid_at(now_ms) && e.window == grant.window)
        .map_or(0, |e| e.units);
    Some(
        CachedVerdict {
            units: grant.units.saturating_add(carried),
            ..grant.clone()
        }
        .encode(),
    )
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::cast_possible_truncation
)]
mod tests {
    use super::*;

    fn entry(valid_until_ms: u64, units: u32, window: u64) -> CachedVerdict {
        CachedVerdict {
            valid_until_ms,
            units,
            window,
            key: "sk-real".to_string(),
            limits: None,
        }
    }

    #[test]
    fn round_trip_and_malformed_records() {
        let e = entry(1_000, 7, 42);
        assert_eq!(CachedVerdict::decode(&e.encode()), Some(e.clone()));
        assert_eq!(CachedVerdict::decode(&[]), None);
        assert_eq!(CachedVerdict::decode(&e.encode()[..HEADER - 1]), None);
        let mut wrong_version = e.encode();
        wrong_version[0] = 9;
        assert_eq!(CachedVerdict::decode(&wrong_version), None);
        assert!(!format!("{e:?}").contains("sk-real"));
    }

    fn limited(models: &[&str]) -> CachedVerdict {
        CachedVerdict {
            limits: Some(Limits {
                models: Some(models.iter().map(|m| m.to_string()).collect()),
                ..Limits::default()
            }),
            ..entry(1_000, 4, 9)
        }
    }

    #[test]
    fn limits_round_trip_and_a_hit_carries_them() {
        let e = limited(&["gpt-5*", "claude-sonnet-4*"]);
        assert_eq!(CachedVerdict::decode(&e.encode()), Some(e.clone()));
        let Spend::Hit { grant, updated, .. } = spend(Some(&e.encode()), 10) else {
            panic!("expected a hit");
        };
        assert_eq!(grant.limits, e.limits);
        assert_eq!(
            CachedVerdict::decode(&updated).and_then(|u| u.limits),
            e.limits
        );
        // A fresh grant's limits replace the stored ones (a changed allow-list wins).
        let fresh = limited(&["gpt-4o"]);
        let merged = merge(Some(&e.encode()), 10, &fresh).unwrap();
        assert_eq!(CachedVerdict::decode(&merged).unwrap().limits, fresh.limits);
        let lifted = merge(Some(&e.encode()), 10, &entry(1_000, 1, 9)).unwrap();
        assert_eq!(CachedVerdict::decode(&lifted).unwrap().limits, None);
    }

    #[test]
    fn an_old_format_or_unreadable_limits_record_is_a_miss_never_no_limits() {
        // Version 1: version | valid_until | units | window | key (no limits).
        let mut v1 = vec![1u8];
        v1.extend_from_slice(&1_000u64.to_le_bytes());
        v1.extend_from_slice(&4u32.to_le_bytes());
        v1.extend_from_slice(&9u64.to_le_bytes());
        v1.extend_from_slice(b"sk-real");
        assert_eq!(CachedVerdict::decode(&v1), None);
        assert_eq!(spend(Some(&v1), 10), Spend::Miss { reclaim: None });
        // Limits this build cannot read (an unknown limit, or garbage) never read as none.
        let mut unknown = entry(1_000, 4, 9).encode();
        let json = br#"{"models":["x"],"spend_cap":1}"#;
        unknown.splice(21..25, (json.len() as u32).to_le_bytes());
        unknown.splice(25..25, json.iter().copied());
        assert_eq!(CachedVerdict::decode(&unknown), None);
        let mut short = limited(&["gpt-5"]).encode();
        short.truncate(30);
        assert_eq!(CachedVerdict::decode(&short), None);
    }

    #[test]
    fn a_valid_entry_with_units_is_a_hit_and_spends_one() {
        let stored = entry(1_000, 2, 1).encode();
        let Spend::Hit {
            grant,
            updated,
            taken,
            valid_until_ms,
            window,
        } = spend(Some(&stored), 999)
        else {
            panic!("expected a hit");
        };
        assert_eq!(grant.limits, None);
        assert_eq!(
            (grant.key.as_str(), taken, valid_until_ms, window),
            ("sk-real", 1, 1_000, 1)
        );
        assert_eq!(CachedVerdict::decode(&updated), Some(entry(1_000, 1, 1)));
    }

    #[test]
    fn large_leases_are_taken_in_batches_small_ones_one_by_one() {
        assert_eq!(batch_size(0), 0);
        assert_eq!(batch_size(1), 1);
        assert_eq!(batch_size(BATCH_FROM - 1), 1);
        assert_eq!(batch_size(BATCH_FROM), 4);
        assert_eq!(batch_size(1000), MAX_BATCH);
        let stored = entry(1_000, 800, 1).encode();
        let Spend::Hit { taken, updated, .. } = spend(Some(&stored), 0) else {
            panic!("expected a hit");
        };
        assert_eq!(taken, 64);
        assert_eq!(CachedVerdict::decode(&updated).map(|e| e.units), Some(736));
    }

    #[test]
    fn misses() {
        assert_eq!(spend(None, 0), Spend::Miss { reclaim: None });
        assert_eq!(spend(Some(b"junk"), 0), Spend::Miss { reclaim: None });
        let empty = entry(1_000, 0, 1).encode();
        assert_eq!(spend(Some(&empty), 10), Spend::Miss { reclaim: None });
        let mut keyless = entry(1_000, 3, 1);
        keyless.key.clear();
        assert!(matches!(
            spend(Some(&keyless.encode()), 10),
            Spend::Miss { reclaim: Some(_) }
        ));
    }

    #[test]
    fn an_expired_lease_is_reclaimed_for_return() {
        let stored = entry(1_000, 5, 77).encode();
        let Spend::Miss {
            reclaim: Some((lease, updated)),
        } = spend(Some(&stored), 1_000)
        else {
            panic!("expected a reclaim");
        };
        assert_eq!(
            lease,
            Lease {
                units: 5,
                window: 77
            }
        );
        assert_eq!(CachedVerdict::decode(&updated), Some(entry(1_000, 0, 77)));
    }

    #[test]
    fn merge_adds_a_valid_same_window_lease_only() {
        let units = |stored: Option<&[u8]>, grant: &CachedVerdict| {
            merge(stored, 1_000, grant)
                .and_then(|v| CachedVerdict::decode(&v))
                .map(|e| e.units)
        };
        let grant = entry(2_000, 10, 5);
        let live = entry(1_500, 3, 5).encode();
        assert_eq!(units(Some(&live), &grant), Some(13));
        let old_window = entry(1_500, 3, 4).encode();
        assert_eq!(units(Some(&old_window), &grant), Some(10));
        let expired = entry(900, 3, 5).encode();
        assert_eq!(units(Some(&expired), &grant), Some(10));
        assert_eq!(units(None, &grant), Some(10));
    }

    #[test]
    fn a_grant_without_units_never_overwrites_a_lease() {
        let live = entry(1_500, 3, 5).encode();
        assert_eq!(merge(Some(&live), 1_000, &entry(2_000, 0, 0)), None);
        assert_eq!(merge(None, 1_000, &entry(2_000, 0, 0)), None);
    }

    #[test]
    fn keys_separate_tokens_and_providers() {
        let a = cache_key("aa", Provider::Openai);
        assert_ne!(a, cache_key("aa", Provider::Gemini));
        assert_ne!(a, cache_key("ab", Provider::Openai));
    }
}
