//! The shim's two contexts as plain types: [`Stream`] (one HTTP request: hands its headers,
//! callout answers and response to [`RequestFlow`] and carries out the step it returns) and
//! [`Root`] (parses the configuration once, hands each request a stream, and on every tick
//! revalidates open streams, refreshes the CAS anchor and flushes counters and activity). The
//! wasm crate only forwards Envoy's callbacks to these, over [`ContextHost`].

use std::rc::Rc;

use crate::config::{validate_secret, FilterConfig};
use crate::flow::meters::{Meters, MetricType};
use crate::flow::model_gate::GateStep;
use crate::flow::revalidation::{report_activity, Revalidations};
use crate::flow::timings::{RequestClock, Timings};
use crate::flow::{
    BodyStep, BudgetBodyStep, HeadersStep, Level, RequestBodyHost, RequestFlow, ResponseHost,
    SessionStep, Step, Worker,
};
use crate::log_path::redacted_path;
use crate::refusal::{LocalReply, Refusal};
use crate::request::RequestHead;
use crate::shared_data::CasAnchor;
use crate::ErrorShape;

/// What the contexts need from the proxy beyond the flow's own calls.
pub trait ContextHost: ResponseHost + RequestBodyHost {
    /// The request headers, values converted lossily; `None` if unreadable.
    fn request_headers(&self) -> Option<Vec<(String, String)>>;
    /// Lets the paused request continue; `false` if the host refused.
    fn resume_request(&mut self) -> bool;
    /// Lets the held response continue; `false` if the host refused.
    fn resume_response(&mut self) -> bool;
    /// The callout answer being delivered: its `:status` value (none for a failed callout,
    /// which arrives with no headers) and its body.
    fn callout_answer(&self, body_size: usize) -> (Option<String>, Option<Vec<u8>>);
    /// The headers of the callout answer being delivered (empty if none or unreadable).
    fn callout_headers(&self) -> Vec<(String, String)>;
    /// Defines a metric; `None` if the host refused (metrics are best effort).
    fn define_metric(&mut self, kind: MetricType, name: &str) -> Option<u32>;
    /// Adds `delta` (may be negative) to a metric.
    fn add_to_metric(&mut self, id: u32, delta: i64);
    /// Resets the HTTP stream of request `context_id` on behalf of the root `root_id`;
    /// `false` if the host refused (the stream may already be gone).
    fn close_stream(&mut self, context_id: u32, root_id: u32) -> bool;
    /// Resets this request's own stream, from one of its callbacks; `false` if refused.
    fn reset_stream(&mut self) -> bool;
    /// Asks for a tick every `period_ms`.
    fn set_tick(&mut self, period_ms: u64);
    /// Host time in microseconds since the Unix epoch (for the overhead histograms).
    fn now_us(&self) -> u64;
    /// Records `value` into a histogram.
    fn record_metric(&mut self, id: u32, value: u64);
}

/// What the shim answers Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Go on with the request or response.
    Continue,
    /// Hold it (a callout is in flight, a local reply was sent, or a body is buffered).
    Pause,
}

/// The callout answer's status and body.
fn answer(host: &impl ContextHost, body_size: usize) -> (Option<u16>, Option<Vec<u8>>) {
    let (status, body) = host.callout_answer(body_size);
    (status.and_then(|s| s.parse().ok()), body)
}

/// Answers locally. The request is never forwarded, so its `:path` is only logged: first it
/// is replaced with what the access log may print (`log_path::redacted_path`: no query, no
/// credential value, no token-shaped run), written back only when that changes it.
fn reply(host: &mut impl ContextHost, reply: &LocalReply) -> Action {
    let path = host
        .request_headers()
        .and_then(|headers| redacted_path(&RequestHead::new(headers)));
    if let Some(path) = path {
        if !host.set_request_header(":path", Some(&path)) {
            host.log(Level::Warn, "ptk filter: could not redact the logged path");
        }
    }
    if !host.send_reply(reply) {
        host.log(Level::Error, "ptk filter: could not send a local reply");
    }
    Action::Pause
}

/// Resets this request's stream (a WebSocket session whose budget ran out: past the 101 no
/// local reply can be sent); what it held is never forwarded.
fn reset(host: &mut impl ContextHost) -> Action {
    if !host.reset_stream() {
        host.log(
            Level::Error,
            "ptk filter: could not close a WebSocket session",
        );
    }
    Action::Pause
}

