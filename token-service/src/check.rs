//! The check decision: may this token hash call this provider now?
//!
//! Order (original Worker §3.5 / §1.2): missing, not active, or unparseable expiry -> invalid;
//! expired -> expired; provider not in scope -> scope; no real key -> provider_unconfigured;
//! no room in a budget -> budget_exhausted (a grant is reserved otherwise); over the limit ->
//! rate_limited (the grant is released); else allow, `allow_limited` with the grant. Failures
//! before the limiter never consume quota.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ptk_wire::{
    BudgetGrant, CheckRequest, CheckResponse, DenyReason, Lease, Limits, Provider, RevalidateEntry,
    Revalidation,
};

use crate::budget::{Admission, Admitted};
use crate::expiry::{cap_cache_ttl, expiry_state, ExpiryState};
use crate::key_health::{wire_pool, KeyHealth};
use crate::key_ring::KeyRing;
use crate::keys::expose;
use crate::last_used::LastUsedStamper;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimit;
use crate::ratelimit::{Acquired, RateLimiter};
use crate::store::{TokenRecord, TokenStatus, TokenStore};

/// The token-level part of the decision, as a pure function: `Ok` carries the token's expiry
/// (if any) for capping the cache TTL.
pub fn evaluate(
    record: Option<&TokenRecord>,
    provider: Provider,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, DenyReason> {
    let record = record.ok_or(DenyReason::Invalid)?;
    if record.status != TokenStatus::Active {
        return Err(DenyReason::Invalid);
    }
    let expires = match expiry_state(record.expires_at.as_deref(), now) {
        ExpiryState::Unparseable => return Err(DenyReason::Invalid),
        ExpiryState::Expired => return Err(DenyReason::Expired),
        ExpiryState::Never => None,
        ExpiryState::Until(at) => Some(at),
    };
    if !record.providers.contains(&provider) {
        return Err(DenyReason::ProviderNotAllowed);
    }
    Ok(expires)
}

/// Everything a check needs, shared by all requests.
pub struct Checker {
    store: Arc<dyn TokenStore>,
    limiter: Arc<dyn RateLimiter>,
    keys: Arc<KeyRing>,
    default_rate_limit: RateLimit,
    cache_ttl_ms: u64,
    last_used: Arc<LastUsedStamper>,
    max_lease: u32,
    health: Arc<KeyHealth>,
    budgets: Option<Arc<Admission>>,
}

/// Default cap on one rate-limit lease (units the filter may spend without asking again).
pub const DEFAULT_MAX_LEASE: u32 = 1000;

fn deny(reason: DenyReason) -> CheckResponse {
    CheckResponse::Deny {
        reason,
        retry_after_s: None,
        budget: None,
    }
}

impl Checker {
    /// Assembles a checker.
    pub fn new(
        store: Arc<dyn TokenStore>,
        limiter: Arc<dyn RateLimiter>,
        keys: Arc<KeyRing>,
        default_rate_limit: RateLimit,
        cache_ttl_ms: u64,
        last_used: Arc<LastUsedStamper>,
    ) -> Checker {
        Checker {
            store,
            health: Arc::new(KeyHealth::new(limiter.clone())),
            limiter,
            keys,
            default_rate_limit,
            cache_ttl_ms,
            last_used,
            max_lease: DEFAULT_MAX_LEASE,
            budgets: None,
        }
    }

    /// Enforces budgets with `admission` (without it, budgets are not checked at all).
    pub fn with_budgets(mut self, admission: Arc<Admission>) -> Checker {
        self.budgets = Some(admission);
        self
    }

    /// Reserves a budget grant for the request when a budget applies: `Ok(None)` when none
    /// does, `Err` with the deny when there is no room or the budgets cannot be read (fails
    /// closed: a budget is a spending boundary).
    async fn admit(
        &self,
        request: &CheckRequest,
        providers: &[Provider],
        ttl_ms: u64,
        now: DateTime<Utc>,
    ) -> Result<Option<BudgetGrant>, CheckResponse> {
        let Some(budgets) = &self.budgets else {
            return Ok(None);
        };
        let hash = &request.hash;
        match budgets
            .admit(
                hash,
                providers,
                request.budget_want,
                request.grant_id,
                ttl_ms,
                now,
            )
            .await
        {
            Ok(Admitted::Unbudgeted) => Ok(None),
            Ok(Admitted::Granted(grant)) => Ok(Some(grant)),
            Ok(Admitted::Exhausted {
                denial,
                retry_after_s,
            }) => Err(CheckResponse::Deny {
                reason: DenyReason::BudgetExhausted,
                retry_after_s: Some(retry_after_s),
                budget: Some(denial),
            }),
            Err(e) => {
                tracing::error!(error = %e, "budget admission failed; refusing");
                Err(deny(DenyReason::StoreUnavailable))
            }
        }
    }

    /// Raises key states and events in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Checker {
        self.health = Arc::new(KeyHealth::new(self.limiter.clone()).with_metrics(metrics));
        self
    }

    /// The key states this checker hands keys out by (the dashboard's keys view reads them).
    pub fn key_health(&self) -> Arc<KeyHealth> {
        self.health.clone()
    }

    /// Acts on the key events of an activity report (`key_health`).
    pub async fn key_events(&self, events: &[ptk_wire::KeyEvent]) {
        if !events.is_empty() {
            self.health.report(&self.keys.current(), events).await;
        }
    }

    /// Stamps lastUsed for a token the filter allowed `count` requests of from its cache.
    /// (The counts themselves are not kept: nothing read them. Token usage metering will
    /// report what the providers count.)
    pub fn record_activity(&self, hash: &str, count: u64) {
        if count == 0 {
            return;
        }
        self.last_used.touch(hash);
    }

    /// Decides one request. Never fails: every problem is a deny with its reason.
    pub async fn check(&self, request: &CheckRequest) -> CheckResponse {
        let now = Utc::now();
        // Grant rests the filter gives back (a grant nothing will spend): before anything else,
        // so the token's own dead grant never counts against the grant this check reserves.
        if let (Some(budgets), false) = (&self.budgets, request.releases.is_empty()) {
            budgets.give_back(&request.releases).await;
        }
        let record = match self.read(&request.hash).await {
            Ok(record) => record,
            Err(reason) => return deny(reason),
        };
        let expires = match evaluate(record.as_ref(), request.provider, now) {
            Ok(expires) => expires,
            Err(reason) => return deny(reason),
        };
        // One load per check: this request sees the old key set or the new one, never a mix.
        let keys = self.keys.current();
        let bound = record.as_ref().and_then(|r| r.key_pool.as_deref());
        let pool = keys.pool(request.provider, bound);
        // A bound token uses its pool only (a team's own keys); refused keys are left out.
        let usable = self.health.usable(request.provider, pool).await;
        let Some(key) = usable.first().map(|k| k.secret()) else {
            return deny(DenyReason::ProviderUnconfigured);
        };
        let providers = record
            .as_ref()
            .map(|r| r.providers.clone())
            .unwrap_or_default();
        let quota = record
            .as_ref()
            .and_then(|r| r.rate_limit)
            .unwrap_or(self.default_rate_limit);
        let limits = limits_of(record.as_ref());
        if let Some(returned) = request.returned {
            // Units of an expired lease the filter never spent: not requests the client made.
            if let Err(e) = self
                .limiter
                .credit(&request.hash, returned.window, returned.units)
                .await
            {
                tracing::warn!(error = %e, "rate limiter credit failed");
            }
        }
        let ttl = cap_cache_ttl(self.cache_ttl_ms, expires, now);
        // Before the rate limiter: a request the budget refuses uses no rate-limit unit.
        let grant = match self.admit(request, &providers, ttl, now).await {
            Ok(grant) => grant,
            Err(denied) => return denied,
        };
        // The verdict must not outlive its grant (nor the budget period the grant is from).
        let ttl = grant.map_or(ttl, |g| ttl.min(g.expires_in_ms));
        // Leases only make sense while the filter may cache the verdict they ride on.
        let max_lease = if ttl > 0 { self.max_lease } else { 0 };
        // A check with `budget_want` asks for a grant for a request already admitted (a
        // top-up) or for none (a renewal): it is no request of its own, so it takes no
        // rate-limit unit and no lease.
        let acquired = if request.budget_want.is_some() {
            Ok(Acquired::Allowed {
                lease: 0,
                window: 0,
                window_left_ms: ttl,
            })
        } else {
            self.limiter.acquire(&request.hash, quota, max_lease).await
        };
        let (cache_ttl_ms, lease) = match acquired {
            Ok(Acquired::Allowed { lease: 0, .. }) => (ttl, None),
            Ok(Acquired::Allowed {
                lease,
                window,
                window_left_ms,
            }) => (
                // Leased units belong to this window: they must not be spent after it ends.
                ttl.min(window_left_ms),
                Some(Lease {
                    units: lease,
                    window,
                }),
            ),
            Ok(Acquired::Limited { retry_after_s }) => {
                if let (Some(budgets), Some(grant)) = (&self.budgets, &grant) {
                    budgets.release(grant).await;
                }
                return CheckResponse::Deny {
                    reason: DenyReason::RateLimited,
                    retry_after_s: Some(retry_after_s),
                    budget: None,
                };
            }
            // Fail open: the limiter damps abuse, it is not what keeps strangers out.
            Err(e) => {
                tracing::warn!(error = %e, "rate limiter failed; allowing");
                (ttl, None)
            }
        };
        self.last_used.touch(&request.hash);
        CheckResponse::Allow {
            key: expose(key),
            cache_ttl_ms,
            lease,
            limits: match (limits, grant) {
                (None, None) => None,
                (limits, budget) => Some(Limits {
                    budget,
                    ..limits.unwrap_or_default()
                }),
            },
            pool: wire_pool(&usable),
        }
    }
}

