//! The response path of a request forwarded with the operator's real key: a provider refusing
//! that key is answered in its place, and fragments of it in any other error are masked
//! (decisions in `ptk_filter_core::upstream_errors`). Kept apart from `http.rs`, which only
//! hands each response over.
//!
//! Cost: the body callback is exported again for this, so Envoy enters the VM once per
//! response body chunk; every response below 400 drops its guard at the headers (an accepted
//! WebSocket after its first 64 KiB of server frames), and the body callback then returns at
//! once (measured in docs/benchmarks.md).

use proxy_wasm::types::{Action, LogLevel};
use ptk_filter_core::upstream_errors::{
    ask_identity, drop_extensions, key_in_plan, mask_frames, masked_headers, on_body, on_headers,
    BodyVerdict, Forwarded, HeadersVerdict, Rewritten, FRAMES_MAX, INSPECT_MAX,
};
use ptk_filter_core::ws_frames::FrameScanner;
use ptk_filter_core::{PendingCheck, RequestHead, RewritePlan};
use ptk_wire::Provider;

use crate::host;
use crate::metrics::Counter;

/// One forwarded request's response, watched until its status shows it is a success.
pub struct Guard {
    fwd: Forwarded,
    key: String,
    /// Set once the headers showed an error: its status, whether its body is held back to be
    /// read whole, and whether its length was announced.
    error: Option<ErrorBody>,
    /// Set once the provider accepted a WebSocket: its first server frames are searched.
    frames: Option<Frames>,
}

struct Frames {
    scanner: FrameScanner,
    /// Bytes still to search before the guard lets the rest pass unread.
    left: usize,
}

struct ErrorBody {
    status: u16,
    hold: bool,
    length_fixed: bool,
}

/// What the headers decided.
pub enum Headers {
    /// A success (or unreadable): forget the guard, pass everything.
    Pass,
    /// The filter answered in the provider's place: stop this response.
    Replaced,
    /// An error: keep the guard for the body.
    Inspect,
}

impl Guard {
    /// A guard for a request forwarded with `key`; asks the provider for an uncompressed
    /// response when the client accepts a compressed one (see `ask_identity`), so that an error
    /// can be read. Call before the request is resumed.
    pub fn start(pending: &PendingCheck, head: &RequestHead, key: &str) -> Guard {
        if ask_identity(head.header("accept-encoding"))
            && host::set_request_header("accept-encoding", "identity").is_err()
        {
            host::log(LogLevel::Warn, "ptk filter: could not set accept-encoding");
        }
        if drop_extensions(pending.websocket, head.header("sec-websocket-extensions"))
            && host::remove_request_header("sec-websocket-extensions").is_err()
        {
            host::log(
                LogLevel::Warn,
                "ptk filter: could not drop websocket extensions",
            );
        }
        Guard {
            fwd: Forwarded {
                dialect: pending.identified.dialect,
                websocket: pending.websocket,
                origin: pending.origin.clone(),
            },
            key: key.to_string(),
            error: None,
            frames: None,
        }
    }

    /// [`Guard::start`] with the key the plan carries (`None` if it carries none).
    pub fn from_plan(
        pending: &PendingCheck,
        head: &RequestHead,
        plan: &RewritePlan,
    ) -> Option<Guard> {
        key_in_plan(plan).map(|key| Guard::start(pending, head, key))
    }

    /// Reads the status (one host call for a success) and decides.
    pub fn on_headers(&mut self, metrics: &ResponseMetrics) -> Headers {
        let Some(status) = host::response_header(":status").and_then(|s| s.parse::<u16>().ok())
        else {
            return Headers::Pass;
        };
        if status < 400 {
            if on_headers(&self.fwd, status, None) == HeadersVerdict::Frames {
                self.frames = Some(Frames {
                    scanner: FrameScanner::default(),
                    left: FRAMES_MAX,
                });
                return Headers::Inspect;
            }
            return Headers::Pass;
        }
        let headers = host::response_headers().unwrap_or_default();
        let value = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        match on_headers(&self.fwd, status, value("content-type")) {
            HeadersVerdict::Pass | HeadersVerdict::Frames => Headers::Pass,
            HeadersVerdict::Replace(reply) => {
                metrics.refused(self.provider());
                host::log(
                    LogLevel::Warn,
                    &format!(
                        "ptk filter: {} refused the proxy's upstream credential (status {status}); \
                         answered in its place",
                        self.provider().as_str()
                    ),
                );
                if host::send_reply(reply.status, &reply.headers, &reply.body).is_ok() {
                    return Headers::Replaced;
                }
                // Never expected; the response then passes with the key masked, as any error.
                host::log(LogLevel::Error, "ptk filter: could not send a local reply");
                self.inspect(metrics, &headers, status, true)
            }
            HeadersVerdict::Inspect { hold } => self.inspect(metrics, &headers, status, hold),
        }
    }

