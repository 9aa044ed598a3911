//! The upload sessions the proxy started, in a fixed table of proxy-wasm shared-data slots, so
//! that any Envoy worker can continue a session another one started.
//!
//! The upload id comes back from the client, so the table is keyed by client input and must be
//! bounded (shared data is never freed): there are exactly `slots` keys
//! (`ptk/v1/upload/0000` …), each holding one fixed 75-byte record
//! `version(1) | sha256(upload id)(32) | expires_ms(u64 LE) | finished(1) | provider(1) | token
//! hash(32)`. No upload id, token or key is stored: only the id's digest and the token's hash.
//!
//! An id may live in any of [`WAYS`] consecutive slots from the one its digest picks. A new
//! session takes, in order: the slot already holding the same id, an empty or expired slot, the
//! finished session that expires first, and only then the live session that expires first (an
//! eviction: that older upload's next keyless leg gets 401). Slots are written with
//! compare-and-swap (an empty one created only if still absent, through the [`CasAnchor`]), so
//! two workers never overwrite each other's fresh session unseen.

use ptk_wire::Provider;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::shared_cache::{CasAnchor, SetError, SharedData};

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
/// Fewest slots accepted.
pub const MIN_SLOTS: u32 = 16;
/// Most slots accepted (keys `0000`–`ffff`; about 13 MB of shared data at most).
pub const MAX_SLOTS: u32 = 65_536;

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

/// Consecutive slots an upload id may occupy.
pub const WAYS: u32 = 4;

/// How long (ms) a finished (finalized or cancelled) session may still be queried, e.g. by a
/// client whose final response was lost; it is the first to make room meanwhile.
pub const FINISHED_GRACE_MS: u64 = 600_000;

/// Attempts at a contended slot before giving up.
const CAS_ATTEMPTS: usize = 16;

const VERSION: u8 = 1;
const RECORD_LEN: usize = 1 + 32 + 8 + 1 + 1 + 32;

/// A live session, as a keyless leg needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Lowercase hex SHA-256 of the token that started it.
    pub token_hash: String,
    /// The provider it was started on.
    pub provider: Provider,
}

/// What recording a session did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Into a free, expired or finished slot (or over the same id).
    Stored,
    /// Over another live session, which its next keyless leg will find missing.
    Evicted,
    /// Not recorded (contention, host failure, no CAS anchor yet, malformed hash).
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    digest: [u8; 32],
    expires_ms: u64,
    finished: bool,
    provider: Provider,
    token_hash: [u8; 32],
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECORD_LEN);
        out.push(VERSION);
        out.extend_from_slice(&self.digest);
        out.extend_from_slice(&self.expires_ms.to_le_bytes());
        out.push(u8::from(self.finished));
        out.push(provider_byte(self.provider));
        out.extend_from_slice(&self.token_hash);
        out
    }

    fn decode(bytes: &[u8]) -> Option<Record> {
        if bytes.len() != RECORD_LEN || bytes.first() != Some(&VERSION) {
            return None;
        }
        Some(Record {
            digest: bytes.get(1..33)?.try_into().ok()?,
            expires_ms: u64::from_le_bytes(bytes.get(33..41)?.try_into().ok()?),
            finished: *bytes.get(41)? != 0,
            provider: *Provider::ALL.get(usize::from(*bytes.get(42)?))?,
            token_hash: bytes.get(43..75)?.try_into().ok()?,
        })
    }

    fn live(&self, now_ms: u64) -> bool {
        now_ms < self.expires_ms
    }
}

fn provider_byte(provider: Provider) -> u8 {
    match provider {
        Provider::Openai => 0,
        Provider::Anthropic => 1,
        Provider::Gemini => 2,
    }
}

/// SHA-256 of an upload id: the only form of it the table keeps.
pub fn digest(upload_id: &str) -> [u8; 32] {
    Sha256::digest(upload_id.as_bytes()).into()
}

/// Shared-data key of slot `index`.
pub fn slot_key(index: u32) -> String {
    format!("ptk/v1/upload/{index:04x}")
}

/// The slots an id may occupy.
fn ways(digest: &[u8; 32], slots: u32) -> impl Iterator<Item = u32> {
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let slots = slots.max(1);
    let base = u64::from_le_bytes(first) % u64::from(slots);
    // `base < slots <= u32::MAX`, so the conversion cannot fail.
    let base = u32::try_from(base).unwrap_or(0);
    (0..WAYS.min(slots)).map(move |i| (base + i) % slots)
}

/// One slot as read: its key, record (if any decodes) and CAS.
struct Read {
    key: String,
    record: Option<Record>,
    cas: Option<u32>,
}

