//! Requests that carry no proxy token, only a credential the proxy saw issued for one
//! (`bound_table`): a keyless Gemini upload leg, an OpenAI Realtime client secret. One flow for
//! both: the credential's binding (looked up by the caller), the guess throttle, the worker's
//! refusal memory, then the bound token's validity from a fresh cached verdict or a
//! revalidation (`bound_check`, no unit spent), then the forward without any real key,
//! registered as an open request of the bound token so that revoking the token closes it.
//! Nothing here logs a credential.

use crate::bound_check::{
    binding_key, bound_call, bound_verdict, cached_valid_until, BoundVerdict,
};
use crate::bound_table::Binding;
use crate::client_secrets::PendingSecret;
use crate::dialect::Dialect;
use crate::flow::access_fields::log_bound;
use crate::flow::counts::Counter;
use crate::flow::metering::Caller;
use crate::flow::sender::Sender;
use crate::flow::{apply, Host, Level, RequestFlow, Step, Worker};
use crate::pipeline::Refused;
use crate::refusal::Refusal;
use crate::request::RequestHead;
use crate::retry::should_retry;
use crate::uploads::PendingLeg;

/// A request that carries only a bound credential.
#[derive(Debug)]
pub(super) enum Bound {
    /// A keyless leg of a Gemini resumable upload.
    Leg(PendingLeg),
    /// A use of an OpenAI Realtime client secret.
    Secret(PendingSecret),
}

impl From<PendingLeg> for Bound {
    fn from(leg: PendingLeg) -> Bound {
        Bound::Leg(leg)
    }
}

impl From<PendingSecret> for Bound {
    fn from(secret: PendingSecret) -> Bound {
        Bound::Secret(secret)
    }
}

impl Bound {
    fn refuse(&self, refusal: Refusal) -> Refused {
        match self {
            Bound::Leg(leg) => leg.refuse(refusal),
            Bound::Secret(secret) => secret.refuse(refusal),
        }
    }

    /// The refusal of a credential the proxy never saw issued.
    fn unknown(&self) -> Refusal {
        match self {
            Bound::Leg(_) => Refusal::UnknownUpload,
            Bound::Secret(_) => Refusal::UnknownSecret,
        }
    }

    fn what(&self) -> &'static str {
        match self {
            Bound::Leg(_) => "an upload leg",
            Bound::Secret(_) => "a client secret",
        }
    }
}

/// A bound request waiting on the revalidation of its token.
#[derive(Debug)]
pub(super) struct WaitingBound {
    pub(super) token_id: u32,
    bound: Bound,
    binding: Binding,
    head: RequestHead,
    sender: Sender,
    /// How many times this revalidation was sent again after getting no verdict (`retry`).
    retries_done: u8,
}

impl RequestFlow {
    /// Forwards a bound request only for a credential the proxy saw issued (`binding`, as the
    /// caller looked it up), whose token is still valid.
    pub(super) fn bound_request(
        &mut self,
        worker: &Worker,
        host: &mut impl Host,
        bound: Bound,
        binding: Option<Binding>,
        head: RequestHead,
    ) -> Step {
        let now = host.now_ms();
        // An unknown credential is a guess like an unknown token: it counts against the
        // address, and a throttled address gets 429 for any credential but those of its own
        // known-good token.
        let key = Sender::key_of(worker, host);
        let throttled = worker.throttle.borrow_mut().throttled(&key, now);
        let Some(binding) = binding else {
            let refusal = match throttled {
                Some(retry_after_s) => Refusal::Throttled { retry_after_s },
                None => {
                    worker.throttle.borrow_mut().refused(&key, now);
                    bound.unknown()
                }
            };
            return self.refuse_bound(worker, &bound, refusal);
        };
        let sender = Sender::of(key, &binding.token_hash);
        if let Some(retry_after_s) = throttled {
            if !worker
                .known
                .borrow_mut()
                .contains(host.shared(), sender.pair)
            {
                return self.refuse_bound(worker, &bound, Refusal::Throttled { retry_after_s });
            }
        }
        let cache_key = binding_key(&binding);
        let remembered = worker.denies.borrow().get(&cache_key, now);
        if let Some(refusal) = remembered {
            return self.refuse_bound(worker, &bound, refusal);
        }
        let cached = worker
            .config
            .cache
            .enabled
            .then(|| cached_valid_until(host.shared(), &cache_key, now))
            .flatten();
        if let Some(valid_until) = cached {
            let step = self.forward_bound(worker, host, bound, &binding, &head, valid_until);
            if matches!(step, Step::Forward) {
                sender.allowed(worker, host);
            }
            return step;
        }
        let waiting = WaitingBound {
            token_id: 0,
            bound,
            binding,
            head,
            sender,
            retries_done: 0,
        };
        self.revalidate_bound(worker, host, waiting)
    }

