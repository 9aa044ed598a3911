//! The root context: parses the plugin configuration once and hands each request a context.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};
use ptk_filter_core::config::validate_secret;
use ptk_filter_core::FilterConfig;

use crate::host;
use crate::http::PtkHttp;
use crate::metrics::Metrics;

/// Everything a request context needs, shared read-only.
#[derive(Debug)]
pub struct Shared {
    /// The parsed plugin configuration.
    pub config: FilterConfig,
    /// The check secret from the VM environment.
    pub secret: String,
    /// Outcome counters.
    pub metrics: Metrics,
}

/// The root context; `shared` is `None` until a valid configuration arrives.
#[derive(Default)]
pub struct PtkRoot {
    shared: Option<Rc<Shared>>,
}

impl Context for PtkRoot {}

impl RootContext for PtkRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let parsed = FilterConfig::parse(&host::plugin_configuration()).and_then(|config| {
            let env = &config.token_service.secret_env;
            let secret = validate_secret(env, std::env::var(env).ok().as_deref())?;
            Ok((config, secret))
        });
        match parsed {
            Ok((config, secret)) => {
                self.shared = Some(Rc::new(Shared {
                    config,
                    secret,
                    metrics: Metrics::define(),
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

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(PtkHttp::new(self.shared.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