fn read_ways(shared: &impl SharedData, digest: &[u8; 32], slots: u32) -> Option<Vec<Read>> {
    ways(digest, slots)
        .map(|index| {
            let key = slot_key(index);
            let (value, cas) = shared.get(&key).ok()?;
            let record = value.as_deref().and_then(Record::decode);
            Some(Read { key, record, cas })
        })
        .collect()
}

/// The live session this upload id belongs to, if the proxy started one.
pub fn lookup(
    shared: &impl SharedData,
    config: &UploadsConfig,
    upload_id: &str,
    now_ms: u64,
) -> Option<Session> {
    let digest = digest(upload_id);
    read_ways(shared, &digest, config.slots)?
        .into_iter()
        .filter_map(|read| read.record)
        .find(|r| r.digest == digest && r.live(now_ms))
        .map(|r| Session {
            token_hash: hex::encode(r.token_hash),
            provider: r.provider,
        })
}

/// Which slot a new session takes, and whether that evicts a live one.
fn victim(reads: &[Read], digest: &[u8; 32], now_ms: u64) -> Option<(usize, bool)> {
    let same = reads
        .iter()
        .position(|r| r.record.as_ref().is_some_and(|rec| rec.digest == *digest));
    let free = || {
        reads
            .iter()
            .position(|r| r.record.as_ref().is_none_or(|rec| !rec.live(now_ms)))
    };
    let earliest = |finished: bool| {
        reads
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.record.as_ref().map(|rec| (i, rec)))
            .filter(|(_, rec)| rec.finished == finished)
            .min_by_key(|(_, rec)| rec.expires_ms)
            .map(|(i, _)| i)
    };
    same.or_else(free)
        .or_else(|| earliest(true))
        .map(|i| (i, false))
        .or_else(|| earliest(false).map(|i| (i, true)))
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
    let (upload_id, token_hash_hex, provider) = start;
    let mut token_hash = [0u8; 32];
    if hex::decode_to_slice(token_hash_hex, &mut token_hash).is_err() {
        return Recorded::Failed;
    }
    let digest = digest(upload_id);
    let value = Record {
        digest,
        expires_ms: now_ms.saturating_add(config.session_ttl_ms),
        finished: false,
        provider,
        token_hash,
    }
    .encode();
    for _ in 0..CAS_ATTEMPTS {
        let Some(reads) = read_ways(shared, &digest, config.slots) else {
            return Recorded::Failed;
        };
        let Some((index, evicts)) = victim(&reads, &digest, now_ms) else {
            return Recorded::Failed;
        };
        let Some(slot) = reads.get(index) else {
            return Recorded::Failed;
        };
        // An absent slot is created only if it is still absent (the anchor's CAS).
        let Some(cas) = slot.cas.or(anchor.cas()) else {
            return Recorded::Failed;
        };
        match shared.set(&slot.key, &value, Some(cas)) {
            Ok(()) if evicts => return Recorded::Evicted,
            Ok(()) => return Recorded::Stored,
            Err(SetError::CasMismatch) => continue,
            Err(SetError::Other) => return Recorded::Failed,
        }
    }
    Recorded::Failed
}

