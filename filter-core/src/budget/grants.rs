//! A budget grant's remaining tokens in proxy-wasm shared data, one entry per cached verdict
//! (`ptk/v1/budget/<cache key>`): the grant's id, the tokens left and the host time after
//! which none may be spent. Every worker spends from it by compare-and-swap, so two workers
//! never spend the same tokens. One entry per token and provider (never one per grant): shared
//! data is never freed, so a new grant replaces the old one, and what the old one still held
//! is released. A grant found expired with tokens left is emptied and released too.
//!
//! **Renewal** (why: a grant that runs dry makes every request that finds it short ask the
//! token-service on its own, a stampede while the first answer is in flight). The entry also
//! holds when to renew: below a quarter of the grant's tokens, or once three quarters of its
//! life are gone. The spend that first finds one of those true *claims* the renewal in the same
//! compare-and-swap (`renewing_until_ms`), so exactly one request over all workers asks for the
//! next grant while the others go on spending what is left. A grant spent in less than
//! [`RATE_TARGET_MS`] asks for one sized to the rate it was spent at (`budget_want`), so a
//! busy token renews about once a second rather than once per few requests.

use ptk_wire::{BudgetGrant, GrantRelease};

use crate::shared_data::{CasAnchor, SetError, SharedData};

/// Attempts before giving up on a contended entry (then: a top-up check, always safe).
const CAS_ATTEMPTS: usize = 16;

/// Renew once fewer than `tokens / RENEW_BELOW_DIVISOR` are left.
const RENEW_BELOW_DIVISOR: u64 = 4;

/// Renew once `life × RENEW_AFTER_LIFE_NUM / RENEW_AFTER_LIFE_DEN` has passed.
const RENEW_AFTER_LIFE_NUM: u64 = 3;
const RENEW_AFTER_LIFE_DEN: u64 = 4;

/// A renewal asks for what the token spends in this long (ms) at the rate it spent its grant.
pub const RATE_TARGET_MS: u64 = 1_000;

/// A renewal asks for at most this many times the grant it renews (a burst measured over a
/// few ms does not ask for the whole budget at once).
const MAX_GROWTH: u64 = 16;

/// Bytes of an entry; [`LEGACY_LEN`] is the format before renewals (read as never renewing).
const ENTRY_LEN: usize = 64;
const LEGACY_LEN: usize = 24;

/// The shared-data key of the grant entry of a verdict cache key.
pub fn grant_key(cache_key: &str) -> String {
    format!("ptk/v1/budget/{cache_key}")
}

/// One grant as shared data holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantEntry {
    /// [`BudgetGrant::id`].
    pub id: u64,
    /// Tokens not spent yet.
    pub remaining: u64,
    /// Host time (ms) from which nothing may be spent.
    pub expires_at_ms: u64,
    /// A spend that leaves fewer tokens than this claims the renewal.
    pub renew_below: u64,
    /// A spend at or after this host time (ms) claims the renewal.
    pub renew_after_ms: u64,
    /// Host time (ms) until which a claimed renewal is in flight (0: none claimed).
    pub renewing_until_ms: u64,
    /// Tokens granted.
    pub tokens: u64,
    /// Host time (ms) the grant counts from (its check was sent).
    pub since_ms: u64,
}

impl GrantEntry {
    /// The entry of `grant`, received for a check sent at `sent_ms`.
    pub fn new(grant: &BudgetGrant, sent_ms: u64) -> GrantEntry {
        let life = grant.expires_in_ms;
        let renew_in = (life.checked_div(RENEW_AFTER_LIFE_DEN).unwrap_or(0))
            .saturating_mul(RENEW_AFTER_LIFE_NUM);
        GrantEntry {
            id: grant.id,
            remaining: grant.tokens,
            expires_at_ms: sent_ms.saturating_add(life),
            renew_below: grant.tokens.checked_div(RENEW_BELOW_DIVISOR).unwrap_or(0),
            renew_after_ms: sent_ms.saturating_add(renew_in),
            renewing_until_ms: 0,
            tokens: grant.tokens,
            since_ms: sent_ms,
        }
    }

