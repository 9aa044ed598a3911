//! The root context: parses the plugin configuration once, hands each request a context, and
//! on every tick revalidates the tokens of open streams (closing those of revoked tokens),
//! refreshes the shared-data CAS anchor and flushes counters and batched activity
//! (`ptk_filter_core::flow` decides).

use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};
use ptk_filter_core::config::validate_secret;
use ptk_filter_core::flow::{report_activity, Revalidations, Worker};
use ptk_filter_core::shared_data::CasAnchor;
use ptk_filter_core::FilterConfig;

use crate::host::{self, EnvoyHost, HostSharedData};
use crate::http::PtkHttp;
use crate::metrics::Metrics;

/// The root context; `worker` is `None` until a valid configuration arrives.
pub struct PtkRoot {
    context_id: u32,
    worker: Option<Rc<Worker>>,
    metrics: Option<Metrics>,
    revalidations: Revalidations,
}

impl PtkRoot {
    /// The root context with this id (requests' streams are closed on its behalf).
    pub fn new(context_id: u32) -> PtkRoot {
        PtkRoot {
            context_id,
            worker: None,
            metrics: None,
            revalidations: Revalidations::default(),
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
            let n = contexts.len();
            let line = format!("ptk filter: closed {n} open request(s) of revoked tokens");
            host::log(LogLevel::Info, &line);
        }
    }
}

impl Context for PtkRoot {
    fn on_http_call_response(&mut self, token_id: u32, _headers: usize, body: usize, _t: usize) {
        let Some(worker) = self.worker.clone() else {
            return;
        };
        let (status, body) = host::call_response(body);
        let closing = self.revalidations.on_callout_response(
            &worker,
            &mut EnvoyHost,
            token_id,
            status,
            body.as_deref(),
        );
        self.close(&closing);
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
                let anchor = CasAnchor::refresh(&HostSharedData);
                self.worker = Some(Rc::new(Worker::new(config, secret, anchor)));
                self.metrics = Some(Metrics::define());
                true
            }
            Err(message) => {
                // Returning false makes Envoy reject the plugin (and fail closed), with this
                // message in its log naming the offending field.
                let line = format!("ptk filter: bad config: {message}");
                host::log(LogLevel::Critical, &line);
                false
            }
        }
    }

    fn on_tick(&mut self) {
        let Some(worker) = self.worker.clone() else {
            return;
        };
        if worker.config.streams.revalidate {
            let closing = self.revalidations.on_tick(&worker, &mut EnvoyHost);
            self.close(&closing);
        }
        // Keeps the anchor within one tick of the CAS counter, which cannot wrap (2^32
        // writes) in that time.
        worker.anchor.set(CasAnchor::refresh(&HostSharedData));
        if let Some(metrics) = &self.metrics {
            metrics.flush(&worker.counts, worker.streams.borrow().len());
        }
        report_activity(&worker, &mut EnvoyHost);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(PtkHttp::new(context_id, self.worker.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
