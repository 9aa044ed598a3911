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

mod bound;
mod check;
mod counts;
mod revalidation;
mod verdict;
mod watches;
mod worker;

#[cfg(test)]
mod tests;

pub use check::RequestFlow;
pub use counts::{Counter, Counts, COUNTERS};
pub use revalidation::{report_usage, Revalidations};
pub use worker::Worker;

use crate::plan::RewritePlan;
use crate::refusal::LocalReply;
use crate::shared_data::SharedData;
use crate::upstream_errors::Forwarded;
use crate::usage::Call;

/// How loud a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Normal operation worth a line.
    Info,
    /// Something failed and was handled (a request refused, a write skipped).
    Warn,
    /// Something failed that should never fail.
    Error,
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
    /// Applies a rewrite to the request headers; `false` if any edit failed (the request must
    /// then never be forwarded).
    fn rewrite(&mut self, plan: &RewritePlan) -> bool;
    /// Writes a log line (never pass a token or a key).
    fn log(&self, level: Level, message: &str);
}

/// What the shim does next with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Forward it (its headers are rewritten): continue, or resume after a callout. With a
    /// real key in it, watch its response ([`KeyWatch`]).
    Forward(Option<KeyWatch>),
    /// A callout is in flight: pause until its answer.
    CallOut {
        /// The callout's token id.
        token_id: u32,
    },
    /// Answer locally (never forwarded).
    Reply(LocalReply),
}

/// A request forwarded with the operator's real key: its response is watched for the provider
/// refusing the key or quoting it (`upstream_errors`). The shim asks the provider for an
/// uncompressed answer and drops WebSocket extensions as these flags say, before resuming.
#[derive(PartialEq, Eq)]
pub struct KeyWatch {
    /// What the response watch needs of the request.
    pub forwarded: Forwarded,
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
            .field("key", &"[redacted]")
            .field("ask_identity", &self.ask_identity)
            .field("drop_extensions", &self.drop_extensions)
            .finish()
    }
}