    fn encode(self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        let fields = [
            self.id,
            self.remaining,
            self.expires_at_ms,
            self.renew_below,
            self.renew_after_ms,
            self.renewing_until_ms,
            self.tokens,
            self.since_ms,
        ];
        for (slot, field) in out.chunks_exact_mut(8).zip(fields) {
            slot.copy_from_slice(&field.to_le_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<GrantEntry> {
        if bytes.len() != ENTRY_LEN && bytes.len() != LEGACY_LEN {
            return None;
        }
        let mut fields = bytes
            .chunks_exact(8)
            .map(|c| <[u8; 8]>::try_from(c).ok().map(u64::from_le_bytes));
        let (id, remaining, expires_at_ms) = (fields.next()??, fields.next()??, fields.next()??);
        Some(GrantEntry {
            id,
            remaining,
            expires_at_ms,
            // A legacy entry (written before an upgrade) never claims a renewal.
            renew_below: fields.next().flatten().unwrap_or(0),
            renew_after_ms: fields.next().flatten().unwrap_or(u64::MAX),
            renewing_until_ms: fields.next().flatten().unwrap_or(0),
            tokens: fields.next().flatten().unwrap_or(remaining),
            since_ms: fields.next().flatten().unwrap_or(0),
        })
    }

    /// What a renewal claimed by a spend leaving `left` at `now_ms` asks for: the tokens spent
    /// in [`RATE_TARGET_MS`] at the rate this grant went, if it went faster than that, at most
    /// [`MAX_GROWTH`] times this grant; 0 (the token-service's own sizing) otherwise.
    fn rate_want(self, left: u64, now_ms: u64) -> u64 {
        let spent = self.tokens.saturating_sub(left);
        let elapsed = now_ms.saturating_sub(self.since_ms).max(1);
        if elapsed >= RATE_TARGET_MS {
            return 0;
        }
        let want = spent
            .saturating_mul(RATE_TARGET_MS)
            .checked_div(elapsed)
            .unwrap_or(0);
        // No faster than its own size a second: the token-service's sizing is enough.
        if want <= self.tokens {
            return 0;
        }
        want.min(self.tokens.saturating_mul(MAX_GROWTH))
    }

    /// Whether a spend leaving `left` tokens at `now_ms` claims the renewal: it is due and no
    /// other claim is still in flight.
    fn claims_renewal(self, left: u64, now_ms: u64) -> bool {
        let due = left < self.renew_below || now_ms >= self.renew_after_ms;
        due && now_ms >= self.renewing_until_ms
    }

    /// Its unspent tokens as a release (`None` when nothing is left).
    fn release(self) -> Option<GrantRelease> {
        (self.remaining > 0).then_some(GrantRelease {
            grant: self.id,
            tokens: self.remaining,
        })
    }
}

/// Reads the entry of `key` and its CAS (`None` entry: absent or unreadable).
fn read(shared: &impl SharedData, key: &str) -> Option<(Option<GrantEntry>, Option<u32>)> {
    let (bytes, cas) = shared.get(key).ok()?;
    Some((bytes.as_deref().and_then(GrantEntry::decode), cas))
}

/// Installs a fresh grant for `cache_key`, replacing the one there (whose unspent tokens go
/// to `releases`). `false` if it could not be written (its tokens are then released).
pub fn install(
    shared: &impl SharedData,
    anchor: CasAnchor,
    cache_key: &str,
    entry: GrantEntry,
    releases: &mut Vec<GrantRelease>,
) -> bool {
    let key = grant_key(cache_key);
    for _ in 0..CAS_ATTEMPTS {
        let Some((old, cas)) = read(shared, &key) else {
            break;
        };
        if old.is_some_and(|o| o.id == entry.id) {
            return true; // already installed (the same answer seen twice)
        }
        // Absent: create it only if still absent (the anchor's CAS never matches a key).
        let cas = if cas.is_some() { cas } else { anchor.cas() };
        if cas.is_none() {
            break;
        }
        match shared.set(&key, &entry.encode(), cas) {
            Ok(()) => {
                releases.extend(old.and_then(GrantEntry::release));
                return true;
            }
            Err(SetError::CasMismatch) => continue,
            Err(SetError::Other) => break,
        }
    }
    releases.extend(entry.release());
    false
}

/// Empties the grant of `cache_key` and returns its unspent rest to give back (`None`: no
/// grant, nothing left, or the entry kept changing). For a check whose verdict ran out: its
/// answer's grant replaces this one, so what is left would only wait for that to be released.
pub fn take_rest(shared: &impl SharedData, cache_key: &str) -> Option<GrantRelease> {
    let key = grant_key(cache_key);
    for _ in 0..CAS_ATTEMPTS {
        let (Some(entry), cas) = read(shared, &key)? else {
            return None;
        };
        let rest = entry.release()?;
        let emptied = GrantEntry {
            remaining: 0,
            ..entry
        };
        match shared.set(&key, &emptied.encode(), cas) {
            Ok(()) => return Some(rest),
            Err(SetError::CasMismatch) => continue,
            Err(SetError::Other) => return None,
        }
    }
    None
}

/// What spending an estimate gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// Spent from this grant.
    Spent {
        /// The grant's id (its release names it).
        grant: u64,
        /// This spend claimed the grant's renewal: the caller asks for the next grant with
        /// this `budget_want` (the claim lapses after `claim_ms` if it never does).
        renew: Option<u64>,
    },
    /// No grant, an expired one, or too few tokens left: ask for a top-up.
    Short,
}

/// Spends `estimate` tokens of the grant of `cache_key` at host time `now_ms`, claiming the
/// grant's renewal for `claim_ms` when it is due (see the module's doc). An expired grant's
/// unspent tokens are emptied into `releases`.
pub fn spend(
    shared: &impl SharedData,
    cache_key: &str,
    estimate: u64,
    (now_ms, claim_ms): (u64, u64),
    releases: &mut Vec<GrantRelease>,
) -> Spend {
    let key = grant_key(cache_key);
    for _ in 0..CAS_ATTEMPTS {
        let Some((Some(entry), cas)) = read(shared, &key) else {
            return Spend::Short;
        };
        let expired = now_ms >= entry.expires_at_ms;
        let (updated, outcome) = match entry.remaining.checked_sub(estimate) {
            _ if expired && entry.remaining == 0 => return Spend::Short,
            _ if expired => (
                GrantEntry {
                    remaining: 0,
                    ..entry
                },
                Spend::Short,
            ),
            Some(left) => {
                let claimed = entry.claims_renewal(left, now_ms);
                let renew = claimed.then(|| entry.rate_want(left, now_ms));
                let renewing_until_ms = if claimed {
                    now_ms.saturating_add(claim_ms)
                } else {
                    entry.renewing_until_ms
                };
                let updated = GrantEntry {
                    remaining: left,
                    renewing_until_ms,
                    ..entry
                };
                let grant = entry.id;
                (updated, Spend::Spent { grant, renew })
            }
            None => return Spend::Short,
        };
        match shared.set(&key, &updated.encode(), cas) {
            Ok(()) => {
                if expired {
                    releases.extend(entry.release());
                }
                return outcome;
            }
            Err(SetError::CasMismatch) => continue,
            Err(SetError::Other) => return Spend::Short,
        }
    }
    Spend::Short
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::shared_data_double::SharedDataDouble;

    const T: u64 = 1_000_000;
    const CLAIM: u64 = 500;

    /// The grant a spend came from (`None`: short), whether or not it claimed the renewal.
    fn spent(s: Spend) -> Option<u64> {
        match s {
            Spend::Spent { grant, .. } => Some(grant),
            Spend::Short => None,
        }
    }

    fn grant(id: u64, tokens: u64) -> GrantEntry {
        GrantEntry::new(
            &BudgetGrant {
                id,
                tokens,
                expires_in_ms: 1000,
            },
            T,
        )
    }

    #[test]
    fn spends_until_short_then_a_new_grant_releases_the_rest_of_the_old() {
        let shared = SharedDataDouble::default();
        let anchor = CasAnchor::refresh(&shared);
        let mut rel = Vec::new();
        assert_eq!(spend(&shared, "k", 1, (T, CLAIM), &mut rel), Spend::Short);
        assert!(install(&shared, anchor, "k", grant(7, 100), &mut rel));
        assert_eq!(
            spent(spend(&shared, "k", 60, (T, CLAIM), &mut rel)),
            Some(7)
        );
        assert_eq!(spend(&shared, "k", 41, (T, CLAIM), &mut rel), Spend::Short);
        assert_eq!(
            spent(spend(&shared, "k", 40, (T, CLAIM), &mut rel)),
            Some(7)
        );
        assert_eq!(spend(&shared, "k", 1, (T, CLAIM), &mut rel), Spend::Short);
        assert!(rel.is_empty());
        // Replaced with 0 left: nothing to release; with some left: released.
        assert!(install(&shared, anchor, "k", grant(8, 50), &mut rel));
        assert!(rel.is_empty());
        assert_eq!(
            spent(spend(&shared, "k", 20, (T, CLAIM), &mut rel)),
            Some(8)
        );
        assert!(install(&shared, anchor, "k", grant(9, 50), &mut rel));
        assert_eq!(
            rel,
            vec![GrantRelease {
                grant: 8,
                tokens: 30
            }]
        );
        // The same grant twice is installed once.
        assert!(install(&shared, anchor, "k", grant(9, 50), &mut rel));
        assert_eq!(rel.len(), 1);
    }

    #[test]
    fn an_expired_grant_spends_nothing_and_releases_what_it_held_once() {
        let shared = SharedDataDouble::default();
        let anchor = CasAnchor::refresh(&shared);
        let mut rel = Vec::new();
        assert!(install(&shared, anchor, "k", grant(3, 100), &mut rel));
        assert_eq!(
            spent(spend(&shared, "k", 10, (T + 999, CLAIM), &mut rel)),
            Some(3)
        );
        assert_eq!(
            spend(&shared, "k", 10, (T + 1000, CLAIM), &mut rel),
            Spend::Short
        );
        assert_eq!(
            rel,
            vec![GrantRelease {
                grant: 3,
                tokens: 90
            }]
        );
        assert_eq!(
            spend(&shared, "k", 10, (T + 1000, CLAIM), &mut rel),
            Spend::Short
        );
        assert_eq!(rel.len(), 1);
    }

    #[test]
    fn a_write_racing_another_workers_spend_retries_on_the_fresh_value() {
        let shared = SharedDataDouble::default();
        let anchor = CasAnchor::refresh(&shared);
        let mut rel = Vec::new();
        assert!(install(&shared, anchor, "k", grant(1, 100), &mut rel));
        // Another worker spends 70 between our read and our write.
        let key = grant_key("k");
        shared.before_next_set(move |s| {
            let (bytes, cas) = s.get(&key).unwrap();
            let mut e = GrantEntry::decode(&bytes.unwrap()).unwrap();
            e.remaining -= 70;
            s.raw_set(&key, &e.encode(), cas).unwrap();
        });
        assert_eq!(spend(&shared, "k", 40, (T, CLAIM), &mut rel), Spend::Short);
        assert_eq!(
            spent(spend(&shared, "k", 30, (T, CLAIM), &mut rel)),
            Some(1)
        );
        assert_eq!(spend(&shared, "k", 1, (T, CLAIM), &mut rel), Spend::Short);
    }

    #[test]
    fn one_spend_claims_the_renewal_below_a_quarter_until_the_claim_lapses() {
        let shared = SharedDataDouble::default();
        let anchor = CasAnchor::refresh(&shared);
        let mut rel = Vec::new();
        assert!(install(&shared, anchor, "k", grant(1, 100), &mut rel));
        let at = |t| (t, CLAIM);
        // 100 -> 30: still a quarter or more left.
        let s = spend(&shared, "k", 70, at(T), &mut rel);
        assert_eq!(
            s,
            Spend::Spent {
                grant: 1,
                renew: None
            }
        );
        // 30 -> 20: below 25, the first spend claims the renewal, the next ones do not.
        let s = spend(&shared, "k", 10, at(T), &mut rel);
        assert_eq!(
            s,
            Spend::Spent {
                grant: 1,
                renew: Some(1600)
            }
        );
        let s = spend(&shared, "k", 10, at(T + CLAIM - 1), &mut rel);
        assert_eq!(
            s,
            Spend::Spent {
                grant: 1,
                renew: None
            }
        );
        // The claim lapsed (its renewal never came): the next spend claims it again.
        let s = spend(&shared, "k", 1, at(T + CLAIM), &mut rel);
        assert_eq!(
            s,
            Spend::Spent {
                grant: 1,
                renew: Some(182)
            }
        );
        // A new grant starts unclaimed.
        assert!(install(&shared, anchor, "k", grant(2, 100), &mut rel));
        let s = spend(&shared, "k", 80, at(T + CLAIM), &mut rel);
        assert_eq!(
            s,
            Spend::Spent {
                grant: 2,
                renew: Some(160)
            }
        );
    }

    #[test]
    fn a_spend_late_in_the_grants_life_claims_the_renewal() {
        let shared = SharedDataDouble::default();
        let anchor = CasAnchor::refresh(&shared);
        let mut rel = Vec::new();
        assert!(install(&shared, anchor, "k", grant(1, 1000), &mut rel));
        let s = spend(&shared, "k", 1, (T + 749, CLAIM), &mut rel);
        assert_eq!(
            s,
            Spend::Spent {
                grant: 1,
                renew: None
            }
        );
        let s = spend(&shared, "k", 1, (T + 750, CLAIM), &mut rel);
        assert_eq!(
            s,
            Spend::Spent {
                grant: 1,
                renew: Some(0)
            }
        );
    }

    #[test]
    fn an_entry_written_before_renewals_is_read_and_never_claims_one() {
        let shared = SharedDataDouble::default();
        let mut rel = Vec::new();
        let mut legacy = Vec::new();
        for field in [5u64, 100, T + 1000] {
            legacy.extend_from_slice(&field.to_le_bytes());
        }
        shared.raw_set(&grant_key("k"), &legacy, None).unwrap();
        let s = spend(&shared, "k", 99, (T + 999, CLAIM), &mut rel);
        assert_eq!(
            s,
            Spend::Spent {
                grant: 5,
                renew: None
            }
        );
        // Neither a legacy entry nor any other length but the two formats decodes.
        assert!(GrantEntry::decode(&legacy[..16]).is_none());
        assert!(GrantEntry::decode(&[0u8; 32]).is_none());
    }

    #[test]
    fn a_renewal_asks_for_a_second_of_spend_at_the_rate_the_grant_went() {
        let shared = SharedDataDouble::default();
        let anchor = CasAnchor::refresh(&shared);
        let mut rel = Vec::new();
        let big = |id| {
            GrantEntry::new(
                &BudgetGrant {
                    id,
                    tokens: 200_000,
                    expires_in_ms: 60_000,
                },
                T,
            )
        };
        let want = |s: Spend| match s {
            Spend::Spent { renew, .. } => renew,
            Spend::Short => panic!("short"),
        };
        // 160,000 spent in 500 ms: 320,000 a second.
        assert!(install(&shared, anchor, "k", big(1), &mut rel));
        assert_eq!(
            want(spend(&shared, "k", 160_000, (T + 500, CLAIM), &mut rel)),
            Some(320_000)
        );
        // In 10 ms: 16 million a second, asked for at most 16 times the grant.
        assert!(install(&shared, anchor, "k", big(2), &mut rel));
        assert_eq!(
            want(spend(&shared, "k", 160_000, (T + 10, CLAIM), &mut rel)),
            Some(3_200_000)
        );
        // In 2 s: slower than a grant a second, the token-service sizes it.
        assert!(install(&shared, anchor, "k", big(3), &mut rel));
        assert_eq!(
            want(spend(&shared, "k", 160_000, (T + 2_000, CLAIM), &mut rel)),
            Some(0)
        );
    }
}
