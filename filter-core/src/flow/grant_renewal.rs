//! Renewing a budget grant before it runs dry (`budget::grants`, "Renewal"): the one request
//! whose spend claimed the renewal asks the token-service for the next grant (a check with
//! `budget_want`: "a grant, no request of its own", so it counts no rate-limit unit; 0, or a
//! second's spend at the rate the grant went when that was faster) while
//! it is forwarded; the answer installs the new grant for every worker. The request never
//! waits for it, but its response does: proxy-wasm delivers a callout's answer only to the
//! context that sent it, and a context that has ended drops it (the grant would then sit
//! reserved until it lapses), so the response headers are held until the answer is in,
//! which is at most the callout timeout and usually sooner than the provider answers.

use ptk_wire::{CheckResponse, GrantRelease};

use crate::budget::grants::{install, GrantEntry};
use crate::flow::counts::Counter;
use crate::flow::{Host, Level, RequestFlow, Worker};
use crate::pipeline::{budget_call, PendingCheck};

/// A renewal this request claimed, in flight.
#[derive(Debug)]
pub(super) struct Renewal {
    token_id: u32,
    /// Host time (ms) the check was sent: the grant's life runs from here.
    sent_ms: u64,
    /// The verdict cache key whose grant entry the answer replaces.
    cache_key: String,
    /// The response headers are held until the answer is in.
    response_held: bool,
    /// The grant id the renewal proposed (`proposed_grant.rs`).
    pub(super) grant_id: Option<u64>,
}

/// Queues released grant tokens in the worker's next report.
pub(super) fn release_all(worker: &Worker, releases: &[GrantRelease]) {
    if releases.is_empty() {
        return;
    }
    if let Ok(mut batch) = worker.activity.try_borrow_mut() {
        for r in releases {
            batch.release(r.grant, r.tokens);
        }
    }
}

impl RequestFlow {
    /// This request's spend claimed the renewal of `pending`'s grant: ask for the next one,
    /// of at least `want` tokens (0: as the token-service sizes it; see
    /// `budget::grants::RATE_TARGET_MS`). A check that cannot be sent leaves the claim to
    /// lapse (another spend claims it again).
    pub(super) fn start_renewal(
        &mut self,
        worker: &Worker,
        host: &mut impl Host,
        pending: &PendingCheck,
        want: u64,
    ) {
        let grant_id = super::proposed_grant::propose(host);
        let token = (pending.hash.as_str(), pending.identified.provider);
        let secret = worker.secret.expose();
        let call = budget_call(&worker.config, secret, token, want, (Vec::new(), grant_id));
        let ts = &worker.config.token_service;
        match host.dispatch(&ts.cluster, &call, ts.timeout_ms) {
            Ok(token_id) => {
                worker.counts.add(Counter::BudgetRenewals);
                self.renewal = Some(Renewal {
                    token_id,
                    sent_ms: host.now_ms(),
                    cache_key: pending.cache_key.clone(),
                    response_held: false,
                    grant_id,
                });
            }
            Err(status) => {
                let line = format!("ptk filter: could not start a budget renewal ({status})");
                host.log(Level::Warn, &line);
                worker.counts.add(Counter::CalloutFailed);
            }
        }
    }

    /// Whether `token_id` is this request's renewal check.
    pub fn expects_renewal(&self, token_id: u32) -> bool {
        matches!(&self.renewal, Some(r) if r.token_id == token_id)
    }

    /// The renewal's answer (`status` `None`: the callout failed): a grant is installed for
    /// every worker (the old one's unspent tokens released); a deny or a failure installs
    /// nothing, and requests go on spending what is left, then ask on their own. Returns
    /// whether the response was held for it (the caller resumes it).
    pub fn on_renewal_answer(
        &mut self,
        worker: &Worker,
        host: &mut impl Host,
        status: Option<u16>,
        body: Option<&[u8]>,
    ) -> bool {
        let Some(renewal) = self.renewal.take() else {
            return false;
        };
        let verdict = match (status, body) {
            (Some(200), Some(bytes)) => serde_json::from_slice::<CheckResponse>(bytes).ok(),
            _ => None,
        };
        if verdict.is_none() {
            // No verdict: the service may have reserved under the proposed id.
            super::proposed_grant::abandon(worker, renewal.grant_id);
        }
        let grant = match verdict {
            Some(CheckResponse::Allow { limits, .. }) => limits.and_then(|l| l.budget),
            _ => None,
        };
        match grant {
            Some(grant) => {
                let mut releases = Vec::new();
                let entry = GrantEntry::new(&grant, renewal.sent_ms);
                let anchor = worker.anchor.get();
                if !install(
                    host.shared(),
                    anchor,
                    &renewal.cache_key,
                    entry,
                    &mut releases,
                ) {
                    host.log(Level::Warn, "ptk filter: could not store a renewed grant");
                }
                release_all(worker, &releases);
            }
            None if status != Some(200) => worker.counts.add(Counter::CalloutFailed),
            None => {}
        }
        renewal.response_held
    }

    /// The response headers are in: hold them while this request's renewal is in flight
    /// (`true`), so its answer still finds this context.
    pub fn hold_response_for_renewal(&mut self) -> bool {
        match &mut self.renewal {
            Some(renewal) => {
                renewal.response_held = true;
                true
            }
            None => false,
        }
    }
}
