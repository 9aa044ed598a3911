//! Counters per outcome, so an operator can tell refusals from infrastructure failures.
//!
//! Counts are kept in the worker and added to Envoy's counters on each tick: a host call per
//! counter per request is measurable on the hot path, and counters a second late are fine.

use std::cell::Cell;

use ptk_filter_core::Refusal;

use crate::host;

/// One counter: its host id and the count not yet flushed.
#[derive(Debug, Default)]
pub struct Counter {
    id: Option<u32>,
    pending: Cell<u64>,
}

impl Counter {
    /// Defines `ptk.<name>` (no-op counter if the host refuses).
    pub fn define(name: &str) -> Counter {
        Counter {
            id: host::define_counter(&format!("ptk.{name}")),
            pending: Cell::new(0),
        }
    }

    /// Counts one.
    pub fn add(&self) {
        self.pending.set(self.pending.get().saturating_add(1));
    }

    /// Adds the pending count to Envoy's counter.
    pub fn flush(&self) {
        let n = self.pending.replace(0);
        if n > 0 {
            host::add_to_counter(self.id, n);
        }
    }
}

/// The filter's counters (each a no-op when the host refused to define it).
#[derive(Debug, Default)]
pub struct Metrics {
    allowed: Counter,
    cache_hits: Counter,
    missing_token: Counter,
    invalid: Counter,
    expired: Counter,
    scope: Counter,
    rate_limited: Counter,
    throttled: Counter,
    store_unavailable: Counter,
    provider_unconfigured: Counter,
    callout_failed: Counter,
}

impl Metrics {
    /// Defines every counter (Envoy prefixes them with `wasmcustom.`).
    pub fn define() -> Metrics {
        Metrics {
            allowed: Counter::define("allowed"),
            cache_hits: Counter::define("cache_hits"),
            missing_token: Counter::define("refused.missing_token"),
            invalid: Counter::define("refused.invalid"),
            expired: Counter::define("refused.expired"),
            scope: Counter::define("refused.scope"),
            rate_limited: Counter::define("refused.rate_limited"),
            throttled: Counter::define("refused.throttled"),
            store_unavailable: Counter::define("refused.store_unavailable"),
            provider_unconfigured: Counter::define("refused.provider_unconfigured"),
            callout_failed: Counter::define("callout_failed"),
        }
    }

    /// Adds the counts gathered since the last flush to Envoy's counters.
    pub fn flush(&self) {
        for counter in [
            &self.allowed,
            &self.cache_hits,
            &self.missing_token,
            &self.invalid,
            &self.expired,
            &self.scope,
            &self.rate_limited,
            &self.throttled,
            &self.store_unavailable,
            &self.provider_unconfigured,
            &self.callout_failed,
        ] {
            counter.flush();
        }
    }

    /// Counts a forwarded request.
    pub fn allowed(&self) {
        self.allowed.add();
    }

    /// Counts a request allowed from the shared verdict cache (no callout).
    pub fn cache_hit(&self) {
        self.cache_hits.add();
    }

    /// Counts a callout that could not be started or came back without a usable answer.
    pub fn callout_failed(&self) {
        self.callout_failed.add();
    }

    /// Counts a refusal by its class.
    pub fn refused(&self, refusal: Refusal) {
        match refusal {
            Refusal::MissingToken => &self.missing_token,
            Refusal::Invalid => &self.invalid,
            Refusal::Expired => &self.expired,
            Refusal::Scope => &self.scope,
            Refusal::RateLimited { .. } => &self.rate_limited,
            Refusal::Throttled { .. } => &self.throttled,
            Refusal::StoreUnavailable => &self.store_unavailable,
            Refusal::ProviderUnconfigured => &self.provider_unconfigured,
        }
        .add();
    }
}
