//! Reservations: the budget tokens handed out in grants and not yet released, kept where the
//! rate-limit windows are (process memory for one replica, Redis for several), so that
//! `settled + reserved + grant <= limit` holds across Envoy workers, Envoys and replicas.
//!
//! One grant reserves against every budget that applies to its token at once (its own and its
//! group's: tokens, cost, tokens per minute), each in that budget's unit: a grant of `g` tokens
//! holds `g × per_token` of a budget (1 for token budgets, the priciest price per token for a
//! cost budget). The decision is atomic (one lock, or one Lua script): the remaining room is the
//! smallest `(cap − reserved) / per_token` over the budgets, where `cap = limit − settled` is
//! what the caller read from the ledger.
//!
//! **Epochs** make that read safe. Settling writes the ledger first and releases the grant's
//! reservation after, bumping an epoch per scope. A check reads the epochs, then the ledger,
//! then reserves only if the epochs are unchanged (else it reads again): so it never sees a
//! release without the spend it stood for.
//!
//! **Lapse**: a reservation ends when released, or at its lapse time (the grant's expiry plus a
//! grace for requests still running), so a filter that died with a grant holds nothing for long.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;

use crate::ratelimit::RateLimitError;

/// One budget a grant reserves against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The budget's key: `<scope>|<kind>|<period id>`.
    pub key: String,
    /// Its limit minus its settled spend, in its unit (0 when spent).
    pub cap: u64,
    /// Units of this budget one token may cost (at least 1).
    pub per_token: u64,
}

/// How a grant is sized from the room `R` left (in tokens): like a rate-limit lease, a quarter
/// of `R`, but at least `min` (so one request fits) and at most `max`; never less than `want`
/// (the estimate of the request at hand), never more than `R`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizing {
    /// The request's estimate (0 when unknown).
    pub want: u64,
    /// Smallest grant when the room allows.
    pub min: u64,
    /// Largest grant unless `want` is larger.
    pub max: u64,
}

impl Sizing {
    /// The grant for room `room`, or `None` when `want` does not fit or nothing is left.
    pub fn grant(self, room: u64) -> Option<u64> {
        if room == 0 || room < self.want {
            return None;
        }
        let base = (room / 4).max(self.min.min(room)).min(self.max);
        Some(base.max(self.want).min(room))
    }
}

/// What a reservation attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    /// Reserved: `tokens` under grant `id`.
    Granted {
        /// The grant's id (releases name it).
        id: u64,
        /// Tokens granted.
        tokens: u64,
    },
    /// No room: the hold at this index is the tightest.
    Exhausted {
        /// Index into the holds.
        index: usize,
    },
    /// A scope's epoch moved since the caller read it: read the ledger again.
    Stale,
    /// The grant id the filter proposed is held by a live grant (or out of range): nothing
    /// was reserved. Never replaced by an id of the service's own: the filter would later
    /// release the id it proposed, which is another grant's.
    IdTaken,
}

/// Proposed grant ids are in 1..2^52: exact as doubles (Redis' Lua, JSON readers).
pub const GRANT_ID_LIMIT: u64 = 1 << 52;

/// Whether `id` may name a grant a filter proposes.
pub fn valid_grant_id(id: u64) -> bool {
    (1..GRANT_ID_LIMIT).contains(&id)
}

/// Where reservations live.
#[async_trait]
pub trait Reservations: Send + Sync + 'static {
    /// The current epochs of `scopes` (0 for a scope never settled).
    async fn epochs(&self, scopes: &[String]) -> Result<Vec<u64>, RateLimitError>;
    /// Atomically: if `scopes`' epochs are still `epochs`, reserves a grant sized by `sizing`
    /// against every hold, lapsing `lapse_ms` from now, under the id `proposed` when given
    /// ([`Reserved::IdTaken`] when a live grant has it), else under an id of its own.
    async fn reserve(
        &self,
        holds: &[Hold],
        scopes: &[String],
        epochs: &[u64],
        sizing: Sizing,
        lapse_ms: u64,
        proposed: Option<u64>,
    ) -> Result<Reserved, RateLimitError>;
    /// Releases `tokens` of grant `grant` (at most what it still holds) and bumps its scopes'
    /// epochs. An unknown or lapsed grant is a no-op.
    async fn release(&self, grant: u64, tokens: u64) -> Result<(), RateLimitError>;
    /// What is reserved against `key` now (for views).
    async fn reserved(&self, key: &str) -> Result<u64, RateLimitError>;
}

