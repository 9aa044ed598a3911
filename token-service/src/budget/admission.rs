//! Admission: may this token spend more, and how much may the filter hold? Every budget that
//! applies (the token's own and its group's; tokens, cost, tokens per minute) must keep
//! `settled + reserved + grant <= limit`; the grant is reserved against all of them at once.
//!
//! A cost budget is reserved in nanodollars at the priciest per-token price of any model of the
//! token's providers ([`PriceTable::priciest`]; the whole table's for a provider it does not
//! price), so however the filter spends its grant, the cost cannot exceed what was reserved.
//! Settlement charges the real cost.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use ptk_wire::{BudgetDenial, BudgetGrant, BudgetKind, BudgetPeriod, BudgetScope, Provider};
use serde::Serialize;

use super::period::{ms_to_end, period_end, period_id};
use super::reserve::{Hold, Reservations, Reserved, Sizing};
use super::spec::Budgets;
use crate::pricing::PriceTable;
use crate::ratelimit::RateLimitError;
use crate::store::{BudgetStore, SpendRow, StoreError, TokenBudgets};

/// Times a check re-reads the ledger when a settlement moved under it before giving up.
const ATTEMPTS: usize = 5;

/// The shortest life of a grant whose verdict is not cached (it covers the one request).
const MIN_GRANT_LIFE_MS: u64 = 10_000;

/// How long a token's budgets (not its spend) are reused between checks: a budget set or
/// changed takes effect within this. Saves every check of an unbudgeted token a store read.
pub const BUDGETS_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Tokens whose budgets are remembered at most (the map is cleared when full).
const BUDGETS_CACHE_CAPACITY: usize = 100_000;

/// Grant sizing and lapse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSettings {
    /// Smallest grant when the room allows (tokens): one typical request.
    pub min_grant: u64,
    /// Largest grant (tokens), unless a request's own estimate is larger.
    pub max_grant: u64,
    /// How long after its expiry a grant's reservation lapses (ms): requests admitted just
    /// before the expiry may still be running.
    pub grace_ms: u64,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        BudgetSettings {
            min_grant: 4_096,
            max_grant: 200_000,
            grace_ms: 300_000,
        }
    }
}

/// The answer of [`Admission::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// No budget applies to the token.
    Unbudgeted,
    /// Reserved; the verdict carries this grant.
    Granted(BudgetGrant),
    /// No room (or not enough for the request's estimate) in this budget.
    Exhausted {
        /// Which budget, and its reset.
        denial: BudgetDenial,
        /// Seconds until the reset (at least 1).
        retry_after_s: u64,
    },
}

/// Why admission could not decide. Budgets are a spending boundary, so the check fails
/// closed on these (503), unlike the rate limiter.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    /// The ledger or the budgets could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The reservation backend failed.
    #[error(transparent)]
    Reservations(#[from] RateLimitError),
    /// Settlements kept moving the ledger under this check.
    #[error("budget ledger kept changing; giving up after {ATTEMPTS} reads")]
    Contended,
    /// The grant id the filter proposed is a live grant's (or out of range).
    #[error("the proposed budget grant id is taken")]
    GrantIdTaken,
}

/// One budget that applies to a token, at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Applied {
    scope: BudgetScope,
    scope_key: String,
    kind: BudgetKind,
    period: BudgetPeriod,
    limit: u64,
    per_token: u64,
}

/// The ledger scope of a token.
pub fn token_scope(hash: &str) -> String {
    format!("token:{hash}")
}

/// The ledger scope of a group.
pub fn group_scope(name: &str) -> String {
    format!("group:{name}")
}

fn kind_str(kind: BudgetKind) -> &'static str {
    match kind {
        BudgetKind::Tokens => "tokens",
        BudgetKind::Cost => "cost",
        BudgetKind::Tpm => "tpm",
    }
}

impl Applied {
    fn key(&self, now: DateTime<Utc>) -> String {
        let period = period_id(self.period, now);
        format!("{}|{}|{period}", self.scope_key, kind_str(self.kind))
    }

    fn settled(&self, spend: &[SpendRow], now: DateTime<Utc>) -> u64 {
        let period = period_id(self.period, now);
        spend
            .iter()
            .find(|r| r.scope == self.scope_key && r.period == period)
            .map_or(0, |r| match self.kind {
                BudgetKind::Cost => r.cost_nano_usd,
                BudgetKind::Tokens | BudgetKind::Tpm => r.tokens,
            })
    }
}

fn of_scope(scope: BudgetScope, key: &str, b: &Budgets, per_token: u64) -> Vec<Applied> {
    let one = |kind, period, limit, per_token| Applied {
        scope,
        scope_key: key.to_owned(),
        kind,
        period,
        limit,
        per_token,
    };
    let mut all = Vec::new();
    if let Some(t) = b.tokens {
        all.push(one(BudgetKind::Tokens, t.period, t.limit, 1));
    }
    if let Some(c) = b.cost {
        all.push(one(BudgetKind::Cost, c.period, c.limit, per_token));
    }
    if let Some(tpm) = b.tpm {
        all.push(one(BudgetKind::Tpm, BudgetPeriod::Minute, tpm, 1));
    }
    all
}

