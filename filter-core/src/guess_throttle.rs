//! Throttling token guessing per client address, in bounded memory.
//!
//! Every distinct token the token-service refuses (invalid, expired, out of scope) counts
//! against the client address that sent it, per Envoy worker. Once an address has
//! `max_refusals` in its window, its requests are answered 429 **without** a check or a cache
//! lookup (a guess is neither evaluated nor answered), except for tokens already known good
//! from that address: valid users behind a shared address (NAT) keep working while a
//! misbehaving neighbour is throttled. A refusal remembered by the worker's deny cache (the
//! same bad token again) is answered as before and is not a new guess.
//!
//! Known-good (address, token) pairs are kept per worker and, so that a client's other
//! connections on other workers also pass, in a fixed table of shared-data slots (a slot is
//! overwritten by a colliding pair: the worst case is one 429 for a pair that was known).
//!
//! Bounded: at most `addresses` clients per worker (when full: idle clients go first, then
//! clients that are not throttled), at most `KNOWN_LOCAL` pairs per worker, at most
//! `KNOWN_SLOTS` shared-data keys. IPv6 clients count per /64 (one host typically owns one).

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

use crate::shared_data::SharedData;

/// Settings (plugin config `guess_throttle`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuessThrottleConfig {
    /// Throttle at all.
    pub enabled: bool,
    /// Refused tokens an address may send per window before it is throttled.
    pub max_refusals: u32,
    /// Window length in milliseconds.
    pub window_ms: u64,
    /// Most client addresses a worker keeps state for.
    pub addresses: usize,
}

impl Default for GuessThrottleConfig {
    fn default() -> Self {
        GuessThrottleConfig {
            enabled: true,
            max_refusals: 20,
            window_ms: 60_000,
            addresses: 4096,
        }
    }
}

/// Known-good pairs a worker keeps locally (cleared when full).
pub const KNOWN_LOCAL: usize = 16_384;

/// Shared-data slots for known-good pairs (one key each, 8-byte values).
pub const KNOWN_SLOTS: u64 = 16_384;

/// Longest client key kept (a non-IP source address is cut here).
const MAX_CLIENT_KEY: usize = 64;

/// One client address's state.
#[derive(Debug, Clone)]
struct Client {
    window_start_ms: u64,
    refusals: u32,
    /// Distinct tokens with checks in flight (fingerprint, checks): counted up front, so a
    /// burst of concurrent guesses cannot all be checked before the first refusal comes back;
    /// counted per token, so a burst of requests with one token is one, not many.
    pending: Vec<(u64, u32)>,
    /// Checks in flight beyond [`MAX_PENDING_TOKENS`] distinct tokens, each counted.
    pending_overflow: u32,
    last_seen_ms: u64,
}

impl Client {
    fn new(now_ms: u64) -> Client {
        Client {
            window_start_ms: now_ms,
            refusals: 0,
            pending: Vec::new(),
            pending_overflow: 0,
            last_seen_ms: now_ms,
        }
    }

    /// Starts a new window if the current one has ended.
    fn roll(&mut self, now_ms: u64, window_ms: u64) {
        if now_ms >= self.window_start_ms.saturating_add(window_ms) {
            self.window_start_ms = now_ms;
            self.refusals = 0;
            // A check lost with its request (client gone) must not count forever.
            self.pending.clear();
            self.pending_overflow = 0;
        }
        self.last_seen_ms = self.last_seen_ms.max(now_ms);
    }

    /// Distinct tokens with a check in flight (those beyond the tracked ones count singly).
    fn in_flight(&self) -> u32 {
        u32::try_from(self.pending.len())
            .unwrap_or(u32::MAX)
            .saturating_add(self.pending_overflow)
    }

    fn start(&mut self, token: u64) {
        if let Some((_, n)) = self.pending.iter_mut().find(|(t, _)| *t == token) {
            *n = n.saturating_add(1);
        } else if self.pending.len() < MAX_PENDING_TOKENS {
            self.pending.push((token, 1));
        } else {
            self.pending_overflow = self.pending_overflow.saturating_add(1);
        }
    }

    fn finish(&mut self, token: u64) {
        match self.pending.iter().position(|(t, _)| *t == token) {
            Some(i) => {
                if let Some((_, n)) = self.pending.get_mut(i) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.pending.swap_remove(i);
                    }
                }
            }
            None => self.pending_overflow = self.pending_overflow.saturating_sub(1),
        }
    }
}

