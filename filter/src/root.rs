//! The root context: parses the plugin configuration once, hands each request a context, and
//! on every tick flushes counters and batched activity, refreshes the shared-data CAS anchor and
//! revalidates the tokens of open streams (closing those of revoked tokens).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};
use ptk_filter_core::activity::ActivityBatch;
use ptk_filter_core::cache::Entry;
use ptk_filter_core::config::{validate_secret, CheckSecret};
use ptk_filter_core::deny_cache::DenyCache;
use ptk_filter_core::guess_throttle::{GuessThrottle, KnownGood};
use ptk_filter_core::local_pool::LocalPool;
use ptk_filter_core::open_streams::{
    parse_revalidation, revalidate_call, OpenStreams, MAX_BATCHES_PER_TICK,
};
use ptk_filter_core::shared_cache::{CasAnchor, SharedData};
use ptk_filter_core::FilterConfig;

use crate::host::{self, HostSharedData};
use crate::http::PtkHttp;
use crate::metrics::Metrics;
use crate::response::ResponseMetrics;

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
    pub activity: RefCell<ActivityBatch>,
    /// Lease units this worker took from shared data in batches.
    pub pool: RefCell<LocalPool>,
    /// A CAS that no cache key can hold, for creating keys only when absent.
    pub anchor: Cell<CasAnchor>,
    /// Forwarded requests still open, by token.
    pub streams: RefCell<OpenStreams>,
    /// Counters of provider errors about the operator's credential.
    pub response_metrics: ResponseMetrics,
}

/// The root context; `worker` is `None` until a valid configuration arrives.
pub struct PtkRoot {
    context_id: u32,
    worker: Option<Rc<Worker>>,
    /// Revalidation callouts in flight: token id -> the cache keys asked.
    revalidating: HashMap<u32, Vec<String>>,
}

impl PtkRoot {
    /// The root context with this id (requests' streams are closed on its behalf).
    pub fn new(context_id: u32) -> PtkRoot {
        PtkRoot {
            context_id,
            worker: None,
            revalidating: HashMap::new(),
        }
    }

    /// Resets these requests' streams.
    fn close(&self, contexts: &[u32]) {
        for context in contexts {
            if !host::close_stream(*context, self.context_id) {
                host::log(
                    LogLevel::Warn,
                    "ptk filter: could not close a revoked stream",
                );
            }
        }
        if !contexts.is_empty() {
            host::log(
                LogLevel::Info,
                &format!(
                    "ptk filter: closed {} open request(s) of revoked tokens",
                    contexts.len()
                ),
            );
        }
    }

    /// Tokens of open streams whose verdict ran out: trust a fresh cached verdict, close the
    /// streams whose revalidations have failed for the grace period, ask about the rest in a few
    /// batches, oldest verdicts first.
    fn revalidate(&mut self, worker: &Worker) {
        let now = host::now_ms();
        let overdue = {
            let mut streams = worker.streams.borrow_mut();
            if streams.is_empty() {
                return;
            }
            streams.refresh_from_cache(now, |key| {
                let stored = HostSharedData.get(key).ok()?.0?;
                Entry::decode(&stored)
                    .filter(|e| !e.key.is_empty())
                    .map(|e| e.valid_until_ms)
            });
            streams.overdue(now, worker.config.streams.grace_ms)
        };
        for _ in 0..MAX_BATCHES_PER_TICK {
            let Some(due) = worker.streams.borrow_mut().due(now) else {
                break;
            };
            let (keys, entries): (Vec<String>, Vec<_>) = due.into_iter().unzip();
            let (headers, body) = revalidate_call(&worker.config, worker.secret.expose(), entries);
            let ts = &worker.config.token_service;
            let timeout = Duration::from_millis(ts.timeout_ms);
            match host::dispatch(&ts.cluster, &headers, &body, timeout) {
                Ok(token_id) => {
                    self.revalidating.insert(token_id, keys);
                }
                Err(_) => {
                    worker.streams.borrow_mut().unanswered(&keys, now);
                    break;
                }
            }
        }
        self.close(&overdue);
    }

    /// A revalidation came back: close the streams of refused tokens.
    fn revalidated(&self, worker: &Worker, keys: &[String], body_size: usize) {
        let status = host::call_response_status();
        let body = host::call_response_body(body_size);
        let now = host::now_ms();
        let to_close = {
            let mut streams = worker.streams.borrow_mut();
            match parse_revalidation(status, body.as_deref()) {
                Some(answers) => {
                    let mut closing = Vec::new();
                    for (key, answer) in answers {
                        closing.extend(streams.revalidated(&key, answer, now));
                    }
                    // Keys the answer left out may be asked again.
                    streams.unanswered(keys, now);
                    closing
                }
                None => {
                    host::log(
                        LogLevel::Warn,
                        &format!("ptk filter: stream revalidation failed (status {status:?})"),
                    );
                    streams.unanswered(keys, now);
                    Vec::new()
                }
            }
        };
        self.close(&to_close);
    }
}

impl Context for PtkRoot {
    fn on_http_call_response(&mut self, token_id: u32, _headers: usize, body: usize, _t: usize) {
        if let Some(keys) = self.revalidating.remove(&token_id) {
            if let Some(worker) = self.worker.clone() {
                self.revalidated(&worker, &keys, body);
            }
            return;
        }
        // Activity reports are best effort: a lost batch only makes lastUsed a little older.
        if host::call_response_status() != Some(204) {
            host::log(
                LogLevel::Warn,
                "ptk filter: activity report was not accepted",
            );
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
                // Which release, config schema and wire version run here, for the operator
                // matching filter and token-service versions.
                host::log(LogLevel::Info, &ptk_filter_core::version::start_line());
                host::set_tick(Duration::from_millis(config.cache.activity_flush_ms));
                let denies = DenyCache::new(config.cache.deny_ttl_ms, config.cache.deny_entries);
                let throttle = GuessThrottle::new(config.guess_throttle.clone());
                self.worker = Some(Rc::new(Worker {
                    config,
                    secret,
                    metrics: Metrics::define(),
                    denies: RefCell::new(denies),
                    throttle: RefCell::new(throttle),
                    known: RefCell::new(KnownGood::default()),
                    activity: RefCell::new(ActivityBatch::default()),
                    pool: RefCell::new(LocalPool::default()),
                    anchor: Cell::new(CasAnchor::refresh(&HostSharedData)),
                    streams: RefCell::new(OpenStreams::default()),
                    response_metrics: ResponseMetrics::define(),
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
        let Some(worker) = self.worker.clone() else {
            return;
        };
        if worker.config.streams.revalidate {
            self.revalidate(&worker);
        }
        // Keeps the anchor within one tick of the CAS counter, which cannot wrap (2^32
        // writes) in that time.
        worker.anchor.set(CasAnchor::refresh(&HostSharedData));
        let open = worker.streams.borrow().len();
        worker.metrics.flush(open);
        worker.response_metrics.flush();
        let Some((headers, body)) = worker
            .activity
            .borrow_mut()
            .take_call(&worker.config, worker.secret.expose())
        else {
            return;
        };
        let ts = &worker.config.token_service;
        let timeout = Duration::from_millis(ts.timeout_ms);
        if host::dispatch(&ts.cluster, &headers, &body, timeout).is_err() {
            host::log(
                LogLevel::Warn,
                "ptk filter: could not send an activity report",
            );
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(PtkHttp::new(context_id, self.worker.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
