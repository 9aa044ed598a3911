//! Counters per outcome, so an operator can tell refusals from infrastructure failures.

use ptk_filter_core::Refusal;

use crate::host;

/// Counter ids (each `None` when the host refused to define it).
#[derive(Debug, Default)]
pub struct Metrics {
    allowed: Option<u32>,
    cache_hits: Option<u32>,
    missing_token: Option<u32>,
    invalid: Option<u32>,
    expired: Option<u32>,
    scope: Option<u32>,
    rate_limited: Option<u32>,
    store_unavailable: Option<u32>,
    provider_unconfigured: Option<u32>,
    callout_failed: Option<u32>,
}

impl Metrics {
    /// Defines every counter (Envoy prefixes them with `wasmcustom.`).
    pub fn define() -> Metrics {
        let c = |name: &str| host::define_counter(&format!("ptk.{name}"));
        Metrics {
            allowed: c("allowed"),
            cache_hits: c("cache_hits"),
            missing_token: c("refused.missing_token"),
            invalid: c("refused.invalid"),
            expired: c("refused.expired"),
            scope: c("refused.scope"),
            rate_limited: c("refused.rate_limited"),
            store_unavailable: c("refused.store_unavailable"),
            provider_unconfigured: c("refused.provider_unconfigured"),
            callout_failed: c("callout_failed"),
        }
    }

    /// Counts a forwarded request.
    pub fn allowed(&self) {
        host::increment(self.allowed);
    }

    /// Counts a request allowed from the shared verdict cache (no callout).
    pub fn cache_hit(&self) {
        host::increment(self.cache_hits);
    }

    /// Counts a callout that could not be started or came back without a usable answer.
    pub fn callout_failed(&self) {
        host::increment(self.callout_failed);
    }

    /// Counts a refusal by its class.
    pub fn refused(&self, refusal: Refusal) {
        host::increment(match refusal {
            Refusal::MissingToken => self.missing_token,
            Refusal::Invalid => self.invalid,
            Refusal::Expired => self.expired,
            Refusal::Scope => self.scope,
            Refusal::RateLimited { .. } => self.rate_limited,
            Refusal::StoreUnavailable => self.store_unavailable,
            Refusal::ProviderUnconfigured => self.provider_unconfigured,
        });
    }
}
