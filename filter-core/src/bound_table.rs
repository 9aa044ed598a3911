//! Credentials the proxy did not issue but saw issued for one of its proxy tokens (a Gemini
//! upload id, an OpenAI Realtime client secret), bound to that token in a fixed table of
//! proxy-wasm shared-data slots, so that any Envoy worker can recognise one another worker saw.
//!
//! The credential comes back from the client, so the table is keyed by client input and must
//! be bounded (shared data is never freed): a table has exactly `slots` keys
//! (`<prefix>0000` …), each holding one fixed 75-byte record
//! `version(1) | sha256(credential)(32) | expires_ms(u64 LE) | finished(1) | provider(1) |
//! token hash(32)`. No credential, token or key is stored: only the credential's digest and the
//! token's hash.
//!
//! A credential may live in any of [`WAYS`] consecutive slots from the one its digest picks. A
//! new binding takes, in order: the slot already holding the same credential, an empty or
//! expired slot, the finished binding that expires first, and only then the live binding that
//! expires first (an eviction: that older credential is refused from then on). Slots are
//! written with compare-and-swap (an empty one created only if still absent, through the
//! [`CasAnchor`]), so two workers never overwrite each other's fresh binding unseen.
//! Lookups never write.

use ptk_wire::Provider;
use sha2::{Digest, Sha256};

use crate::shared_data::{CasAnchor, SetError, SharedData};

/// Consecutive slots a credential may occupy (from the one its digest picks, wrapping at the
/// table's end): a lookup reads at most this many shared-data keys.
pub const WAYS: u32 = 4;

/// Fewest slots a table may have (a smaller `slots` in the configuration is refused).
pub const MIN_SLOTS: u32 = 16;
/// Most slots a table may have (keys `0000`–`ffff`; about 13 MB of shared data at most).
pub const MAX_SLOTS: u32 = 65_536;

/// Attempts at a contended slot before giving up.
const CAS_ATTEMPTS: usize = 16;

const VERSION: u8 = 1;
/// Bytes of one slot's record: version (1), the credential's SHA-256 (32), expiry in ms since
/// the epoch (8, little endian), finished (1), provider (1), the owning token's hash (32).
/// A slot holding anything else reads as free.
pub const RECORD_LEN: usize = 1 + 32 + 8 + 1 + 1 + 32;

/// One table: the shared-data key prefix of its slots and how many there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// Key prefix, e.g. `ptk/v1/upload/`; each table has its own.
    pub prefix: &'static str,
    /// Number of slots (the bound on live bindings), [`MIN_SLOTS`]..=[`MAX_SLOTS`].
    pub slots: u32,
}

/// What a live binding says: whose credential it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Lowercase hex SHA-256 of the proxy token it was issued for.
    pub token_hash: String,
    /// The provider it was issued by.
    pub provider: Provider,
}

/// What recording a binding did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Into a free, expired or finished slot (or over the same credential).
    Stored,
    /// Over another live binding, which is refused from then on.
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

/// A built-in provider's place in [`Provider::ALL`] (what `decode` reads back). A configured
/// one is never bound (uploads are Gemini's, client secrets OpenAI's): its `u8::MAX` does not
/// decode, so the record reads as a free slot, never as another provider's.
fn provider_byte(provider: Provider) -> u8 {
    let index = Provider::ALL.iter().position(|p| *p == provider);
    index.and_then(|i| u8::try_from(i).ok()).unwrap_or(u8::MAX)
}

/// SHA-256 of a credential: the only form of it a table keeps.
pub fn digest(credential: &str) -> [u8; 32] {
    Sha256::digest(credential.as_bytes()).into()
}

/// One slot as read: its key, record (if any decodes) and CAS.
struct Read {
    key: String,
    record: Option<Record>,
    cas: Option<u32>,
}

impl Table {
    /// Shared-data key of slot `index`.
    pub fn slot_key(&self, index: u32) -> String {
        format!("{}{index:04x}", self.prefix)
    }

    /// The slots a credential may occupy.
    fn ways(&self, digest: &[u8; 32]) -> impl Iterator<Item = u32> {
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        let slots = self.slots.max(1);
        // `slots >= 1`: the remainders are never `None`.
        let base = u64::from_le_bytes(first)
            .checked_rem(u64::from(slots))
            .unwrap_or(0);
        // `base < slots <= u32::MAX`, so the conversion cannot fail.
        let base = u32::try_from(base).unwrap_or(0);
        // `base + i < slots + WAYS`, far below `u32::MAX` (`slots <= MAX_SLOTS`).
        (0..WAYS.min(slots)).map(move |i| base.saturating_add(i).checked_rem(slots).unwrap_or(0))
    }

