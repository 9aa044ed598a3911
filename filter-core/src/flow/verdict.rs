//! A request's flow after its check callout: retry a check that got no verdict, forward an
//! allow (merging its lease into the verdict cache), confirm a rate limit once against the
//! cache and the token-service, answer everything else locally.

use crate::flow::access_fields::log_forwarded;
use crate::flow::check::Waiting;
use crate::flow::counts::Counter;
use crate::flow::error_watch::watch_plan;
use crate::flow::proposed_grant::abandon;
use crate::flow::{apply, Host, Level, RequestFlow, Step, Worker};
use crate::pipeline::{decide_check_response, CheckDecision, Refused};
use crate::plan::RewritePlan;
use crate::refusal::Refusal;
use crate::retry::should_retry;
use crate::verdict_cache::CachedVerdict;
use crate::verdict_store::{spend_one, store, Lookup};

/// Whether a refusal reflects the token itself (a guess that missed), so it counts against the
/// client address; rate limits and infrastructure failures do not.
fn is_guess(refusal: Refusal) -> bool {
    matches!(
        refusal,
        Refusal::Invalid | Refusal::Expired | Refusal::ProviderNotAllowed
    )
}

impl RequestFlow {
    /// Whether this request waits on the callout `token_id` (only that callout may decide it).
    pub fn expects(&self, token_id: u32) -> bool {
        self.waiting
            .as_ref()
            .is_some_and(|w| w.token_id == token_id)
            || self.bound.as_ref().is_some_and(|w| w.token_id == token_id)
    }

    /// The callout `token_id` came back with `status` (`None`: no response at all, a
    /// transport failure) and `body`. `None` when it is not this request's callout.
    pub fn on_callout_response(
        &mut self,
        worker: &Worker,
        host: &mut impl Host,
        token_id: u32,
        status: Option<u16>,
        body: Option<&[u8]>,
    ) -> Option<Step> {
        if let Some(step) = self.bound_answered(worker, host, token_id, status, body) {
            return Some(step);
        }
        let mut waiting = self.waiting.take_if(|w| w.token_id == token_id)?;
        // Released below unless this answer's grant is installed.
        let proposed = waiting.pending.grant_id.take();
        let retries = worker.config.token_service.retries;
        if should_retry(status, waiting.retries_done, retries) {
            abandon(worker, proposed);
            return Some(self.retry_check(worker, host, waiting, status));
        }
        let now = host.now_ms();
        let provider = waiting.pending.identified.provider;
        let decision = decide_check_response(
            &worker.config,
            &waiting.head,
            &waiting.pending,
            status,
            body,
            waiting.sent_ms,
            |stored| worker.choose_key(host, provider, stored),
        );
        if !waiting.confirming {
            let guess_missed = matches!(
                &decision,
                CheckDecision::Reply { refused, callout_failed: false } if is_guess(refused.refusal)
            );
            let sender = &waiting.sender;
            let mut throttle = worker.throttle.borrow_mut();
            throttle.checked(&sender.key, sender.pair, guess_missed, now);
        }
        // Whether the grant the check may have reserved will not be installed: an answer
        // that got no verdict, or an allow refused here. A deny holds nothing (the service
        // releases a grant it reserved before it denies) and neither does an unbudgeted
        // allow, so neither adds a release to the report (an invalid-token guesser's denies
        // would otherwise fill it).
        let mut lost = false;
        let step = match self.bodiless_refused(decision) {
            CheckDecision::Forward {
                plan,
                cache,
                key_id,
                hold,
                grant,
                limits_tag,
            } => {
                self.model_gate = hold;
                let allowed = (cache, limits_tag);
                let step = self.on_allowed(worker, host, &waiting, &plan, allowed, now);
                if let Some(watch) = self.error_watch.as_mut() {
                    watch.pool_key = key_id;
                }
                match step {
                    Step::Forward => {
                        // Installed by the gate (released by it if it cannot be stored).
                        let (pending, head) = (&waiting.pending, &waiting.head);
                        self.budget_gate(worker, host, pending, head, grant.is_some(), grant)
                    }
                    other => {
                        lost = grant.is_some();
                        other
                    }
                }
            }
            CheckDecision::Refuse { refused, cache } => {
                // The token is fine (keep its verdict and lease); this request is not.
                lost = true;
                let cache_key = &waiting.pending.cache_key;
                worker.denies.borrow_mut().forget(cache_key);
                waiting.sender.allowed(worker, host);
                if let (true, Some(entry)) = (worker.config.cache.enabled, cache) {
                    store(host.shared(), worker.anchor.get(), cache_key, &entry, now);
                }
                self.refused_request(worker, host, &waiting.pending, &waiting.head, &refused);
                self.reply(refused.reply)
            }
            CheckDecision::Reply {
                refused,
                callout_failed: true,
            } => {
                lost = true;
                worker.counts.add(Counter::CalloutFailed);
                host.log(
                    Level::Warn,
                    &format!("ptk filter: token-service check failed (status {status:?})"),
                );
                worker.counts.refused(refused.refusal);
                self.reply(refused.reply)
            }
            CheckDecision::Reply {
                refused,
                callout_failed: false,
            } => self.on_refused(worker, host, waiting, refused, now),
        };
        if lost {
            abandon(worker, proposed);
        }
        Some(step)
    }

