//! The upload sessions the proxy started, in a fixed table of proxy-wasm shared-data slots
//! ([`crate::bound_table`], keys `ptk/v1/upload/0000` …), so that any Envoy worker can continue
//! a session another one started.
//!
//! The upload id comes back from the client, so the table is keyed by client input and bounded;
//! it holds only the id's digest and the starting token's hash. An id may use [`WAYS`]
//! consecutive slots; when all hold live sessions, the one that expires first is evicted (that
//! older upload's next keyless leg gets 401). A finished (finalized or cancelled) session stays
//! queryable for [`FINISHED_GRACE_MS`] and is the first to make room.

use ptk_wire::Provider;
use serde::Deserialize;

use crate::bound_table::Table;
pub use crate::bound_table::{digest, Binding as Session, Recorded, MAX_SLOTS, MIN_SLOTS, WAYS};
use crate::shared_data::{CasAnchor, SharedData};

/// Settings (plugin config `uploads`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadsConfig {
    /// Point upload URLs back at the proxy and forward keyless legs of the sessions it started.
    /// Off: upload URLs pass as Google sent them and keyless legs get 401 (missing token).
    pub enabled: bool,
    /// How long (ms) a session may be continued after its start.
    pub session_ttl_ms: u64,
    /// Shared-data slots of the session table (the bound on concurrent sessions).
    pub slots: u32,
}

impl Default for UploadsConfig {
    fn default() -> Self {
        UploadsConfig {
            enabled: true,
            session_ttl_ms: 86_400_000,
            slots: 8192,
        }
    }
}

/// Shortest session lifetime accepted (one minute).
pub const MIN_SESSION_TTL_MS: u64 = 60_000;
/// Longest session lifetime accepted: a week, Google's own lifetime of an upload URL.
pub const MAX_SESSION_TTL_MS: u64 = 604_800_000;

impl UploadsConfig {
    /// Checks the bounds; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(MIN_SESSION_TTL_MS..=MAX_SESSION_TTL_MS).contains(&self.session_ttl_ms) {
            return Err(format!(
                "uploads.session_ttl_ms: must be {MIN_SESSION_TTL_MS}..={MAX_SESSION_TTL_MS}, got {}",
                self.session_ttl_ms
            ));
        }
        if !(MIN_SLOTS..=MAX_SLOTS).contains(&self.slots) {
            return Err(format!(
                "uploads.slots: must be {MIN_SLOTS}..={MAX_SLOTS}, got {}",
                self.slots
            ));
        }
        Ok(())
    }
}

/// How long (ms) a finished (finalized or cancelled) session may still be queried, e.g. by a
/// client whose final response was lost; it is the first to make room meanwhile.
pub const FINISHED_GRACE_MS: u64 = 600_000;

/// Shared-data key prefix of the session table.
pub const PREFIX: &str = "ptk/v1/upload/";

fn table(config: &UploadsConfig) -> Table {
    Table {
        prefix: PREFIX,
        slots: config.slots,
    }
}

/// Shared-data key of slot `index`.
pub fn slot_key(index: u32) -> String {
    Table {
        prefix: PREFIX,
        slots: MAX_SLOTS,
    }
    .slot_key(index)
}

/// The live session this upload id belongs to, if the proxy started one.
pub fn lookup(
    shared: &impl SharedData,
    config: &UploadsConfig,
    upload_id: &str,
    now_ms: u64,
) -> Option<Session> {
    table(config).lookup(shared, &digest(upload_id), now_ms)
}

/// Records a session the proxy just started for the token with this hash, expiring
/// `config.session_ttl_ms` from now.
pub fn record(
    shared: &impl SharedData,
    anchor: CasAnchor,
    config: &UploadsConfig,
    start: (&str, &str, Provider),
    now_ms: u64,
) -> Recorded {
    let (upload_id, token_hash, provider) = start;
    let expires_ms = now_ms.saturating_add(config.session_ttl_ms);
    let owner = (token_hash, provider);
    table(config).record(
        shared,
        anchor,
        &digest(upload_id),
        owner,
        expires_ms,
        now_ms,
    )
}

