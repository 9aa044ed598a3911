//! The response of a request forwarded with the operator's real key: a provider refusing
//! that key is answered in its place, and fragments of it in any other error are masked
//! (decisions in `upstream_errors`).
//!
//! Cost: the body callback is exported again for this, so Envoy enters the VM once per
//! response body chunk; every response below 400 drops its watch at the headers (an accepted
//! WebSocket after its first 64 KiB of server frames), and the body callback then returns at
//! once (measured in docs/benchmarks.md).

use ptk_wire::Provider;

use crate::flow::counts::{Counter, Counts};
use crate::flow::{BodyStep, Host, KeyWatch, Level, ResponseHost};
use crate::pipeline::PendingCheck;
use crate::plan::RewritePlan;
use crate::request::RequestHead;
use crate::upstream_errors::{
    ask_identity, drop_extensions, key_in_plan, mask_frames, masked_headers, on_body, on_headers,
    BodyVerdict, Forwarded, HeadersVerdict, Rewritten, FRAMES_MAX, INSPECT_MAX,
};
use crate::ws_frames::FrameScanner;

/// One forwarded request's response, watched until its status shows it is a success.
#[derive(Debug)]
pub struct ErrorWatch {
    fwd: Forwarded,
    provider: Provider,
    key: String,
    /// Set once the headers showed an error: its status, whether its body is held back to be
    /// read whole, and whether its length was announced.
    error: Option<ErrorBody>,
    /// Set once the provider accepted a WebSocket: its first server frames are searched.
    frames: Option<Frames>,
    /// The pool key's name, when the key came from a pool (`key_rotation.rs`).
    pub(super) pool_key: Option<String>,
    /// Set when the body showed the provider refused the key (Gemini's `API_KEY_INVALID`).
    pub(super) key_refused: bool,
}

#[derive(Debug)]
struct Frames {
    scanner: FrameScanner,
    /// Bytes still to search before the watch lets the rest pass unread.
    left: usize,
}

#[derive(Debug)]
struct ErrorBody {
    status: u16,
    hold: bool,
    length_fixed: bool,
}

/// What the headers decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Headers {
    /// A success (or unreadable): forget the watch, pass everything.
    Pass,
    /// The filter answered in the provider's place: stop this response.
    Replaced,
    /// An error: keep the watch for the body.
    Inspect,
}

impl ErrorWatch {
    /// Watches the response of a request forwarded with the watch's key; first asks the
    /// provider for an uncompressed response and drops WebSocket extensions as the watch says
    /// (see `ask_identity`, `drop_extensions`), so that an error can be read. Call before the
    /// request is resumed.
    pub fn start(watch: KeyWatch, host: &mut impl Host) -> ErrorWatch {
        if watch.ask_identity && !host.set_request_header("accept-encoding", Some("identity")) {
            host.log(Level::Warn, "ptk filter: could not set accept-encoding");
        }
        if watch.drop_extensions && !host.set_request_header("sec-websocket-extensions", None) {
            host.log(
                Level::Warn,
                "ptk filter: could not drop websocket extensions",
            );
        }
        ErrorWatch {
            fwd: watch.forwarded,
            provider: watch.provider,
            key: watch.key,
            error: None,
            frames: None,
            pool_key: None,
            key_refused: false,
        }
    }

    /// Reads the status (one host call for a success) and decides.
    pub fn on_headers(&mut self, counts: &Counts, host: &mut impl ResponseHost) -> Headers {
        let Some(status) = host
            .response_header(":status")
            .and_then(|s| s.parse::<u16>().ok())
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
        let headers = host.response_headers();
        let value = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        match on_headers(&self.fwd, status, value("content-type")) {
            HeadersVerdict::Pass | HeadersVerdict::Frames => Headers::Pass,
            HeadersVerdict::Replace(reply) => {
                counts.add(Counter::CredentialRefused(self.provider));
                host.log(
                    Level::Warn,
                    &format!(
                        "ptk filter: {} refused the proxy's upstream credential (status {status}); \
                         answered in its place",
                        self.provider.as_str()
                    ),
                );
                if host.send_reply(&reply) {
                    return Headers::Replaced;
                }
                // Never expected; the response then passes with the key masked, as any error.
                host.log(Level::Error, "ptk filter: could not send a local reply");
                self.inspect(counts, host, &headers, status, true)
            }
            HeadersVerdict::Inspect { hold } => self.inspect(counts, host, &headers, status, hold),
        }
    }

