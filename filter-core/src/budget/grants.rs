//! A budget grant's remaining tokens in proxy-wasm shared data, one entry per cached verdict
//! (`ptk/v1/budget/<cache key>`): the grant's id, the tokens left and the host time after
//! which none may be spent. Every worker spends from it by compare-and-swap, so two workers
//! never spend the same tokens. One entry per token and provider (never one per grant): shared
//! data is never freed, so a new grant replaces the old one, and what the old one still held
//! is released. A grant found expired with tokens left is emptied and released too.

use ptk_wire::{BudgetGrant, GrantRelease};

use crate::shared_data::{CasAnchor, SetError, SharedData};

/// Attempts before giving up on a contended entry (then: a top-up check, always safe).
const CAS_ATTEMPTS: usize = 16;

/// The shared-data key of the grant entry of a verdict cache key.
pub fn grant_key(cache_key: &str) -> String {
    format!("ptk/v1/budget/{cache_key}")
}

/// One grant as shared data holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantEntry {
    /// [`BudgetGrant::id`].
    pub id: u64,
    /// Tokens not spent yet.
    pub remaining: u64,
    /// Host time (ms) from which nothing may be spent.
    pub expires_at_ms: u64,
}

impl GrantEntry {
    /// The entry of `grant`, received for a check sent at `sent_ms`.
    pub fn new(grant: &BudgetGrant, sent_ms: u64) -> GrantEntry {
        GrantEntry {
            id: grant.id,
            remaining: grant.tokens,
            expires_at_ms: sent_ms.saturating_add(grant.expires_in_ms),
        }
    }