#[derive(Debug, Default)]
struct Grant {
    tokens: u64,
    holds: Vec<(String, u64)>,
    scopes: Vec<String>,
    lapse_at: u64,
}

/// What the grants hold against one budget key, with a running total so a check costs O(1)
/// until something lapses.
#[derive(Debug, Default)]
struct KeyHolds {
    /// Grant id → (units, lapse time ms).
    entries: HashMap<u64, (u64, u64)>,
    total: u64,
    /// The earliest lapse time among the entries (`u64::MAX` when none).
    next_lapse: u64,
}

impl KeyHolds {
    fn purge(&mut self, now: u64) {
        if self.next_lapse > now {
            return;
        }
        self.entries.retain(|_, (_, lapse)| *lapse > now);
        self.total = self
            .entries
            .values()
            .map(|(units, _)| *units)
            .fold(0, u64::saturating_add);
        self.next_lapse = self
            .entries
            .values()
            .map(|(_, l)| *l)
            .min()
            .unwrap_or(u64::MAX);
    }

    fn insert(&mut self, id: u64, units: u64, lapse: u64) {
        self.entries.insert(id, (units, lapse));
        self.total = self.total.saturating_add(units);
        self.next_lapse = self.next_lapse.min(lapse);
    }

    /// Takes up to `units` off grant `id` (all of it when `remove`).
    fn release(&mut self, id: u64, units: u64, remove: bool) {
        let Some((held, _)) = self.entries.get_mut(&id) else {
            return;
        };
        let freed = if remove { *held } else { units.min(*held) };
        *held = held.saturating_sub(freed);
        self.total = self.total.saturating_sub(freed);
        if remove {
            self.entries.remove(&id);
        }
    }
}

#[derive(Debug, Default)]
struct State {
    keys: HashMap<String, KeyHolds>,
    grants: HashMap<u64, Grant>,
    epochs: HashMap<String, u64>,
    next_id: u64,
}

impl State {
    /// What is reserved against `key` at `now`, dropping lapsed entries.
    fn reserved(&mut self, key: &str, now: u64) -> u64 {
        let Some(holds) = self.keys.get_mut(key) else {
            return 0;
        };
        holds.purge(now);
        holds.total
    }
}

/// Where a grant sequence starts: at random in [2^32, 2^52). From 1 after every restart, a
/// release that a filter sends for a grant of the previous run would free the new grant of the
/// same number, another token's (and its group's), which then overshoots by what was freed.
/// Below 2^52, 2^52 ids follow before 2^53, past which doubles (Redis' Lua numbers, JSON
/// readers such as JavaScript's) stop being exact. Two runs' sequences meet only if a seed
/// lands within the other run's issued ids: about grants issued / 2^52. Not a secret, so the
/// thread RNG (seeded from the OS) is plenty.
pub fn first_grant_id() -> u64 {
    rand::random_range(1u64 << 32..1u64 << 52)
}

/// Reservations in this process (one token-service replica).
#[derive(Debug)]
pub struct MemoryReservations {
    state: Mutex<State>,
    clock: Instant,
}

impl Default for MemoryReservations {
    fn default() -> Self {
        MemoryReservations {
            state: Mutex::new(State {
                next_id: first_grant_id(),
                ..State::default()
            }),
            clock: Instant::now(),
        }
    }
}

