//! The shim side of requests that carry no proxy token, only a credential the proxy saw issued
//! for one (`ptk_filter_core::bound_table`): a keyless Gemini upload leg, an OpenAI Realtime
//! client secret. One flow for both: the credential's binding (looked up by the caller), the
//! guess throttle, the worker's refusal memory, then the bound token's validity from a fresh
//! cached verdict or a revalidation (`ptk_filter_core::bound_check`, no unit spent), then the
//! forward without any real key, registered as an open request of the bound token so that
//! revoking the token closes it. Nothing here logs a credential.

use std::time::Duration;

use proxy_wasm::types::{Action, LogLevel};
use ptk_filter_core::bound_check::{
    binding_key, bound_call, bound_verdict, cached_valid_until, BoundVerdict,
};
use ptk_filter_core::bound_table::Binding;
use ptk_filter_core::client_secrets::PendingSecret;
use ptk_filter_core::guess_throttle::{client_key, pair_fingerprint};
use ptk_filter_core::retry::should_retry;
use ptk_filter_core::uploads::PendingLeg;
use ptk_filter_core::{Refusal, Refused, RequestHead};

use super::{Client, PtkHttp};
use crate::host::{self, HostSharedData};
use crate::root::Worker;

/// A request that carries only a bound credential.
pub(super) enum Bound {
    /// A keyless leg of a Gemini resumable upload.
    Leg(PendingLeg),
    /// A use of an OpenAI Realtime client secret.
    Secret(PendingSecret),
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
pub(super) struct WaitingBound {
    token_id: u32,
    bound: Bound,
    binding: Binding,
    head: RequestHead,
    client: Client,
    /// How many times this revalidation was sent again after getting no verdict (`retry`).
    retries_done: u8,
}

impl PtkHttp {
    /// Forwards a bound request only for a credential the proxy saw issued (`binding`, as the
    /// caller looked it up), whose token is still valid.
    pub(super) fn bound_request(
        &mut self,
        worker: &Worker,
        bound: Bound,
        binding: Option<Binding>,
        head: RequestHead,
    ) -> Action {
        let now = host::now_ms();
        // An unknown credential is a guess like an unknown token: it counts against the
        // address, and a throttled address gets 429 for any credential but those of its own
        // known-good token.
        let key = if worker.config.guess_throttle.enabled {
            client_key(&host::source_address())
        } else {
            String::new()
        };
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
        let pair = if key.is_empty() {
            0
        } else {
            pair_fingerprint(&key, &binding.token_hash)
        };
        let client = Client { key, pair };
        if let Some(retry_after_s) = throttled {
            if !worker
                .known
                .borrow_mut()
                .contains(&HostSharedData, client.pair)
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
            .then(|| cached_valid_until(&HostSharedData, &cache_key, now))
            .flatten();
        if let Some(valid_until) = cached {
            return if self.forward_bound(worker, bound, &binding, &head, valid_until) {
                client.allowed(worker);
                Action::Continue
            } else {
                Action::Pause
            };
        }
        self.revalidate_bound(worker, bound, binding, head, client, 0)
    }

    /// Asks the token-service whether the bound token is still valid (no unit charged).
    fn revalidate_bound(
        &mut self,
        worker: &Worker,
        bound: Bound,
        binding: Binding,
        head: RequestHead,
        client: Client,
        retries_done: u8,
    ) -> Action {
        let (headers, body) = bound_call(&worker.config, worker.secret.expose(), &binding);
        let ts = &worker.config.token_service;
        let timeout = Duration::from_millis(ts.timeout_ms);
        match host::dispatch(&ts.cluster, &headers, &body, timeout) {
            Ok(token_id) => {
                self.bound = Some(WaitingBound {
                    token_id,
                    bound,
                    binding,
                    head,
                    client,
                    retries_done,
                });
                Action::Pause
            }
            Err(status) => {
                host::log(
                    LogLevel::Warn,
                    &format!(
                        "ptk filter: could not start {} revalidation ({status:?})",
                        bound.what()
                    ),
                );
                worker.metrics.callout_failed();
                self.refuse_bound(worker, &bound, Refusal::TokenServiceUnavailable)
            }
        }
    }

    /// The revalidation of a waiting bound request came back (`false`: the callout is not
    /// one).
    pub(super) fn bound_answered(
        &mut self,
        worker: &Worker,
        token_id: u32,
        body_size: usize,
    ) -> bool {
        let Some(waiting) = self.bound.take_if(|w| w.token_id == token_id) else {
            return false;
        };
        let status = host::call_response_status();
        let WaitingBound {
            bound,
            binding,
            head,
            client,
            retries_done,
            ..
        } = waiting;
        if should_retry(status, retries_done, worker.config.token_service.retries) {
            // No verdict (no response, timeout, 5xx): once more, to whichever replica the
            // cluster picks now. A revalidation spends no unit, so nothing is counted twice.
            worker.metrics.callout_retried();
            self.revalidate_bound(
                worker,
                bound,
                binding,
                head,
                client,
                retries_done.saturating_add(1),
            );
            return true;
        }
        let body = host::call_response_body(body_size);
        let now = host::now_ms();
        match bound_verdict(&binding, status, body.as_deref()) {
            BoundVerdict::Valid { ttl_ms } => {
                let valid_until = now.saturating_add(ttl_ms);
                if self.forward_bound(worker, bound, &binding, &head, valid_until) {
                    client.allowed(worker);
                    if host::resume_request().is_err() {
                        host::log(LogLevel::Error, "ptk filter: could not resume a request");
                    }
                }
            }
            BoundVerdict::Refused(refusal) => {
                worker
                    .denies
                    .borrow_mut()
                    .put(&binding_key(&binding), refusal, now);
                self.refuse_bound(worker, &bound, refusal);
            }
            BoundVerdict::Failed => {
                worker.metrics.callout_failed();
                host::log(
                    LogLevel::Warn,
                    &format!(
                        "ptk filter: {} revalidation failed (status {status:?})",
                        bound.what()
                    ),
                );
                self.refuse_bound(worker, &bound, Refusal::TokenServiceUnavailable);
            }
        }
        true
    }

    /// Rewrites the request (no real key: a leg gets every credential slot emptied, a client
    /// secret stays where the client put it) and lets it go; `false` (after answering) when
    /// the final guard refuses it (400) or the rewrite could not be applied (503): neither may
    /// be forwarded.
    fn forward_bound(
        &mut self,
        worker: &Worker,
        bound: Bound,
        binding: &Binding,
        head: &RequestHead,
        valid_until_ms: u64,
    ) -> bool {
        let upstream = worker.config.upstream(binding.provider);
        let plan = match &bound {
            Bound::Leg(leg) => leg.allow(head, &upstream.authority),
            Bound::Secret(secret) => secret.allow(head, upstream),
        };
        let plan = match plan {
            Ok(plan) => plan,
            // A proxy token would still go upstream (the final guard): refuse (400), never
            // forward.
            Err(refused) => {
                self.refuse_bound(worker, &bound, refused.refusal);
                return false;
            }
        };
        if !Self::apply(&plan) {
            host::log(
                LogLevel::Error,
                "ptk filter: could not rewrite request headers",
            );
            self.refuse_bound(worker, &bound, Refusal::TokenServiceUnavailable);
            return false;
        }
        worker.metrics.allowed();
        if worker.config.streams.revalidate {
            // An open request of the bound token like any other: revocation closes it (a slow
            // upload chunk, a Realtime session opened with a client secret).
            worker.streams.borrow_mut().open(
                self.context_id,
                &binding_key(binding),
                &binding.token_hash,
                binding.provider,
                valid_until_ms,
            );
        }
        match bound {
            Bound::Leg(leg) => {
                worker.metrics.upload_leg();
                self.cors_origin = leg.origin.clone();
                self.upload_watch = Some(leg.watch(head, binding));
            }
            Bound::Secret(secret) => {
                worker.metrics.secret_used();
                self.cors_origin = secret.origin;
            }
        }
        true
    }

    fn refuse_bound(&mut self, worker: &Worker, bound: &Bound, refusal: Refusal) -> Action {
        worker.metrics.refused(refusal);
        self.reply(&bound.refuse(refusal).reply)
    }
}