    fn encode(self) -> [u8; 24] {
        let mut out = [0u8; 24];
        let fields = [self.id, self.remaining, self.expires_at_ms];
        for (slot, field) in out.chunks_exact_mut(8).zip(fields) {
            slot.copy_from_slice(&field.to_le_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<GrantEntry> {
        let mut fields = bytes
            .chunks_exact(8)
            .map(|c| <[u8; 8]>::try_from(c).ok().map(u64::from_le_bytes));
        let entry = GrantEntry {
            id: fields.next()??,
            remaining: fields.next()??,
            expires_at_ms: fields.next()??,
        };
        (bytes.len() == 24).then_some(entry)
    }

    /// Its unspent tokens as a release (`None` when nothing is left).
    fn release(self) -> Option<GrantRelease> {
        (self.remaining > 0).then_some(GrantRelease {
            grant: self.id,
            tokens: self.remaining,
        })
    }
}

/// Reads the entry of `key` and its CAS (`None` entry: absent or unreadable).
fn read(shared: &impl SharedData, key: &str) -> Option<(Option<GrantEntry>, Option<u32>)> {
    let (bytes, cas) = shared.get(key).ok()?;
    Some((bytes.as_deref().and_then(GrantEntry::decode), cas))
}

/// Installs a fresh grant for `cache_key`, replacing the one there (whose unspent tokens go
/// to `releases`). `false` if it could not be written (its tokens are then released).
pub fn install(
    shared: &impl SharedData,
    anchor: CasAnchor,
    cache_key: &str,
    entry: GrantEntry,
    releases: &mut Vec<GrantRelease>,
) -> bool {
    let key = grant_key(cache_key);
    for _ in 0..CAS_ATTEMPTS {
        let Some((old, cas)) = read(shared, &key) else {
            break;
        };
        if old.is_some_and(|o| o.id == entry.id) {
            return true; // already installed (the same answer seen twice)
        }
        // Absent: create it only if still absent (the anchor's CAS never matches a key).
        let cas = if cas.is_some() { cas } else { anchor.cas() };
        if cas.is_none() {
            break;
        }
        match shared.set(&key, &entry.encode(), cas) {
            Ok(()) => {
                releases.extend(old.and_then(GrantEntry::release));
                return true;
            }
            Err(SetError::CasMismatch) => continue,
            Err(SetError::Other) => break,
        }
    }
    releases.extend(entry.release());
    false
}

/// What spending an estimate gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// Spent from this grant.
    Spent {
        /// The grant's id (its release names it).
        grant: u64,
    },
    /// No grant, an expired one, or too few tokens left: ask for a top-up.
    Short,
}

/// Spends `estimate` tokens of the grant of `cache_key` at host time `now_ms`. An expired
/// grant's unspent tokens are emptied into `releases`.
pub fn spend(
    shared: &impl SharedData,
    cache_key: &str,
    estimate: u64,
    now_ms: u64,
    releases: &mut Vec<GrantRelease>,
) -> Spend {
    let key = grant_key(cache_key);
    for _ in 0..CAS_ATTEMPTS {
        let Some((Some(entry), cas)) = read(shared, &key) else {
            return Spend::Short;
        };
        let expired = now_ms >= entry.expires_at_ms;
        let (updated, outcome) = match entry.remaining.checked_sub(estimate) {
            _ if expired && entry.remaining == 0 => return Spend::Short,
            _ if expired => (
                GrantEntry {
                    remaining: 0,
                    ..entry
                },
                Spend::Short,
            ),
            Some(left) => (
                GrantEntry {
                    remaining: left,
                    ..entry
                },
                Spend::Spent { grant: entry.id },
            ),
            None => return Spend::Short,
        };
        match shared.set(&key, &updated.encode(), cas) {
            Ok(()) => {
                if expired {
                    releases.extend(entry.release());
                }
                return outcome;
            }
            Err(SetError::CasMismatch) => continue,
            Err(SetError::Other) => return Spend::Short,
        }
    }
    Spend::Short
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::shared_data_double::SharedDataDouble;

    const T: u64 = 1_000_000;

    fn grant(id: u64, tokens: u64) -> GrantEntry {
        GrantEntry::new(
            &BudgetGrant {
                id,
                tokens,
                expires_in_ms: 1000,
            },
            T,
        )
    }

    #[test]
    fn spends_until_short_then_a_new_grant_releases_the_rest_of_the_old() {
        let shared = SharedDataDouble::default();
        let anchor = CasAnchor::refresh(&shared);
        let mut rel = Vec::new();
        assert_eq!(spend(&shared, "k", 1, T, &mut rel), Spend::Short);
        assert!(install(&shared, anchor, "k", grant(7, 100), &mut rel));
        assert_eq!(
            spend(&shared, "k", 60, T, &mut rel),
            Spend::Spent { grant: 7 }
        );
        assert_eq!(spend(&shared, "k", 41, T, &mut rel), Spend::Short);
        assert_eq!(
            spend(&shared, "k", 40, T, &mut rel),
            Spend::Spent { grant: 7 }
        );
        assert_eq!(spend(&shared, "k", 1, T, &mut rel), Spend::Short);
        assert!(rel.is_empty());
        // Replaced with 0 left: nothing to release; with some left: released.
        assert!(install(&shared, anchor, "k", grant(8, 50), &mut rel));
        assert!(rel.is_empty());
        assert_eq!(
            spend(&shared, "k", 20, T, &mut rel),
            Spend::Spent { grant: 8 }
        );
        assert!(install(&shared, anchor, "k", grant(9, 50), &mut rel));
        assert_eq!(
            rel,
            vec![GrantRelease {
                grant: 8,
                tokens: 30
            }]
        );
        // The same grant twice is installed once.
        assert!(install(&shared, anchor, "k", grant(9, 50), &mut rel));
        assert_eq!(rel.len(), 1);
    }

    #[test]
    fn an_expired_grant_spends_nothing_and_releases_what_it_held_once() {
        let shared = SharedDataDouble::default();
        let anchor = CasAnchor::refresh(&shared);
        let mut rel = Vec::new();
        assert!(install(&shared, anchor, "k", grant(3, 100), &mut rel));
        assert_eq!(
            spend(&shared, "k", 10, T + 999, &mut rel),
            Spend::Spent { grant: 3 }
        );
        assert_eq!(spend(&shared, "k", 10, T + 1000, &mut rel), Spend::Short);
        assert_eq!(
            rel,
            vec![GrantRelease {
                grant: 3,
                tokens: 90
            }]
        );
        assert_eq!(spend(&shared, "k", 10, T + 1000, &mut rel), Spend::Short);
        assert_eq!(rel.len(), 1);
    }

    #[test]
    fn a_write_racing_another_workers_spend_retries_on_the_fresh_value() {
        let shared = SharedDataDouble::default();
        let anchor = CasAnchor::refresh(&shared);
        let mut rel = Vec::new();
        assert!(install(&shared, anchor, "k", grant(1, 100), &mut rel));
        // Another worker spends 70 between our read and our write.
        let key = grant_key("k");
        shared.before_next_set(move |s| {
            let (bytes, cas) = s.get(&key).unwrap();
            let mut e = GrantEntry::decode(&bytes.unwrap()).unwrap();
            e.remaining -= 70;
            s.raw_set(&key, &e.encode(), cas).unwrap();
        });
        assert_eq!(spend(&shared, "k", 40, T, &mut rel), Spend::Short);
        assert_eq!(
            spend(&shared, "k", 30, T, &mut rel),
            Spend::Spent { grant: 1 }
        );
        assert_eq!(spend(&shared, "k", 1, T, &mut rel), Spend::Short);
    }
}
