//! Each worker's own slice of a shared lease: units taken from shared data in a batch and
//! spent here without a host call, so a busy token costs one compare-and-swap per batch
//! rather than per request.

use std::collections::HashMap;

use ptk_wire::Lease;

use crate::verdict_cache::Grant;

/// Units a worker holds for one cache key.
#[derive(Clone, PartialEq, Eq)]
struct Held {
    valid_until_ms: u64,
    units: u32,
    window: u64,
    grant: Grant,
}

/// A worker's held units per cache key (bounded: cleared when full).
#[derive(Default)]
pub struct LocalPool {
    held: HashMap<String, Held>,
}

impl std::fmt::Debug for LocalPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPool")
            .field("keys", &self.held.len())
            .finish()
    }
}

/// Most cache keys a worker holds units for.
const CAPACITY: usize = 4096;

/// What the pool says about one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    /// Spend this real key (with its limits): one held unit was used.
    Key(Grant),
    /// Nothing held that is still valid; `expired` carries units that ran out of time, to
    /// hand back to the token-service with the next check.
    Empty {
        /// Unspent units of an expired batch.
        expired: Option<Lease>,
    },
}

impl LocalPool {
    /// Spends one held unit for `cache_key` at `now_ms`.
    pub fn take(&mut self, cache_key: &str, now_ms: u64) -> Take {
        let Some(held) = self.held.get_mut(cache_key) else {
            return Take::Empty { expired: None };
        };
        if now_ms < held.valid_until_ms && held.units > 0 {
            held.units = held.units.saturating_sub(1);
            return Take::Key(held.grant.clone());
        }
        let expired = (held.units > 0).then_some(Lease {
            units: held.units,
            window: held.window,
        });
        self.held.remove(cache_key);
        Take::Empty { expired }
    }

    /// Keeps `units` (taken from the shared entry) for later requests.
    pub fn hold(
        &mut self,
        cache_key: &str,
        units: u32,
        valid_until_ms: u64,
        window: u64,
        grant: &Grant,
    ) {
        if units == 0 {
            return;
        }
        if self.held.len() >= CAPACITY && !self.held.contains_key(cache_key) {
            self.held.clear();
        }
        let held = self.held.entry(cache_key.to_string()).or_insert(Held {
            valid_until_ms,
            units: 0,
            window,
            grant: grant.clone(),
        });
        if held.window != window {
            held.units = 0;
        }
        *held = Held {
            valid_until_ms,
            units: held.units.saturating_add(units),
            window,
            grant: grant.clone(),
        };
    }
}

/// Adds two returned leases of the same window (a batch and the shared entry's leftovers).
pub fn combine(a: Option<Lease>, b: Option<Lease>) -> Option<Lease> {
    match (a, b) {
        (Some(x), Some(y)) if x.window == y.window => Some(Lease {
            units: x.units.saturating_add(y.units),
            window: x.window,
        }),
        (Some(x), _) => Some(x),
        (None, y) => y,
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn g(key: &str) -> Grant {
        Grant {
            key: key.to_string(),
            limits: None,
        }
    }

    #[test]
    fn held_units_are_spent_until_gone_or_expired() {
        let mut pool = LocalPool::default();
        assert_eq!(pool.take("k", 0), Take::Empty { expired: None });
        pool.hold("k", 2, 1_000, 7, &g("sk"));
        assert_eq!(pool.take("k", 10), Take::Key(g("sk")));
        assert_eq!(pool.take("k", 10), Take::Key(g("sk")));
        assert_eq!(pool.take("k", 10), Take::Empty { expired: None });
        pool.hold("k", 3, 1_000, 7, &g("sk"));
        assert_eq!(
            pool.take("k", 1_000),
            Take::Empty {
                expired: Some(Lease {
                    units: 3,
                    window: 7
                })
            }
        );
        assert_eq!(pool.take("k", 1_000), Take::Empty { expired: None });
    }

    #[test]
    fn holding_adds_within_a_window_and_restarts_in_a_new_one() {
        let mut pool = LocalPool::default();
        pool.hold("k", 2, 1_000, 1, &g("sk"));
        pool.hold("k", 2, 2_000, 1, &g("sk"));
        assert_eq!(pool.held["k"].units, 4);
        assert_eq!(pool.held["k"].valid_until_ms, 2_000);
        pool.hold("k", 1, 3_000, 2, &g("sk2"));
        assert_eq!(pool.held["k"].units, 1);
        assert_eq!(pool.held["k"].grant.key, "sk2");
        pool.hold("z", 0, 3_000, 2, &g("sk2"));
        assert!(!pool.held.contains_key("z"));
    }

    #[test]
    fn keys_never_share_units_and_the_pool_is_bounded() {
        let mut pool = LocalPool::default();
        pool.hold("a", 1, 1_000, 1, &g("ka"));
        assert_eq!(pool.take("b", 0), Take::Empty { expired: None });
        for i in 0..=CAPACITY {
            pool.hold(&i.to_string(), 1, 1_000, 1, &g("k"));
        }
        assert!(pool.held.len() <= CAPACITY);
        assert!(!format!("{pool:?}").contains("ka"));
    }

    #[test]
    fn returns_combine_within_one_window_only() {
        let l = |units, window| Some(Lease { units, window });
        assert_eq!(combine(l(2, 1), l(3, 1)), l(5, 1));
        assert_eq!(combine(l(2, 1), l(3, 2)), l(2, 1));
        assert_eq!(combine(None, l(3, 2)), l(3, 2));
        assert_eq!(combine(None, None), None);
    }
}