fn applied(hash: &str, budgets: &TokenBudgets, per_token: u64) -> Vec<Applied> {
    let mut all = of_scope(
        BudgetScope::Token,
        &token_scope(hash),
        &budgets.own,
        per_token,
    );
    if let Some((name, group)) = &budgets.group {
        all.extend(of_scope(
            BudgetScope::Group,
            &group_scope(name),
            group,
            per_token,
        ));
    }
    all
}

/// The period ids a ledger read covers at `now` (every kind of period).
pub fn periods_at(now: DateTime<Utc>) -> Vec<String> {
    [
        BudgetPeriod::Minute,
        BudgetPeriod::Day,
        BudgetPeriod::Week,
        BudgetPeriod::Month,
    ]
    .map(|p| period_id(p, now))
    .to_vec()
}

/// One budget's state, for the admin API and the CLI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BudgetStatus {
    /// `token` or `group`.
    pub scope: BudgetScope,
    /// The group's name (group budgets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `tokens`, `cost` (nanodollars) or `tpm`.
    pub kind: BudgetKind,
    /// Its period.
    pub period: BudgetPeriod,
    /// The limit (tokens, or nanodollars).
    pub limit: u64,
    /// Settled spend this period.
    pub spent: u64,
    /// Held by outstanding grants.
    pub reserved: u64,
    /// `limit − spent − reserved`, at least 0.
    pub remaining: u64,
    /// When the period ends, RFC 3339 UTC.
    pub resets_at: String,
}

/// Admission over a budget store and a reservation backend.
pub struct Admission {
    store: Arc<dyn BudgetStore>,
    reservations: Arc<dyn Reservations>,
    settings: BudgetSettings,
    prices: &'static PriceTable,
    /// Budgets read recently, per token hash, with when they were read.
    cache: std::sync::Mutex<HashMap<String, (Instant, TokenBudgets)>>,
}

