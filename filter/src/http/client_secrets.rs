//! The shim side of OpenAI Realtime client secrets (`ptk_filter_core::client_secrets` and
//! `mint_watch` decide): a minting response is copied as it passes and its secret bound to the
//! minting token; a request that uses a secret is looked up in that table and goes the way of
//! every bound credential (`bound.rs`). Nothing here logs a secret.

use proxy_wasm::types::{Action, LogLevel};
use ptk_filter_core::bound_table::Recorded;
use ptk_filter_core::client_secrets::{self, PendingSecret};
use ptk_filter_core::mint_watch::{mints, MintWatch, Read};
use ptk_filter_core::{Dialect, PendingCheck, RequestHead};

use super::bound::Bound;
use super::PtkHttp;
use crate::host::{self, HostSharedData};
use crate::root::Worker;

impl PtkHttp {
    /// A request whose only credential is an OpenAI client secret: forward it untouched only if
    /// the proxy saw it minted for a token that is still valid.
    pub(super) fn client_secret(
        &mut self,
        worker: &Worker,
        pending: PendingSecret,
        head: RequestHead,
    ) -> Action {
        let now = host::now_ms();
        let binding = pending.lookup(&HostSharedData, &worker.config.ephemeral, now);
        self.bound_request(worker, Bound::Secret(pending), binding, head)
    }

    /// Watches the response of a token request that mints a client secret (pass-through on:
    /// with it off a secret is never accepted, so nothing is worth binding).
    pub(super) fn watch_mint(
        &mut self,
        worker: &Worker,
        head: &RequestHead,
        pending: &PendingCheck,
    ) {
        let wanted = worker.config.ephemeral.pass_through
            && pending.identified.dialect == Dialect::Openai
            && mints(head);
        self.mint = wanted.then(|| Box::new(MintWatch::new(&pending.hash)));
    }

    /// The minting response's headers: keep reading a plain 2xx body, drop anything else.
    pub(super) fn mint_headers(&mut self) {
        if self.mint.is_none() {
            return;
        }
        let status = host::response_header(":status").and_then(|s| s.parse().ok());
        let encoding = host::response_header("content-encoding");
        if MintWatch::wants_body(status, encoding.as_deref()) {
            if let Some(watch) = self.mint.as_mut() {
                watch.expect(host::response_header("content-length").as_deref());
            }
            return;
        }
        self.mint = None;
        if status.is_some_and(|s: u16| (200..300).contains(&s)) {
            self.unrecorded("its response was compressed");
        }
    }

    /// One chunk of a minting response: copied as it passes (never paused); once it is whole
    /// (its announced length read, or its end) the secret is bound to the minting token, before
    /// this chunk is released to the client.
    pub(super) fn mint_body(&mut self, body_size: usize, end_of_stream: bool) {
        let Some(watch) = self.mint.as_mut() else {
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
        let Some(watch) = self.mint.take() else {
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
                Recorded::Stored => worker.metrics.secret_minted(),
                Recorded::Evicted => {
                    worker.metrics.secret_minted();
                    worker.metrics.secret_evicted();
                }
                Recorded::Failed => self.unrecorded("the client-secret table refused the write"),
            }
        }
    }

    fn unrecorded(&self, why: &str) {
        if let Some(worker) = &self.worker {
            worker.metrics.secret_unrecorded();
        }
        host::log(
            LogLevel::Warn,
            &format!(
                "ptk filter: a minted client secret was not recorded ({why}); its use will get 401"
            ),
        );
    }
}