impl MemoryReservations {
    /// No reservations.
    pub fn new() -> MemoryReservations {
        MemoryReservations::default()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain counters: a panic elsewhere leaves them usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// [`Reservations::reserve`] at an explicit time (ms on this instance's clock).
    #[allow(clippy::too_many_arguments)] // the trait's arguments plus the two instants
    pub fn reserve_at(
        &self,
        holds: &[Hold],
        scopes: &[String],
        epochs: &[u64],
        sizing: Sizing,
        lapse_at: u64,
        now: u64,
        proposed: Option<u64>,
    ) -> Reserved {
        let mut state = self.lock();
        if let Some(id) = proposed {
            let live = state.grants.get(&id).is_some_and(|g| g.lapse_at > now);
            if live || !valid_grant_id(id) {
                return Reserved::IdTaken;
            }
        }
        let current: Vec<u64> = scopes
            .iter()
            .map(|s| state.epochs.get(s).copied().unwrap_or(0))
            .collect();
        if current != epochs {
            return Reserved::Stale;
        }
        let mut room = u64::MAX;
        let mut tightest = 0;
        for (index, hold) in holds.iter().enumerate() {
            let free = hold.cap.saturating_sub(state.reserved(&hold.key, now));
            let tokens = free / hold.per_token.max(1);
            if tokens < room {
                (room, tightest) = (tokens, index);
            }
        }
        let Some(tokens) = sizing.grant(room) else {
            return Reserved::Exhausted { index: tightest };
        };
        let id = match proposed {
            Some(id) => id,
            None => {
                state.next_id = state.next_id.wrapping_add(1);
                state.next_id
            }
        };
        let mut grant = Grant {
            tokens,
            scopes: scopes.to_vec(),
            lapse_at,
            ..Grant::default()
        };
        for hold in holds {
            let units = tokens.saturating_mul(hold.per_token.max(1));
            let holds = state
                .keys
                .entry(hold.key.clone())
                .or_insert_with(|| KeyHolds {
                    next_lapse: u64::MAX,
                    ..KeyHolds::default()
                });
            holds.insert(id, units, lapse_at);
            grant.holds.push((hold.key.clone(), hold.per_token.max(1)));
        }
        state.grants.retain(|_, g| g.lapse_at > now);
        state.grants.insert(id, grant);
        Reserved::Granted { id, tokens }
    }

    /// [`Reservations::release`] at an explicit time.
    pub fn release_at(&self, grant: u64, tokens: u64, now: u64) {
        let mut state = self.lock();
        let Some(mut g) = state.grants.remove(&grant) else {
            return;
        };
        if g.lapse_at <= now {
            return;
        }
        let released = tokens.min(g.tokens);
        g.tokens = g.tokens.saturating_sub(released);
        for (key, per_token) in &g.holds {
            if let Some(holds) = state.keys.get_mut(key) {
                holds.release(grant, released.saturating_mul(*per_token), g.tokens == 0);
            }
        }
        for scope in &g.scopes {
            let epoch = state.epochs.entry(scope.clone()).or_default();
            *epoch = epoch.wrapping_add(1);
        }
        if g.tokens > 0 {
            state.grants.insert(grant, g);
        }
    }

    /// The instance's clock, ms (tests add to it).
    pub fn clock_ms(&self) -> u64 {
        self.now_ms()
    }
}

#[async_trait]
impl Reservations for MemoryReservations {
    async fn epochs(&self, scopes: &[String]) -> Result<Vec<u64>, RateLimitError> {
        let state = self.lock();
        Ok(scopes
            .iter()
            .map(|s| state.epochs.get(s).copied().unwrap_or(0))
            .collect())
    }

    async fn reserve(
        &self,
        holds: &[Hold],
        scopes: &[String],
        epochs: &[u64],
        sizing: Sizing,
        lapse_ms: u64,
        proposed: Option<u64>,
    ) -> Result<Reserved, RateLimitError> {
        let now = self.now_ms();
        let lapse_at = now.saturating_add(lapse_ms);
        Ok(self.reserve_at(holds, scopes, epochs, sizing, lapse_at, now, proposed))
    }

    async fn release(&self, grant: u64, tokens: u64) -> Result<(), RateLimitError> {
        self.release_at(grant, tokens, self.now_ms());
        Ok(())
    }

