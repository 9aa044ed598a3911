//! A budgeted token's WebSocket session in the flow (OpenAI Realtime, Responses over a
//! WebSocket, Gemini Live; `budget::session` has the rule): one turn's reservation is spent
//! from the grant at the handshake (short: `budget_want`, or the usual 429 before anything is
//! forwarded); then every client chunk that ends a message is checked against the session's
//! headroom before it goes on. What is missing is spent from the grant; when the grant is
//! short the chunk is held while a `budget_want` check is in flight, and a top-up that is
//! denied (or gets no verdict) closes the session: the held message never reaches the
//! provider. At the end, what the session held is released in the batch that carries its
//! usage (`metering.rs`), like an HTTP request's estimate.

use ptk_wire::{CheckResponse, GrantRelease, Provider};

use crate::budget::grants::{install, spend, GrantEntry, Spend};
use crate::budget::session::SessionBudget;
use crate::flow::budget::{Budget, BudgetBodyStep};
use crate::flow::counts::Counter;
use crate::flow::proposed_grant::{abandon, propose};
use crate::flow::{Host, Level, RequestBodyHost, RequestFlow, Step, Worker};
use crate::pipeline::{budget_call, PendingCheck};

/// A session's budget state.
#[derive(Debug)]
pub(super) struct Session {
    budget: SessionBudget,
    hash: String,
    provider: Provider,
    cache_key: String,
    /// A top-up check in flight: its token id, when it was sent and the grant id it proposed.
    waiting: Option<(u32, u64, Option<u64>)>,
    /// Bytes of the held request buffer already read (Envoy hands the whole buffer again).
    read: usize,
    /// The token is no longer budgeted (a top-up came back without a grant).
    free: bool,
}

/// What a session's top-up answer leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStep {
    /// The held client frames go on.
    Resume,
    /// The budget cannot cover the next turn: reset the session.
    Close,
}

impl RequestFlow {
    /// A budgeted WebSocket handshake: spends one turn's reservation (or asks for it); the
    /// session starts once it is spent ([`RequestFlow::start_session`]).
    pub(super) fn session_gate(
        &mut self,
        worker: &Worker,
        host: &mut impl Host,
        pending: &PendingCheck,
    ) -> Step {
        let per_turn = worker
            .config
            .limits
            .default_output(pending.identified.provider);
        let step = self.spend_budget(worker, host, pending, (per_turn, false), None);
        self.start_session(pending, host.now_ms());
        step
    }

    /// The handshake's reservation is spent: it becomes the session's first hold. Nothing
    /// happens before (a top-up in flight) or for a request that is not a session.
    pub(super) fn start_session(&mut self, pending: &PendingCheck, now_ms: u64) {
        let Some(api) = self.usage.as_ref().and_then(|u| u.session_api()) else {
            return;
        };
        let Some(Budget::Spent { grant, estimate }) = self.budget else {
            return;
        };
        self.budget = Some(Budget::Session(Box::new(Session {
            budget: SessionBudget::new(api, estimate, grant, estimate, now_ms),
            hash: pending.hash.clone(),
            provider: pending.identified.provider,
            cache_key: pending.cache_key.clone(),
            waiting: None,
            read: 0,
            free: false,
        })));
    }

    /// A client chunk of a session (`size`: what Envoy holds, the part already read first).
    pub(super) fn session_body(
        &mut self,
        worker: &Worker,
        host: &mut impl RequestBodyHost,
        size: usize,
    ) -> BudgetBodyStep {
        let (charged, done) = self.usage.as_ref().map_or((0, 0), |u| u.session_progress());
        let Some(Budget::Session(session)) = self.budget.as_mut() else {
            return BudgetBodyStep::Pass;
        };
        let held = host.request_body(size).unwrap_or_default();
        let new = held.get(session.read..).unwrap_or_default();
        let chunk = session.budget.read_client(new);
        if session.waiting.is_some() {
            // Behind a message waiting on its top-up: held with it, read, decided with it.
            session.read = size;
            return BudgetBodyStep::Buffer;
        }
        let now = host.now_ms();
        let short = session.budget.shortfall(charged, done, now);
        if session.free || chunk.messages == 0 || short == 0 {
            return session.forward();
        }
        let mut releases = Vec::new();
        // A session never claims a grant renewal (claim 0 ms): its spends are rare next to
        // requests', and a request's renewal holds its response, which a session has sent.
        let spent = spend(
            host.shared(),
            &session.cache_key,
            short,
            (now, 0),
            &mut releases,
        );
        super::grant_renewal::release_all(worker, &releases);
        if let Spend::Spent { grant, .. } = spent {
            session.budget.hold(grant, short, now);
            return session.forward();
        }
        match session.ask(worker, host, short) {
            Some((token_id, grant_id)) => {
                session.waiting = Some((token_id, now, grant_id));
                session.read = size;
                BudgetBodyStep::Decided(Step::CallOut { token_id })
            }
            None => {
                worker.counts.add(Counter::CalloutFailed);
                self.session_closed(worker, host);
                BudgetBodyStep::Close
            }
        }
    }

