//! The root context: parses the plugin configuration once, hands each request a context, and
//! on every tick flushes counters and batched usage and refreshes the shared-data CAS anchor.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};
use ptk_filter_core::config::{validate_secret, CheckSecret};
use ptk_filter_core::deny_cache::DenyCache;
use ptk_filter_core::guess_throttle::{GuessThrottle, KnownGood};
use ptk_filter_core::local_pool::LocalPool;
use ptk_filter_core::shared_cache::CasAnchor;
use ptk_filter_core::usage::UsageBatch;
use ptk_filter_core::FilterConfig;

use crate::host::{self, HostSharedData};
use crate::http::PtkHttp;
use crate::metrics::Metrics;

/// Everything a request context needs; one per worker (VM), so the `RefCell`s are never
/// borrowed across threads. Every map in here is bounded (see each type).
#[derive(Debug)]
pub struct Worker {
    /// The parsed plugin configuration.
    pub config: FilterConfig,
    /// The check secret from the VM environment (redacted in `Debug`).
    pub secret: CheckSecret,
    /// Outcome counters.
    pub metrics: Metrics,
    /// This worker's recent refusals.
    pub denies: RefCell<DenyCache>,
    /// Refused tokens per client address.
    pub throttle: RefCell<GuessThrottle>,
    /// (client, token) pairs that succeeded, which pass a throttled address.
    pub known: RefCell<KnownGood>,
    /// Requests allowed from the cache since the last flush.
    pub usage: RefCell<UsageBatch>,
    /// Lease units this worker took from shared data in batches.
    pub pool: RefCell<LocalPool>,
    /// A CAS that no cache key can hold, for creating keys only when absent.
    pub anchor: Cell<CasAnchor>,
}

/// The root context; `worker` is `None` until a valid configuration arrives.
#[derive(Default)]
pub struct PtkRoot {
    worker: Option<Rc<Worker>>,
}

impl Context for PtkRoot {
    fn on_http_call_response(&mut self, _token_id: u32, _headers: usize, _body: usize, _t: usize) {
        // Usage reports are best effort: a lost batch only makes lastUsed a little older.
        if host::call_response_status() != Some(204) {
            host::log(LogLevel::Warn, "ptk filter: usage report was not accepted");
        }
    }
}

impl RootContext for PtkRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let parsed = FilterConfig::parse(&host::plugin_configuration()).and_then(|config| {
            let env = &config.token_service.secret_env;
            let secret = validate_secret(env, std::env::var(env).ok().as_deref())?;
            Ok((config, secret))
        });
        match parsed {
            Ok((config, secret)) => {
                host::set_tick(Duration::from_millis(config.cache.usage_flush_ms));
                let denies = DenyCache::new(config.cache.deny_ttl_ms, config.cache.deny_entries);
                let throttle = GuessThrottle::new(config.guess_throttle.clone());
                self.worker = Some(Rc::new(Worker {
                    config,
                    secret,
                    metrics: Metrics::define(),
                    denies: RefCell::new(denies),
                    throttle: RefCell::new(throttle),
                    known: RefCell::new(KnownGood::default()),
                    usage: RefCell::new(UsageBatch::default()),
                    pool: RefCell::new(LocalPool::default()),
                    anchor: Cell::new(CasAnchor::refresh(&HostSharedData)),
                }));
                true
            }
            Err(message) => {
                // Returning false makes Envoy reject the plugin (and fail closed), with this
                // message in its log naming the offending field.
                host::log(
                    LogLevel::Critical,
                    &format!("ptk filter: bad config: {message}"),
                );
                false
            }
        }
    }

    fn on_tick(&mut self) {
        let Some(worker) = &self.worker else {
            return;
        };
        // Keeps the anchor within one tick of the CAS counter, which cannot wrap (2^32
        // writes) in that time.
        worker.anchor.set(CasAnchor::refresh(&HostSharedData));
        worker.metrics.flush();
        let Some((headers, body)) = worker
            .usage
            .borrow_mut()
            .take_call(&worker.config, worker.secret.expose())
        else {
            return;
        };
        let ts = &worker.config.token_service;
        let timeout = Duration::from_millis(ts.timeout_ms);
        if host::dispatch(&ts.cluster, &headers, &body, timeout).is_err() {
            host::log(LogLevel::Warn, "ptk filter: could not send a usage report");
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(PtkHttp::new(self.worker.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
