//! A request's flow up to its check: the headers decided (`pipeline::decide_headers`), then for
//! a token the worker's refusal memory, the guess throttle, the lease pool and shared data, and
//! only then the check callout.

use crate::budget::grants::take_rest;
use crate::dialect::{Dialect, ErrorShape};
use crate::flow::access_fields::log_forwarded;
use crate::flow::bound::WaitingBound;
use crate::flow::counts::Counter;
use crate::flow::error_watch::{key_watch, ErrorWatch};
use crate::flow::sender::Sender;
use crate::flow::{apply, Host, Level, Step, Worker};
use crate::mint_watch::{mints, MintWatch};
use crate::open_streams::limits_tag;
use crate::pipeline::{check_call, decide_headers, HeadersDecision, PendingCheck};
use crate::refusal::{LocalReply, Refusal};
use crate::request::RequestHead;
use crate::upload_sessions;
use crate::uploads::{watch, UploadWatch};
use crate::verdict_cache::Grant;
use crate::verdict_store::{spend_one, Lookup};

/// One request's flow: what it waits on and what its response needs.
#[derive(Debug)]
pub struct RequestFlow {
    /// The request's context id (to close it if its token is revoked while it is open).
    pub(super) context_id: u32,
    /// A check in flight.
    pub(super) waiting: Option<Waiting>,
    /// A bound request (upload leg, client secret) waiting on the revalidation of its token.
    pub(super) bound: Option<WaitingBound>,
    /// `Origin` of a forwarded request: its response gets CORS headers.
    pub(super) cors_origin: Option<String>,
    /// A forwarded request taking part in a Gemini upload: its response's upload URLs.
    pub(super) upload_watch: Option<UploadWatch>,
    /// A response that mints an OpenAI client secret, copied as it passes.
    pub(super) mint: Option<Box<MintWatch>>,
    /// The response of a request forwarded with a real key, until its status is known.
    pub(super) error_watch: Option<Box<ErrorWatch>>,
    /// A metered call's usage, until its response ends (`metering.rs`).
    pub(super) usage: Option<Box<super::metering::UsageWatch>>,
    /// An OpenAI request that may be replayed through the geo fallback (`geo.rs`).
    pub(super) geo: Option<Box<super::geo::GeoWatch>>,
    /// A limited token's request held by the hold filter until its body's model is read
    /// (`model_gate.rs`).
    pub(super) model_gate: Option<Box<crate::models::BodyGate>>,
    /// The request ended at its headers (no body follows): a body gate would never run.
    pub(super) bodiless: bool,
    /// A budgeted token's request: its estimate, to spend or spent (`budget.rs`).
    pub(super) budget: Option<super::budget::Budget>,
    /// The renewal of the budget grant this request's spend claimed (`grant_renewal.rs`).
    pub(super) renewal: Option<super::grant_renewal::Renewal>,
}

/// A request waiting on its check: the callout's token id, the decision state and the head.
#[derive(Debug)]
pub(super) struct Waiting {
    pub(super) token_id: u32,
    pub(super) pending: PendingCheck,
    pub(super) head: RequestHead,
    /// Who sent it, for the guess throttle.
    pub(super) sender: Sender,
    /// This is the second check of a rate-limited request (see `verdict.rs`).
    pub(super) confirming: bool,
    /// How many times this check was sent again after getting no verdict (`retry`).
    pub(super) retries_done: u8,
    /// Host time (ms) the check was sent: a verdict's TTL runs from here, not from its
    /// arrival, so a slow answer cannot stretch how long a revoked token keeps working.
    pub(super) sent_ms: u64,
}

impl RequestFlow {
    /// A flow for the request of context `context_id`.
    pub fn new(context_id: u32) -> RequestFlow {
        RequestFlow {
            context_id,
            waiting: None,
            bound: None,
            cors_origin: None,
            upload_watch: None,
            mint: None,
            error_watch: None,
            usage: None,
            geo: None,
            model_gate: None,
            bodiless: false,
            budget: None,
            renewal: None,
        }
    }

