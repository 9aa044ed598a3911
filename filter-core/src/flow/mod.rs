//! The request flow as explicit steps over a small host trait ([`Host`]): what the filter does
//! with a request's headers and with the answer to its check callout, in order (refusal memory,
//! guess throttle, this worker's lease pool, shared data, then the callout; after a 429 one
//! confirming look at the cache and one more check), plus the tick's revalidation of open
//! streams. The wasm shim only moves data between Envoy and these steps, so every branch is
//! driven natively by a fake host in `flow/tests`.
//!
//! - headers → [`Step::Forward`] (the rewrite applied) | [`Step::CallOut`] | [`Step::Reply`]
//! - callout response (matched by token id) → the same three; a callout that cannot be
//!   started, gets no answer or an unusable one is a transport failure: 503, counted as
//!   `callout_failed`, never forwarded.
//!
//! [`Stream`] and [`Root`] (`context.rs`) are the shim's two contexts: they read what Envoy
//! hands over through [`ContextHost`], call these steps and carry out what they return.

mod access_fields;
mod bound;
mod budget;
mod check;
mod context;
mod counts;
mod error_watch;
mod geo;
mod grant_renewal;
mod key_rotation;
mod metering;
mod meters;
mod model_gate;
mod proposed_grant;
mod response;
mod revalidation;
mod sender;
mod session;
mod timings;
mod verdict;
mod worker;

#[cfg(test)]
mod tests;

pub use budget::BudgetBodyStep;
pub use check::RequestFlow;
pub use context::{Action, ContextHost, Root, Stream};
pub use counts::{Counter, Counts, COUNTERS, CREDENTIAL_REFUSED};
pub use metering::{Metered, RequestBodyHost};
pub use meters::{Meters, MetricType};
pub use revalidation::{report_activity, Revalidations};
pub use session::SessionStep;
pub use timings::{Timings, CHECK_CALLOUT, OVERHEAD};
pub use worker::Worker;

use ptk_wire::Provider;

use crate::activity::Call;
use crate::plan::RewritePlan;
use crate::refusal::LocalReply;
use crate::shared_data::SharedData;
use crate::upstream_errors::Forwarded;

/// How loud a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Normal operation worth a line.
    Info,
    /// Something failed and was handled (a request refused, a write skipped).
    Warn,
    /// Something failed that should never fail.
    Error,
    /// The plugin cannot run (a bad configuration).
    Critical,
}

/// What the flow needs from the proxy: time, shared data, the sender's address, callouts,
/// the request rewrite and a log. Implemented with host calls by the shim, by a fake in tests.
pub trait Host {
    /// The shared-data store of this VM.
    type Shared: SharedData;
    /// The shared-data store.
    fn shared(&self) -> &Self::Shared;
    /// Host time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// The downstream peer (`ip:port`), empty if unknown; read only with the throttle on.
    fn source_address(&self) -> String;
    /// Starts an HTTP callout to `cluster`; its token id, or why it could not start.
    fn dispatch(&mut self, cluster: &str, call: &Call, timeout_ms: u64) -> Result<u32, String>;
    /// Sets a request header (replacing every value), or removes it with `None`; `false` if
    /// the host refused.
    fn set_request_header(&mut self, name: &str, value: Option<&str>) -> bool;
    /// Writes a log line (never pass a token or a key).
    fn log(&self, level: Level, message: &str);
    /// Sets a field of this request's access log (`crate::access_log`: a proxy-wasm property,
    /// `wasm.<name>` in Envoy's filter state); `false` if the host refused. Never pass a token
    /// or a key.
    fn set_log_field(&mut self, name: &str, value: &str) -> bool;
    /// 64 random bits from the host (WASI `random_get`), `None` if it has none. Not a secret:
    /// they name the budget grant a check proposes (`proposed_grant.rs`).
    fn random_u64(&mut self) -> Option<u64>;
}

/// The response side of the proxy, for the watches of a forwarded request's response.
pub trait ResponseHost: Host {
    /// The first value of a response header, converted lossily.
    fn response_header(&self, name: &str) -> Option<String>;
    /// Every response header, values converted lossily (empty if unreadable).
    fn response_headers(&self) -> Vec<(String, String)>;
    /// Sets a response header, replacing any values; `false` if the host refused.
    fn set_response_header(&mut self, name: &str, value: &str) -> bool;
    /// Removes a response header (every value); `false` if refused.
    fn remove_response_header(&mut self, name: &str) -> bool;
    /// The response body Envoy holds for this callback (what was buffered, or this chunk).
    fn response_body(&self, size: usize) -> Option<Vec<u8>>;
    /// Replaces the first `size` bytes of the held response body; `false` if refused.
    fn set_response_body(&mut self, size: usize, body: &[u8]) -> bool;
    /// Answers in the provider's place; `false` if refused.
    fn send_reply(&mut self, reply: &LocalReply) -> bool;
}

/// Applies a rewrite to the request headers (removals first); `false` as soon as an edit fails
/// (a half-applied rewrite must then never be forwarded).
pub(crate) fn apply(host: &mut impl Host, plan: &RewritePlan) -> bool {
    let removed = plan
        .remove
        .iter()
        .all(|name| host.set_request_header(name, None));
    let set = plan
        .set
        .iter()
        .all(|(name, value)| host.set_request_header(name, Some(value)));
    removed && set
}

/// What the shim does next with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Forward it (its headers are rewritten): continue, or resume after a callout.
    Forward,
    /// A callout is in flight: pause until its answer.
    CallOut {
        /// The callout's token id.
        token_id: u32,
    },
    /// Answer locally (never forwarded).
    Reply(LocalReply),
}

/// What the shim does next with a response body chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyStep {
    /// Let it pass.
    Continue,
    /// Hold it (Envoy buffers it until the end or a limit).
    Pause,
}

/// What the shim does next with the response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadersStep {
    /// Let them pass.
    Continue,
    /// The filter answered in the provider's place: stop this response.
    Stop,
}

/// A request forwarded with the operator's real key: its response is watched for the provider
/// refusing the key or quoting it (`upstream_errors`).
#[derive(PartialEq, Eq)]
pub struct KeyWatch {
    /// What the response watch needs of the request.
    pub forwarded: Forwarded,
    /// The provider the request went to (its refusals are counted under its name: a
    /// configured provider speaks OpenAI's dialect but has its own counter).
    pub provider: Provider,
    /// The real key.
    pub key: String,
    /// Set `accept-encoding: identity` (`upstream_errors::ask_identity`).
    pub ask_identity: bool,
    /// Remove `sec-websocket-extensions` (`upstream_errors::drop_extensions`).
    pub drop_extensions: bool,
}

impl std::fmt::Debug for KeyWatch {
    // Never print the real key, even in a test failure.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyWatch")
            .field("forwarded", &self.forwarded)
            .field("provider", &self.provider)
            .field("key", &"[redacted]")
            .field("ask_identity", &self.ask_identity)
            .field("drop_extensions", &self.drop_extensions)
            .finish()
    }
}
