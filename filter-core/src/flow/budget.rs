//! A budgeted token's request in the flow (`docs/wire-protocol.md`, "Budgets"): a route that
//! spends must be metered (else 403 `not_metered_under_budget`: what it spends could not be
//! settled); its estimate (`budget::estimate`) is spent from the grant in shared data before
//! it is forwarded, read from the held body when the hold filter is installed (from
//! `content-length` and the default output cap otherwise); a grant that is short asks the
//! token-service again with `budget_want` (forward, or its 429). When the metered response
//! ends, the estimate is released in the same activity batch as its usage
//! (`metering.rs`), with the shortfall of a request that ended without its final usage.

use ptk_wire::{CheckResponse, GrantRelease, UsageApi};

use crate::budget::estimate::{body_estimate, estimate};
use crate::budget::grants::{install, spend, take_rest, GrantEntry, Spend};
use crate::flow::counts::Counter;
use crate::flow::grant_renewal::release_all;
use crate::flow::proposed_grant::{abandon, propose};
use crate::flow::{Host, Level, RequestBodyHost, RequestFlow, Step, Worker};
use crate::models::{model_source, ModelSource, HOLD_HEADER};
use crate::pipeline::{budget_call, PendingCheck};
use crate::refusal::{Refusal, DEFAULT_RETRY_AFTER_S};
use crate::request::RequestHead;

/// Where a budgeted request stands.
#[derive(Debug)]
pub(super) enum Budget {
    /// Held by the hold filter: estimated and spent once its body is in.
    Body(Box<PendingCheck>),
    /// Its grant was short: a check with `budget_want` is in flight.
    TopUp {
        token_id: u32,
        estimate: u64,
        sent_ms: u64,
        /// The held body's size when asked from the body callback (its other watches run
        /// once the answer lets it go).
        body_size: Option<usize>,
        pending: Box<PendingCheck>,
        /// The grant id the check proposed (`proposed_grant.rs`).
        grant_id: Option<u64>,
    },
    /// Spent from a grant: released when its usage is recorded.
    Spent { grant: u64, estimate: u64 },
    /// A WebSocket session under way, holding its reservations (`session.rs`).
    Session(Box<super::session::Session>),
}

/// What to do with a request body chunk of a budgeted request.
#[derive(Debug, PartialEq, Eq)]
pub enum BudgetBodyStep {
    /// Not waiting on the body: it goes on to the other watches.
    Pass,
    /// Keep buffering until the body is complete.
    Buffer,
    /// Spent, refused or asking for a top-up.
    Decided(Step),
    /// A WebSocket session's budget cannot cover its next turn: reset the session.
    Close,
}

impl RequestFlow {
    /// A forward is ready (headers rewritten): for a budgeted token, install a fresh grant
    /// (checked at `sent_ms`), then refuse an unmetered route that spends, hold the body to
    /// estimate it, or spend the estimate now.
    pub(super) fn budget_gate(
        &mut self,
        worker: &Worker,
        host: &mut impl Host,
        pending: &PendingCheck,
        head: &RequestHead,
        budgeted: bool,
        fresh: Option<GrantEntry>,
    ) -> Step {
        if let Some(entry) = fresh {
            let mut releases = Vec::new();
            let (anchor, key) = (worker.anchor.get(), &pending.cache_key);
            let installed = install(host.shared(), anchor, key, entry, &mut releases);
            release_all(worker, &releases);
            if !installed {
                host.log(Level::Warn, "ptk filter: could not store a budget grant");
                return self.budget_refused(worker, pending, Refusal::TokenServiceUnavailable);
            }
        }
        if !budgeted || model_source(pending.identified.dialect, head) == ModelSource::NotSpending {
            return Step::Forward;
        }
        // Refused under a budget: what the meter does not read could not be settled.
        if self.usage.is_none() {
            return self.budget_refused(worker, pending, Refusal::BudgetUnmetered);
        }
        // A WebSocket session spends per turn: its reservation is kept ahead of its turns.
        if head.is_websocket_upgrade() {
            return self.session_gate(worker, host, pending);
        }
        if !self.bodiless && worker.config.limits.body_hold {
            // The model gate may have marked it already; the mark is idempotent.
            if !host.set_request_header(HOLD_HEADER, Some("1")) {
                return self.budget_refused(worker, pending, Refusal::TokenServiceUnavailable);
            }
            self.budget = Some(Budget::Body(Box::new(pending.clone())));
            return Step::Forward;
        }
        let length = head
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        // Without the hold filter no body can be read: an unbounded one cannot be estimated.
        let input = if self.bodiless { Some(0) } else { length };
        let Some(input) = input else {
            return self.budget_refused(worker, pending, Refusal::BudgetUnmetered);
        };
        if !self.bodiless && !worker.budget_hold_warned.replace(true) {
            host.log(
                Level::Warn,
                "ptk filter: budgeted requests are estimated with the default output cap: the \
                 request-body hold filter is not configured (limits.body_hold)",
            );
        }
        let provider = pending.identified.provider;
        let default = worker.config.limits.default_output(provider);
        let estimate = estimate(input, None, default);
        self.spend_budget(worker, host, pending, (estimate, true), None)
    }

