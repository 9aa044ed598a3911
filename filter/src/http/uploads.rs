//! The shim side of Gemini resumable uploads (`ptk_filter_core::uploads` decides): a keyless
//! leg is looked up in the session table, its token's validity is read from the verdict cache
//! or revalidated, and it is forwarded without any key; a response's upload URLs are pointed
//! back at the proxy and the sessions they start are recorded. Nothing here logs an upload id.

use std::time::Duration;

use proxy_wasm::types::{Action, LogLevel};
use ptk_filter_core::cache::cache_key;
use ptk_filter_core::guess_throttle::{client_key, pair_fingerprint};
use ptk_filter_core::upload_sessions::{self, Recorded, Session};
use ptk_filter_core::uploads::{
    cached_valid_until, leg_call, leg_plan, leg_verdict, response_edits, watch, LegVerdict,
    PendingLeg,
};
use ptk_filter_core::{PendingCheck, Refusal, RequestHead};

use super::{Client, PtkHttp};
use crate::host::{self, HostSharedData};
use crate::root::Worker;

/// A keyless leg waiting on its token's revalidation.
pub(super) struct WaitingLeg {
    token_id: u32,
    leg: PendingLeg,
    session: Session,
    head: RequestHead,
    client: Client,
}

impl PtkHttp {
    /// Watches the response of a token request that takes part in an upload.
    pub(super) fn watch_upload(
        &mut self,
        worker: &Worker,
        head: &RequestHead,
        pending: &PendingCheck,
    ) {
        let provider = pending.identified.route.provider();
        self.upload_watch = watch(&worker.config, head, &pending.hash, provider);
    }

    /// A request without a token that names an upload session: forward it only for a session
    /// the proxy started, whose token is still valid.
    pub(super) fn upload_leg(
        &mut self,
        worker: &Worker,
        leg: PendingLeg,
        head: RequestHead,
    ) -> Action {
        let now = host::now_ms();
        let session =
            upload_sessions::lookup(&HostSharedData, &worker.config.uploads, &leg.upload_id, now);
        // An unknown upload id is a guess like an unknown token: it counts against the address,
        // and a throttled address gets 429 for any leg but those of its own known-good token.
        let key = if worker.config.guess_throttle.enabled {
            client_key(&host::source_address())
        } else {
            String::new()
        };
        let throttled = worker.throttle.borrow_mut().throttled(&key, now);
        let Some(session) = session else {
            let refusal = match throttled {
                Some(retry_after_s) => Refusal::Throttled { retry_after_s },
                None => {
                    worker.throttle.borrow_mut().refused(&key, now);
                    Refusal::UnknownUpload
                }
            };
            return self.refuse_leg(worker, &leg, refusal);
        };
        let pair = if key.is_empty() {
            0
        } else {
            pair_fingerprint(&key, &session.token_hash)
        };
        let client = Client { key, pair };
        if let Some(retry_after_s) = throttled {
            if !worker
                .known
                .borrow_mut()
                .contains(&HostSharedData, client.pair)
            {
                return self.refuse_leg(worker, &leg, Refusal::Throttled { retry_after_s });
            }
        }
        let cache_key = cache_key(&session.token_hash, session.provider);
        let remembered = worker.denies.borrow().get(&cache_key, now);
        if let Some(refusal) = remembered {
            return self.refuse_leg(worker, &leg, refusal);
        }
        let cached = worker
            .config
            .cache
            .enabled
            .then(|| cached_valid_until(&HostSharedData, &cache_key, now))
            .flatten();
        if let Some(valid_until) = cached {
            return if self.forward_leg(worker, &leg, &session, &head, valid_until) {
                client.allowed(worker);
                Action::Continue
            } else {
                Action::Pause
            };
        }
        self.revalidate_leg(worker, leg, session, head, client)
    }

    /// Asks the token-service whether the session's token is still valid (no unit charged).
    fn revalidate_leg(
        &mut self,
        worker: &Worker,
        leg: PendingLeg,
        session: Session,
        head: RequestHead,
        client: Client,
    ) -> Action {
        let (headers, body) = leg_call(&worker.config, worker.secret.expose(), &session);
        let ts = &worker.config.token_service;
        let timeout = Duration::from_millis(ts.timeout_ms);
        match host::dispatch(&ts.cluster, &headers, &body, timeout) {
            Ok(token_id) => {
                self.leg = Some(WaitingLeg {
                    token_id,
                    leg,
                    session,
                    head,
                    client,
                });
                Action::Pause
            }
            Err(status) => {
                host::log(
                    LogLevel::Warn,
                    &format!(
                        "ptk filter: could not start an upload leg's revalidation ({status:?})"
                    ),
                );
                worker.metrics.callout_failed();
                self.refuse_leg(worker, &leg, Refusal::StoreUnavailable)
            }
        }
    }