/// What a token's allow is narrowed to: its model allow-list, when it has one (the verdict
/// then travels as `allow_limited`); `None` for a token without limits (a plain `allow`).
pub fn limits_of(record: Option<&TokenRecord>) -> Option<Limits> {
    let models = record?.models.clone()?;
    Some(Limits {
        models: Some(models),
        ..Limits::default()
    })
}

impl Checker {
    /// The token's record; a store failure is `StoreUnavailable`, logged (infrastructure
    /// failures are; authentication rejections are not, so strangers cannot flood the log).
    /// The error never contains a key or token.
    async fn read(&self, hash: &str) -> Result<Option<TokenRecord>, DenyReason> {
        self.store.get(hash).await.map_err(|e| {
            tracing::error!(error_class = e.class(), error = %e, "token store read failed");
            DenyReason::StoreUnavailable
        })
    }

    /// Revalidates a token that still has open requests: the same token-level decision as a
    /// check (and a configured key), but no rate-limit unit is charged and no key is returned.
    pub async fn revalidate(&self, entry: &RevalidateEntry) -> Revalidation {
        let refused = |reason| Revalidation::Refused {
            hash: entry.hash.clone(),
            provider: entry.provider,
            reason,
        };
        let now = Utc::now();
        let record = match self.read(&entry.hash).await {
            Ok(record) => record,
            Err(reason) => return refused(reason),
        };
        let expires = match evaluate(record.as_ref(), entry.provider, now) {
            Ok(expires) => expires,
            Err(reason) => return refused(reason),
        };
        let bound = record.as_ref().and_then(|r| r.key_pool.as_deref());
        if self.keys.current().pool(entry.provider, bound).is_empty() {
            return refused(DenyReason::ProviderUnconfigured);
        }
        Revalidation::Valid {
            hash: entry.hash.clone(),
            provider: entry.provider,
            ttl_ms: cap_cache_ttl(self.cache_ttl_ms, expires, now),
            limits: limits_of(record.as_ref()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::store::contract::sample_record;
    use chrono::{Duration, TimeZone as _};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 7, 8, 12, 0, 0).unwrap()
    }

    fn rec(status: TokenStatus, expires: Option<&str>) -> TokenRecord {
        let mut r = sample_record("ab");
        r.status = status;
        r.expires_at = expires.map(str::to_owned);
        r.providers = vec![Provider::Openai];
        r
    }

    const PAST: Option<&str> = Some("2026-07-08T11:00:00.000Z");
    const NOW: Option<&str> = Some("2026-07-08T12:00:00.000Z");
    const FUTURE: Option<&str> = Some("2026-07-08T13:00:00.000Z");

    #[test]
    fn limits_are_the_token_model_allow_list_or_none() {
        let mut r = rec(TokenStatus::Active, None);
        assert_eq!(limits_of(Some(&r)), None);
        assert_eq!(limits_of(None), None);
        r.models = Some(vec!["gpt-5*".into()]);
        assert_eq!(
            limits_of(Some(&r)),
            Some(Limits {
                models: Some(vec!["gpt-5*".into()]),
                ..Limits::default()
            })
        );
    }

    #[test]
    fn decision_table() {
        use DenyReason::*;
        use Provider::*;
        use TokenStatus::*;
        let cases: &[(Option<TokenRecord>, Provider, Result<(), DenyReason>)] = &[
            (None, Openai, Err(Invalid)),
            (Some(rec(Disabled, None)), Openai, Err(Invalid)),
            (Some(rec(Disabled, PAST)), Openai, Err(Invalid)),
            (Some(rec(Active, Some("garbage"))), Openai, Err(Invalid)),
            (Some(rec(Disabled, Some("garbage"))), Gemini, Err(Invalid)),
            (Some(rec(Active, NOW)), Openai, Err(Expired)),
            (Some(rec(Active, PAST)), Openai, Err(Expired)),
            (Some(rec(Active, PAST)), Gemini, Err(Expired)),
            (Some(rec(Active, None)), Gemini, Err(ProviderNotAllowed)),
            (
                Some(rec(Active, FUTURE)),
                Anthropic,
                Err(ProviderNotAllowed),
            ),
            (Some(rec(Active, None)), Openai, Ok(())),
            (Some(rec(Active, Some(""))), Openai, Ok(())),
            (Some(rec(Active, FUTURE)), Openai, Ok(())),
        ];
        for (i, (record, provider, want)) in cases.iter().enumerate() {
            let got = evaluate(record.as_ref(), *provider, now()).map(|_| ());
            assert_eq!(&got, want, "case {i}");
        }
    }

    #[test]
    fn allow_carries_the_expiry_for_ttl_capping() {
        let got = evaluate(
            Some(&rec(TokenStatus::Active, FUTURE)),
            Provider::Openai,
            now(),
        );
        assert_eq!(got, Ok(Some(now() + Duration::hours(1))));
        let never = evaluate(
            Some(&rec(TokenStatus::Active, None)),
            Provider::Openai,
            now(),
        );
        assert_eq!(never, Ok(None));
    }
}
