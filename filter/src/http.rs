//! The per-request context: headers -> callout -> forward or reply; CORS on the way back.

use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel};
use ptk_filter_core::cache::Entry;
use ptk_filter_core::cors::decoration;
use ptk_filter_core::guess_throttle::{client_key, pair_fingerprint};
use ptk_filter_core::log_path::redacted_path;
use ptk_filter_core::mint_watch::MintWatch;
use ptk_filter_core::retry::should_retry;
use ptk_filter_core::shared_cache::{spend_one, store, Lookup};
use ptk_filter_core::uploads::UploadWatch;
use ptk_filter_core::{
    check_call, decide_check_response, decide_headers, CheckDecision, ErrorShape, HeadersDecision,
    LocalReply, PendingCheck, Refusal, Refused, RequestHead, RewritePlan,
};

use crate::host::{self, HostSharedData};
use crate::response::{self, Guard};
use crate::root::Worker;

// Requests that carry only a credential bound to a proxy token (upload legs, client secrets).
mod bound;
// OpenAI Realtime client secrets (minting responses read, uses forwarded untouched).
mod client_secrets;
// Gemini resumable uploads (keyless legs, upload URLs in responses): kept apart.
mod uploads;

/// A request waiting on its check: the callout's token id, the decision state and the head.
struct Waiting {
    token_id: u32,
    pending: PendingCheck,
    head: RequestHead,
    /// Who sent it, for the guess throttle.
    client: Client,
    /// This is the second check of a rate-limited request (see `on_http_call_response`).
    confirming: bool,
    /// How many times this check was sent again after getting no verdict (`retry`).
    retries_done: u8,
    /// Host time (ms) the check was sent: a verdict's TTL runs from here, not from its
    /// arrival, so a slow answer cannot stretch how long a revoked token keeps working.
    sent_ms: u64,
}

/// One HTTP request.
pub struct PtkHttp {
    /// This request's context id (to close it if its token is revoked while it is open).
    context_id: u32,
    worker: Option<Rc<Worker>>,
    waiting: Option<Waiting>,
    /// `Origin` of a forwarded non-upgrade request: its response gets CORS headers.
    cors_origin: Option<String>,
    /// A forwarded request taking part in a Gemini upload: its response's upload URLs.
    upload_watch: Option<UploadWatch>,
    /// A bound request (upload leg, client secret) waiting on the revalidation of its token.
    bound: Option<bound::WaitingBound>,
    /// A response that mints an OpenAI client secret, copied as it passes.
    mint: Option<Box<MintWatch>>,
    /// The response of a request forwarded with a real key, until its status is known.
    guard: Option<Box<Guard>>,
}

/// The guess throttle's view of a request's sender (empty when the throttle is off).
struct Client {
    /// The throttle key of the source address.
    key: String,
    /// The (address, token) known-good fingerprint.
    pair: u64,
}

impl Client {
    /// Reads the source address (one host call) only when the throttle is on.
    fn of(worker: &Worker, token_hash: &str) -> Client {
        if !worker.config.guess_throttle.enabled {
            return Client {
                key: String::new(),
                pair: 0,
            };
        }
        let key = client_key(&host::source_address());
        let pair = pair_fingerprint(&key, token_hash);
        Client { key, pair }
    }

    /// Remembers that this sender used a valid token (no-op with the throttle off).
    fn allowed(&self, worker: &Worker) {
        if self.pair != 0 {
            worker.known.borrow_mut().insert(&HostSharedData, self.pair);
        }
    }
}

