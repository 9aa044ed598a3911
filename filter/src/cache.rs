//! Shared-data side of the verdict cache: read-modify-write with compare-and-swap, so two
//! workers never spend the same lease unit or lose each other's grants.

use proxy_wasm::types::Status;
use ptk_filter_core::cache::{merge, placeholder, spend, Entry, Spend};
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

/// Spends one lease unit for `key` if a valid cached verdict has one.
pub fn lookup(key: &str, now_ms: u64) -> Lookup {
    for _ in 0..CAS_ATTEMPTS {
        let Ok((stored, cas)) = host::shared_get(key) else {
            return Lookup::Miss(None);
        };
        let (write, outcome) = match spend(stored.as_deref(), now_ms) {
            Spend::Hit { key, updated } => (updated, Lookup::Hit(key)),
            Spend::Miss { reclaim: None } => {
                if stored.is_none() {
                    let _ = host::shared_set(key, &placeholder(), None);
                }
                return Lookup::Miss(None);
            }
            Spend::Miss {
                reclaim: Some((lease, updated)),
            } => (updated, Lookup::Miss(Some(lease))),
        };
        match host::shared_set(key, &write, cas) {
            Ok(()) => return outcome,
            Err(Status::CasMismatch) => continue,
            Err(_) => return Lookup::Miss(None),
        }
    }
    Lookup::Miss(None)
}

/// Stores a fresh grant, keeping any units another worker still holds for the same window.
pub fn store(key: &str, grant: &Entry, now_ms: u64) {
    for _ in 0..CAS_ATTEMPTS {
        let Ok((stored, cas)) = host::shared_get(key) else {
            return;
        };
        let Some(value) = merge(stored.as_deref(), now_ms, grant) else {
            return;
        };
        match host::shared_set(key, &value, cas) {
            Err(Status::CasMismatch) => continue,
            _ => return,
        }
    }
}
