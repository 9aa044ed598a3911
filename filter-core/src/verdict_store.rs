//! The verdict cache's protocol over proxy-wasm shared data: spend a lease unit (this worker's
//! pool first, then shared data with compare-and-swap) and merge fresh grants, so two workers
//! never spend the same unit or lose each other's grants.
//!
//! Memory is bounded by the tokens the token-service **allowed**: a key is only ever created
//! for a grant. Refused or unknown tokens never write shared data, which Envoy never frees
//! (proxy-wasm has no delete), so a flood of random tokens cannot grow it.
//!
//! Keys are created only if absent, with the CAS anchor of `shared_data.rs`.

use ptk_wire::Lease;

use crate::local_pool::{combine, LocalPool, Take};
use crate::shared_data::{CasAnchor, SetError, SharedData};
use crate::verdict_cache::{merge, spend, CachedVerdict, Grant, Spend};

/// Attempts before giving up on a contended entry (then: ask the token-service, which is
/// always safe, or leave a grant uncached, which only costs a later check).
const CAS_ATTEMPTS: usize = 16;

/// Outcome of looking a request up in the cache.
#[derive(PartialEq, Eq)]
pub enum Lookup {
    /// Allowed from the cache with this real key and these limits.
    Hit(Grant),
    /// Ask the token-service, handing back these expired units if any.
    Miss(Option<Lease>),
}

impl std::fmt::Debug for Lookup {
    // Never print the real key, even in a test failure.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lookup::Hit(_) => f.write_str("Hit([redacted])"),
            Lookup::Miss(returned) => f.debug_tuple("Miss").field(returned).finish(),
        }
    }
}

/// What shared data gave.
enum FromShared {
    /// A unit for this request, plus `extra` for the pool.
    Hit {
        grant: Grant,
        extra: u32,
        valid_until_ms: u64,
        window: u64,
    },
    Miss(Option<Lease>),
}

/// Spends one unit for `cache_key`: from this worker's pool if it holds one, else from shared
/// data (taking a batch into the pool when the shared lease is large). Never writes a key that
/// does not exist.
pub fn spend_one(
    shared: &impl SharedData,
    pool: &mut LocalPool,
    cache_key: &str,
    now_ms: u64,
) -> Lookup {
    let expired = match pool.take(cache_key, now_ms) {
        Take::Key(grant) => return Lookup::Hit(grant),
        Take::Empty { expired } => expired,
    };
    match take_shared(shared, cache_key, now_ms) {
        FromShared::Hit {
            grant,
            extra,
            valid_until_ms,
            window,
        } => {
            // A fresher verdict for the same window revalidates this worker's expired units.
            let kept = expired
                .filter(|l| l.window == window)
                .map_or(0, |l| l.units);
            pool.hold(
                cache_key,
                extra.saturating_add(kept),
                valid_until_ms,
                window,
                &grant,
            );
            Lookup::Hit(grant)
        }
        FromShared::Miss(returned) => Lookup::Miss(combine(expired, returned)),
    }
}

/// Takes units from the shared entry if a valid cached verdict has some.
fn take_shared(shared: &impl SharedData, cache_key: &str, now_ms: u64) -> FromShared {
    for _ in 0..CAS_ATTEMPTS {
        let Ok((stored, cas)) = shared.get(cache_key) else {
            return FromShared::Miss(None);
        };
        let (write, outcome) = match spend(stored.as_deref(), now_ms) {
            Spend::Hit {
                grant,
                updated,
                taken,
                valid_until_ms,
                window,
            } => (
                updated,
                FromShared::Hit {
                    grant,
                    extra: taken.saturating_sub(1),
                    valid_until_ms,
                    window,
                },
            ),
            // Nothing to take and nothing to write: an absent key stays absent.
            Spend::Miss { reclaim: None } => return FromShared::Miss(None),
            Spend::Miss {
                reclaim: Some((lease, updated)),
            } => (updated, FromShared::Miss(Some(lease))),
        };
        match shared.set(cache_key, &write, cas) {
            Ok(()) => return outcome,
            Err(SetError::CasMismatch) => continue,
            Err(SetError::Other) => return FromShared::Miss(None),
        }
    }
    FromShared::Miss(None)
}

