//! Proxy-wasm shared data as the filter sees it: one key-value store for every worker of a VM,
//! with compare-and-swap writes and no delete, behind the [`SharedData`] trait (the shim
//! implements it with host calls; tests use a double with Envoy's exact semantics).
//!
//! Creating a key without losing a concurrent creator's write needs "create if absent", which
//! shared data does not offer directly. It follows from Envoy's semantics
//! (proxy-wasm-cpp-host `SharedData::set`): every write takes the next value of one global CAS
//! counter; a set with a non-zero CAS on an **existing** key fails with `CasMismatch` unless the
//! key's CAS equals it, and on an **absent** key simply creates it. So a set with a CAS that
//! belongs to another key's write (the [`CasAnchor`]) creates an absent key and can never
//! overwrite an existing one. The anchor is refreshed on every tick so that the counter cannot
//! wrap around (2^32 writes) between refresh and use.

/// Why a shared-data write did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetError {
    /// The key was written since it was read (or exists, for a create).
    CasMismatch,
    /// Any other host failure.
    Other,
}

/// A shared-data read the host could not serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetError;

/// A value read from shared data and its CAS; `(None, None)` when the key is absent.
pub type Stored = (Option<Vec<u8>>, Option<u32>);

/// Proxy-wasm shared data, as the host offers it (Envoy's semantics, see the module docs).
pub trait SharedData {
    /// The value and CAS of a key.
    fn get(&self, key: &str) -> Result<Stored, GetError>;
    /// Writes a key; with `cas`, only if the key is absent or still has that CAS.
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError>;
}

/// The key whose writes provide the anchor CAS. It is never a cache key.
pub const ANCHOR_KEY: &str = "ptk/v1/cas-anchor";

/// A CAS value that belongs to a write of [`ANCHOR_KEY`], so no cache key can hold it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CasAnchor(Option<u32>);

impl CasAnchor {
    /// Writes the anchor key and keeps the CAS that write got. Called at configure time and on
    /// every tick; on a host failure the anchor is unset and keys are simply not created.
    pub fn refresh(shared: &impl SharedData) -> CasAnchor {
        if shared.set(ANCHOR_KEY, b"anchor", None).is_err() {
            return CasAnchor(None);
        }
        CasAnchor(shared.get(ANCHOR_KEY).ok().and_then(|(_, cas)| cas))
    }

    /// The anchor CAS, if one is known.
    pub fn cas(self) -> Option<u32> {
        self.0
    }
}
