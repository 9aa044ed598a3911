//! The response watches of a forwarded request, decided in `ptk_filter_core`: a Gemini
//! upload's URLs are pointed back at the proxy and the sessions it starts recorded
//! (`uploads`, `upload_sessions`); an OpenAI client-secret minting answer is copied as it
//! passes and its secret bound to the minting token (`mint_watch`, `client_secrets`). Nothing
//! here logs an upload id or a secret.

use proxy_wasm::types::LogLevel;
use ptk_filter_core::bound_table::Recorded;
use ptk_filter_core::client_secrets;
use ptk_filter_core::flow::Counter;
use ptk_filter_core::mint_watch::{MintWatch, Read};
use ptk_filter_core::upload_sessions;
use ptk_filter_core::uploads::response_edits;

use super::PtkHttp;
use crate::host::{self, HostSharedData};

impl PtkHttp {
    /// Points the response's upload URLs back at the proxy, records the sessions it started and
    /// marks the one it finished.
    pub(super) fn upload_response(&mut self) {
        let Some(watch) = self.flow.take_upload_watch() else {
            return;
        };
        let Some(worker) = self.worker.clone() else {
            return;
        };
        let (hash, provider) = &watch.owner;
        let authority = &worker.config.upstream(*provider).authority;
        let status = host::response_header(":status").and_then(|s| s.parse().ok());
        let edits = response_edits(&watch, authority, status, host::response_header);
        for (name, value) in &edits.set {
            if host::set_response_header(name, value).is_err() {
                host::log(
                    LogLevel::Warn,
                    "ptk filter: could not point an upload URL at the proxy",
                );
            }
        }
        if edits.unrewritable {
            host::log(
                LogLevel::Warn,
                "ptk filter: an upload URL was left on the provider's host (no usable :scheme or :authority)",
            );
        }
        let now = host::now_ms();
        let uploads = &worker.config.uploads;
        for id in &edits.started {
            let start = (id.as_str(), hash.as_str(), *provider);
            match upload_sessions::record(&HostSharedData, worker.anchor.get(), uploads, start, now)
            {
                Recorded::Stored => worker.counts.add(Counter::UploadStarted),
                Recorded::Evicted => {
                    worker.counts.add(Counter::UploadStarted);
                    worker.counts.add(Counter::UploadEvicted);
                }
                Recorded::Failed => {
                    worker.counts.add(Counter::UploadUnrecorded);
                    host::log(
                        LogLevel::Warn,
                        "ptk filter: an upload session could not be recorded",
                    );
                }
            }
        }
        if let Some(id) = &edits.finished {
            upload_sessions::finish(&HostSharedData, uploads, id, now);
        }
    }

    /// The minting response's headers: keep reading a plain 2xx body, drop anything else.
    pub(super) fn mint_headers(&mut self) {
        if self.flow.mint_mut().is_none() {
            return;
        }
        let status = host::response_header(":status").and_then(|s| s.parse().ok());
        let encoding = host::response_header("content-encoding");
        if MintWatch::wants_body(status, encoding.as_deref()) {
            if let Some(watch) = self.flow.mint_mut() {
                watch.expect(host::response_header("content-length").as_deref());
            }
            return;
        }
        drop(self.flow.take_mint());
        if status.is_some_and(|s: u16| (200..300).contains(&s)) {
            self.unrecorded("its response was compressed");
        }
    }

    /// One chunk of a minting response: copied as it passes (never paused); once it is whole
    /// (its announced length read, or its end) the secret is bound to the minting token, before
    /// this chunk is released to the client.
    pub(super) fn mint_body(&mut self, body_size: usize, end_of_stream: bool) {
        let Some(watch) = self.flow.mint_mut() else {
            return;
        };
        if body_size > 0 {
            if let Some(chunk) = host::response_body(body_size) {
                watch.push(&chunk);
            }
        }
        if !end_of_stream && !watch.complete() {
            return;
        }
        let Some(watch) = self.flow.take_mint() else {
            return;
        };
        let Some(worker) = self.worker.clone() else {
            return;
        };
        let now = host::now_ms();
        let config = &worker.config.ephemeral;
        let token_hash = watch.token_hash.clone();
        let minted = match watch.finish(now, config.max_ttl_ms) {
            Read::Secrets(minted) => minted,
            Read::Unreadable => {
                self.unrecorded("no live secret could be read from its response");
                return;
            }
        };
        for secret in &minted {
            let anchor = worker.anchor.get();
            let pair = (&secret.digest, token_hash.as_str());
            match client_secrets::record(
                &HostSharedData,
                anchor,
                config,
                pair,
                secret.expires_ms,
                now,
            ) {
                Recorded::Stored => worker.counts.add(Counter::SecretsMinted),
                Recorded::Evicted => {
                    worker.counts.add(Counter::SecretsMinted);
                    worker.counts.add(Counter::SecretsEvicted);
                }
                Recorded::Failed => self.unrecorded("the client-secret table refused the write"),
            }
        }
    }

    fn unrecorded(&self, why: &str) {
        if let Some(worker) = &self.worker {
            worker.counts.add(Counter::SecretsUnrecorded);
        }
        host::log(
            LogLevel::Warn,
            &format!(
                "ptk filter: a minted client secret was not recorded ({why}); its use will get 401"
            ),
        );
    }
}