    /// The request headers are in: answer, forward or call out.
    pub fn on_request_headers(
        &mut self,
        worker: &Worker,
        host: &mut impl Host,
        head: RequestHead,
    ) -> Step {
        match decide_headers(&worker.config, &head) {
            HeadersDecision::Preflight(reply) => self.reply(reply),
            HeadersDecision::Passthrough(plan) => {
                if apply(host, &plan) {
                    Step::Forward
                } else {
                    self.reply(Refusal::TokenServiceUnavailable.reply(ErrorShape::Openai))
                }
            }
            HeadersDecision::Reply(refused) => {
                worker.counts.refused(refused.refusal);
                self.reply(refused.reply)
            }
            HeadersDecision::Check(pending) => {
                let provider = pending.identified.provider;
                self.upload_watch = watch(&worker.config, &head, &pending.hash, provider);
                // Only with pass-through on is a secret ever accepted, so worth binding.
                let mint = worker.config.ephemeral.pass_through
                    && pending.identified.dialect == Dialect::Openai
                    && mints(&head);
                self.mint = mint.then(|| Box::new(MintWatch::new(&pending.hash)));
                self.check(worker, host, pending, head)
            }
            HeadersDecision::UploadLeg(leg) => {
                let now = host.now_ms();
                let uploads = &worker.config.uploads;
                let session = upload_sessions::lookup(host.shared(), uploads, &leg.upload_id, now);
                self.bound_request(worker, host, leg.into(), session, head)
            }
            HeadersDecision::ClientSecret(secret) => {
                let now = host.now_ms();
                let binding = secret.lookup(host.shared(), &worker.config.ephemeral, now);
                self.bound_request(worker, host, secret.into(), binding, head)
            }
        }
    }

    /// Answers locally; a local reply carries its own CORS headers and has no response to
    /// watch.
    pub(super) fn reply(&mut self, reply: LocalReply) -> Step {
        self.cors_origin = None;
        self.upload_watch = None;
        self.mint = None;
        Step::Reply(reply)
    }

    /// The token-service could not be asked or the rewrite failed: 503, never forward.
    pub(super) fn unavailable(&mut self, worker: &Worker, pending: &PendingCheck) -> Step {
        worker.counts.add(Counter::CalloutFailed);
        worker.counts.refused(Refusal::TokenServiceUnavailable);
        self.reply(pending.refuse(Refusal::TokenServiceUnavailable).reply)
    }

    /// Answers from this worker's refusal memory, its guess throttle or the verdict cache
    /// when it can, otherwise asks the token-service.
    fn check(
        &mut self,
        worker: &Worker,
        host: &mut impl Host,
        mut pending: PendingCheck,
        head: RequestHead,
    ) -> Step {
        let now = host.now_ms();
        let remembered = worker.denies.borrow().get(&pending.cache_key, now);
        if let Some(refusal) = remembered {
            worker.counts.refused(refusal);
            return self.reply(pending.refuse(refusal).reply);
        }
        // Before any cache lookup: a throttled address learns nothing about a guessed token.
        let sender = Sender::of_token(worker, host, &pending.hash);
        let throttled = worker.throttle.borrow_mut().throttled(&sender.key, now);
        if let Some(retry_after_s) = throttled {
            if !worker
                .known
                .borrow_mut()
                .contains(host.shared(), sender.pair)
            {
                let refusal = Refusal::Throttled { retry_after_s };
                worker.counts.refused(refusal);
                return self.reply(pending.refuse(refusal).reply);
            }
        }
        if worker.config.cache.enabled {
            let mut pool = worker.pool.borrow_mut();
            match spend_one(host.shared(), &mut pool, &pending.cache_key, now) {
                Lookup::Hit(grant) => {
                    drop(pool);
                    let step = self.forward_cached(worker, host, &pending, &head, &grant);
                    if matches!(step, Step::Forward) {
                        sender.allowed(worker, host);
                    }
                    return step;
                }
                Lookup::Miss(returned) => {
                    pending.returned = returned;
                    // The check's grant will replace the one of the expired verdict: its
                    // rest goes back on the check, not left reserved until it lapses.
                    pending.releases = take_rest(host.shared(), &pending.cache_key)
                        .into_iter()
                        .collect();
                }
            }
        }
        let waiting = Waiting {
            token_id: 0,
            pending,
            head,
            sender,
            confirming: false,
            retries_done: 0,
            sent_ms: 0,
        };
        self.start_check(worker, host, waiting)
    }

