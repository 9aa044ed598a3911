//! The per-request context: headers -> callout -> forward or reply; CORS on the way back.

use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel};
use ptk_filter_core::cors::decoration;
use ptk_filter_core::{
    check_call, decide_check_response, decide_headers, CheckDecision, ErrorShape, HeadersDecision,
    LocalReply, PendingCheck, Refusal, RequestHead, RewritePlan,
};

use crate::cache::{self, Lookup};
use crate::host;
use crate::root::Shared;

/// A request waiting on its check: the callout's token id, the decision state and the head.
struct Waiting {
    token_id: u32,
    pending: PendingCheck,
    head: RequestHead,
    /// This is the second check of a rate-limited request (see `on_http_call_response`).
    confirming: bool,
}

/// One HTTP request.
pub struct PtkHttp {
    shared: Option<Rc<Shared>>,
    waiting: Option<Waiting>,
    /// `Origin` of a forwarded non-upgrade request: its response gets CORS headers.
    cors_origin: Option<String>,
}

impl PtkHttp {
    /// A context for one request; `shared` is `None` if the plugin has no valid config.
    pub fn new(shared: Option<Rc<Shared>>) -> Self {
        PtkHttp {
            shared,
            waiting: None,
            cors_origin: None,
        }
    }

    fn reply(&mut self, reply: &LocalReply) -> Action {
        // Local replies carry their own CORS headers; never decorate them twice.
        self.cors_origin = None;
        if host::send_reply(reply.status, &reply.headers, &reply.body).is_err() {
            host::log(LogLevel::Error, "ptk filter: could not send a local reply");
        }
        Action::Pause
    }