    /// Asks the token-service whether the bound token is still valid (no unit charged).
    fn revalidate_bound(
        &mut self,
        worker: &Worker,
        host: &mut impl Host,
        mut waiting: WaitingBound,
    ) -> Step {
        let call = bound_call(&worker.config, worker.secret.expose(), &waiting.binding);
        let ts = &worker.config.token_service;
        match host.dispatch(&ts.cluster, &call, ts.timeout_ms) {
            Ok(token_id) => {
                waiting.token_id = token_id;
                self.bound = Some(waiting);
                Step::CallOut { token_id }
            }
            Err(status) => {
                let what = waiting.bound.what();
                host.log(
                    Level::Warn,
                    &format!("ptk filter: could not start {what} revalidation ({status})"),
                );
                worker.counts.add(Counter::CalloutFailed);
                self.refuse_bound(worker, &waiting.bound, Refusal::TokenServiceUnavailable)
            }
        }
    }

    /// The revalidation of a waiting bound request came back (`None`: the callout is not
    /// one).
    pub(super) fn bound_answered(
        &mut self,
        worker: &Worker,
        host: &mut impl Host,
        token_id: u32,
        status: Option<u16>,
        body: Option<&[u8]>,
    ) -> Option<Step> {
        let mut waiting = self.bound.take_if(|w| w.token_id == token_id)?;
        let retries = worker.config.token_service.retries;
        if should_retry(status, waiting.retries_done, retries) {
            // No verdict (no response, timeout, 5xx): once more, to whichever replica the
            // cluster picks now. A revalidation spends no unit, so nothing is counted twice.
            worker.counts.add(Counter::CalloutRetried);
            waiting.retries_done = waiting.retries_done.saturating_add(1);
            return Some(self.revalidate_bound(worker, host, waiting));
        }
        let now = host.now_ms();
        let WaitingBound {
            bound,
            binding,
            head,
            sender,
            ..
        } = waiting;
        Some(match bound_verdict(&binding, status, body) {
            BoundVerdict::Valid { ttl_ms } => {
                let valid_until = now.saturating_add(ttl_ms);
                let step = self.forward_bound(worker, host, bound, &binding, &head, valid_until);
                if matches!(step, Step::Forward) {
                    sender.allowed(worker, host);
                }
                step
            }
            BoundVerdict::Refused(refusal) => {
                let mut denies = worker.denies.borrow_mut();
                denies.put(&binding_key(&binding), refusal, now);
                drop(denies);
                self.refuse_bound(worker, &bound, refusal)
            }
            BoundVerdict::Failed => {
                worker.counts.add(Counter::CalloutFailed);
                let what = bound.what();
                host.log(
                    Level::Warn,
                    &format!("ptk filter: {what} revalidation failed (status {status:?})"),
                );
                self.refuse_bound(worker, &bound, Refusal::TokenServiceUnavailable)
            }
        })
    }

    /// Rewrites the request (no real key: a leg gets every credential slot emptied, a client
    /// secret stays where the client put it) and lets it go; a reply instead when the final
    /// guard refuses it (400) or the rewrite could not be applied (503): neither may be
    /// forwarded.
    fn forward_bound(
        &mut self,
        worker: &Worker,
        host: &mut impl Host,
        bound: Bound,
        binding: &Binding,
        head: &RequestHead,
        valid_until_ms: u64,
    ) -> Step {
        let upstream = worker.config.upstream(binding.provider);
        let plan = match &bound {
            Bound::Leg(leg) => leg.allow(head, &upstream.authority),
            Bound::Secret(secret) => secret.allow(head, upstream),
        };
        let plan = match plan {
            Ok(plan) => plan,
            // A proxy token would still go upstream (the final guard): refuse (400), never
            // forward.
            Err(refused) => return self.refuse_bound(worker, &bound, refused.refusal),
        };
        if !apply(host, &plan) {
            host.log(
                Level::Error,
                "ptk filter: could not rewrite request headers",
            );
            return self.refuse_bound(worker, &bound, Refusal::TokenServiceUnavailable);
        }
        worker.counts.add(Counter::Allowed);
        worker.counts.add(Counter::AllowedBy(binding.provider));
        log_bound(host, &binding.provider);
        if worker.config.streams.revalidate {
            // An open request of the bound token like any other: revocation closes it (a slow
            // upload chunk, a Realtime session opened with a client secret).
            worker.streams.borrow_mut().open(
                self.context_id,
                &binding_key(binding),
                &binding.token_hash,
                binding.provider,
                valid_until_ms,
                // Its limits were applied when its credential was minted.
                None,
            );
        }
        match bound {
            Bound::Leg(leg) => {
                worker.counts.add(Counter::UploadLegs);
                self.cors_origin.clone_from(&leg.origin);
                self.upload_watch = Some(leg.watch(head, binding));
            }
            Bound::Secret(secret) => {
                worker.counts.add(Counter::SecretUses);
                self.cors_origin = secret.origin;
                // A Realtime session opened with the secret bills the token that minted it.
                let caller = Caller {
                    dialect: Dialect::Openai,
                    provider: binding.provider,
                    hash: &binding.token_hash,
                };
                self.meter_for(worker, host, &caller, head);
            }
        }
        Step::Forward
    }

    fn refuse_bound(&mut self, worker: &Worker, bound: &Bound, refusal: Refusal) -> Step {
        worker.counts.refused(refusal);
        self.reply(bound.refuse(refusal).reply)
    }
}