    /// Rewrites the request with a real key from the cache and counts it; a reply instead
    /// when the token's limits refuse it (403), the final guard refuses it (400) or the
    /// rewrite could not be applied (503): none may be forwarded.
    pub(super) fn forward_cached(
        &mut self,
        worker: &Worker,
        host: &mut impl Host,
        pending: &PendingCheck,
        head: &RequestHead,
        grant: &Grant,
    ) -> Step {
        let gated = pending.gate(&worker.config, head, grant.limits.as_ref());
        let hold = match gated.and_then(|hold| self.body_to_come(hold)) {
            Ok(hold) => hold,
            // Refused by the token's limits (403): never forward.
            Err(refused) => {
                self.refused_request(worker, host, pending, head, &refused);
                return self.reply(refused.reply);
            }
        };
        let provider = pending.identified.provider;
        let chosen = match worker.choose_key(host, provider, &grant.key) {
            Ok(chosen) => chosen,
            // Every pool key is cooling down (429) or refused (503): not forwarded.
            Err(refusal) => {
                worker.counts.refused(refusal);
                return self.reply(pending.refuse(refusal).reply);
            }
        };
        let key = chosen.key.as_str();
        let plan = match pending.allow(&worker.config, head, key) {
            Ok(plan) => {
                self.model_gate = hold;
                plan
            }
            // A proxy token would still go upstream: refuse (400), never forward.
            Err(refused) => {
                self.refused_request(worker, host, pending, head, &refused);
                return self.reply(refused.reply);
            }
        };
        if !apply(host, &plan) || !self.mark_for_hold(host) {
            host.log(
                Level::Error,
                "ptk filter: could not rewrite request headers",
            );
            return self.unavailable(worker, pending);
        }
        let mut watch = ErrorWatch::start(key_watch(pending, head, key), host);
        watch.pool_key = chosen.id;
        self.error_watch = Some(Box::new(watch));
        log_forwarded(host, pending);
        self.start_metering(worker, host, pending, head);
        self.start_geo(worker, host, pending, head, &plan);
        worker.counts.add(Counter::CacheHits);
        worker.counts.add(Counter::Allowed);
        worker
            .counts
            .add(Counter::AllowedBy(pending.identified.provider));
        worker.activity.borrow_mut().record(&pending.hash);
        // Known valid now; the next tick reads the cached verdict's own validity.
        let tag = limits_tag(grant.limits.as_ref());
        self.opened(worker, pending, host.now_ms(), tag);
        self.cors_origin.clone_from(&pending.origin);
        let budgeted = grant.limits.as_ref().is_some_and(|l| l.budget.is_some());
        self.budget_gate(worker, host, pending, head, budgeted, None)
    }

    /// Sends the check (`waiting` names the attempt); a 503 if it cannot be sent.
    pub(super) fn start_check(
        &mut self,
        worker: &Worker,
        host: &mut impl Host,
        mut waiting: Waiting,
    ) -> Step {
        waiting.pending.grant_id = super::proposed_grant::propose(host);
        let call = check_call(&worker.config, worker.secret.expose(), &waiting.pending);
        let ts = &worker.config.token_service;
        let sent_ms = host.now_ms();
        match host.dispatch(&ts.cluster, &call, ts.timeout_ms) {
            Ok(token_id) => {
                // The guess throttle counts a request once, whatever its number of callouts.
                if !waiting.confirming && waiting.retries_done == 0 {
                    let sender = &waiting.sender;
                    let mut throttle = worker.throttle.borrow_mut();
                    throttle.checking(&sender.key, sender.pair, sent_ms);
                }
                self.cors_origin.clone_from(&waiting.pending.origin);
                waiting.token_id = token_id;
                waiting.sent_ms = sent_ms;
                self.waiting = Some(waiting);
                Step::CallOut { token_id }
            }
            Err(status) => {
                // Never sent: what it was giving back goes in the next report instead.
                super::grant_renewal::release_all(worker, &waiting.pending.releases);
                host.log(
                    Level::Warn,
                    &format!("ptk filter: could not start the token-service check ({status})"),
                );
                self.unavailable(worker, &waiting.pending)
            }
        }
    }

    /// Registers the forwarded request, so that a revocation (or a change of the limits it
    /// was checked against, [`limits_tag`]) reaches it while it is open.
    pub(super) fn opened(
        &self,
        worker: &Worker,
        pending: &PendingCheck,
        valid_until_ms: u64,
        limits_tag: u64,
    ) {
        if worker.config.streams.revalidate {
            worker.streams.borrow_mut().open(
                self.context_id,
                &pending.cache_key,
                &pending.hash,
                pending.identified.provider,
                valid_until_ms,
                Some(limits_tag),
            );
        }
    }
}