/// Distinct tokens per address whose in-flight checks are tracked one by one.
pub const MAX_PENDING_TOKENS: usize = 64;

/// A worker's per-address refusal counts.
#[derive(Debug)]
pub struct GuessThrottle {
    config: GuessThrottleConfig,
    clients: HashMap<String, Client>,
}

/// The known-good fingerprint of a (client key, token hash) pair. Deterministic across
/// workers (the same module, the same fixed-key hasher); never 0, which marks an empty slot.
pub fn pair_fingerprint(client: &str, token_hash: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    client.hash(&mut hasher);
    token_hash.hash(&mut hasher);
    hasher.finish().max(1)
}

/// Known-good (client, token) pairs: this worker's set, backed by shared-data slots.
#[derive(Debug, Default)]
pub struct KnownGood {
    local: HashSet<u64>,
}

fn slot_key(pair: u64) -> String {
    format!("ptk/v1/known/{:04x}", pair % KNOWN_SLOTS)
}

impl KnownGood {
    /// True when the pair succeeded before, on this worker or (per its shared slot) another.
    pub fn contains(&mut self, shared: &impl SharedData, pair: u64) -> bool {
        if self.local.contains(&pair) {
            return true;
        }
        let stored = shared.get(&slot_key(pair)).ok().and_then(|(v, _)| v);
        let known = stored.as_deref() == Some(&pair.to_le_bytes()[..]);
        if known {
            self.remember_locally(pair);
        }
        known
    }

    /// Records a pair that just succeeded (a shared write only the first time this worker sees
    /// it; a colliding pair in the slot is simply replaced).
    pub fn insert(&mut self, shared: &impl SharedData, pair: u64) {
        if self.local.contains(&pair) {
            return;
        }
        self.remember_locally(pair);
        // Best effort: without the shared slot, other workers just do not know it yet.
        let _ = shared.set(&slot_key(pair), &pair.to_le_bytes(), None);
    }

    fn remember_locally(&mut self, pair: u64) {
        if self.local.len() >= KNOWN_LOCAL {
            self.local.clear();
        }
        self.local.insert(pair);
    }
}

/// The throttle key of a source address as Envoy reports it (`ip:port`, `[ip6]:port`, or a
/// bare IP): the IP without the port, IPv6 cut to its /64. Anything else (a pipe path) is used
/// as is, cut to a bounded length.
pub fn client_key(source_address: &str) -> String {
    let ip = source_address
        .parse::<SocketAddr>()
        .map(|s| s.ip())
        .or_else(|_| source_address.parse::<IpAddr>());
    match ip {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
            }
        },
        Err(_) => source_address.chars().take(MAX_CLIENT_KEY).collect(),
    }
}

impl GuessThrottle {
    /// An empty throttle with these settings.
    pub fn new(config: GuessThrottleConfig) -> GuessThrottle {
        GuessThrottle {
            config,
            clients: HashMap::new(),
        }
    }

    /// `Some(retry_after_s)` while `client` is throttled at `now_ms`.
    pub fn throttled(&mut self, client: &str, now_ms: u64) -> Option<u64> {
        if !self.config.enabled {
            return None;
        }
        let window_ms = self.config.window_ms;
        let state = self.clients.get_mut(client)?;
        state.roll(now_ms, window_ms);
        let max = self.config.max_refusals;
        if state.refusals.saturating_add(state.in_flight()) < max {
            return None;
        }
        if state.refusals < max {
            // Only checks in flight fill the budget: they come back within the callout
            // timeout, so a second later the address may well be admitted again.
            return Some(1);
        }
        let ends = state.window_start_ms.saturating_add(window_ms);
        Some(ends.saturating_sub(now_ms).div_ceil(1000).max(1))
    }

    /// A check is about to go out from `client` for the token with this fingerprint.
    pub fn checking(&mut self, client: &str, token: u64, now_ms: u64) {
        if !self.config.enabled {
            return;
        }
        let window_ms = self.config.window_ms;
        if let Some(state) = self.entry(client, now_ms) {
            state.roll(now_ms, window_ms);
            state.start(token);
        }
    }