impl Admission {
    /// Assembles admission.
    pub fn new(
        store: Arc<dyn BudgetStore>,
        reservations: Arc<dyn Reservations>,
        settings: BudgetSettings,
    ) -> Admission {
        Admission {
            store,
            reservations,
            settings,
            prices: PriceTable::bundled(),
            cache: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Forgets a token's remembered budgets (this process just changed them).
    pub fn forget(&self, hash: &str) {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(hash);
    }

    /// A token's budgets, from the store at most [`BUDGETS_CACHE_TTL`] ago.
    async fn budgets_of(&self, hash: &str) -> Result<TokenBudgets, StoreError> {
        let now = Instant::now();
        let lock = || {
            self.cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some((at, budgets)) = lock().get(hash) {
            if now.duration_since(*at) < BUDGETS_CACHE_TTL {
                return Ok(budgets.clone());
            }
        }
        let budgets = self.store.budgets_of(hash).await?;
        let mut cache = lock();
        if cache.len() >= BUDGETS_CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(hash.to_owned(), (now, budgets.clone()));
        Ok(budgets)
    }

    /// Stores a report's usage and ledger rows, then releases its grants
    /// ([`super::settle::settle_report`]).
    pub async fn settle(
        &self,
        report: &ptk_wire::ActivityReport,
        rows: &[crate::usage::UsageRow],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        super::settle::settle_report(
            self.store.as_ref(),
            self.reservations.as_ref(),
            report,
            rows,
            now,
        )
        .await
    }

    /// The budget store (the CLI and the admin API edit budgets through it).
    pub fn store(&self) -> &Arc<dyn BudgetStore> {
        &self.store
    }

    /// Gives back the unspent rests of grants a filter holds no more (a check's
    /// `releases`): each frees at most what its grant still holds; unknown grants are ignored.
    pub async fn give_back(&self, releases: &[ptk_wire::GrantRelease]) {
        for r in releases {
            if let Err(e) = self.reservations.release(r.grant, r.tokens).await {
                tracing::warn!(error = %e, "budget grant release failed; it will lapse");
            }
        }
    }

    /// Gives a whole grant back (a check that reserved it was refused after all).
    pub async fn release(&self, grant: &BudgetGrant) {
        if let Err(e) = self.reservations.release(grant.id, grant.tokens).await {
            tracing::warn!(error = %e, "budget grant release failed; it will lapse");
        }
    }

    fn cost_per_token(&self, providers: &[Provider]) -> u64 {
        cost_per_token(self.prices, providers)
    }

    /// Reserves a grant for `hash` (whose scopes are `providers`) if every budget has room:
    /// at least `want` tokens when given. The grant expires at the earliest end of a period
    /// that applies, or after `ttl_ms` (the verdict's cache TTL), whichever is first. The
    /// grant takes the id `grant_id` when the filter proposed one.
    pub async fn admit(
        &self,
        hash: &str,
        providers: &[Provider],
        want: Option<u64>,
        grant_id: Option<u64>,
        ttl_ms: u64,
        now: DateTime<Utc>,
    ) -> Result<Admitted, BudgetError> {
        let budgets = self.budgets_of(hash).await?;
        if budgets.is_unbudgeted() {
            return Ok(Admitted::Unbudgeted);
        }
        let applied = applied(hash, &budgets, self.cost_per_token(providers));
        let mut scopes: Vec<String> = applied.iter().map(|a| a.scope_key.clone()).collect();
        scopes.dedup();
        let periods = periods_at(now);
        let expires_in_ms = applied
            .iter()
            .map(|a| ms_to_end(a.period, now))
            .fold(ttl_ms.max(MIN_GRANT_LIFE_MS), u64::min);
        let sizing = Sizing {
            want: want.unwrap_or(0),
            min: self.settings.min_grant,
            max: self.settings.max_grant,
        };
        let lapse_ms = expires_in_ms.saturating_add(self.settings.grace_ms);
        for _ in 0..ATTEMPTS {
            let epochs = self.reservations.epochs(&scopes).await?;
            let spend = self.store.spend(&scopes, &periods).await?;
            let holds: Vec<Hold> = applied
                .iter()
                .map(|a| Hold {
                    key: a.key(now),
                    cap: a.limit.saturating_sub(a.settled(&spend, now)),
                    per_token: a.per_token,
                })
                .collect();
            let reserved = self
                .reservations
                .reserve(&holds, &scopes, &epochs, sizing, lapse_ms, grant_id)
                .await?;
            match reserved {
                Reserved::Granted { id, tokens } => {
                    return Ok(Admitted::Granted(BudgetGrant {
                        id,
                        tokens,
                        expires_in_ms,
                    }))
                }
                Reserved::Exhausted { index } => {
                    let Some(a) = applied.get(index).or(applied.first()) else {
                        return Ok(Admitted::Unbudgeted);
                    };
                    return Ok(exhausted(a, now));
                }
                Reserved::Stale => continue,
                Reserved::IdTaken => return Err(BudgetError::GrantIdTaken),
            }
        }
        Err(BudgetError::Contended)
    }

    /// Every budget that applies to `hash` and where it stands.
    pub async fn status(
        &self,
        hash: &str,
        providers: &[Provider],
        now: DateTime<Utc>,
    ) -> Result<Vec<BudgetStatus>, BudgetError> {
        budget_status(
            self.store.as_ref(),
            self.reservations.as_ref(),
            hash,
            providers,
            now,
        )
        .await
    }
}

/// Nanodollars one token may cost at most on any of `providers` (rounded up, at least 1).
pub fn cost_per_token(prices: &PriceTable, providers: &[Provider]) -> u64 {
    let anywhere = prices.priciest_anywhere();
    let pico = providers
        .iter()
        .map(|p| prices.priciest(p.as_str()).unwrap_or(anywhere))
        .max()
        .unwrap_or(anywhere);
    pico.div_ceil(1000).max(1)
}

/// Every budget that applies to `hash` and where it stands (`reservations` as the service
/// holds them; an empty backend shows the settled ledger only).
pub async fn budget_status(
    store: &dyn BudgetStore,
    reservations: &dyn Reservations,
    hash: &str,
    providers: &[Provider],
    now: DateTime<Utc>,
) -> Result<Vec<BudgetStatus>, BudgetError> {
    let budgets = store.budgets_of(hash).await?;
    let per_token = cost_per_token(PriceTable::bundled(), providers);
    let applied = applied(hash, &budgets, per_token);
    let mut scopes: Vec<String> = applied.iter().map(|a| a.scope_key.clone()).collect();
    scopes.dedup();
    let spend = store.spend(&scopes, &periods_at(now)).await?;
    let mut all = Vec::new();
    for a in &applied {
        let spent = a.settled(&spend, now);
        let reserved = reservations.reserved(&a.key(now)).await?;
        all.push(BudgetStatus {
            scope: a.scope,
            group: budgets
                .group
                .as_ref()
                .filter(|_| a.scope == BudgetScope::Group)
                .map(|(name, _)| name.clone()),
            kind: a.kind,
            period: a.period,
            limit: a.limit,
            spent,
            reserved,
            remaining: a.limit.saturating_sub(spent).saturating_sub(reserved),
            resets_at: period_end(a.period, now).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
    }
    Ok(all)
}

fn exhausted(a: &Applied, now: DateTime<Utc>) -> Admitted {
    let end = period_end(a.period, now);
    Admitted::Exhausted {
        denial: BudgetDenial {
            scope: a.scope,
            kind: a.kind,
            period: a.period,
            resets_at_s: u64::try_from(end.timestamp()).unwrap_or(0),
        },
        retry_after_s: ms_to_end(a.period, now).div_ceil(1000).max(1),
    }
}
