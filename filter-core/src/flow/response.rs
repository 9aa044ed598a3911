//! The response of a forwarded request: the real-key watch (`error_watch.rs`), a Gemini
//! upload's URLs pointed back at the proxy and the sessions it starts recorded (`uploads`,
//! `upload_sessions`), an OpenAI client-secret minting answer copied as it passes and its
//! secret bound to the minting token (`mint_watch`, `client_secrets`), then CORS decoration.
//! Nothing here logs an upload id or a secret.

use crate::bound_table::Recorded;
use crate::client_secrets;
use crate::cors::decoration;
use crate::flow::counts::Counter;
use crate::flow::error_watch::Headers;
use crate::flow::{BodyStep, HeadersStep, Level, RequestFlow, ResponseHost, Worker};
use crate::mint_watch::{MintWatch, Read};
use crate::upload_sessions;
use crate::uploads::response_edits;

/// The `:status` of the response.
fn status(host: &impl ResponseHost) -> Option<u16> {
    host.response_header(":status").and_then(|s| s.parse().ok())
}

impl RequestFlow {
    /// The response headers are in (`end`: no body follows): the real-key watch first (it may
    /// answer in the provider's place), then the upload and mint watches, then CORS decoration.
    pub fn on_response_headers(
        &mut self,
        worker: &Worker,
        host: &mut impl ResponseHost,
        end: bool,
    ) -> HeadersStep {
        self.key_health_headers(worker, host);
        if let Some(watch) = self.error_watch.as_mut() {
            match watch.on_headers(&worker.counts, host, end) {
                Headers::Pass => self.error_watch = None,
                Headers::Inspect => {}
                // The filter answered in the provider's place (CORS included).
                Headers::Replaced => {
                    self.error_watch = None;
                    self.answered(worker);
                    return HeadersStep::Stop;
                }
                // The same answer, put in place as the response passes (the watch reads the
                // provider's body first).
                Headers::Answering => {
                    self.answered(worker);
                    return HeadersStep::Continue;
                }
            }
        }
        self.metering_headers(host);
        self.upload_response(worker, host);
        self.mint_headers(worker, host);
        if let Some(origin) = self.cors_origin.take() {
            let vary = host.response_header("vary");
            let expose = host.response_header("access-control-expose-headers");
            for (name, value) in decoration(&origin, vary.as_deref(), expose.as_deref()) {
                if !host.set_response_header(&name, &value) {
                    host.log(Level::Warn, "ptk filter: could not set a CORS header");
                }
            }
        }
        HeadersStep::Continue
    }

    /// A response body chunk: a minting answer (2xx) is copied as it passes, never held; an
    /// error of a request forwarded with a real key is read (and held up to a limit).
    pub fn on_response_body(
        &mut self,
        worker: &Worker,
        host: &mut impl ResponseHost,
        size: usize,
        end: bool,
    ) -> BodyStep {
        self.mint_body(worker, host, size, end);
        self.metering_body(worker, host, size, end);
        // Every response below 400 dropped its watch at the headers (an accepted WebSocket
        // keeps it for its first frames only): nothing to do, at once.
        let Some(watch) = self.error_watch.as_mut() else {
            return BodyStep::Continue;
        };
        let step = watch.on_body(&worker.counts, host, size, end);
        self.key_health_body(worker, host);
        let Some(watch) = self.error_watch.as_mut() else {
            return step;
        };
        if watch.done() {
            self.error_watch = None;
        }
        step
    }

    /// The client gets the filter's answer (CORS included): nothing the provider sent counts,
    /// and the provider refused the key, so nothing was spent either.
    fn answered(&mut self, worker: &Worker) {
        self.cors_origin = None;
        self.mint = None;
        self.usage = None;
        self.release_unspent(worker);
    }

