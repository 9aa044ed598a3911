//! Budget grants whose check answer never reaches a request. proxy-wasm delivers a callout's
//! answer only to the HTTP context that sent it, and drops it when that context is gone (a
//! client reset or disconnect); a check can also fail or time out here after the
//! token-service reserved. Such a grant is never installed, spent or released, and would stay
//! reserved until it lapses (its life plus the service's grace, minutes).
//!
//! So every check that may reserve a grant (the plain check and each retry, a top-up, a
//! renewal, a WebSocket session's top-up) proposes the grant's id (`CheckRequest::grant_id`,
//! random in 1..2^52), and the flow keeps it while the answer is pending. Whenever the answer
//! will not install a grant (the context ended first, the callout failed or timed out, the
//! attempt is retried, an allow with a grant is refused here), the id is released whole in
//! the worker's next activity report; the service frees only what a grant holds and ignores
//! ids it does not know. An answer that installs its grant releases nothing extra here
//! (installing releases a replaced grant's rest). A deny releases nothing: the service holds
//! nothing for it (it releases a grant it reserved before denying), and its deny for a taken
//! id must never free the grant that holds it. Left: a release that reaches the service
//! before its check did is ignored, and that grant lapses as before.

use ptk_wire::GrantRelease;

use crate::flow::budget::Budget;
use crate::flow::grant_renewal::release_all;
use crate::flow::{Host, RequestFlow, Worker};

/// Proposed ids are below 2^52 (exact as doubles: Redis' Lua, JSON readers).
const ID_BITS: u32 = 52;

/// The id a check proposes for the grant it may reserve: random in 1..2^52. `None` when the
/// host has no randomness (the token-service then picks the id, as for older filters).
pub(super) fn propose(host: &mut impl Host) -> Option<u64> {
    let bits = host.random_u64()?;
    Some((bits >> (u64::BITS - ID_BITS)).max(1))
}

/// The check that proposed `id` will not install its answer's grant: whatever it reserved
/// goes back in the next report.
pub(super) fn abandon(worker: &Worker, id: Option<u64>) {
    if let Some(grant) = id {
        let tokens = u64::MAX;
        release_all(worker, &[GrantRelease { grant, tokens }]);
    }
}

impl RequestFlow {
    /// The request is over: every check still in flight has lost its answer.
    pub(super) fn abandon_pending_checks(&mut self, worker: &Worker) {
        if let Some(waiting) = self.waiting.take() {
            abandon(worker, waiting.pending.grant_id);
        }
        if let Some(renewal) = self.renewal.take() {
            abandon(worker, renewal.grant_id);
        }
        match &mut self.budget {
            Some(Budget::TopUp { grant_id, .. }) => abandon(worker, grant_id.take()),
            Some(Budget::Session(session)) => abandon(worker, session.abandon_top_up()),
            _ => {}
        }
    }
}