/// Marks a session finished (the provider answered `final` or `cancelled`): it stays usable for
/// at most [`FINISHED_GRACE_MS`] and is the first to make room. `false` if it was not found.
pub fn finish(
    shared: &impl SharedData,
    config: &UploadsConfig,
    upload_id: &str,
    now_ms: u64,
) -> bool {
    let digest = digest(upload_id);
    for _ in 0..CAS_ATTEMPTS {
        let Some(reads) = read_ways(shared, &digest, config.slots) else {
            return false;
        };
        let Some((slot, mut record)) = reads.into_iter().find_map(|r| {
            let rec = r.record.clone().filter(|rec| rec.digest == digest)?;
            Some((r, rec))
        }) else {
            return false;
        };
        if record.finished {
            return true;
        }
        record.finished = true;
        record.expires_ms = record
            .expires_ms
            .min(now_ms.saturating_add(FINISHED_GRACE_MS));
        match shared.set(&slot.key, &record.encode(), slot.cas) {
            Ok(()) => return true,
            Err(SetError::CasMismatch) => continue,
            Err(SetError::Other) => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared_double::EnvoyShared;

    const HASH: &str = "ab00000000000000000000000000000000000000000000000000000000000001";
    const OTHER: &str = "cd00000000000000000000000000000000000000000000000000000000000002";

    fn config(slots: u32) -> UploadsConfig {
        UploadsConfig {
            slots,
            session_ttl_ms: 1_000,
            ..UploadsConfig::default()
        }
    }

    fn start(shared: &EnvoyShared, config: &UploadsConfig, id: &str, now: u64) -> Recorded {
        let anchor = CasAnchor::refresh(shared);
        record(shared, anchor, config, (id, HASH, Provider::Gemini), now)
    }

    fn upload_keys(shared: &EnvoyShared) -> usize {
        shared
            .keys()
            .iter()
            .filter(|k| k.starts_with("ptk/v1/upload/"))
            .count()
    }

    #[test]
    fn a_started_session_is_found_until_it_expires_and_only_by_its_id() {
        let shared = EnvoyShared::default();
        let c = config(64);
        assert_eq!(start(&shared, &c, "id-1", 0), Recorded::Stored);
        let found = lookup(&shared, &c, "id-1", 999).unwrap();
        assert_eq!(found.token_hash, HASH);
        assert_eq!(found.provider, Provider::Gemini);
        assert_eq!(lookup(&shared, &c, "id-1", 1_000), None, "expired");
        assert_eq!(lookup(&shared, &c, "id-2", 5), None);
        assert_eq!(lookup(&shared, &c, "ID-1", 5), None);
        assert_eq!(lookup(&shared, &c, "", 5), None);
    }

    #[test]
    fn unknown_ids_miss_even_when_every_slot_is_live() {
        // A full table: every way of every id holds some live session.
        let shared = EnvoyShared::default();
        let c = config(16);
        for n in 0..200 {
            start(&shared, &c, &format!("live-{n}"), 0);
        }
        for n in 0..1_000 {
            assert_eq!(
                lookup(&shared, &c, &format!("forged-{n}"), 1),
                None,
                "forged-{n}"
            );
        }
    }

    #[test]
    fn the_table_never_holds_more_than_its_slots_whatever_the_flood() {
        let shared = EnvoyShared::default();
        let c = config(64);
        for n in 0..20_000 {
            start(&shared, &c, &format!("flood-{n}"), n);
        }
        assert!(upload_keys(&shared) <= 64, "{}", upload_keys(&shared));
        // Lookups of unknown ids never write.
        let writes = shared.sets();
        for n in 0..1_000 {
            assert_eq!(lookup(&shared, &c, &format!("unknown-{n}"), 0), None);
        }
        assert_eq!(shared.sets(), writes);
        assert_eq!(upload_keys(&shared), 64);
    }

    #[test]
    fn no_value_holds_the_upload_id_or_anything_but_the_fixed_record() {
        let shared = EnvoyShared::default();
        let id = "secret-upload-id-visible-nowhere";
        start(&shared, &config(16), id, 0);
        for key in shared.keys() {
            let value = shared.value(&key).unwrap();
            assert!(!key.contains(id));
            assert!(!String::from_utf8_lossy(&value).contains(id));
            if key.starts_with("ptk/v1/upload/") {
                assert_eq!(value.len(), RECORD_LEN);
            }
        }
    }

    #[test]
    fn overflow_evicts_the_session_that_expires_first_and_the_newest_always_works() {
        let shared = EnvoyShared::default();
        let c = config(16);
        let ids: Vec<String> = (0..64).map(|n| format!("s-{n}")).collect();
        let mut evictions = 0;
        for (n, id) in ids.iter().enumerate() {
            if start(&shared, &c, id, n as u64) == Recorded::Evicted {
                evictions += 1;
            }
            assert!(lookup(&shared, &c, id, n as u64).is_some(), "newest {id}");
        }
        assert!(evictions >= 64 - 16, "{evictions}");
        let alive = ids
            .iter()
            .filter(|id| lookup(&shared, &c, id, 64).is_some())
            .count();
        assert!(alive <= 16);
        assert!(
            lookup(&shared, &c, "s-0", 64).is_none(),
            "the oldest session went first"
        );
    }

    fn read(id: &str, expires_ms: u64, finished: bool) -> Read {
        let record = Record {
            digest: digest(id),
            expires_ms,
            finished,
            provider: Provider::Gemini,
            token_hash: [0; 32],
        };
        Read {
            key: String::new(),
            record: Some(record),
            cas: Some(1),
        }
    }

    fn empty() -> Read {
        Read {
            key: String::new(),
            record: None,
            cas: None,
        }
    }

    #[test]
    fn a_new_session_takes_same_then_free_then_finished_then_the_oldest_live_slot() {
        let new = digest("new");
        let now = 100;
        // The same id wins over everything (a refresh, not an eviction).
        let reads = [empty(), read("a", 500, false), read("new", 900, false)];
        assert_eq!(victim(&reads, &new, now), Some((2, false)));
        // Then an empty or expired slot.
        let reads = [read("a", 500, false), empty(), read("b", 50, false)];
        assert_eq!(victim(&reads, &new, now), Some((1, false)));
        let reads = [read("a", 500, false), read("b", 50, false)];
        assert_eq!(victim(&reads, &new, now), Some((1, false)), "expired");
        // Then the finished session that expires first.
        let reads = [
            read("a", 200, false),
            read("b", 700, true),
            read("c", 600, true),
            read("d", 300, false),
        ];
        assert_eq!(victim(&reads, &new, now), Some((2, false)));
        // Only then the live session that expires first: an eviction.
        let reads = [
            read("a", 900, false),
            read("b", 300, false),
            read("c", 600, false),
            read("d", 400, false),
        ];
        assert_eq!(victim(&reads, &new, now), Some((1, true)));
        assert_eq!(victim(&[], &new, now), None);
    }

    #[test]
    fn expired_sessions_are_free_slots() {
        let shared = EnvoyShared::default();
        let c = config(16);
        for n in 0..200 {
            start(&shared, &c, &format!("early-{n}"), 0);
        }
        assert_eq!(upload_keys(&shared), 16);
        // After the TTL every slot is free again: while fewer than WAYS sessions are live, one of
        // any id's ways is free, so nothing is evicted.
        for n in 0..WAYS {
            let outcome = start(&shared, &c, &format!("late-{n}"), c.session_ttl_ms);
            assert_ne!(outcome, Recorded::Evicted, "late-{n}");
        }
    }

    #[test]
    fn finishing_caps_the_lifetime_and_unknown_ids_are_not_found() {
        let shared = EnvoyShared::default();
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
    fn the_same_id_twice_takes_one_slot_and_the_newest_owner() {
        let shared = EnvoyShared::default();
        let c = config(16);
        let anchor = CasAnchor::refresh(&shared);
        record(&shared, anchor, &c, ("same", HASH, Provider::Gemini), 0);
        record(&shared, anchor, &c, ("same", OTHER, Provider::Gemini), 1);
        assert_eq!(upload_keys(&shared), 1);
        assert_eq!(lookup(&shared, &c, "same", 2).unwrap().token_hash, OTHER);
    }

    #[test]
    fn a_racing_creator_is_never_overwritten_unseen() {
        // Worker A reads the slot absent; before its create lands, worker B creates it with its
        // own session. A's anchored create fails, it re-reads and takes another way.
        let shared = EnvoyShared::default();
        let c = config(16);
        let anchor = CasAnchor::refresh(&shared);
        let first_way = ways(&digest("a"), 16).next().unwrap();
        let b_value = Record {
            digest: digest("b"),
            expires_ms: 1_000,
            finished: false,
            provider: Provider::Gemini,
            token_hash: [7; 32],
        }
        .encode();
        shared.before_next_set(move |s| {
            let a = CasAnchor::refresh(s);
            s.raw_set(&slot_key(first_way), &b_value, a.cas()).unwrap();
        });
        assert_eq!(
            record(&shared, anchor, &c, ("a", HASH, Provider::Gemini), 0),
            Recorded::Stored
        );
        assert!(lookup(&shared, &c, "a", 1).is_some());
        let b = shared
            .value(&slot_key(first_way))
            .and_then(|v| Record::decode(&v));
        assert_eq!(
            b.map(|r| r.digest),
            Some(digest("b")),
            "B's session survived"
        );
    }

    #[test]
    fn without_an_anchor_or_with_a_bad_hash_nothing_is_recorded() {
        let shared = EnvoyShared::default();
        let c = config(16);
        let none = CasAnchor::default();
        assert_eq!(
            record(&shared, none, &c, ("x", HASH, Provider::Gemini), 0),
            Recorded::Failed
        );
        let anchor = CasAnchor::refresh(&shared);
        assert_eq!(
            record(&shared, anchor, &c, ("x", "not-hex", Provider::Gemini), 0),
            Recorded::Failed
        );
        assert_eq!(upload_keys(&shared), 0);
    }

    #[test]
    fn records_round_trip_and_junk_is_a_free_slot() {
        let r = Record {
            digest: [1; 32],
            expires_ms: 42,
            finished: true,
            provider: Provider::Anthropic,
            token_hash: [2; 32],
        };
        assert_eq!(Record::decode(&r.encode()), Some(r.clone()));
        assert_eq!(Record::decode(b"junk"), None);
        let mut bad_provider = r.encode();
        bad_provider[42] = 9;
        assert_eq!(Record::decode(&bad_provider), None);
        // A slot with junk in it is reused.
        let shared = EnvoyShared::default();
        let c = config(16);
        for w in ways(&digest("j"), 16) {
            shared.raw_set(&slot_key(w), b"junk", None).unwrap();
        }
        assert_eq!(start(&shared, &c, "j", 0), Recorded::Stored);
    }

    #[test]
    fn ways_stay_inside_the_table() {
        for n in 0..1_000 {
            let d = digest(&n.to_string());
            for slots in [16, 17, 8192, MAX_SLOTS] {
                let w: Vec<u32> = ways(&d, slots).collect();
                assert_eq!(w.len(), WAYS as usize);
                assert!(w.iter().all(|i| *i < slots));
            }
        }
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