    /// An error to read: masks the header values that quote the key, keeps the watch for the
    /// body.
    fn inspect(
        &mut self,
        counts: &Counts,
        host: &mut impl ResponseHost,
        headers: &[(String, String)],
        status: u16,
        hold: bool,
    ) -> Headers {
        for (name, masked) in masked_headers(headers, &self.key) {
            counts.add(Counter::KeyMasked);
            self.log_masked(host, status);
            if !host.set_response_header(&name, &masked) {
                host.log(Level::Warn, "ptk filter: could not mask a header");
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
    pub fn on_body(
        &mut self,
        counts: &Counts,
        host: &mut impl ResponseHost,
        size: usize,
        end: bool,
    ) -> BodyStep {
        if self.frames.is_some() {
            self.on_frames(counts, host, size);
            return BodyStep::Continue;
        }
        let Some(error) = self.error.as_mut() else {
            return BodyStep::Continue;
        };
        if error.hold && !end && size <= INSPECT_MAX {
            return BodyStep::Pause;
        }
        let whole = error.hold && end;
        // Past the limit the rest passes chunk by chunk.
        error.hold = false;
        let status = error.status;
        let Some(body) = host.response_body(size) else {
            return BodyStep::Continue;
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
                    self.key_refused = true;
                    counts.add(Counter::CredentialRefused(self.provider));
                    host.log(
                        Level::Warn,
                        &format!(
                            "ptk filter: {} refused the proxy's upstream credential (status \
                             {status}, invalid-key reason); answered in its place",
                            self.provider.as_str()
                        ),
                    );
                }
                Rewritten::FragmentMasked => {
                    counts.add(Counter::KeyMasked);
                    self.log_masked(host, status);
                }
            }
            if !host.set_response_body(body.len(), &new) {
                host.log(Level::Error, "ptk filter: could not rewrite an error body");
            }
        }
        BodyStep::Continue
    }

    /// The provider the request went to.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// True once nothing more will be looked at (the WebSocket's search budget is spent).
    pub fn done(&self) -> bool {
        self.frames.as_ref().is_some_and(|f| f.left == 0)
    }

    /// One chunk of an accepted WebSocket's server frames: fragments of the key masked inside
    /// text and close payloads.
    fn on_frames(&mut self, counts: &Counts, host: &mut impl ResponseHost, size: usize) {
        let Some(frames) = self.frames.as_mut() else {
            return;
        };
        frames.left = frames.left.saturating_sub(size);
        let Some(mut chunk) = host.response_body(size) else {
            return;
        };
        if mask_frames(&mut frames.scanner, &mut chunk, &self.key) == 0 {
            return;
        }
        counts.add(Counter::KeyMasked);
        self.log_masked(host, 101);
        if !host.set_response_body(size, &chunk) {
            host.log(
                Level::Error,
                "ptk filter: could not rewrite a websocket frame",
            );
        }
    }

    fn log_masked(&self, host: &impl ResponseHost, status: u16) {
        host.log(
            Level::Warn,
            &format!(
                "ptk filter: masked a fragment of the upstream credential in a response from {} \
                 (status {status})",
                self.provider.as_str()
            ),
        );
    }
}

/// The response watch of a request forwarded with `key`.
pub(super) fn key_watch(pending: &PendingCheck, head: &RequestHead, key: &str) -> KeyWatch {
    KeyWatch {
        forwarded: Forwarded {
            dialect: pending.identified.dialect,
            websocket: pending.websocket,
            origin: pending.origin.clone(),
        },
        provider: pending.identified.provider,
        key: key.to_string(),
        ask_identity: ask_identity(head.header("accept-encoding")),
        drop_extensions: drop_extensions(
            pending.websocket,
            head.header("sec-websocket-extensions"),
        ),
    }
}

/// Starts the response watch of a request forwarded with the key the plan carries (none if it
/// carries none).
pub(super) fn watch_plan(
    host: &mut impl Host,
    pending: &PendingCheck,
    head: &RequestHead,
    plan: &RewritePlan,
) -> Option<Box<ErrorWatch>> {
    let watch = key_watch(pending, head, key_in_plan(plan)?);
    Some(Box::new(ErrorWatch::start(watch, host)))
}
