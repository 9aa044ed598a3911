//! The per-request context: moves the request's headers and its callout answers into
//! `ptk_filter_core::flow` and carries out the step it returns; on the way back, the response
//! watches (`response.rs`, `http/watches.rs`) and CORS decoration.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel};
use ptk_filter_core::cors::decoration;
use ptk_filter_core::flow::{RequestFlow, Step, Worker};
use ptk_filter_core::log_path::redacted_path;
use ptk_filter_core::{ErrorShape, LocalReply, Refusal, RequestHead};

use crate::host::{self, EnvoyHost};
use crate::response::{ErrorWatch, Headers};

// The response watches of Gemini uploads and OpenAI client secrets.
mod watches;

/// One HTTP request.
pub struct PtkHttp {
    /// This request's context id (to close it if its token is revoked while it is open).
    context_id: u32,
    worker: Option<Rc<Worker>>,
    flow: RequestFlow,
    /// The response of a request forwarded with a real key, until its status is known.
    error_watch: Option<Box<ErrorWatch>>,
}

/// Replaces the `:path` of a request the filter answers itself with what the access log may
/// print (`log_path::redacted_path`: no query or fragment, no credential value, no
/// token-shaped run); written back only when that changes it.
fn redact_logged_path() {
    let Ok(headers) = host::request_headers() else {
        return;
    };
    if let Some(path) = redacted_path(&RequestHead::new(headers)) {
        if host::set_request_header(":path", &path).is_err() {
            host::log(
                LogLevel::Warn,
                "ptk filter: could not redact the logged path",
            );
        }
    }
}

fn reply(reply: &LocalReply) -> Action {
    // Answered here, never forwarded: its `:path` is only logged, so log no secret.
    redact_logged_path();
    if host::send_reply(reply.status, &reply.headers, &reply.body).is_err() {
        host::log(LogLevel::Error, "ptk filter: could not send a local reply");
    }
    Action::Pause
}

impl PtkHttp {
    /// A context for one request; `worker` is `None` if the plugin has no valid config.
    pub fn new(context_id: u32, worker: Option<Rc<Worker>>) -> Self {
        PtkHttp {
            context_id,
            worker,
            flow: RequestFlow::new(context_id),
            error_watch: None,
        }
    }

    /// Carries out a step; `resume` after a callout (the request was paused).
    fn carry_out(&mut self, step: Step, resume: bool) -> Action {
        match step {
            Step::Forward(watch) => {
                self.error_watch = watch.map(|w| Box::new(ErrorWatch::start(w)));
                if resume && host::resume_request().is_err() {
                    host::log(LogLevel::Error, "ptk filter: could not resume a request");
                }
                Action::Continue
            }
            Step::CallOut { .. } => Action::Pause,
            Step::Reply(local) => reply(&local),
        }
    }
}

impl Drop for PtkHttp {
    // Envoy deletes the context when the request is over: it is no longer open.
    fn drop(&mut self) {
        if let Some(worker) = &self.worker {
            if let Ok(mut streams) = worker.streams.try_borrow_mut() {
                streams.close(self.context_id);
            }
        }
    }
}

impl Context for PtkHttp {
    fn on_http_call_response(&mut self, token_id: u32, _headers: usize, body: usize, _t: usize) {
        let Some(worker) = self.worker.clone() else {
            return;
        };
        // Only the callout this request started may decide it.
        if !self.flow.expects(token_id) {
            return;
        }
        let status = host::call_response_status();
        let body = host::call_response_body(body);
        let step = self.flow.on_callout_response(
            &worker,
            &mut EnvoyHost,
            token_id,
            status,
            body.as_deref(),
        );
        if let Some(step) = step {
            self.carry_out(step, true);
        }
    }
}

impl HttpContext for PtkHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let unavailable = || Refusal::StoreUnavailable.reply(ErrorShape::Openai);
        let Some(worker) = self.worker.clone() else {
            // No valid configuration: never forward.
            return reply(&unavailable());
        };
        let Ok(headers) = host::request_headers() else {
            host::log(
                LogLevel::Error,
                "ptk filter: could not read request headers",
            );
            return reply(&unavailable());
        };
        let head = RequestHead::new(headers);
        let step = self.flow.on_request_headers(&worker, &mut EnvoyHost, head);
        self.carry_out(step, false)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let (Some(watch), Some(worker)) = (self.error_watch.as_mut(), self.worker.as_ref()) {
            match watch.on_headers(&worker.counts) {
                Headers::Pass => self.error_watch = None,
                Headers::Inspect => {}
                // The filter answered in the provider's place (CORS included).
                Headers::Replaced => {
                    self.error_watch = None;
                    self.flow.replaced();
                    return Action::Pause;
                }
            }
        }
        self.upload_response();
        self.mint_headers();
        if let Some(origin) = self.flow.take_cors_origin() {
            let vary = host::response_header("vary");
            let expose = host::response_header("access-control-expose-headers");
            for (name, value) in decoration(&origin, vary.as_deref(), expose.as_deref()) {
                if host::set_response_header(&name, &value).is_err() {
                    host::log(LogLevel::Warn, "ptk filter: could not set a CORS header");
                }
            }
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        // A minting answer (2xx) is copied as it passes, never held.
        self.mint_body(body_size, end_of_stream);
        // Every response below 400 dropped its watch at the headers (an accepted WebSocket
        // keeps it for its first frames only): nothing to do, at once.
        match (self.error_watch.as_mut(), self.worker.as_ref()) {
            (Some(watch), Some(worker)) => {
                let action = watch.on_body(&worker.counts, body_size, end_of_stream);
                if watch.done() {
                    self.error_watch = None;
                }
                action
            }
            _ => Action::Continue,
        }
    }
}