    /// The revalidation of a waiting leg came back (`false`: the callout is not a leg's).
    pub(super) fn leg_answered(
        &mut self,
        worker: &Worker,
        token_id: u32,
        body_size: usize,
    ) -> bool {
        let Some(waiting) = self.leg.take_if(|w| w.token_id == token_id) else {
            return false;
        };
        let status = host::call_response_status();
        let body = host::call_response_body(body_size);
        let now = host::now_ms();
        match leg_verdict(&waiting.session, status, body.as_deref()) {
            LegVerdict::Valid { ttl_ms } => {
                let valid_until = now.saturating_add(ttl_ms);
                let WaitingLeg {
                    leg,
                    session,
                    head,
                    client,
                    ..
                } = waiting;
                if self.forward_leg(worker, &leg, &session, &head, valid_until) {
                    client.allowed(worker);
                    if host::resume_request().is_err() {
                        host::log(LogLevel::Error, "ptk filter: could not resume a request");
                    }
                }
            }
            LegVerdict::Refused(refusal) => {
                let key = cache_key(&waiting.session.token_hash, waiting.session.provider);
                worker.denies.borrow_mut().put(&key, refusal, now);
                self.refuse_leg(worker, &waiting.leg, refusal);
            }
            LegVerdict::Failed => {
                worker.metrics.callout_failed();
                host::log(
                    LogLevel::Warn,
                    &format!("ptk filter: upload leg revalidation failed (status {status:?})"),
                );
                self.refuse_leg(worker, &waiting.leg, Refusal::StoreUnavailable);
            }
        }
        true
    }

    /// Rewrites the leg (no key, every credential slot emptied) and lets it go; `false` (after
    /// answering 503) when the rewrite could not be applied, which must never be forwarded.
    fn forward_leg(
        &mut self,
        worker: &Worker,
        leg: &PendingLeg,
        session: &Session,
        head: &RequestHead,
        valid_until_ms: u64,
    ) -> bool {
        let authority = &worker.config.upstream(session.provider).authority;
        if !Self::apply(&leg_plan(head, authority)) {
            host::log(
                LogLevel::Error,
                "ptk filter: could not rewrite request headers",
            );
            self.refuse_leg(worker, leg, Refusal::StoreUnavailable);
            return false;
        }
        worker.metrics.allowed();
        worker.metrics.upload_leg();
        if worker.config.streams.revalidate {
            // A slow chunk is an open request like any other: revocation closes it.
            let key = cache_key(&session.token_hash, session.provider);
            worker.streams.borrow_mut().open(
                self.context_id,
                &key,
                &session.token_hash,
                session.provider,
                valid_until_ms,
            );
        }
        self.cors_origin = leg.origin.clone();
        self.upload_watch = Some(leg.watch(head, session));
        true
    }

    fn refuse_leg(&mut self, worker: &Worker, leg: &PendingLeg, refusal: Refusal) -> Action {
        worker.metrics.refused(refusal);
        self.reply(&leg.refuse(refusal).reply)
    }

    /// Points the response's upload URLs back at the proxy, records the sessions it started and
    /// marks the one it finished.
    pub(super) fn upload_response(&mut self) {
        let Some(watch) = self.upload_watch.take() else {
            return;
        };
        let Some(worker) = self.worker.clone() else {
            return;
        };
        let (hash, provider) = &watch.owner;
        let authority = &worker.config.upstream(*provider).authority;
        let status = host::response_header(":status").and_then(|s| s.parse().ok());
        let edits = response_edits(&watch, authority, status, host::response_header);
        for (name, value) in &edits.set {
            if host::set_response_header(name, value).is_err() {
                host::log(
                    LogLevel::Warn,
                    "ptk filter: could not point an upload URL at the proxy",
                );
            }
        }
        if edits.unrewritable {
            host::log(
                LogLevel::Warn,
                "ptk filter: an upload URL was left on the provider's host (no usable :scheme or :authority)",
            );
        }
        let now = host::now_ms();
        let uploads = &worker.config.uploads;
        for id in &edits.started {
            let start = (id.as_str(), hash.as_str(), *provider);
            match upload_sessions::record(&HostSharedData, worker.anchor.get(), uploads, start, now)
            {
                Recorded::Stored => worker.metrics.upload_started(),
                Recorded::Evicted => {
                    worker.metrics.upload_started();
                    worker.metrics.upload_evicted();
                }
                Recorded::Failed => {
                    worker.metrics.upload_unrecorded();
                    host::log(
                        LogLevel::Warn,
                        "ptk filter: an upload session could not be recorded",
                    );
                }
            }
        }
        if let Some(id) = &edits.finished {
            upload_sessions::finish(&HostSharedData, uploads, id, now);
        }
    }
}