    /// A request body chunk (`size`: all Envoy buffered) of a request waiting on its body to
    /// be estimated: buffered to the end, then spent.
    pub fn budget_body(
        &mut self,
        worker: Option<&Worker>,
        host: &mut impl RequestBodyHost,
        size: usize,
        end: bool,
    ) -> BudgetBodyStep {
        if let (Some(worker), Some(Budget::Session(_))) = (worker, self.budget.as_ref()) {
            return self.session_body(worker, host, size);
        }
        let (Some(worker), Some(Budget::Body(_))) = (worker, self.budget.as_ref()) else {
            return BudgetBodyStep::Pass;
        };
        if !end {
            return BudgetBodyStep::Buffer;
        }
        let Some(Budget::Body(pending)) = self.budget.take() else {
            return BudgetBodyStep::Pass;
        };
        let body = host.request_body(size).unwrap_or_default();
        let bounds = worker.config.limits.bounds(pending.identified.provider);
        let api = self.usage.as_ref().map_or(UsageApi::Other, |u| u.api());
        // Unreadable: its cap or what it references may read otherwise upstream.
        let step = match body_estimate(&body, api, bounds) {
            Ok(estimate) => {
                let spend = (estimate.tokens, true);
                self.spend_budget(worker, host, &pending, spend, Some(size))
            }
            Err(_) => self.budget_refused(worker, &pending, Refusal::BudgetBodyUnreadable),
        };
        BudgetBodyStep::Decided(step)
    }

    /// Spends `estimate` from the token's grant, or asks for a top-up when it is short. A
    /// plain request (`may_renew`) may claim the grant's renewal; a WebSocket handshake does
    /// not (its response is the session's upgrade, not worth holding for one).
    pub(super) fn spend_budget(
        &mut self,
        worker: &Worker,
        host: &mut impl Host,
        pending: &PendingCheck,
        (estimate, may_renew): (u64, bool),
        body_size: Option<usize>,
    ) -> Step {
        let mut releases = Vec::new();
        let now = host.now_ms();
        let claim_ms = if may_renew {
            worker.config.token_service.timeout_ms
        } else {
            0
        };
        let spent = spend(
            host.shared(),
            &pending.cache_key,
            estimate,
            (now, claim_ms),
            &mut releases,
        );
        release_all(worker, &releases);
        if let Spend::Spent { grant, renew } = spent {
            self.budget = Some(Budget::Spent { grant, estimate });
            if let (Some(want), true) = (renew, may_renew) {
                self.start_renewal(worker, host, pending, want);
            }
            return Step::Forward;
        }
        let grant_id = propose(host);
        // The new grant replaces this short one: its rest counts as room for it.
        let rest: Vec<_> = take_rest(host.shared(), &pending.cache_key)
            .into_iter()
            .collect();
        let token = (pending.hash.as_str(), pending.identified.provider);
        let given = (rest.clone(), grant_id);
        let call = budget_call(
            &worker.config,
            worker.secret.expose(),
            token,
            estimate,
            given,
        );
        let ts = &worker.config.token_service;
        match host.dispatch(&ts.cluster, &call, ts.timeout_ms) {
            Ok(token_id) => {
                worker.counts.add(Counter::BudgetTopUps);
                self.budget = Some(Budget::TopUp {
                    token_id,
                    estimate,
                    sent_ms: now,
                    body_size,
                    pending: Box::new(pending.clone()),
                    grant_id,
                });
                Step::CallOut { token_id }
            }
            Err(status) => {
                release_all(worker, &rest);
                let line = format!("ptk filter: could not start a budget check ({status})");
                host.log(Level::Warn, &line);
                worker.counts.add(Counter::CalloutFailed);
                self.budget_refused(worker, pending, Refusal::TokenServiceUnavailable)
            }
        }
    }

