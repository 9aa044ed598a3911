//! The per-request context: headers -> callout -> forward or reply.

use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel};
use ptk_filter_core::{
    check_call, decide_check_response, decide_headers, CheckDecision, HeadersDecision, LocalReply,
    PendingCheck, Refusal, RequestHead, RewritePlan,
};

use crate::host;
use crate::root::Shared;

/// A request waiting on its check: the callout's token id, the decision state and the head.
struct Waiting {
    token_id: u32,
    pending: PendingCheck,
    head: RequestHead,
}

/// One HTTP request.
pub struct PtkHttp {
    shared: Option<Rc<Shared>>,
    waiting: Option<Waiting>,
}

impl PtkHttp {
    /// A context for one request; `shared` is `None` if the plugin has no valid config.
    pub fn new(shared: Option<Rc<Shared>>) -> Self {
        PtkHttp {
            shared,
            waiting: None,
        }
    }

    fn reply(&self, reply: &LocalReply) -> Action {
        if host::send_reply(reply.status, &reply.headers, &reply.body).is_err() {
            host::log(LogLevel::Error, "ptk filter: could not send a local reply");
        }
        Action::Pause
    }

    fn store_unavailable(&self, shared: &Shared, pending: &PendingCheck) -> Action {
        shared.metrics.callout_failed();
        shared.metrics.refused(Refusal::StoreUnavailable);
        self.reply(&pending.refuse(Refusal::StoreUnavailable).reply)
    }

    fn apply(plan: &RewritePlan) -> bool {
        let removed = plan
            .remove
            .iter()
            .all(|name| host::remove_request_header(name).is_ok());
        let set = plan
            .set
            .iter()
            .all(|(name, value)| host::set_request_header(name, value).is_ok());
        removed && set
    }
}

impl Context for PtkHttp {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        // Only the callout this request started may decide it.
        let Some(waiting) = self.waiting.take_if(|w| w.token_id == token_id) else {
            return;
        };
        let status = host::call_response_status();
        let body = host::call_response_body(body_size);
        let decision = decide_check_response(
            &shared.config,
            &waiting.head,
            &waiting.pending,
            status,
            body.as_deref(),
        );
        match decision {
            CheckDecision::Forward { plan, .. } => {
                if Self::apply(&plan) {
                    shared.metrics.allowed();
                    if host::resume_request().is_err() {
                        host::log(LogLevel::Error, "ptk filter: could not resume a request");
                    }
                } else {
                    // A half-applied rewrite must never be forwarded.
                    host::log(
                        LogLevel::Error,
                        "ptk filter: could not rewrite request headers",
                    );
                    self.store_unavailable(&shared, &waiting.pending);
                }
            }
            CheckDecision::Reply {
                refused,
                callout_failed,
            } => {
                if callout_failed {
                    shared.metrics.callout_failed();
                    host::log(
                        LogLevel::Warn,
                        &format!("ptk filter: token-service check failed (status {status:?})"),
                    );
                }
                shared.metrics.refused(refused.refusal);
                self.reply(&refused.reply);
            }
        }
    }
}

impl HttpContext for PtkHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(shared) = self.shared.clone() else {
            // No valid configuration: never forward.
            return self
                .reply(&Refusal::StoreUnavailable.reply(ptk_filter_core::ErrorShape::Openai));
        };
        let Ok(headers) = host::request_headers() else {
            host::log(
                LogLevel::Error,
                "ptk filter: could not read request headers",
            );
            return self
                .reply(&Refusal::StoreUnavailable.reply(ptk_filter_core::ErrorShape::Openai));
        };
        let head = RequestHead::new(headers);
        let pending = match decide_headers(&head) {
            HeadersDecision::Reply(refused) => {
                shared.metrics.refused(refused.refusal);
                return self.reply(&refused.reply);
            }
            HeadersDecision::Check(pending) => pending,
        };
        let (call_headers, call_body) = check_call(&shared.config, &shared.secret, &pending);
        let timeout = Duration::from_millis(shared.config.token_service.timeout_ms);
        match host::dispatch(
            &shared.config.token_service.cluster,
            &call_headers,
            &call_body,
            timeout,
        ) {
            Ok(token_id) => {
                self.waiting = Some(Waiting {
                    token_id,
                    pending,
                    head,
                });
                Action::Pause
            }
            Err(status) => {
                host::log(
                    LogLevel::Warn,
                    &format!("ptk filter: could not start the token-service check ({status:?})"),
                );
                self.store_unavailable(&shared, &pending)
            }
        }
    }
}