    /// The check of [`checking`](Self::checking) came back: `refused` when the token-service
    /// refused the token itself (a guess that missed).
    pub fn checked(&mut self, client: &str, token: u64, refused: bool, now_ms: u64) {
        if !self.config.enabled {
            return;
        }
        let window_ms = self.config.window_ms;
        if let Some(state) = self.entry(client, now_ms) {
            state.roll(now_ms, window_ms);
            state.finish(token);
            if refused {
                state.refusals = state.refusals.saturating_add(1);
            }
        }
    }

    /// Counts a refused token for `client` (a check and its refusal at once).
    pub fn refused(&mut self, client: &str, now_ms: u64) {
        self.checking(client, 0, now_ms);
        self.checked(client, 0, true, now_ms);
    }

    /// Addresses currently tracked (for tests and metrics).
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// True when no address is tracked.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// The client's record, making room for a new one if needed; `None` when the throttle keeps
    /// no clients at all (`addresses` 0).
    fn entry(&mut self, client: &str, now_ms: u64) -> Option<&mut Client> {
        if !self.clients.contains_key(client) {
            if self.config.addresses == 0 {
                return None;
            }
            if self.clients.len() >= self.config.addresses {
                self.make_room(now_ms);
            }
            self.clients.insert(client.to_string(), Client::new(now_ms));
        }
        self.clients.get_mut(client)
    }

