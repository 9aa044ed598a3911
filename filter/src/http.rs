//! The per-request context: moves the request's headers, its callout answers and its response
//! into `ptk_filter_core::flow` and carries out the step it returns.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel, MapType};
use ptk_filter_core::flow::{BodyStep, HeadersStep, RequestFlow, Step, Worker};
use ptk_filter_core::log_path::redacted_path;
use ptk_filter_core::{ErrorShape, LocalReply, Refusal, RequestHead};

use ptk_filter_core::flow::Host;

use crate::host::{self, EnvoyHost};

/// One HTTP request; `worker` is `None` if the plugin has no valid config.
pub struct PtkHttp {
    context_id: u32,
    worker: Option<Rc<Worker>>,
    flow: RequestFlow,
}

/// Answers locally. The request is never forwarded, so its `:path` is only logged: first it
/// is replaced with what the access log may print (`log_path::redacted_path`: no query, no
/// credential value, no token-shaped run), written back only when that changes it.
fn reply(reply: &LocalReply) -> Action {
    if let Ok(headers) = host::headers(MapType::HttpRequestHeaders) {
        if let Some(path) = redacted_path(&RequestHead::new(headers)) {
            if !EnvoyHost.set_request_header(":path", Some(&path)) {
                host::log(
                    LogLevel::Warn,
                    "ptk filter: could not redact the logged path",
                );
            }
        }
    }
    if host::send_reply(reply).is_err() {
        host::log(LogLevel::Error, "ptk filter: could not send a local reply");
    }
    Action::Pause
}

/// Carries out a step; `resume` after a callout (the request was paused).
fn carry_out(step: Step, resume: bool) -> Action {
    match step {
        Step::Forward => {
            if resume && host::resume_request().is_err() {
                host::log(LogLevel::Error, "ptk filter: could not resume a request");
            }
            Action::Continue
        }
        Step::CallOut { .. } => Action::Pause,
        Step::Reply(local) => reply(&local),
    }
}

impl PtkHttp {
    /// A context for request `context_id`.
    pub fn new(context_id: u32, worker: Option<Rc<Worker>>) -> Self {
        let flow = RequestFlow::new(context_id);
        PtkHttp {
            context_id,
            worker,
            flow,
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
        // Only the callout this request started may decide it.
        let Some(worker) = self.worker.clone().filter(|_| self.flow.expects(token_id)) else {
            return;
        };
        let (status, body) = host::call_response(body);
        let answer = (token_id, status, body.as_deref());
        let flow = &mut self.flow;
        if let Some(step) =
            flow.on_callout_response(&worker, &mut EnvoyHost, answer.0, answer.1, answer.2)
        {
            carry_out(step, true);
        }
    }
}

impl HttpContext for PtkHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let unavailable = || Refusal::TokenServiceUnavailable.reply(ErrorShape::Openai);
        // No valid configuration: never forward.
        let Some(worker) = self.worker.clone() else {
            return reply(&unavailable());
        };
        let Ok(headers) = host::headers(MapType::HttpRequestHeaders) else {
            host::log(
                LogLevel::Error,
                "ptk filter: could not read request headers",
            );
            return reply(&unavailable());
        };
        let step = self
            .flow
            .on_request_headers(&worker, &mut EnvoyHost, RequestHead::new(headers));
        carry_out(step, false)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(worker) = self.worker.clone() else {
            return Action::Continue;
        };
        match self.flow.on_response_headers(&worker, &mut EnvoyHost) {
            HeadersStep::Continue => Action::Continue,
            HeadersStep::Stop => Action::Pause,
        }
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(worker) = self.worker.as_ref() else {
            return Action::Continue;
        };
        match self
            .flow
            .on_response_body(worker, &mut EnvoyHost, body_size, end_of_stream)
        {
            BodyStep::Continue => Action::Continue,
            BodyStep::Pause => Action::Pause,
        }
    }
}