/// Marks a session finished (the provider answered `final` or `cancelled`): it stays usable for
/// at most [`FINISHED_GRACE_MS`] and is the first to make room. `false` if it was not found.
pub fn finish(
    shared: &impl SharedData,
    config: &UploadsConfig,
    upload_id: &str,
    now_ms: u64,
) -> bool {
    table(config).finish(shared, &digest(upload_id), FINISHED_GRACE_MS, now_ms)
}

#[cfg(test)]
mod tests {
    // The table itself (bounds, eviction, CAS races, record format) is tested in
    // `bound_table.rs`; these pin what the upload sessions add: the TTL, the grace after
    // finishing, the key names and the configuration bounds.
    use super::*;
    use crate::shared_data_double::SharedDataDouble;

    const HASH: &str = "ab00000000000000000000000000000000000000000000000000000000000001";

    fn config(slots: u32) -> UploadsConfig {
        UploadsConfig {
            slots,
            session_ttl_ms: 1_000,
            ..UploadsConfig::default()
        }
    }

    fn start(shared: &SharedDataDouble, config: &UploadsConfig, id: &str, now: u64) -> Recorded {
        let anchor = CasAnchor::refresh(shared);
        record(shared, anchor, config, (id, HASH, Provider::Gemini), now)
    }

    #[test]
    fn a_started_session_is_found_for_the_session_ttl_and_only_by_its_id() {
        let shared = SharedDataDouble::default();
        let c = config(64);
        assert_eq!(start(&shared, &c, "id-1", 0), Recorded::Stored);
        let found = lookup(&shared, &c, "id-1", 999).unwrap();
        assert_eq!(found.token_hash, HASH);
        assert_eq!(found.provider, Provider::Gemini);
        assert_eq!(lookup(&shared, &c, "id-1", 1_000), None, "expired");
        assert_eq!(lookup(&shared, &c, "id-2", 5), None);
        // Only upload keys are written, under their own prefix.
        assert!(shared.keys().iter().any(|k| k.starts_with(PREFIX)));
    }

    #[test]
    fn a_flood_of_starts_stays_within_the_slots() {
        let shared = SharedDataDouble::default();
        let c = config(16);
        for n in 0..2_000 {
            start(&shared, &c, &format!("flood-{n}"), n);
        }
        let keys = shared
            .keys()
            .iter()
            .filter(|k| k.starts_with(PREFIX))
            .count();
        assert_eq!(keys, 16);
    }

    #[test]
    fn finishing_caps_the_lifetime_and_unknown_ids_are_not_found() {
        let shared = SharedDataDouble::default();
        let c = UploadsConfig {
            slots: 16,
            ..UploadsConfig::default()
        };
        start(&shared, &c, "done", 0);
        assert!(finish(&shared, &c, "done", 100));
        assert!(finish(&shared, &c, "done", 200), "finishing twice is fine");
        assert!(lookup(&shared, &c, "done", 100 + FINISHED_GRACE_MS - 1).is_some());
        assert!(lookup(&shared, &c, "done", 100 + FINISHED_GRACE_MS).is_none());
        assert!(!finish(&shared, &c, "never-started", 0));
    }

    #[test]
    fn slot_keys_keep_their_names() {
        assert_eq!(slot_key(0), "ptk/v1/upload/0000");
        assert_eq!(slot_key(MAX_SLOTS - 1), "ptk/v1/upload/ffff");
    }

    #[test]
    fn config_bounds() {
        assert!(UploadsConfig::default().validate().is_ok());
        for bad in [
            UploadsConfig {
                session_ttl_ms: MIN_SESSION_TTL_MS - 1,
                ..Default::default()
            },
            UploadsConfig {
                session_ttl_ms: MAX_SESSION_TTL_MS + 1,
                ..Default::default()
            },
            UploadsConfig {
                slots: MIN_SLOTS - 1,
                ..Default::default()
            },
            UploadsConfig {
                slots: MAX_SLOTS + 1,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