    /// Points the response's upload URLs back at the proxy, records the sessions it started and
    /// marks the one it finished.
    fn upload_response(&mut self, worker: &Worker, host: &mut impl ResponseHost) {
        let Some(watch) = self.upload_watch.take() else {
            return;
        };
        let (hash, provider) = &watch.owner;
        let authority = &worker.config.upstream(*provider).authority;
        let edits = response_edits(&watch, authority, status(host), |name| {
            host.response_header(name)
        });
        for (name, value) in &edits.set {
            if !host.set_response_header(name, value) {
                let line = "ptk filter: could not point an upload URL at the proxy";
                host.log(Level::Warn, line);
            }
        }
        if edits.unrewritable {
            host.log(
                Level::Warn,
                "ptk filter: an upload URL was left on the provider's host (no usable :scheme or :authority)",
            );
        }
        let now = host.now_ms();
        let uploads = &worker.config.uploads;
        for id in &edits.started {
            let start = (id.as_str(), hash.as_str(), *provider);
            let anchor = worker.anchor.get();
            match upload_sessions::record(host.shared(), anchor, uploads, start, now) {
                Recorded::Stored => worker.counts.add(Counter::UploadStarted),
                Recorded::Evicted => {
                    worker.counts.add(Counter::UploadStarted);
                    worker.counts.add(Counter::UploadEvicted);
                }
                Recorded::Failed => {
                    worker.counts.add(Counter::UploadUnrecorded);
                    let line = "ptk filter: an upload session could not be recorded";
                    host.log(Level::Warn, line);
                }
            }
        }
        if let Some(id) = &edits.finished {
            upload_sessions::finish(host.shared(), uploads, id, now);
        }
    }

    /// The minting response's headers: keep reading a plain 2xx body, drop anything else.
    fn mint_headers(&mut self, worker: &Worker, host: &mut impl ResponseHost) {
        let Some(watch) = self.mint.as_mut() else {
            return;
        };
        let status = status(host);
        let encoding = host.response_header("content-encoding");
        if MintWatch::wants_body(status, encoding.as_deref()) {
            watch.expect(host.response_header("content-length").as_deref());
            return;
        }
        self.mint = None;
        if status.is_some_and(|s| (200..300).contains(&s)) {
            unrecorded(worker, host, "its response was compressed");
        }
    }

    /// One chunk of a minting response: copied as it passes (never paused); once it is whole
    /// (its announced length read, or its end) the secret is bound to the minting token, before
    /// this chunk is released to the client.
    fn mint_body(&mut self, worker: &Worker, host: &mut impl ResponseHost, size: usize, end: bool) {
        let Some(watch) = self.mint.as_mut() else {
            return;
        };
        if size > 0 {
            if let Some(chunk) = host.response_body(size) {
                watch.push(&chunk);
            }
        }
        if !end && !watch.complete() {
            return;
        }
        let Some(watch) = self.mint.take() else {
            return;
        };
        let now = host.now_ms();
        let config = &worker.config.ephemeral;
        let token_hash = watch.token_hash.clone();
        let minted = match watch.finish(now, config.max_ttl_ms) {
            Read::Secrets(minted) => minted,
            Read::Unreadable => {
                let why = "no live secret could be read from its response";
                return unrecorded(worker, host, why);
            }
        };
        for secret in &minted {
            let anchor = worker.anchor.get();
            let pair = (&secret.digest, token_hash.as_str());
            let expires_ms = secret.expires_ms;
            match client_secrets::record(host.shared(), anchor, config, pair, expires_ms, now) {
                Recorded::Stored => worker.counts.add(Counter::SecretsMinted),
                Recorded::Evicted => {
                    worker.counts.add(Counter::SecretsMinted);
                    worker.counts.add(Counter::SecretsEvicted);
                }
                Recorded::Failed => {
                    let why = "the client-secret table refused the write";
                    unrecorded(worker, host, why);
                }
            }
        }
    }
}

/// A minted client secret could not be bound: counted and logged (its use will get 401).
fn unrecorded(worker: &Worker, host: &impl ResponseHost, why: &str) {
    worker.counts.add(Counter::SecretsUnrecorded);
    host.log(
        Level::Warn,
        &format!(
            "ptk filter: a minted client secret was not recorded ({why}); its use will get 401"
        ),
    );
}