    /// An error to read: masks the header values that quote the key, keeps the guard for the
    /// body.
    fn inspect(
        &mut self,
        metrics: &ResponseMetrics,
        headers: &[(String, String)],
        status: u16,
        hold: bool,
    ) -> Headers {
        for (name, masked) in masked_headers(headers, &self.key) {
            metrics.masked();
            self.log_masked(status);
            if host::set_response_header(&name, &masked).is_err() {
                host::log(LogLevel::Warn, "ptk filter: could not mask a header");
            }
        }
        let length_fixed = headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length"));
        self.error = Some(ErrorBody {
            status,
            hold,
            length_fixed,
        });
        Headers::Inspect
    }

    /// An error body: held back whole (up to `INSPECT_MAX`), else read chunk by chunk; the
    /// bytes Envoy holds are rewritten when the verdict says so.
    pub fn on_body(&mut self, metrics: &ResponseMetrics, size: usize, end: bool) -> Action {
        if self.frames.is_some() {
            self.on_frames(metrics, size);
            return Action::Continue;
        }
        let Some(error) = self.error.as_mut() else {
            return Action::Continue;
        };
        if error.hold && !end && size <= INSPECT_MAX {
            return Action::Pause;
        }
        let whole = error.hold && end;
        // Past the limit the rest passes chunk by chunk.
        error.hold = false;
        let status = error.status;
        let Some(body) = host::response_body(size) else {
            return Action::Continue;
        };
        let verdict = on_body(
            &self.fwd,
            status,
            &body,
            &self.key,
            whole,
            error.length_fixed,
        );
        if let BodyVerdict::Rewrite { body: new, class } = verdict {
            match class {
                Rewritten::CredentialRefused => {
                    metrics.refused(self.provider());
                    host::log(
                        LogLevel::Warn,
                        &format!(
                            "ptk filter: {} refused the proxy's upstream credential (status \
                             {status}, invalid-key reason); answered in its place",
                            self.provider().as_str()
                        ),
                    );
                }
                Rewritten::FragmentMasked => {
                    metrics.masked();
                    self.log_masked(status);
                }
            }
            if host::set_response_body(body.len(), &new).is_err() {
                host::log(
                    LogLevel::Error,
                    "ptk filter: could not rewrite an error body",
                );
            }
        }
        Action::Continue
    }

    /// True once nothing more will be looked at (the WebSocket's search budget is spent).
    pub fn done(&self) -> bool {
        self.frames.as_ref().is_some_and(|f| f.left == 0)
    }

    /// One chunk of an accepted WebSocket's server frames: fragments of the key masked inside
    /// text and close payloads.
    fn on_frames(&mut self, metrics: &ResponseMetrics, size: usize) {
        let Some(frames) = self.frames.as_mut() else {
            return;
        };
        frames.left = frames.left.saturating_sub(size);
        let Some(mut chunk) = host::response_body(size) else {
            return;
        };
        if mask_frames(&mut frames.scanner, &mut chunk, &self.key) == 0 {
            return;
        }
        metrics.masked();
        self.log_masked(101);
        if host::set_response_body(size, &chunk).is_err() {
            host::log(
                LogLevel::Error,
                "ptk filter: could not rewrite a websocket frame",
            );
        }
    }

    fn provider(&self) -> Provider {
        self.fwd.dialect.provider()
    }

    fn log_masked(&self, status: u16) {
        host::log(
            LogLevel::Warn,
            &format!(
                "ptk filter: masked a fragment of the upstream credential in a response from {} \
                 (status {status})",
                self.provider().as_str()
            ),
        );
    }
}

/// Counters of provider errors about the operator's credential.
#[derive(Debug, Default)]
pub struct ResponseMetrics {
    openai: Counter,
    anthropic: Counter,
    gemini: Counter,
    masked: Counter,
}

impl ResponseMetrics {
    /// Defines the counters (`wasmcustom.ptk.upstream_credential_refused.<provider>` and
    /// `wasmcustom.ptk.upstream_key_masked`).
    pub fn define() -> ResponseMetrics {
        let refused = |p: &str| Counter::define(&format!("upstream_credential_refused.{p}"));
        ResponseMetrics {
            openai: refused("openai"),
            anthropic: refused("anthropic"),
            gemini: refused("gemini"),
            masked: Counter::define("upstream_key_masked"),
        }
    }

    /// Adds the counts since the last flush to Envoy's counters.
    pub fn flush(&self) {
        for counter in [&self.openai, &self.anthropic, &self.gemini, &self.masked] {
            counter.flush();
        }
    }

    fn refused(&self, provider: Provider) {
        match provider {
            Provider::Openai => &self.openai,
            Provider::Anthropic => &self.anthropic,
            Provider::Gemini => &self.gemini,
            // The response path knows the dialect only, and configured providers speak
            // OpenAI's: their refusals count with OpenAI's (never reached from a dialect).
            Provider::Configured(_) => &self.openai,
        }
        .add();
    }

    fn masked(&self) {
        self.masked.add();
    }
}