/// Whether a refusal reflects the token itself (a guess that missed), so it counts against the
/// client address; rate limits and infrastructure failures do not.
fn is_guess(refusal: Refusal) -> bool {
    matches!(
        refusal,
        Refusal::Invalid | Refusal::Expired | Refusal::ProviderNotAllowed
    )
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

/// Spends one cached unit for the request (this worker's pool, then shared data).
fn spend_cached(worker: &Worker, cache_key: &str, now: u64) -> Lookup {
    spend_one(
        &HostSharedData,
        &mut worker.pool.borrow_mut(),
        cache_key,
        now,
    )
}

impl PtkHttp {
    /// A context for one request; `worker` is `None` if the plugin has no valid config.
    pub fn new(context_id: u32, worker: Option<Rc<Worker>>) -> Self {
        PtkHttp {
            context_id,
            worker,
            waiting: None,
            cors_origin: None,
            upload_watch: None,
            bound: None,
            mint: None,
            guard: None,
        }
    }

    fn reply(&mut self, reply: &LocalReply) -> Action {
        // Local replies carry their own CORS headers; never decorate them twice.
        self.cors_origin = None;
        self.upload_watch = None;
        self.mint = None;
        // Answered here, never forwarded: its `:path` is only logged, so log no secret.
        redact_logged_path();
        if host::send_reply(reply.status, &reply.headers, &reply.body).is_err() {
            host::log(LogLevel::Error, "ptk filter: could not send a local reply");
        }
        Action::Pause
    }

    fn token_service_unavailable(&mut self, worker: &Worker, pending: &PendingCheck) -> Action {
        worker.metrics.callout_failed();
        worker.metrics.refused(Refusal::TokenServiceUnavailable);
        self.reply(&pending.refuse(Refusal::TokenServiceUnavailable).reply)
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

    /// Answers from this worker's refusal memory, its guess throttle or the shared verdict
    /// cache when it can, otherwise asks the token-service.
    fn check(&mut self, worker: &Worker, mut pending: PendingCheck, head: RequestHead) -> Action {
        let now = host::now_ms();
        let remembered = worker.denies.borrow().get(&pending.cache_key, now);
        if let Some(refusal) = remembered {
            worker.metrics.refused(refusal);
            return self.reply(&pending.refuse(refusal).reply);
        }
        // Before any cache lookup: a throttled address learns nothing about a guessed token.
        let client = Client::of(worker, &pending.hash);
        let throttled = worker.throttle.borrow_mut().throttled(&client.key, now);
        if let Some(retry_after_s) = throttled {
            if !worker
                .known
                .borrow_mut()
                .contains(&HostSharedData, client.pair)
            {
                let refusal = Refusal::Throttled { retry_after_s };
                worker.metrics.refused(refusal);
                return self.reply(&pending.refuse(refusal).reply);
            }
        }
        if worker.config.cache.enabled {
            match spend_cached(worker, &pending.cache_key, now) {
                Lookup::Hit(key) => {
                    return if self.forward_cached(worker, &pending, &head, &key) {
                        client.allowed(worker);
                        Action::Continue
                    } else {
                        Action::Pause
                    };
                }
                Lookup::Miss(returned) => pending.returned = returned,
            }
        }
        self.start_check(worker, pending, head, client, false, 0)
    }

    /// Rewrites the request with a real key from the cache and counts it; `false` (after
    /// answering) when the final guard refuses it (400) or the rewrite could not be applied
    /// (503): neither may be forwarded.
    fn forward_cached(
        &mut self,
        worker: &Worker,
        pending: &PendingCheck,
        head: &RequestHead,
        key: &str,
    ) -> bool {
        let plan = match pending.allow(&worker.config, head, key) {
            Ok(plan) => plan,
            // A proxy token would still go upstream: refuse (400), never forward.
            Err(refused) => {
                worker.metrics.refused(refused.refusal);
                self.reply(&refused.reply);
                return false;
            }
        };
        if !Self::apply(&plan) {
            host::log(
                LogLevel::Error,
                "ptk filter: could not rewrite request headers",
            );
            self.token_service_unavailable(worker, pending);
            return false;
        }
        self.guard = Some(Box::new(Guard::start(pending, head, key)));
        worker.metrics.cache_hit();
        worker.metrics.allowed();
        worker.activity.borrow_mut().record(&pending.hash);
        // Known valid now; the next tick reads the cached verdict's own validity.
        self.opened(worker, pending, host::now_ms());
        self.cors_origin = pending.origin.clone();
        true
    }

    fn start_check(
        &mut self,
        worker: &Worker,
        pending: PendingCheck,
        head: RequestHead,
        client: Client,
        confirming: bool,
        retries_done: u8,
    ) -> Action {
        let (call_headers, call_body) =
            check_call(&worker.config, worker.secret.expose(), &pending);
        let ts = &worker.config.token_service;
        let timeout = Duration::from_millis(ts.timeout_ms);
        let sent_ms = host::now_ms();
        match host::dispatch(&ts.cluster, &call_headers, &call_body, timeout) {
            Ok(token_id) => {
                // The guess throttle counts a request once, whatever its number of callouts.
                if !confirming && retries_done == 0 {
                    worker
                        .throttle
                        .borrow_mut()
                        .checking(&client.key, client.pair, sent_ms);
                }
                self.cors_origin = pending.origin.clone();
                self.waiting = Some(Waiting {
                    token_id,
                    pending,
                    head,
                    client,
                    confirming,
                    retries_done,
                    sent_ms,
                });
                Action::Pause
            }
            Err(status) => {
                host::log(
                    LogLevel::Warn,
                    &format!("ptk filter: could not start the token-service check ({status:?})"),
                );
                self.token_service_unavailable(worker, &pending)
            }
        }
    }
}

impl PtkHttp {
    /// Registers the forwarded request, so that a revocation reaches it while it is open.
    fn opened(&self, worker: &Worker, pending: &PendingCheck, valid_until_ms: u64) {
        if worker.config.streams.revalidate {
            worker.streams.borrow_mut().open(
                self.context_id,
                &pending.cache_key,
                &pending.hash,
                pending.identified.provider,
                valid_until_ms,
            );
        }
    }

    /// The token-service allowed: rewrite, cache the grant, resume.
    fn on_allowed(
        &mut self,
        worker: &Worker,
        waiting: &Waiting,
        plan: &RewritePlan,
        cache: Option<Entry>,
        now: u64,
    ) {
        if !Self::apply(plan) {
            // A half-applied rewrite must never be forwarded.
            host::log(
                LogLevel::Error,
                "ptk filter: could not rewrite request headers",
            );
            self.token_service_unavailable(worker, &waiting.pending);
            return;
        }
        self.guard = Guard::from_plan(&waiting.pending, &waiting.head, plan).map(Box::new);
        let cache_key = &waiting.pending.cache_key;
        worker.denies.borrow_mut().forget(cache_key);
        waiting.client.allowed(worker);
        let valid_until = cache.as_ref().map_or(now, |e| e.valid_until_ms);
        if let (true, Some(entry)) = (worker.config.cache.enabled, cache) {
            store(&HostSharedData, worker.anchor.get(), cache_key, &entry, now);
        }
        self.opened(worker, &waiting.pending, valid_until);
        worker.metrics.allowed();
        if host::resume_request().is_err() {
            host::log(LogLevel::Error, "ptk filter: could not resume a request");
        }
    }

    /// The token-service refused, or could not be asked: remember, count, maybe confirm a
    /// rate limit once, then answer locally.
    fn on_refused(&mut self, worker: &Worker, waiting: Waiting, refused: Refused, now: u64) {
        let cache_key = &waiting.pending.cache_key;
        worker
            .denies
            .borrow_mut()
            .put(cache_key, refused.refusal, now);
        if let (Refusal::RateLimited { .. }, true) = (refused.refusal, worker.config.cache.enabled)
        {
            // The budget may be out on a lease that another request is merging into the cache
            // right now: spend from it if it has landed, else confirm the verdict with one more
            // check (which gives the lease time to land).
            if let Lookup::Hit(key) = spend_cached(worker, cache_key, now) {
                if self.forward_cached(worker, &waiting.pending, &waiting.head, &key)
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
                self.start_check(worker, pending, waiting.head, waiting.client, true, 0);
                return;
            }
        }
        worker.metrics.refused(refused.refusal);
        self.reply(&refused.reply);
    }
}

impl PtkHttp {
    /// The check got no verdict (no response, timeout, 5xx): send it once more; the cluster's
    /// load balancer, with the failed replica ejected or unhealthy, picks another one.
    fn retry_check(&mut self, worker: &Worker, waiting: Waiting, status: Option<u16>) {
        worker.metrics.callout_retried();
        host::log(
            LogLevel::Warn,
            &format!(
                "ptk filter: token-service check got no verdict (status {status:?}); retrying"
            ),
        );
        let mut pending = waiting.pending;
        // The failed replica may have credited the units handed back before it died: never
        // credit them twice (they are lost instead, which only errs on the strict side).
        pending.returned = None;
        self.start_check(
            worker,
            pending,
            waiting.head,
            waiting.client,
            waiting.confirming,
            waiting.retries_done.saturating_add(1),
        );
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
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(worker) = self.worker.clone() else {
            return;
        };
        if self.bound_answered(&worker, token_id, body_size) {
            return;
        }
        // Only the callout this request started may decide it.
        let Some(waiting) = self.waiting.take_if(|w| w.token_id == token_id) else {
            return;
        };
        let status = host::call_response_status();
        if should_retry(
            status,
            waiting.retries_done,
            worker.config.token_service.retries,
        ) {
            self.retry_check(&worker, waiting, status);
            return;
        }
        let body = host::call_response_body(body_size);
        let now = host::now_ms();
        let decision = decide_check_response(
            &worker.config,
            &waiting.head,
            &waiting.pending,
            status,
            body.as_deref(),
            waiting.sent_ms,
        );
        if !waiting.confirming {
            let guess_missed = matches!(
                &decision,
                CheckDecision::Reply { refused, callout_failed: false } if is_guess(refused.refusal)
            );
            worker.throttle.borrow_mut().checked(
                &waiting.client.key,
                waiting.client.pair,
                guess_missed,
                now,
            );
        }
        match decision {
            CheckDecision::Forward { plan, cache } => {
                self.on_allowed(&worker, &waiting, &plan, cache, now);
            }
            CheckDecision::Refuse { refused, cache } => {
                // The token is fine (keep its verdict and lease); this request is not.
                let cache_key = &waiting.pending.cache_key;
                worker.denies.borrow_mut().forget(cache_key);
                waiting.client.allowed(&worker);
                if let (true, Some(entry)) = (worker.config.cache.enabled, cache) {
                    store(&HostSharedData, worker.anchor.get(), cache_key, &entry, now);
                }
                worker.metrics.refused(refused.refusal);
                self.reply(&refused.reply);
            }
            CheckDecision::Reply {
                refused,
                callout_failed: true,
            } => {
                worker.metrics.callout_failed();
                host::log(
                    LogLevel::Warn,
                    &format!("ptk filter: token-service check failed (status {status:?})"),
                );
                worker.metrics.refused(refused.refusal);
                self.reply(&refused.reply);
            }
            CheckDecision::Reply {
                refused,
                callout_failed: false,
            } => self.on_refused(&worker, waiting, refused, now),
        }
    }
}

impl HttpContext for PtkHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let unavailable = Refusal::TokenServiceUnavailable.reply(ErrorShape::Openai);
        let Some(worker) = self.worker.clone() else {
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
        match decide_headers(&worker.config, &head) {
            HeadersDecision::Preflight(reply) => self.reply(&reply),
            HeadersDecision::Passthrough(plan) => {
                if Self::apply(&plan) {
                    Action::Continue
                } else {
                    self.reply(&unavailable)
                }
            }
            HeadersDecision::Reply(refused) => {
                worker.metrics.refused(refused.refusal);
                self.reply(&refused.reply)
            }
            HeadersDecision::Check(pending) => {
                self.watch_upload(&worker, &head, &pending);
                self.watch_mint(&worker, &head, &pending);
                self.check(&worker, pending, head)
            }
            HeadersDecision::UploadLeg(leg) => self.upload_leg(&worker, leg, head),
            HeadersDecision::ClientSecret(secret) => self.client_secret(&worker, secret, head),
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let (Some(guard), Some(worker)) = (self.guard.as_mut(), self.worker.as_ref()) {
            match guard.on_headers(&worker.response_metrics) {
                response::Headers::Pass => self.guard = None,
                response::Headers::Inspect => {}
                // The filter answered in the provider's place (CORS included).
                response::Headers::Replaced => {
                    self.guard = None;
                    self.cors_origin = None;
                    self.mint = None;
                    return Action::Pause;
                }
            }
        }
        self.upload_response();
        self.mint_headers();
        if let Some(origin) = self.cors_origin.take() {
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
        // Every response below 400 dropped its guard at the headers (an accepted WebSocket keeps
        // it for its first frames only): nothing to do, at once.
        match (self.guard.as_mut(), self.worker.as_ref()) {
            (Some(guard), Some(worker)) => {
                let action = guard.on_body(&worker.response_metrics, body_size, end_of_stream);
                if guard.done() {
                    self.guard = None;
                }
                action
            }
            _ => Action::Continue,
        }
    }
}