    /// Whether this session waits on the top-up check `token_id`.
    pub fn expects_session_top_up(&self, token_id: u32) -> bool {
        matches!(&self.budget, Some(Budget::Session(s)) if s.waiting.is_some_and(|w| w.0 == token_id))
    }

    /// A session's top-up check came back: the held frames go on if the new grant covers
    /// what the session must hold now, else the session is closed.
    pub fn on_session_answer(
        &mut self,
        worker: &Worker,
        host: &mut impl Host,
        status: Option<u16>,
        body: Option<&[u8]>,
    ) -> SessionStep {
        let (charged, done) = self.usage.as_ref().map_or((0, 0), |u| u.session_progress());
        let Some(Budget::Session(session)) = self.budget.as_mut() else {
            return SessionStep::Resume;
        };
        let Some((_, sent_ms, grant_id)) = session.waiting.take() else {
            return SessionStep::Resume;
        };
        let parsed = match (status, body) {
            (Some(200), Some(bytes)) => serde_json::from_slice::<CheckResponse>(bytes).ok(),
            _ => None,
        };
        let covered = match parsed {
            Some(CheckResponse::Allow { limits, .. }) => match limits.and_then(|l| l.budget) {
                Some(grant) => {
                    let mut releases = Vec::new();
                    let entry = GrantEntry::new(&grant, sent_ms);
                    let key = &session.cache_key;
                    install(
                        host.shared(),
                        worker.anchor.get(),
                        key,
                        entry,
                        &mut releases,
                    );
                    // Frames read while it was in flight may ask for more than it asked.
                    let now = host.now_ms();
                    let short = session.budget.shortfall(charged, done, now);
                    let spent = spend(host.shared(), key, short, (now, 0), &mut releases);
                    super::grant_renewal::release_all(worker, &releases);
                    match spent {
                        Spend::Spent { grant, .. } => {
                            session.budget.hold(grant, short, now);
                            true
                        }
                        Spend::Short => false,
                    }
                }
                None => {
                    session.free = true;
                    true
                }
            },
            // Nothing reserved (a taken id is refused too: never release it).
            Some(CheckResponse::Deny { .. }) => false,
            None => {
                abandon(worker, grant_id);
                worker.counts.add(Counter::CalloutFailed);
                let line = format!("ptk filter: session budget check failed (status {status:?})");
                host.log(Level::Warn, &line);
                false
            }
        };
        if covered {
            session.forward();
            SessionStep::Resume
        } else {
            self.session_closed(worker, host);
            SessionStep::Close
        }
    }

    /// The session is being closed for its budget: counted and logged (never the token).
    fn session_closed(&mut self, worker: &Worker, host: &impl Host) {
        worker.counts.add(Counter::BudgetSessionsClosed);
        host.log(
            Level::Info,
            "ptk filter: closed a WebSocket session: its budget cannot cover the next turn",
        );
    }

    /// A session's usage is being recorded: what it held, to release in the same batch, and
    /// its shortfall: an incomplete session with a response still running is charged one
    /// turn's reservation for each, like an HTTP request its estimate (`done`: responses the
    /// meter saw end; `open`: one started and did not).
    pub(super) fn settle_session(
        &mut self,
        complete: bool,
        done: u64,
        open: bool,
    ) -> (Vec<GrantRelease>, u64) {
        let Some(Budget::Session(session)) = self.budget.take() else {
            return (Vec::new(), 0);
        };
        let running = open || session.budget.asked_open(done);
        let shortfall = if complete || !running {
            0
        } else {
            session.budget.unfinished(done)
        };
        (session.budget.releases(), shortfall)
    }
}

impl Session {
    /// The chunks read so far go on.
    fn forward(&mut self) -> BudgetBodyStep {
        self.budget.forwarded();
        self.read = 0;
        BudgetBodyStep::Pass
    }

    /// The top-up in flight will get no answer here: the grant id it proposed.
    pub(super) fn abandon_top_up(&mut self) -> Option<u64> {
        self.waiting.take().and_then(|(_, _, grant_id)| grant_id)
    }

    /// Sends a `budget_want` check for `tokens`; its token id and the grant id it proposed.
    fn ask(
        &self,
        worker: &Worker,
        host: &mut impl Host,
        tokens: u64,
    ) -> Option<(u32, Option<u64>)> {
        let grant_id = propose(host);
        let token = (self.hash.as_str(), self.provider);
        let secret = worker.secret.expose();
        let call = budget_call(
            &worker.config,
            secret,
            token,
            tokens,
            (Vec::new(), grant_id),
        );
        let ts = &worker.config.token_service;
        match host.dispatch(&ts.cluster, &call, ts.timeout_ms) {
            Ok(token_id) => Some((token_id, grant_id)),
            Err(status) => {
                let line = format!("ptk filter: could not start a session budget check ({status})");
                host.log(Level::Warn, &line);
                None
            }
        }
    }
}