/// Carries out a step; `resume` after a callout (the request was paused).
fn carry_out(host: &mut impl ContextHost, step: Step, resume: bool) -> Action {
    match step {
        Step::Forward => {
            if resume && !host.resume_request() {
                host.log(Level::Error, "ptk filter: could not resume a request");
            }
            Action::Continue
        }
        Step::CallOut { .. } => Action::Pause,
        Step::Reply(local) => reply(host, &local),
    }
}

/// One HTTP request; `worker` is `None` if the plugin has no valid config. Dropping it (Envoy
/// deletes the context when the request is over) forgets it among the open streams.
#[derive(Debug)]
pub struct Stream {
    context_id: u32,
    worker: Option<Rc<Worker>>,
    pub(super) flow: RequestFlow,
    clock: RequestClock,
    /// The request body bytes Envoy holds because the last body callback paused (0 once a
    /// chunk went on): the whole body when request trailers end the stream.
    request_held: usize,
}

impl Stream {
    /// The stream of request `context_id`.
    pub fn new(context_id: u32, worker: Option<Rc<Worker>>) -> Stream {
        let flow = RequestFlow::new(context_id);
        Stream {
            context_id,
            worker,
            flow,
            clock: RequestClock::default(),
            request_held: 0,
        }
    }

    /// The request headers are in (`end`: no body follows): without a valid configuration,
    /// or unreadable, 503 (never forwarded); else the flow decides.
    pub fn on_request_headers(&mut self, host: &mut impl ContextHost, end: bool) -> Action {
        // Built only when needed: never on the path of a forwarded request.
        let unavailable = || Refusal::TokenServiceUnavailable.reply(ErrorShape::Openai);
        let Some(worker) = self.worker.as_deref() else {
            return reply(host, &unavailable());
        };
        let Some(headers) = host.request_headers() else {
            host.log(Level::Error, "ptk filter: could not read request headers");
            return reply(host, &unavailable());
        };
        self.clock.start(host);
        self.flow.bodiless = end;
        let step = self
            .flow
            .on_request_headers(worker, host, RequestHead::new(headers));
        self.time(host, worker, &step);
        carry_out(host, step, false)
    }

    /// Samples the overhead of a forwarded request, or notes when a callout left.
    fn time(&self, host: &mut impl ContextHost, worker: &Worker, step: &Step) {
        match step {
            Step::Forward => self.clock.forwarded(host, worker.timings.get()),
            Step::CallOut { .. } => self.clock.callout_sent(host),
            Step::Reply(_) => {}
        }
    }

    /// A callout answer: read and decided only if it is the one this request waits on.
    pub fn on_callout_response(&mut self, host: &mut impl ContextHost, token_id: u32, size: usize) {
        if self.flow.expects_renewal(token_id) {
            if let Some(worker) = self.worker.clone() {
                let (status, body) = answer(host, size);
                let held = self
                    .flow
                    .on_renewal_answer(&worker, host, status, body.as_deref());
                if held && !host.resume_response() {
                    host.log(Level::Error, "ptk filter: could not resume a response");
                }
            }
            return;
        }
        if self.flow.expects_session_top_up(token_id) {
            if let Some(worker) = self.worker.clone() {
                let (status, body) = answer(host, size);
                let flow = &mut self.flow;
                match flow.on_session_answer(&worker, host, status, body.as_deref()) {
                    SessionStep::Resume => {
                        self.request_held = 0;
                        carry_out(host, Step::Forward, true);
                    }
                    SessionStep::Close => {
                        reset(host);
                    }
                }
            }
            return;
        }
        if self.flow.expects_budget(token_id) {
            if let Some(worker) = self.worker.clone() {
                let (status, body) = answer(host, size);
                let flow = &mut self.flow;
                let (step, body_size) =
                    flow.on_budget_answer(&worker, host, status, body.as_deref());
                // Asked from the body callback: the body's other watches run before it goes.
                if let (Step::Forward, Some(held)) = (&step, body_size) {
                    self.after_gates(host, held, true);
                }
                carry_out(host, step, true);
            }
            return;
        }
        if self.flow.expects_replay(token_id) {
            if let Some(worker) = self.worker.as_deref() {
                self.flow.on_replay_response(worker, host, size);
            }
            return;
        }
        let Some(worker) = self
            .worker
            .as_deref()
            .filter(|_| self.flow.expects(token_id))
        else {
            return;
        };
        let (status, body) = answer(host, size);
        // Answered or failed, the wait is over (a failed callout arrives with no status).
        if status.is_some() {
            self.clock.callout_answered(host, worker.timings.get());
        }
        let flow = &mut self.flow;
        if let Some(step) =
            flow.on_callout_response(worker, host, token_id, status, body.as_deref())
        {
            self.time(host, worker, &step);
            carry_out(host, step, true);
        }
    }