    fn store_unavailable(&mut self, shared: &Shared, pending: &PendingCheck) -> Action {
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

    /// Answers from this worker's refusal memory or the shared verdict cache when it can,
    /// otherwise asks the token-service.
    fn check(&mut self, shared: &Shared, mut pending: PendingCheck, head: RequestHead) -> Action {
        let now = host::now_ms();
        let remembered = shared.denies.borrow().get(&pending.cache_key, now);
        if let Some(refusal) = remembered {
            shared.metrics.refused(refusal);
            return self.reply(&pending.refuse(refusal).reply);
        }
        if shared.config.cache.enabled {
            match cache::spend_one(&shared.pool, &pending.cache_key, now) {
                Lookup::Hit(key) => {
                    return if self.forward_cached(shared, &pending, &head, &key) {
                        Action::Continue
                    } else {
                        Action::Pause
                    };
                }
                Lookup::Miss(returned) => pending.returned = returned,
            }
        }
        self.start_check(shared, pending, head, false)
    }

    /// Rewrites the request with a real key from the cache and counts it; `false` (after
    /// answering) when the final guard refuses it (400) or the rewrite could not be applied
    /// (503): neither may be forwarded.
    fn forward_cached(
        &mut self,
        shared: &Shared,
        pending: &PendingCheck,
        head: &RequestHead,
        key: &str,
    ) -> bool {
        let plan = match pending.allow(&shared.config, head, key) {
            Ok(plan) => plan,
            // A proxy token would still go upstream: refuse (400), never forward.
            Err(refused) => {
                shared.metrics.refused(refused.refusal);
                self.reply(&refused.reply);
                return false;
            }
        };
        if !Self::apply(&plan) {
            host::log(
                LogLevel::Error,
                "ptk filter: could not rewrite request headers",
            );
            self.store_unavailable(shared, pending);
            return false;
        }
        shared.metrics.cache_hit();
        shared.metrics.allowed();
        shared.usage.borrow_mut().record(&pending.hash);
        self.cors_origin = pending.origin.clone();
        true
    }

    fn start_check(
        &mut self,
        shared: &Shared,
        pending: PendingCheck,
        head: RequestHead,
        confirming: bool,
    ) -> Action {
        let (call_headers, call_body) = check_call(&shared.config, &shared.secret, &pending);
        let ts = &shared.config.token_service;
        let timeout = Duration::from_millis(ts.timeout_ms);
        match host::dispatch(&ts.cluster, &call_headers, &call_body, timeout) {
            Ok(token_id) => {
                self.cors_origin = pending.origin.clone();
                self.waiting = Some(Waiting {
                    token_id,
                    pending,
                    head,
                    confirming,
                });
                Action::Pause
            }
            Err(status) => {
                host::log(
                    LogLevel::Warn,
                    &format!("ptk filter: could not start the token-service check ({status:?})"),
                );
                self.store_unavailable(shared, &pending)
            }
        }
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
        let now = host::now_ms();
        let decision = decide_check_response(
            &shared.config,
            &waiting.head,
            &waiting.pending,
            status,
            body.as_deref(),
            now,
        );
        let cache_key = &waiting.pending.cache_key;
        match decision {
            CheckDecision::Forward { plan, cache } => {
                if !Self::apply(&plan) {
                    // A half-applied rewrite must never be forwarded.
                    host::log(
                        LogLevel::Error,
                        "ptk filter: could not rewrite request headers",
                    );
                    self.store_unavailable(&shared, &waiting.pending);
                    return;
                }
                shared.denies.borrow_mut().forget(cache_key);
                if let (true, Some(entry)) = (shared.config.cache.enabled, cache) {
                    cache::store(cache_key, &entry, now);
                }
                shared.metrics.allowed();
                if host::resume_request().is_err() {
                    host::log(LogLevel::Error, "ptk filter: could not resume a request");
                }
            }
            CheckDecision::Refuse { refused, cache } => {
                // The token is fine (keep its verdict and lease); this request is not.
                shared.denies.borrow_mut().forget(cache_key);
                if let (true, Some(entry)) = (shared.config.cache.enabled, cache) {
                    cache::store(cache_key, &entry, now);
                }
                shared.metrics.refused(refused.refusal);
                self.reply(&refused.reply);
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
                } else {
                    shared
                        .denies
                        .borrow_mut()
                        .put(cache_key, refused.refusal, now);
                }
                if let (Refusal::RateLimited { .. }, true) =
                    (refused.refusal, shared.config.cache.enabled)
                {
                    // The budget may be out on a lease that another request is merging into
                    // the cache right now: spend from it if it has landed, else confirm the
                    // verdict with one more check (which gives the lease time to land).
                    if let Lookup::Hit(key) = cache::spend_one(&shared.pool, cache_key, now) {
                        if self.forward_cached(&shared, &waiting.pending, &waiting.head, &key)
                            && host::resume_request().is_err()
                        {
                            host::log(LogLevel::Error, "ptk filter: could not resume a request");
                        }
                        return;
                    }
                    if !waiting.confirming {
                        let mut pending = waiting.pending;
                        // Units handed back on the first check must not be credited twice.
                        pending.returned = None;
                        self.start_check(&shared, pending, waiting.head, true);
                        return;
                    }
                }
                shared.metrics.refused(refused.refusal);
                self.reply(&refused.reply);
            }
        }
    }
}

impl HttpContext for PtkHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let unavailable = Refusal::StoreUnavailable.reply(ErrorShape::Openai);
        let Some(shared) = self.shared.clone() else {
            // No valid configuration: never forward.
            return self.reply(&unavailable);
        };
        let Ok(headers) = host::request_headers() else {
            host::log(
                LogLevel::Error,
                "ptk filter: could not read request headers",
            );
            return self.reply(&unavailable);
        };
        let head = RequestHead::new(headers);
        match decide_headers(&shared.config, &head) {
            HeadersDecision::Preflight(reply) => self.reply(&reply),
            HeadersDecision::Passthrough(plan) => {
                if Self::apply(&plan) {
                    Action::Continue
                } else {
                    self.reply(&unavailable)
                }
            }
            HeadersDecision::Reply(refused) => {
                shared.metrics.refused(refused.refusal);
                self.reply(&refused.reply)
            }
            HeadersDecision::Check(pending) => self.check(&shared, pending, head),
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(origin) = self.cors_origin.take() {
            let vary = host::response_header("vary");
            for (name, value) in decoration(&origin, vary.as_deref()) {
                if host::set_response_header(&name, &value).is_err() {
                    host::log(LogLevel::Warn, "ptk filter: could not set a CORS header");
                }
            }
        }
        Action::Continue
    }
}