    async fn reserved(&self, key: &str) -> Result<u64, RateLimitError> {
        let now = self.now_ms();
        Ok(self.lock().reserved(key, now))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn grants_are_a_quarter_of_the_room_within_their_bounds() {
        let s = Sizing {
            want: 0,
            min: 1000,
            max: 50_000,
        };
        assert_eq!(s.grant(1_000_000), Some(50_000));
        assert_eq!(s.grant(100_000), Some(25_000));
        assert_eq!(s.grant(2000), Some(1000));
        assert_eq!(s.grant(600), Some(600));
        assert_eq!(s.grant(0), None);
        let want = Sizing { want: 7000, ..s };
        assert_eq!(want.grant(20_000), Some(7000));
        assert_eq!(want.grant(6999), None);
        assert_eq!(Sizing { want: 90_000, ..s }.grant(100_000), Some(90_000));
    }

    /// A restarted replica's grant ids do not repeat the previous run's: a filter's release
    /// of an old grant must not free another token's new one.
    #[test]
    fn a_release_from_before_a_restart_frees_no_grant_of_another_token() {
        let sizing = Sizing {
            want: 0,
            min: 100,
            max: 100,
        };
        let grant = |r: &MemoryReservations, token: &str| {
            let hold = Hold {
                key: format!("token:{token}|tokens|2026-11-29"),
                cap: 100,
                per_token: 1,
            };
            let scopes = [format!("token:{token}")];
            match r.reserve_at(&[hold], &scopes, &[0], sizing, 60_000, 0, None) {
                Reserved::Granted { id, .. } => id,
                other => panic!("{other:?}"),
            }
        };
        let before = MemoryReservations::new();
        let old = grant(&before, "a");
        let restarted = MemoryReservations::new();
        assert_ne!(grant(&restarted, "b"), old);
        // Token a's filter settles its old grant: token b's reservation stays whole.
        restarted.release_at(old, 100, 1);
        let hold = Hold {
            key: "token:b|tokens|2026-11-29".into(),
            cap: 100,
            per_token: 1,
        };
        let scopes = ["token:b".to_owned()];
        let again = restarted.reserve_at(&[hold], &scopes, &[0], sizing, 60_000, 2, None);
        assert_eq!(again, Reserved::Exhausted { index: 0 });
    }

    #[test]
    fn lapsed_reservations_stop_counting() {
        let r = MemoryReservations::new();
        let hold = Hold {
            key: "token:a|tokens|2026-11-29".into(),
            cap: 100,
            per_token: 1,
        };
        let sizing = Sizing {
            want: 0,
            min: 100,
            max: 100,
        };
        let scopes = ["token:a".to_owned()];
        let granted = r.reserve_at(
            std::slice::from_ref(&hold),
            &scopes,
            &[0],
            sizing,
            1000,
            0,
            None,
        );
        assert!(matches!(granted, Reserved::Granted { tokens: 100, .. }));
        let full = r.reserve_at(
            std::slice::from_ref(&hold),
            &scopes,
            &[0],
            sizing,
            2000,
            999,
            None,
        );
        assert_eq!(full, Reserved::Exhausted { index: 0 });
        let again = r.reserve_at(&[hold], &scopes, &[0], sizing, 3000, 1000, None);
        assert!(matches!(again, Reserved::Granted { tokens: 100, .. }));
    }

    #[test]
    fn a_release_frees_its_tokens_and_makes_an_earlier_ledger_read_stale() {
        let r = MemoryReservations::new();
        let holds = [
            Hold {
                key: "token:a|tokens|2026-11-29".into(),
                cap: 1000,
                per_token: 1,
            },
            Hold {
                key: "group:t|cost|2026-11".into(),
                cap: 10_000,
                per_token: 50,
            },
        ];
        let scopes = ["token:a".to_owned(), "group:t".to_owned()];
        let sizing = Sizing {
            want: 0,
            min: 150,
            max: 150,
        };
        // The group's cost budget (200 tokens at 50 each) is the tightest.
        let Reserved::Granted { id, tokens: 150 } =
            r.reserve_at(&holds, &scopes, &[0, 0], sizing, 10_000, 0, None)
        else {
            panic!("not granted")
        };
        let left = r.reserve_at(&holds, &scopes, &[0, 0], sizing, 10_000, 0, None);
        assert!(matches!(left, Reserved::Granted { tokens: 50, .. }));
        assert_eq!(
            r.reserve_at(&holds, &scopes, &[0, 0], sizing, 10_000, 0, None),
            Reserved::Exhausted { index: 1 }
        );
        r.release_at(id, 100, 1);
        assert_eq!(
            r.reserve_at(&holds, &scopes, &[0, 0], sizing, 10_000, 2, None),
            Reserved::Stale
        );
        let after = r.reserve_at(&holds, &scopes, &[1, 1], sizing, 10_000, 2, None);
        assert!(matches!(after, Reserved::Granted { tokens: 100, .. }));
        // Releasing more than a grant holds frees only what it holds.
        r.release_at(id, 1_000_000, 3);
        assert_eq!(r.lock().reserved("group:t|cost|2026-11", 3), 150 * 50);
    }
}