    /// The response headers are in (`end`: no body follows).
    pub fn on_response_headers(&mut self, host: &mut impl ContextHost, end: bool) -> Action {
        let Some(worker) = self.worker.as_deref() else {
            return Action::Continue;
        };
        let step = self.flow.geo_headers(host, end);
        match step.unwrap_or_else(|| self.flow.on_response_headers(worker, host, end)) {
            // Held while this request's grant renewal is in flight (`grant_renewal.rs`).
            HeadersStep::Continue if self.flow.hold_response_for_renewal() => Action::Pause,
            HeadersStep::Continue => Action::Continue,
            HeadersStep::Stop => Action::Pause,
        }
    }

    /// A request body chunk of `size` bytes (`end`: the last): first held whole while a
    /// limited token's model allow-list waits on it (refused: the 403, nothing forwarded),
    /// then copied for a geo-fallback replay (never held for it), held only for a metered
    /// stream that may be asked for its usage.
    pub fn on_request_body(
        &mut self,
        host: &mut impl ContextHost,
        size: usize,
        end: bool,
    ) -> Action {
        self.request_held = 0;
        match self
            .flow
            .model_gate_body(self.worker.as_deref(), host, size, end)
        {
            GateStep::Pass => {}
            GateStep::Buffer => {
                self.request_held = size;
                return Action::Pause;
            }
            GateStep::Refuse(local) => return reply(host, &local),
        }
        let worker = self.worker.clone();
        match self.flow.budget_body(worker.as_deref(), host, size, end) {
            BudgetBodyStep::Pass => {}
            BudgetBodyStep::Buffer => {
                self.request_held = size;
                return Action::Pause;
            }
            BudgetBodyStep::Decided(Step::Forward) => {}
            BudgetBodyStep::Decided(Step::CallOut { .. }) => return Action::Pause,
            BudgetBodyStep::Decided(Step::Reply(local)) => return reply(host, &local),
            BudgetBodyStep::Close => return reset(host),
        }
        self.after_gates(host, size, end)
    }

    /// A request body chunk past the gates (model allow-list, budget): copied for a
    /// geo-fallback replay, held only for a metered stream that may be asked for its usage.
    fn after_gates(&mut self, host: &mut impl ContextHost, size: usize, end: bool) -> Action {
        self.flow.geo_request_chunk(host, size, end);
        let step = self.flow.on_request_body(host, size, end);
        self.flow.geo_request_step(step);
        match step {
            BodyStep::Continue => Action::Continue,
            BodyStep::Pause => {
                self.request_held = size;
                Action::Pause
            }
        }
    }

    /// The request trailers are in (HTTP/2): they end the stream, so the body's last chunk
    /// never said `end`. A body the model allow-list or a budget holds is now whole and is
    /// decided here (else it would go on unread at the trailers: a refused model to the
    /// provider, a budgeted request forwarded without its estimate spent); the hold filter
    /// after ptk keeps the headers back meanwhile, and sends the body on when it continues.
    /// Metering holds no body to here: it ends its hold at all of `content-length` (it holds
    /// no other), because without that hold filter Envoy (1.40) loses the body: when the
    /// trailers came in while ptk held the headers for its check, continuing at them restarts
    /// the iteration at ptk, whose stream already ended, and the buffered body goes nowhere.
    /// The geo fallback's copy stays incomplete, never replayed.
    pub fn on_request_trailers(&mut self, host: &mut impl ContextHost) -> Action {
        let held = std::mem::take(&mut self.request_held);
        match self
            .flow
            .model_gate_body(self.worker.as_deref(), host, held, true)
        {
            GateStep::Pass | GateStep::Buffer => {}
            GateStep::Refuse(local) => return reply(host, &local),
        }
        let worker = self.worker.clone();
        match self.flow.budget_body(worker.as_deref(), host, held, true) {
            BudgetBodyStep::Pass
            | BudgetBodyStep::Buffer
            | BudgetBodyStep::Decided(Step::Forward) => Action::Continue,
            // The top-up check's answer resumes the request (its trailers) or replies.
            BudgetBodyStep::Decided(Step::CallOut { .. }) => Action::Pause,
            BudgetBodyStep::Decided(Step::Reply(local)) => reply(host, &local),
            BudgetBodyStep::Close => reset(host),
        }
    }