/// Stores a fresh grant, keeping any units another worker still holds for the same window. An
/// absent key is created only if it is still absent (the anchor CAS); a creator that loses the
/// race merges into the winner's entry instead of overwriting it.
pub fn store(
    shared: &impl SharedData,
    anchor: CasAnchor,
    cache_key: &str,
    grant: &CachedVerdict,
    now_ms: u64,
) {
    for _ in 0..CAS_ATTEMPTS {
        let Ok((stored, cas)) = shared.get(cache_key) else {
            return;
        };
        let Some(value) = merge(stored.as_deref(), now_ms, grant) else {
            return;
        };
        // An absent key is created only if it is still absent (the anchor CAS). Without an
        // anchor, leave the grant uncached rather than risk overwriting a concurrent creator's.
        let Some(cas) = cas.or(anchor.cas()) else {
            return;
        };
        match shared.set(cache_key, &value, Some(cas)) {
            Err(SetError::CasMismatch) => continue,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared_data::ANCHOR_KEY;
    use crate::shared_data_double::SharedDataDouble;
    use crate::verdict_cache::cache_key;

    fn units(shared: &SharedDataDouble, key: &str) -> Option<u32> {
        shared
            .value(key)
            .and_then(|v| CachedVerdict::decode(&v))
            .map(|e| e.units)
    }

    fn grant(units: u32) -> CachedVerdict {
        CachedVerdict {
            valid_until_ms: 10_000,
            units,
            window: 1,
            key: "sk-real".to_string(),
            limits: None,
        }
    }

    fn key(n: u32) -> String {
        cache_key(&format!("{n:064x}"), ptk_wire::Provider::Openai)
    }

    #[test]
    fn misses_never_create_keys() {
        let shared = SharedDataDouble::default();
        let mut pool = LocalPool::default();
        for n in 0..10_000 {
            assert_eq!(
                spend_one(&shared, &mut pool, &key(n), 5),
                Lookup::Miss(None)
            );
        }
        assert!(shared.keys().is_empty(), "a miss wrote shared data");
        assert_eq!(shared.sets(), 0);
    }

    #[test]
    fn the_anchor_belongs_to_its_own_key() {
        let shared = SharedDataDouble::default();
        let anchor = CasAnchor::refresh(&shared);
        let cas = anchor.cas().unwrap();
        assert_eq!(shared.cas(ANCHOR_KEY), Some(cas));
        // Another refresh moves the anchor; the old value stays unique to the old write.
        let again = CasAnchor::refresh(&shared);
        assert_ne!(again.cas(), anchor.cas());
    }

    #[test]
    fn a_grant_creates_an_absent_key_and_then_hits() {
        let shared = SharedDataDouble::default();
        let anchor = CasAnchor::refresh(&shared);
        store(&shared, anchor, &key(1), &grant(2), 0);
        assert_eq!(units(&shared, &key(1)), Some(2));
        let mut pool = LocalPool::default();
        assert_eq!(
            spend_one(&shared, &mut pool, &key(1), 5),
            Lookup::Hit(grant(2).grant())
        );
        assert_eq!(units(&shared, &key(1)), Some(1));
    }

    #[test]
    fn without_an_anchor_an_absent_key_is_left_uncached() {
        let shared = SharedDataDouble::default();
        store(&shared, CasAnchor::default(), &key(1), &grant(2), 0);
        assert!(shared.keys().is_empty());
    }

    #[test]
    fn a_racing_creator_merges_instead_of_overwriting() {
        // Worker A reads "absent"; before its create lands, worker B creates the key with its
        // own grant. A's create must fail and merge: no unit of either grant is lost.
        let shared = SharedDataDouble::default();
        let anchor = CasAnchor::refresh(&shared);
        let k = key(7);
        let k2 = k.clone();
        shared.before_next_set(move |s: &SharedDataDouble| {
            let a = CasAnchor::refresh(s);
            let value = merge(None, 0, &grant(5)).unwrap();
            s.raw_set(&k2, &value, a.cas()).unwrap();
        });
        store(&shared, anchor, &k, &grant(3), 0);
        assert_eq!(units(&shared, &k), Some(8), "a concurrent grant was lost");
    }

    #[test]
    fn a_create_with_the_anchor_never_overwrites_an_existing_key() {
        // Whatever the interleaving, a key written by someone else keeps its units when a
        // stale "absent" read is followed by an anchored create.
        let shared = SharedDataDouble::default();
        let anchor = CasAnchor::refresh(&shared);
        let k = key(9);
        shared
            .raw_set(&k, &merge(None, 0, &grant(4)).unwrap(), None)
            .unwrap();
        assert_eq!(
            shared.set(&k, &merge(None, 0, &grant(1)).unwrap(), anchor.cas()),
            Err(SetError::CasMismatch)
        );
        assert_eq!(units(&shared, &k), Some(4));
    }

    #[test]
    fn an_expired_lease_is_reclaimed_without_new_keys() {
        let shared = SharedDataDouble::default();
        let anchor = CasAnchor::refresh(&shared);
        store(&shared, anchor, &key(2), &grant(5), 0);
        let mut pool = LocalPool::default();
        let keys_before = shared.keys().len();
        assert_eq!(
            spend_one(&shared, &mut pool, &key(2), 10_000),
            Lookup::Miss(Some(Lease {
                units: 5,
                window: 1
            }))
        );
        assert_eq!(units(&shared, &key(2)), Some(0));
        assert_eq!(shared.keys().len(), keys_before);
    }

    #[test]
    fn lookups_never_print_the_key() {
        assert!(!format!(
            "{:?}",
            Lookup::Hit(Grant {
                key: "sk-secret".into(),
                limits: None
            })
        )
        .contains("sk-secret"));
    }
}