    /// Frees space: clients idle for a whole window first, then clients that are not
    /// throttled, then everyone (only an attacker holding more addresses than the cap gets
    /// here, and per-address throttling cannot stop that one anyway).
    fn make_room(&mut self, now_ms: u64) {
        let window_ms = self.config.window_ms;
        let max = self.config.max_refusals;
        self.clients
            .retain(|_, c| now_ms < c.last_seen_ms.saturating_add(window_ms));
        if self.clients.len() >= self.config.addresses {
            self.clients.retain(|_, c| {
                c.refusals >= max && now_ms < c.window_start_ms.saturating_add(window_ms)
            });
        }
        if self.clients.len() >= self.config.addresses {
            self.clients.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared_data::{GetError, SetError, Stored};
    use std::cell::RefCell;

    #[derive(Default)]
    struct Slots(RefCell<HashMap<String, Vec<u8>>>);

    impl SharedData for Slots {
        fn get(&self, key: &str) -> Result<Stored, GetError> {
            Ok((self.0.borrow().get(key).cloned(), Some(1)))
        }
        fn set(&self, key: &str, value: &[u8], _cas: Option<u32>) -> Result<(), SetError> {
            self.0.borrow_mut().insert(key.to_string(), value.to_vec());
            Ok(())
        }
    }

    fn throttle(max: u32, cap: usize) -> GuessThrottle {
        GuessThrottle::new(GuessThrottleConfig {
            enabled: true,
            max_refusals: max,
            window_ms: 10_000,
            addresses: cap,
        })
    }

    #[test]
    fn an_address_is_throttled_after_its_refusals_until_the_window_ends() {
        let mut t = throttle(3, 10);
        for _ in 0..2 {
            t.refused("a", 0);
        }
        assert_eq!(t.throttled("a", 100), None);
        t.refused("a", 100);
        assert_eq!(t.throttled("a", 1_000), Some(9));
        assert_eq!(t.throttled("a", 9_999), Some(1));
        assert_eq!(
            t.throttled("b", 1_000),
            None,
            "other addresses are not affected"
        );
        assert_eq!(t.throttled("a", 10_000), None, "a new window starts clean");
    }

    #[test]
    fn checks_in_flight_count_until_they_come_back() {
        let mut t = throttle(3, 10);
        for token in 1..=3 {
            t.checking("a", token, 0);
        }
        assert_eq!(
            t.throttled("a", 1),
            Some(1),
            "a burst of distinct tokens is throttled before any answer, briefly"
        );
        t.checked("a", 1, false, 2);
        assert_eq!(
            t.throttled("a", 2),
            None,
            "an allowed check frees its place"
        );
        t.checked("a", 2, true, 3);
        t.checked("a", 3, true, 3);
        t.checking("a", 4, 4);
        assert_eq!(t.throttled("a", 4), Some(1));
        t.checked("a", 4, true, 5);
        assert_eq!(
            t.throttled("a", 5),
            Some(10),
            "three refusals: until the window ends"
        );
        // A new window forgets checks whose answers never came.
        t.checking("b", 9, 0);
        assert_eq!(t.throttled("a", 10_004), None);
    }

    #[test]
    fn a_burst_with_one_token_is_one_check_in_flight() {
        let mut t = throttle(3, 10);
        for _ in 0..100 {
            t.checking("a", 7, 0);
        }
        assert_eq!(t.throttled("a", 1), None);
        for _ in 0..100 {
            t.checked("a", 7, false, 2);
        }
        // Many distinct tokens beyond the tracked ones still count, each.
        for token in 0..(MAX_PENDING_TOKENS as u64 + 5) {
            t.checking("b", token, 0);
        }
        assert!(t.throttled("b", 1).is_some());
        for token in 0..(MAX_PENDING_TOKENS as u64 + 5) {
            t.checked("b", token, false, 2);
        }
        assert_eq!(t.throttled("b", 3), None, "every place was freed");
    }

    #[test]
    fn known_pairs_are_shared_between_workers() {
        let shared = Slots::default();
        let (mut worker1, mut worker2) = (KnownGood::default(), KnownGood::default());
        let pair = pair_fingerprint("10.0.0.1", "aa");
        assert!(!worker2.contains(&shared, pair));
        worker1.insert(&shared, pair);
        assert!(worker1.contains(&shared, pair));
        assert!(
            worker2.contains(&shared, pair),
            "another worker learns it from the slot"
        );
        assert!(!worker2.contains(&shared, pair_fingerprint("10.0.0.2", "aa")));
        assert!(!worker2.contains(&shared, pair_fingerprint("10.0.0.1", "ab")));
    }

    #[test]
    fn known_pairs_are_bounded_locally_and_in_shared_data() {
        let shared = Slots::default();
        let mut known = KnownGood::default();
        for n in 0..(KNOWN_LOCAL as u64 * 3) {
            known.insert(&shared, pair_fingerprint(&n.to_string(), "t"));
            assert!(known.local.len() <= KNOWN_LOCAL);
        }
        assert!(shared.0.borrow().len() as u64 <= KNOWN_SLOTS);
    }

    #[test]
    fn memory_is_bounded_and_throttled_clients_are_kept_first() {
        let mut t = throttle(1, 100);
        t.refused("attacker", 0);
        for n in 0..10_000 {
            t.refused(&format!("10.0.{}.{}", n / 256, n % 256), 1);
            t.refused("attacker", 1);
            assert!(t.len() <= 100);
        }
        assert!(
            t.throttled("attacker", 2).is_some(),
            "throttle state survived"
        );
    }

    #[test]
    fn disabled_or_zero_capacity_does_nothing() {
        let mut off = GuessThrottle::new(GuessThrottleConfig {
            enabled: false,
            ..GuessThrottleConfig::default()
        });
        for _ in 0..100 {
            off.refused("a", 0);
        }
        assert_eq!(off.throttled("a", 1), None);
        assert!(off.is_empty());
        let mut none = throttle(1, 0);
        none.refused("a", 0);
        assert_eq!(none.throttled("a", 1), None);
    }

    #[test]
    fn client_keys_drop_ports_and_group_ipv6_by_64() {
        assert_eq!(client_key("127.0.0.1:5555"), "127.0.0.1");
        assert_eq!(client_key("10.1.2.3"), "10.1.2.3");
        assert_eq!(
            client_key("[2001:db8:1:2:aaaa::1]:443"),
            client_key("[2001:db8:1:2:bbbb::9]:80")
        );
        assert_ne!(
            client_key("[2001:db8:1:2::1]:443"),
            client_key("[2001:db8:1:3::1]:443")
        );
        assert_eq!(client_key("[::ffff:10.0.0.1]:1"), "10.0.0.1");
        assert_eq!(client_key(&"x".repeat(500)).len(), MAX_CLIENT_KEY);
    }

    #[test]
    fn pair_fingerprints_are_stable_and_never_zero() {
        assert_eq!(pair_fingerprint("a", "b"), pair_fingerprint("a", "b"));
        assert_ne!(pair_fingerprint("a", "b"), pair_fingerprint("ab", ""));
        assert_ne!(pair_fingerprint("a", "b"), 0);
    }
}