    /// A response body chunk of `size` bytes (`end`: the last).
    pub fn on_response_body(
        &mut self,
        host: &mut impl ContextHost,
        size: usize,
        end: bool,
    ) -> Action {
        let Some(worker) = self.worker.as_deref() else {
            return Action::Continue;
        };
        let held = self.flow.geo_body(worker, host, size, end);
        match held.unwrap_or_else(|| self.flow.on_response_body(worker, host, size, end)) {
            BodyStep::Continue => Action::Continue,
            BodyStep::Pause => Action::Pause,
        }
    }
}

impl Drop for Stream {
    // The request is over: it is no longer open, and its usage is recorded if it was not yet.
    fn drop(&mut self) {
        if let Some(worker) = &self.worker {
            // Envoy drops the answers of checks still in flight: free what they reserved
            // (first: settling a session takes its state, top-up included).
            self.flow.abandon_pending_checks(worker);
            // A response that never reached its end (reset, disconnect): what was metered
            // still counts, marked incomplete.
            self.flow.finish_metering(worker, false);
            if let Ok(mut streams) = worker.streams.try_borrow_mut() {
                streams.close(self.context_id);
            }
        }
    }
}

/// The root context; `worker` is `None` until a valid configuration arrives.
#[derive(Debug)]
pub struct Root {
    context_id: u32,
    pub(super) worker: Option<Rc<Worker>>,
    meters: Option<Meters>,
    revalidations: Revalidations,
}

impl Root {
    /// The root context with this id (requests' streams are closed on its behalf).
    pub fn new(context_id: u32) -> Root {
        Root {
            context_id,
            worker: None,
            meters: None,
            revalidations: Revalidations::default(),
        }
    }

    /// Parses the plugin configuration and reads the check secret from the variable it names
    /// (`env` reads the VM environment). `false` makes Envoy reject the plugin (and fail
    /// closed), with a log line naming the offending field.
    pub fn configure(
        &mut self,
        host: &mut impl ContextHost,
        config: &[u8],
        env: impl Fn(&str) -> Option<String>,
    ) -> bool {
        let parsed = FilterConfig::parse(config).and_then(|config| {
            let name = &config.token_service.secret_env;
            let secret = validate_secret(name, env(name).as_deref())?;
            Ok((config, secret))
        });
        let (config, secret) = match parsed {
            Ok(parsed) => parsed,
            Err(message) => {
                let line = format!("ptk filter: bad config: {message}");
                host.log(Level::Critical, &line);
                return false;
            }
        };
        // Which release, config schema and wire version run here, for the operator matching
        // filter and token-service versions.
        host.log(Level::Info, &crate::version::start_line());
        host.set_tick(config.cache.activity_flush_ms);
        let anchor = CasAnchor::refresh(host.shared());
        self.meters = Some(Meters::define(host, &config.providers));
        let worker = Worker::new(config, secret, anchor);
        worker.timings.set(Timings::define(host));
        self.worker = Some(Rc::new(worker));
        true
    }

    /// The stream of a new request.
    pub fn stream(&self, context_id: u32) -> Stream {
        Stream::new(context_id, self.worker.clone())
    }

    /// A root callout came back: a revalidation closes the streams of refused tokens, anything
    /// else is an activity report.
    pub fn on_callout_response(&mut self, host: &mut impl ContextHost, token_id: u32, size: usize) {
        let Some(worker) = self.worker.as_deref() else {
            return;
        };
        let (status, body) = answer(host, size);
        let revalidations = &mut self.revalidations;
        let closing =
            revalidations.on_callout_response(worker, host, token_id, status, body.as_deref());
        self.close(host, &closing);
    }

    /// Revalidates open streams (if on), refreshes the CAS anchor, flushes counters and
    /// activity.
    pub fn on_tick(&mut self, host: &mut impl ContextHost) {
        let Some(worker) = self.worker.clone() else {
            return;
        };
        if worker.config.streams.revalidate {
            let closing = self.revalidations.on_tick(&worker, host);
            self.close(host, &closing);
        }
        // Keeps the anchor within one tick of the CAS counter, which cannot wrap (2^32
        // writes) in that time.
        worker.anchor.set(CasAnchor::refresh(host.shared()));
        if let Some(meters) = &self.meters {
            meters.flush(host, &worker.counts, worker.streams.borrow().len());
        }
        report_activity(&worker, host);
    }

    /// Resets these requests' streams.
    fn close(&self, host: &mut impl ContextHost, contexts: &[u32]) {
        for context in contexts {
            if !host.close_stream(*context, self.context_id) {
                host.log(Level::Warn, "ptk filter: could not close a revoked stream");
            }
        }
        if !contexts.is_empty() {
            let n = contexts.len();
            let line = format!("ptk filter: closed {n} open request(s) of revoked tokens");
            host.log(Level::Info, &line);
        }
    }
}
