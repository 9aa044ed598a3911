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

/// A gauge summed over workers: each worker adds the change of its own value since its last
/// flush, so Envoy's one stat holds the total.
#[derive(Debug, Default)]
struct Gauge {
    id: Option<u32>,
    flushed: Cell<i64>,
}

impl Gauge {
    fn define(name: &str) -> Gauge {
        Gauge {
            id: host::define_gauge(&format!("ptk.{name}")),
            flushed: Cell::new(0),
        }
    }

    fn flush(&self, value: i64) {
        let delta = value.saturating_sub(self.flushed.replace(value));
        if delta != 0 {
            host::add_to_gauge(self.id, delta);
        }
    }
}

/// The filter's counters (each a no-op when the host refused to define it).
#[derive(Debug, Default)]
pub struct Metrics {
    allowed: Counter,
    cache_hits: Counter,
    // Gemini resumable uploads.
    upload_legs: Counter,
    upload_started: Counter,
    upload_evicted: Counter,
    upload_unrecorded: Counter,
    unknown_upload: Counter,
    // OpenAI Realtime client secrets.
    secret_uses: Counter,
    secrets_minted: Counter,
    secrets_evicted: Counter,
    secrets_unrecorded: Counter,
    unknown_secret: Counter,
    missing_token: Counter,
    invalid: Counter,
    expired: Counter,
    provider_not_allowed: Counter,
    rate_limited: Counter,
    throttled: Counter,
    token_service_unavailable: Counter,
    provider_unconfigured: Counter,
    token_in_request: Counter,
    callout_failed: Counter,
    callout_retried: Counter,
    open_requests: Gauge,
}

impl Metrics {
    /// Defines every counter (Envoy prefixes them with `wasmcustom.`).
    pub fn define() -> Metrics {
        Metrics {
            allowed: Counter::define("allowed"),
            cache_hits: Counter::define("cache_hits"),
            upload_legs: Counter::define("upload.legs"),
            upload_started: Counter::define("upload.sessions_started"),
            upload_evicted: Counter::define("upload.sessions_evicted"),
            upload_unrecorded: Counter::define("upload.sessions_unrecorded"),
            unknown_upload: Counter::define("refused.unknown_upload"),
            secret_uses: Counter::define("ephemeral.secret_uses"),
            secrets_minted: Counter::define("ephemeral.secrets_recorded"),
            secrets_evicted: Counter::define("ephemeral.secrets_evicted"),
            secrets_unrecorded: Counter::define("ephemeral.secrets_unrecorded"),
            unknown_secret: Counter::define("refused.unknown_client_secret"),
            missing_token: Counter::define("refused.missing_token"),
            invalid: Counter::define("refused.invalid"),
            expired: Counter::define("refused.expired"),
            provider_not_allowed: Counter::define("refused.provider_not_allowed"),
            rate_limited: Counter::define("refused.rate_limited"),
            throttled: Counter::define("refused.throttled"),
            token_service_unavailable: Counter::define("refused.token_service_unavailable"),
            provider_unconfigured: Counter::define("refused.provider_unconfigured"),
            token_in_request: Counter::define("refused.token_in_request"),
            callout_failed: Counter::define("callout_failed"),
            callout_retried: Counter::define("callout_retried"),
            open_requests: Gauge::define("open_requests"),
        }
    }

    /// Adds the counts gathered since the last flush to Envoy's counters; `open` is this
    /// worker's number of forwarded requests still open.
    pub fn flush(&self, open: usize) {
        self.open_requests
            .flush(i64::try_from(open).unwrap_or(i64::MAX));
        for counter in [
            &self.allowed,
            &self.cache_hits,
            &self.missing_token,
            &self.invalid,
            &self.expired,
            &self.provider_not_allowed,
            &self.rate_limited,
            &self.throttled,
            &self.token_service_unavailable,
            &self.provider_unconfigured,
            &self.token_in_request,
            &self.callout_failed,
            &self.callout_retried,
            &self.unknown_upload,
            &self.upload_legs,
            &self.upload_started,
            &self.upload_evicted,
            &self.upload_unrecorded,
            &self.secret_uses,
            &self.secrets_minted,
            &self.secrets_evicted,
            &self.secrets_unrecorded,
            &self.unknown_secret,
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

    /// Counts a check sent again after its first callout got no verdict (`retry`).
    pub fn callout_retried(&self) {
        self.callout_retried.add();
    }

    /// Counts a keyless upload leg forwarded for a known session.
    pub fn upload_leg(&self) {
        self.upload_legs.add();
    }

    /// Counts an upload session recorded in the session table.
    pub fn upload_started(&self) {
        self.upload_started.add();
    }

    /// Counts a live upload session replaced by a new one (the table's ways were full).
    pub fn upload_evicted(&self) {
        self.upload_evicted.add();
    }

    /// Counts an upload session that could not be recorded (its keyless legs will get 401).
    pub fn upload_unrecorded(&self) {
        self.upload_unrecorded.add();
    }

    /// Counts a request forwarded untouched with an OpenAI client secret minted through the
    /// proxy.
    pub fn secret_used(&self) {
        self.secret_uses.add();
    }

    /// Counts a client secret bound to the token that minted it.
    pub fn secret_minted(&self) {
        self.secrets_minted.add();
    }

    /// Counts a live client secret replaced by a new one (the table's ways were full).
    pub fn secret_evicted(&self) {
        self.secrets_evicted.add();
    }

    /// Counts a minted client secret that could not be bound (its use will get 401).
    pub fn secret_unrecorded(&self) {
        self.secrets_unrecorded.add();
    }

    /// Counts a refusal by its class.
    pub fn refused(&self, refusal: Refusal) {
        match refusal {
            Refusal::MissingToken => &self.missing_token,
            Refusal::Invalid => &self.invalid,
            Refusal::Expired => &self.expired,
            Refusal::ProviderNotAllowed => &self.provider_not_allowed,
            Refusal::RateLimited { .. } => &self.rate_limited,
            Refusal::Throttled { .. } => &self.throttled,
            Refusal::TokenServiceUnavailable => &self.token_service_unavailable,
            Refusal::ProviderUnconfigured => &self.provider_unconfigured,
            Refusal::UnknownUpload => &self.unknown_upload,
            Refusal::UnknownSecret => &self.unknown_secret,
            Refusal::TokenInRequest => &self.token_in_request,
        }
        .add();
    }
}
