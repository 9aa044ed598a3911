//! Host side of the verdict cache: this worker's pool first, then shared data with
//! compare-and-swap, so two workers never spend the same lease unit or lose each other's
//! grants.

use std::cell::RefCell;

use proxy_wasm::types::Status;
use ptk_filter_core::cache::{merge, placeholder, spend, Entry, Spend};
use ptk_filter_core::local_pool::{combine, LocalPool, Take};
use ptk_wire::Lease;

use crate::host;

/// Attempts before giving up on a contended entry (then: ask the token-service, which is
/// always safe).
const CAS_ATTEMPTS: usize = 16;

/// Outcome of looking a request up in the cache.
pub enum Lookup {
    /// Allowed from the cache with this real key.
    Hit(String),
    /// Ask the token-service, handing back these expired units if any.
    Miss(Option<Lease>),
}

/// What shared data gave.
enum Shared {
    /// A unit for this request, plus `extra` for the pool.
    Hit {
        key: String,
        extra: u32,
        valid_until_ms: u64,
        window: u64,
    },
    Miss(Option<Lease>),
}

/// Spends one unit for `cache_key`: from this worker's pool if it holds one, else from shared
/// data (taking a batch into the pool when the shared lease is large).
pub fn spend_one(pool: &RefCell<LocalPool>, cache_key: &str, now_ms: u64) -> Lookup {
    let expired = match pool.borrow_mut().take(cache_key, now_ms) {
        Take::Key(key) => return Lookup::Hit(key),
        Take::Empty { expired } => expired,
    };
    match take_shared(cache_key, now_ms) {
        Shared::Hit {
            key,
            extra,
            valid_until_ms,
            window,
        } => {
            // A fresher verdict for the same window revalidates this worker's expired units.
            let kept = expired
                .filter(|l| l.window == window)
                .map_or(0, |l| l.units);
            let units = extra.saturating_add(kept);
            pool.borrow_mut()
                .hold(cache_key, units, valid_until_ms, window, &key);
            Lookup::Hit(key)
        }
        Shared::Miss(returned) => Lookup::Miss(combine(expired, returned)),
    }
}

/// Takes units from the shared entry if a valid cached verdict has some.
fn take_shared(cache_key: &str, now_ms: u64) -> Shared {
    for _ in 0..CAS_ATTEMPTS {
        let Ok((stored, cas)) = host::shared_get(cache_key) else {
            return Shared::Miss(None);
        };
        let (write, outcome) = match spend(stored.as_deref(), now_ms) {
            Spend::Hit {
                key,
                updated,
                taken,
                valid_until_ms,
                window,
            } => (
                updated,
                Shared::Hit {
                    key,
                    extra: taken.saturating_sub(1),
                    valid_until_ms,
                    window,
                },
            ),
            Spend::Miss { reclaim: None } => {
                if stored.is_none() {
                    let _ = host::shared_set(cache_key, &placeholder(), None);
                }
                return Shared::Miss(None);
            }
            Spend::Miss {
                reclaim: Some((lease, updated)),
            } => (updated, Shared::Miss(Some(lease))),
        };
        match host::shared_set(cache_key, &write, cas) {
            Ok(()) => return outcome,
            Err(Status::CasMismatch) => continue,
            Err(_) => return Shared::Miss(None),
        }
    }
    Shared::Miss(None)
}

/// Stores a fresh grant, keeping any units another worker still holds for the same window.
pub fn store(cache_key: &str, grant: &Entry, now_ms: u64) {
    for _ in 0..CAS_ATTEMPTS {
        let Ok((stored, cas)) = host::shared_get(cache_key) else {
            return;
        };
        let Some(value) = merge(stored.as_deref(), now_ms, grant) else {
            return;
        };
        match host::shared_set(cache_key, &value, cas) {
            Err(Status::CasMismatch) => continue,
            _ => return,
        }
    }
}
