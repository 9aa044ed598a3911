//! A limited token's request in the flow: refusals by its model allow-list (counted, and a
//! warning when the hold filter is missing), the mark that asks the hold filter to keep the
//! headers from the router, the decision on the held body (`models::gate`), and the refusal
//! of a request to hold that ended at its headers (no body callback would ever decide it).

use crate::flow::{Host, Level, RequestBodyHost, RequestFlow, Worker};
use crate::models::{model_source, BodyGate, ModelSource, HOLD_HEADER};
use crate::pipeline::{CheckDecision, PendingCheck, Refused};
use crate::refusal::{LocalReply, Refusal};
use crate::request::RequestHead;

/// What to do with a request body chunk while the model gate holds it.
#[derive(Debug, PartialEq, Eq)]
pub enum GateStep {
    /// No gate (or it has passed): the body goes on to the other watches.
    Pass,
    /// Keep buffering until the body is complete.
    Buffer,
    /// Refused: answer with this reply (nothing was forwarded).
    Refuse(LocalReply),
}

impl RequestFlow {
    /// Counts a refused allowed request; a body-model refusal because the hold filter is not
    /// installed is also logged (an operator's configuration problem, not a client's).
    pub(super) fn refused_request(
        &self,
        worker: &Worker,
        host: &impl Host,
        pending: &PendingCheck,
        head: &RequestHead,
        refused: &Refused,
    ) {
        worker.counts.refused(refused.refusal);
        let body_model = matches!(
            model_source(pending.identified.dialect, head),
            ModelSource::Body(_)
        );
        if refused.refusal == Refusal::ModelNotAllowed
            && body_model
            && !worker.config.limits.body_hold
        {
            host.log(
                Level::Warn,
                "ptk filter: refused a request of a token with a model allow-list: its model is \
                 in the body and the request-body hold filter is not configured (limits.body_hold)",
            );
        }
    }

    /// A request to hold whose body will never come (it ended at its headers: a `POST`
    /// without a body) is decided now, on the empty body: refused. Forwarded, nothing would
    /// ever read its model.
    pub(super) fn body_to_come(
        &self,
        hold: Option<Box<BodyGate>>,
    ) -> Result<Option<Box<BodyGate>>, Refused> {
        match hold {
            Some(gate) if self.bodiless => gate.decide(&[]).map(|()| None),
            hold => Ok(hold),
        }
    }

    /// A fresh check's forward that [`Self::body_to_come`] refuses becomes a refusal (the
    /// token's verdict is still cached).
    pub(super) fn bodiless_refused(&self, decision: CheckDecision) -> CheckDecision {
        match decision {
            CheckDecision::Forward {
                plan,
                cache,
                key_id,
                hold,
                grant,
                limits_tag,
            } => match self.body_to_come(hold) {
                Ok(hold) => CheckDecision::Forward {
                    plan,
                    cache,
                    key_id,
                    hold,
                    grant,
                    limits_tag,
                },
                Err(refused) => CheckDecision::Refuse { refused, cache },
            },
            other => other,
        }
    }

    /// Marks a request whose body decides for the hold filter; `false` if the host refused
    /// the header (the request must then not be forwarded: its body would go unchecked).
    pub(super) fn mark_for_hold(&self, host: &mut impl Host) -> bool {
        self.model_gate.is_none() || host.set_request_header(HOLD_HEADER, Some("1"))
    }

    /// A request body chunk (`size`: all Envoy buffered; `end`: the last) of a held request:
    /// buffered to the end, then decided. A refusal drops the response watches (the reply is
    /// the filter's own, and nothing was spent).
    pub fn model_gate_body(
        &mut self,
        worker: Option<&Worker>,
        host: &impl RequestBodyHost,
        size: usize,
        end: bool,
    ) -> GateStep {
        let Some(gate) = self.model_gate.as_ref() else {
            return GateStep::Pass;
        };
        if !end {
            return GateStep::Buffer;
        }
        let decided = match host.request_body(size) {
            Some(body) => gate.decide(&body),
            None => gate.decide(&[]),
        };
        self.model_gate = None;
        match decided {
            Ok(()) => GateStep::Pass,
            Err(refused) => {
                if let Some(worker) = worker {
                    worker.counts.refused(refused.refusal);
                }
                self.error_watch = None;
                self.usage = None;
                self.geo = None;
                self.mint = None;
                self.upload_watch = None;
                self.cors_origin = None;
                GateStep::Refuse(refused.reply)
            }
        }
    }
}
