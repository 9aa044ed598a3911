//! The response of a request forwarded with the operator's real key: a provider refusing
//! that key is answered in its place, and fragments of it in any other error are masked
//! (decisions in `upstream_errors`).
//!
//! A 401/403 with a body is answered in place: its headers are swapped for the answer's as
//! they pass, its body is held (up to `INSPECT_MAX`) and read to decide whether the key itself
//! was refused (`key_refusal`), then replaced by the answer's. A proxy-wasm filter that paused
//! the headers would be shown no body, so a local reply there could not wait for it.
//!
//! Cost: the body callback is exported again for this, so Envoy enters the VM once per
//! response body chunk; every response below 400 drops its watch at the headers (an accepted
//! WebSocket after its first 64 KiB of server frames), and the body callback then returns at
//! once (measured in docs/benchmarks.md).

use ptk_wire::Provider;

use crate::flow::counts::{Counter, Counts};
use crate::flow::{BodyStep, Host, KeyWatch, Level, ResponseHost};
use crate::key_refusal::key_refused;
use crate::pipeline::PendingCheck;
use crate::plan::RewritePlan;
use crate::refusal::LocalReply;
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
    /// Set when the body showed the provider refused the key itself (`key_refusal`).
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
    answer: Answer,
}

/// A 401/403 answered in place.
#[derive(Debug)]
enum Answer {
    /// Not one: the body is read (and masked) as it is.
    No,
    /// Its headers were swapped; this body goes in place of the provider's once it is read.
    Pending(Vec<u8>),
    /// The answer went out: whatever more the provider sends is dropped.
    Sent,
}

/// What the headers decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Headers {
    /// A success (or unreadable): forget the watch, pass everything.
    Pass,
    /// The filter answered in the provider's place: stop this response.
    Replaced,
    /// The headers now are the filter's answer's; its body replaces the provider's, which is
    /// read first (whether the key itself was refused): let them pass, keep the watch.
    Answering,
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

    /// Reads the status (one host call for a success) and decides (`end`: no body follows).
    pub fn on_headers(
        &mut self,
        counts: &Counts,
        host: &mut impl ResponseHost,
        end: bool,
    ) -> Headers {
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
                if !end {
                    return self.answer_in_place(host, &headers, status, reply);
                }
                // No body to read: the key stays in rotation (`key_refusal`).
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
            answer: Answer::No,
        });
        Headers::Inspect
    }

    /// A refusal with a body: the provider's headers are swapped for the answer's (no
    /// `content-length`: the body's length changes), the body is held to be read.
    fn answer_in_place(
        &mut self,
        host: &mut impl ResponseHost,
        headers: &[(String, String)],
        status: u16,
        reply: LocalReply,
    ) -> Headers {
        let provider = headers.iter().filter(|(n, _)| !n.starts_with(':'));
        let removed = provider.fold(true, |ok, (name, _)| {
            host.remove_response_header(name) && ok
        });
        let set = reply.headers.iter().fold(true, |ok, (name, value)| {
            host.set_response_header(name, value) && ok
        });
        if !(removed && set) {
            host.log(
                Level::Error,
                "ptk filter: could not swap an error's headers",
            );
        }
        self.error = Some(ErrorBody {
            status,
            hold: true,
            length_fixed: false,
            answer: Answer::Pending(reply.body),
        });
        Headers::Answering
    }

    /// A chunk of a 401/403 answered in place: held until it ends, read for whether the key
    /// itself was refused, then replaced by the answer; later chunks are dropped.
    ///
    /// Bounded: Envoy holds at most `INSPECT_MAX` bytes (plus the chunk that crosses it), and
    /// only a body that ended within it is read. One longer is answered unread and the key is
    /// kept in rotation: wrongly keeping a dead key costs the requests that reach it (each
    /// answered and counted as a refused credential), wrongly dropping a live one costs the
    /// whole pool, and the decision must never rest on a partial body. A body that never ends
    /// is held until Envoy's stream idle timeout, as any response is.
    fn answer_body(&mut self, host: &mut impl ResponseHost, size: usize, end: bool) -> BodyStep {
        let Some(error) = self.error.as_mut() else {
            return BodyStep::Continue;
        };
        if matches!(error.answer, Answer::Sent) {
            if size > 0 && !host.set_response_body(size, &[]) {
                host.log(Level::Error, "ptk filter: could not drop an error body");
            }
            return BodyStep::Continue;
        }
        if !end && size <= INSPECT_MAX {
            return BodyStep::Pause;
        }
        let whole = end && size <= INSPECT_MAX;
        let status = error.status;
        let Answer::Pending(answer) = std::mem::replace(&mut error.answer, Answer::Sent) else {
            return BodyStep::Continue;
        };
        if whole {
            let body = host.response_body(size).unwrap_or_default();
            self.key_refused = key_refused(self.provider, status, &body);
        }
        if !host.set_response_body(size, &answer) {
            host.log(Level::Error, "ptk filter: could not answer in place");
        }
        BodyStep::Continue
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
        if !matches!(error.answer, Answer::No) {
            return self.answer_body(host, size, end);
        }
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
                    // The answer hides every `API_KEY_*` refusal; only some take the key out.
                    self.key_refused = key_refused(self.provider, status, &body);
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
