//! Envoy's contexts: each callback forwarded to `ptk_filter_core::flow`'s [`Root`] and
//! [`Stream`] over [`EnvoyHost`], their answer handed back.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use ptk_filter_core::flow::{self, Root, Stream};

use crate::abi;
use crate::host::{buffer, EnvoyHost};

/// The root context.
pub struct PtkRoot(Root);

impl PtkRoot {
    /// The root context with this id.
    pub fn new(context_id: u32) -> PtkRoot {
        PtkRoot(Root::new(context_id))
    }
}

/// One HTTP request.
pub struct PtkHttp(Stream);

fn action(action: flow::Action) -> Action {
    match action {
        flow::Action::Continue => Action::Continue,
        flow::Action::Pause => Action::Pause,
    }
}

impl Context for PtkRoot {
    fn on_http_call_response(&mut self, token_id: u32, _headers: usize, body: usize, _t: usize) {
        self.0.on_callout_response(&mut EnvoyHost, token_id, body);
    }
}

impl RootContext for PtkRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = buffer(abi::buffer::PLUGIN_CONFIGURATION, usize::MAX).unwrap_or_default();
        self.0
            .configure(&mut EnvoyHost, &config, |name| std::env::var(name).ok())
    }

    fn on_tick(&mut self) {
        self.0.on_tick(&mut EnvoyHost);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(PtkHttp(self.0.stream(context_id))))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

impl Context for PtkHttp {
    fn on_http_call_response(&mut self, token_id: u32, _headers: usize, body: usize, _t: usize) {
        self.0.on_callout_response(&mut EnvoyHost, token_id, body);
    }
}

impl HttpContext for PtkHttp {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        action(self.0.on_request_headers(&mut EnvoyHost, end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(
            self.0
                .on_request_body(&mut EnvoyHost, body_size, end_of_stream),
        )
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        action(self.0.on_request_trailers(&mut EnvoyHost))
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        action(self.0.on_response_headers(&mut EnvoyHost, end_of_stream))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(
            self.0
                .on_response_body(&mut EnvoyHost, body_size, end_of_stream),
        )
    }
}