    /// Whether this request waits on the budget check `token_id`.
    pub fn expects_budget(&self, token_id: u32) -> bool {
        matches!(&self.budget, Some(Budget::TopUp { token_id: t, .. }) if *t == token_id)
    }

    /// The budget check came back: spend from the new grant and forward, or refuse (its
    /// `budget_exhausted` 429, or 503 when it got no verdict). With the step, the size of the
    /// held body whose other watches must still run (`None` when asked at the headers).
    pub fn on_budget_answer(
        &mut self,
        worker: &Worker,
        host: &mut impl Host,
        status: Option<u16>,
        body: Option<&[u8]>,
    ) -> (Step, Option<usize>) {
        let Some(Budget::TopUp {
            estimate,
            sent_ms,
            body_size,
            pending,
            grant_id,
            ..
        }) = self.budget.take()
        else {
            return (Step::Forward, None);
        };
        let parsed = match (status, body) {
            (Some(200), Some(bytes)) => serde_json::from_slice::<CheckResponse>(bytes).ok(),
            _ => None,
        };
        let step = match parsed {
            Some(CheckResponse::Allow { limits, .. }) => match limits.and_then(|l| l.budget) {
                Some(grant) => {
                    let mut releases = Vec::new();
                    let (anchor, key) = (worker.anchor.get(), &pending.cache_key);
                    let entry = GrantEntry::new(&grant, sent_ms);
                    install(host.shared(), anchor, key, entry, &mut releases);
                    let at = (host.now_ms(), worker.config.token_service.timeout_ms);
                    let spent = spend(host.shared(), key, estimate, at, &mut releases);
                    release_all(worker, &releases);
                    match spent {
                        Spend::Spent { grant, renew } => {
                            self.budget = Some(Budget::Spent { grant, estimate });
                            if let Some(want) = renew {
                                self.start_renewal(worker, host, &pending, want);
                            }
                            Step::Forward
                        }
                        // Other requests took the new grant first: refused, not asked forever.
                        Spend::Short => {
                            let refusal = Refusal::BudgetExhausted {
                                budget: None,
                                retry_after_s: DEFAULT_RETRY_AFTER_S,
                            };
                            self.budget_refused(worker, &pending, refusal)
                        }
                    }
                }
                // No longer budgeted: nothing to spend (nor reserved).
                None => Step::Forward,
            },
            Some(CheckResponse::Deny {
                reason,
                retry_after_s,
                budget,
            }) => {
                // Nothing reserved (a taken id is refused too: never release it).
                let refusal = Refusal::from_deny(reason, retry_after_s, budget);
                self.budget_refused(worker, &pending, refusal)
            }
            None => {
                abandon(worker, grant_id);
                worker.counts.add(Counter::CalloutFailed);
                let line = format!("ptk filter: budget check failed (status {status:?})");
                host.log(Level::Warn, &line);
                self.budget_refused(worker, &pending, Refusal::TokenServiceUnavailable)
            }
        };
        self.start_session(&pending, host.now_ms());
        (step, body_size)
    }

    /// Refuses a request that was ready to go: nothing of it was forwarded or spent, so its
    /// response watches go with it.
    fn budget_refused(
        &mut self,
        worker: &Worker,
        pending: &PendingCheck,
        refusal: Refusal,
    ) -> Step {
        worker.counts.refused(refusal);
        self.budget = None;
        self.error_watch = None;
        self.usage = None;
        self.geo = None;
        self.model_gate = None;
        self.reply(pending.refuse(refusal).reply)
    }

    /// The estimate spent for this request, taken for settling: `(grant, estimate)`.
    pub(super) fn take_spent(&mut self) -> Option<(u64, u64)> {
        match self.budget.take() {
            Some(Budget::Spent { grant, estimate }) => Some((grant, estimate)),
            other => {
                self.budget = other;
                None
            }
        }
    }

    /// The request ended without anything charged (the filter answered in the provider's
    /// place): its estimate goes back at once.
    pub(super) fn release_unspent(&mut self, worker: &Worker) {
        if let Some((grant, estimate)) = self.take_spent() {
            release_all(
                worker,
                &[GrantRelease {
                    grant,
                    tokens: estimate,
                }],
            );
        }
    }
}