    fn read_ways(&self, shared: &impl SharedData, digest: &[u8; 32]) -> Option<Vec<Read>> {
        self.ways(digest)
            .map(|index| {
                let key = self.slot_key(index);
                let (value, cas) = shared.get(&key).ok()?;
                let record = value.as_deref().and_then(Record::decode);
                Some(Read { key, record, cas })
            })
            .collect()
    }

    /// The live binding of the credential with this digest, if one was recorded.
    pub fn lookup(
        &self,
        shared: &impl SharedData,
        digest: &[u8; 32],
        now_ms: u64,
    ) -> Option<Binding> {
        self.read_ways(shared, digest)?
            .into_iter()
            .filter_map(|read| read.record)
            .find(|r| r.digest == *digest && r.live(now_ms))
            .map(|r| Binding {
                token_hash: hex::encode(r.token_hash),
                provider: r.provider,
            })
    }

    /// Binds the credential with this digest to the token with hash `owner.0` (hex), issued by
    /// `owner.1`, until `expires_ms`.
    pub fn record(
        &self,
        shared: &impl SharedData,
        anchor: CasAnchor,
        digest: &[u8; 32],
        owner: (&str, Provider),
        expires_ms: u64,
        now_ms: u64,
    ) -> Recorded {
        let (token_hash_hex, provider) = owner;
        let mut token_hash = [0u8; 32];
        if hex::decode_to_slice(token_hash_hex, &mut token_hash).is_err() {
            return Recorded::Failed;
        }
        let value = Record {
            digest: *digest,
            expires_ms,
            finished: false,
            provider,
            token_hash,
        }
        .encode();
        for _ in 0..CAS_ATTEMPTS {
            let Some(reads) = self.read_ways(shared, digest) else {
                return Recorded::Failed;
            };
            let Some((index, evicts)) = victim(&reads, digest, now_ms) else {
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

    /// Marks a binding finished: it stays usable for at most `grace_ms` more and is the first
    /// to make room. `false` if it was not found.
    pub fn finish(
        &self,
        shared: &impl SharedData,
        digest: &[u8; 32],
        grace_ms: u64,
        now_ms: u64,
    ) -> bool {
        for _ in 0..CAS_ATTEMPTS {
            let Some(reads) = self.read_ways(shared, digest) else {
                return false;
            };
            let Some((slot, mut record)) = reads.into_iter().find_map(|r| {
                let rec = r.record.clone().filter(|rec| rec.digest == *digest)?;
                Some((r, rec))
            }) else {
                return false;
            };
            if record.finished {
                return true;
            }
            record.finished = true;
            record.expires_ms = record.expires_ms.min(now_ms.saturating_add(grace_ms));
            match shared.set(&slot.key, &record.encode(), slot.cas) {
                Ok(()) => return true,
                Err(SetError::CasMismatch) => continue,
                Err(SetError::Other) => return false,
            }
        }
        false
    }
}

/// Which slot a new binding takes, and whether that evicts a live one.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared_data_double::SharedDataDouble;

    const HASH: &str = "ab00000000000000000000000000000000000000000000000000000000000001";
    const OTHER: &str = "cd00000000000000000000000000000000000000000000000000000000000002";
    const TTL: u64 = 1_000;

    fn table(slots: u32) -> Table {
        Table {
            prefix: "ptk/v1/test/",
            slots,
        }
    }

    fn bind(shared: &SharedDataDouble, t: &Table, credential: &str, now: u64) -> Recorded {
        let anchor = CasAnchor::refresh(shared);
        let d = digest(credential);
        t.record(shared, anchor, &d, (HASH, Provider::Gemini), now + TTL, now)
    }

    #[test]
    fn every_built_in_provider_round_trips_by_its_place_in_the_registry_a_configured_one_never() {
        let record = |provider| Record {
            digest: [1; 32],
            expires_ms: 9,
            finished: false,
            provider,
            token_hash: [2; 32],
        };
        for (i, provider) in Provider::ALL.into_iter().enumerate() {
            let bytes = record(provider).encode();
            assert_eq!(bytes[42], u8::try_from(i).unwrap(), "{provider:?}");
            assert_eq!(Record::decode(&bytes), Some(record(provider)));
        }
        let configured = record(Provider::Configured("selfhosted")).encode();
        assert_eq!(configured[42], u8::MAX);
        assert_eq!(Record::decode(&configured), None);
    }

    fn find(shared: &SharedDataDouble, t: &Table, credential: &str, now: u64) -> Option<Binding> {
        t.lookup(shared, &digest(credential), now)
    }

    fn table_keys(shared: &SharedDataDouble) -> usize {
        shared
            .keys()
            .iter()
            .filter(|k| k.starts_with("ptk/v1/test/"))
            .count()
    }

    #[test]
    fn a_binding_is_found_until_it_expires_and_only_by_its_credential() {
        let shared = SharedDataDouble::default();
        let t = table(64);
        assert_eq!(bind(&shared, &t, "id-1", 0), Recorded::Stored);
        let found = find(&shared, &t, "id-1", TTL - 1).unwrap();
        assert_eq!(found.token_hash, HASH);
        assert_eq!(found.provider, Provider::Gemini);
        assert_eq!(find(&shared, &t, "id-1", TTL), None, "expired");
        for other in ["id-2", "ID-1", "", "id-1 "] {
            assert_eq!(find(&shared, &t, other, 5), None, "{other:?}");
        }
    }

    #[test]
    fn tables_with_other_prefixes_never_see_each_others_bindings() {
        let shared = SharedDataDouble::default();
        let a = table(16);
        let b = Table {
            prefix: "ptk/v1/other/",
            slots: 16,
        };
        bind(&shared, &a, "x", 0);
        assert!(find(&shared, &a, "x", 1).is_some());
        assert_eq!(find(&shared, &b, "x", 1), None);
    }

    #[test]
    fn unknown_credentials_miss_even_when_every_slot_is_live() {
        // A full table: every way of every credential holds some live binding.
        let shared = SharedDataDouble::default();
        let t = table(16);
        for n in 0..200 {
            bind(&shared, &t, &format!("live-{n}"), 0);
        }
        for n in 0..1_000 {
            assert_eq!(find(&shared, &t, &format!("forged-{n}"), 1), None);
        }
    }

    #[test]
    fn the_table_never_holds_more_than_its_slots_whatever_the_flood() {
        let shared = SharedDataDouble::default();
        let t = table(64);
        for n in 0..20_000 {
            bind(&shared, &t, &format!("flood-{n}"), n);
        }
        assert!(table_keys(&shared) <= 64, "{}", table_keys(&shared));
        // Lookups of unknown credentials never write.
        let writes = shared.sets();
        for n in 0..1_000 {
            assert_eq!(find(&shared, &t, &format!("unknown-{n}"), 0), None);
        }
        assert_eq!(shared.sets(), writes);
        assert_eq!(table_keys(&shared), 64);
    }

    #[test]
    fn no_value_holds_the_credential_or_anything_but_the_fixed_record() {
        let shared = SharedDataDouble::default();
        let credential = "secret-credential-visible-nowhere";
        bind(&shared, &table(16), credential, 0);
        for key in shared.keys() {
            let value = shared.value(&key).unwrap();
            assert!(!key.contains(credential));
            assert!(!String::from_utf8_lossy(&value).contains(credential));
            if key.starts_with("ptk/v1/test/") {
                assert_eq!(value.len(), RECORD_LEN);
            }
        }
    }

    #[test]
    fn overflow_evicts_the_binding_that_expires_first_and_the_newest_always_works() {
        let shared = SharedDataDouble::default();
        let t = table(16);
        let ids: Vec<String> = (0..64).map(|n| format!("s-{n}")).collect();
        let mut evictions = 0;
        for (n, id) in ids.iter().enumerate() {
            if bind(&shared, &t, id, n as u64) == Recorded::Evicted {
                evictions += 1;
            }
            assert!(find(&shared, &t, id, n as u64).is_some(), "newest {id}");
        }
        assert!(evictions >= 64 - 16, "{evictions}");
        let alive = ids
            .iter()
            .filter(|id| find(&shared, &t, id, 64).is_some())
            .count();
        assert!(alive <= 16);
        assert!(
            find(&shared, &t, "s-0", 64).is_none(),
            "the oldest went first"
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
    fn a_new_binding_takes_same_then_free_then_finished_then_the_oldest_live_slot() {
        let new = digest("new");
        let now = 100;
        // The same credential wins over everything (a refresh, not an eviction).
        let reads = [empty(), read("a", 500, false), read("new", 900, false)];
        assert_eq!(victim(&reads, &new, now), Some((2, false)));
        // Then an empty or expired slot.
        let reads = [read("a", 500, false), empty(), read("b", 50, false)];
        assert_eq!(victim(&reads, &new, now), Some((1, false)));
        let reads = [read("a", 500, false), read("b", 50, false)];
        assert_eq!(victim(&reads, &new, now), Some((1, false)), "expired");
        // Then the finished binding that expires first.
        let reads = [
            read("a", 200, false),
            read("b", 700, true),
            read("c", 600, true),
            read("d", 300, false),
        ];
        assert_eq!(victim(&reads, &new, now), Some((2, false)));
        // Only then the live binding that expires first: an eviction.
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
    fn expired_bindings_are_free_slots() {
        let shared = SharedDataDouble::default();
        let t = table(16);
        for n in 0..200 {
            bind(&shared, &t, &format!("early-{n}"), 0);
        }
        assert_eq!(table_keys(&shared), 16);
        // After the TTL every slot is free again: while fewer than WAYS bindings are live, one
        // of any credential's ways is free, so nothing is evicted.
        for n in 0..WAYS {
            let outcome = bind(&shared, &t, &format!("late-{n}"), TTL);
            assert_ne!(outcome, Recorded::Evicted, "late-{n}");
        }
    }

    #[test]
    fn finishing_caps_the_lifetime_and_unknown_credentials_are_not_found() {
        let shared = SharedDataDouble::default();
        let t = table(16);
        let anchor = CasAnchor::refresh(&shared);
        let done = digest("done");
        t.record(
            &shared,
            anchor,
            &done,
            (HASH, Provider::Gemini),
            1_000_000,
            0,
        );
        assert!(t.finish(&shared, &done, 500, 100));
        assert!(
            t.finish(&shared, &done, 500, 200),
            "finishing twice is fine"
        );
        assert!(t.lookup(&shared, &done, 599).is_some());
        assert!(t.lookup(&shared, &done, 600).is_none());
        assert!(!t.finish(&shared, &digest("never-recorded"), 500, 0));
    }

    #[test]
    fn the_same_credential_twice_takes_one_slot_and_the_newest_owner() {
        let shared = SharedDataDouble::default();
        let t = table(16);
        let anchor = CasAnchor::refresh(&shared);
        let d = digest("same");
        t.record(&shared, anchor, &d, (HASH, Provider::Gemini), TTL, 0);
        t.record(&shared, anchor, &d, (OTHER, Provider::Openai), TTL, 1);
        assert_eq!(table_keys(&shared), 1);
        let found = t.lookup(&shared, &d, 2).unwrap();
        assert_eq!(
            (found.token_hash.as_str(), found.provider),
            (OTHER, Provider::Openai)
        );
    }

    #[test]
    fn a_racing_creator_is_never_overwritten_unseen() {
        // Worker A reads the slot absent; before its create lands, worker B creates it with its
        // own binding. A's anchored create fails, it re-reads and takes another way.
        let shared = SharedDataDouble::default();
        let t = table(16);
        let anchor = CasAnchor::refresh(&shared);
        let first_way = t.ways(&digest("a")).next().unwrap();
        let b_value = Record {
            digest: digest("b"),
            expires_ms: 1_000,
            finished: false,
            provider: Provider::Gemini,
            token_hash: [7; 32],
        }
        .encode();
        let key = t.slot_key(first_way);
        let b_key = key.clone();
        shared.before_next_set(move |s| {
            let a = CasAnchor::refresh(s);
            s.raw_set(&b_key, &b_value, a.cas()).unwrap();
        });
        let d = digest("a");
        assert_eq!(
            t.record(&shared, anchor, &d, (HASH, Provider::Gemini), TTL, 0),
            Recorded::Stored
        );
        assert!(t.lookup(&shared, &d, 1).is_some());
        let b = shared.value(&key).and_then(|v| Record::decode(&v));
        assert_eq!(
            b.map(|r| r.digest),
            Some(digest("b")),
            "B's binding survived"
        );
    }

    #[test]
    fn without_an_anchor_or_with_a_bad_hash_nothing_is_recorded() {
        let shared = SharedDataDouble::default();
        let t = table(16);
        let d = digest("x");
        let none = CasAnchor::default();
        let owner = (HASH, Provider::Gemini);
        assert_eq!(t.record(&shared, none, &d, owner, TTL, 0), Recorded::Failed);
        let anchor = CasAnchor::refresh(&shared);
        let bad = ("not-hex", Provider::Gemini);
        assert_eq!(t.record(&shared, anchor, &d, bad, TTL, 0), Recorded::Failed);
        assert_eq!(table_keys(&shared), 0);
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
        let shared = SharedDataDouble::default();
        let t = table(16);
        for w in t.ways(&digest("j")) {
            shared.raw_set(&t.slot_key(w), b"junk", None).unwrap();
        }
        assert_eq!(bind(&shared, &t, "j", 0), Recorded::Stored);
    }

    #[test]
    fn ways_stay_inside_the_table() {
        for n in 0..1_000 {
            let d = digest(&n.to_string());
            for slots in [16, 17, 8192, MAX_SLOTS] {
                let w: Vec<u32> = table(slots).ways(&d).collect();
                assert_eq!(w.len(), WAYS as usize);
                assert!(w.iter().all(|i| *i < slots));
            }
        }
        assert_eq!(table(MAX_SLOTS).slot_key(MAX_SLOTS - 1), "ptk/v1/test/ffff");
    }
}