    /// The token-service allowed: rewrite, cache the grant, forward. `allowed`: the verdict
    /// to cache (`None`: not cacheable) and the tag of its limits.
    fn on_allowed(
        &mut self,
        worker: &Worker,
        host: &mut impl Host,
        waiting: &Waiting,
        plan: &RewritePlan,
        (cache, limits_tag): (Option<CachedVerdict>, u64),
        now: u64,
    ) -> Step {
        if !apply(host, plan) || !self.mark_for_hold(host) {
            // A half-applied rewrite must never be forwarded.
            host.log(
                Level::Error,
                "ptk filter: could not rewrite request headers",
            );
            return self.unavailable(worker, &waiting.pending);
        }
        self.error_watch = watch_plan(host, &waiting.pending, &waiting.head, plan);
        log_forwarded(host, &waiting.pending);
        self.start_metering(worker, host, &waiting.pending, &waiting.head);
        self.start_geo(worker, host, &waiting.pending, &waiting.head, plan);
        let cache_key = &waiting.pending.cache_key;
        worker.denies.borrow_mut().forget(cache_key);
        waiting.sender.allowed(worker, host);
        let valid_until = cache.as_ref().map_or(now, |e| e.valid_until_ms);
        if let (true, Some(entry)) = (worker.config.cache.enabled, cache) {
            store(host.shared(), worker.anchor.get(), cache_key, &entry, now);
        }
        self.opened(worker, &waiting.pending, valid_until, limits_tag);
        worker.counts.add(Counter::Allowed);
        worker
            .counts
            .add(Counter::AllowedBy(waiting.pending.identified.provider));
        Step::Forward
    }

    /// The token-service refused: remember, count, maybe confirm a rate limit once, then
    /// answer locally.
    fn on_refused(
        &mut self,
        worker: &Worker,
        host: &mut impl Host,
        mut waiting: Waiting,
        refused: Refused,
        now: u64,
    ) -> Step {
        let cache_key = &waiting.pending.cache_key;
        let mut denies = worker.denies.borrow_mut();
        denies.put(cache_key, refused.refusal, now);
        drop(denies);
        if let (Refusal::RateLimited { .. }, true) = (refused.refusal, worker.config.cache.enabled)
        {
            // The budget may be out on a lease that another request is merging into the cache
            // right now: spend from it if it has landed, else confirm the verdict with one more
            // check (which gives the lease time to land).
            let mut pool = worker.pool.borrow_mut();
            if let Lookup::Hit(grant) = spend_one(host.shared(), &mut pool, cache_key, now) {
                drop(pool);
                let (pending, head) = (&waiting.pending, &waiting.head);
                return self.forward_cached(worker, host, pending, head, &grant);
            }
            drop(pool);
            if !waiting.confirming {
                // Units handed back on the first check must not be credited twice.
                waiting.pending.returned = None;
                waiting.pending.releases.clear();
                waiting.confirming = true;
                waiting.retries_done = 0;
                return self.start_check(worker, host, waiting);
            }
        }
        worker.counts.refused(refused.refusal);
        self.reply(refused.reply)
    }

    /// The check got no verdict (no response, timeout, 5xx): send it once more; the cluster's
    /// load balancer, with the failed replica ejected or unhealthy, picks another one.
    fn retry_check(
        &mut self,
        worker: &Worker,
        host: &mut impl Host,
        mut waiting: Waiting,
        status: Option<u16>,
    ) -> Step {
        worker.counts.add(Counter::CalloutRetried);
        host.log(
            Level::Warn,
            &format!(
                "ptk filter: token-service check got no verdict (status {status:?}); retrying"
            ),
        );
        // The failed replica may have credited the units handed back before it died: never
        // credit them twice (they are lost instead, which only errs on the strict side).
        waiting.pending.returned = None;
        waiting.pending.releases.clear();
        waiting.retries_done = waiting.retries_done.saturating_add(1);
        self.start_check(worker, host, waiting)
    }
}
