//! The shim side of Gemini resumable uploads (`ptk_filter_core::uploads` decides): a keyless
//! leg is looked up in the session table and goes the way of every bound credential
//! (`bound.rs`: its token's validity from the verdict cache or a revalidation, forwarded
//! without any key); a response's upload URLs are pointed back at the proxy and the sessions
//! they start are recorded. Nothing here logs an upload id.

use proxy_wasm::types::{Action, LogLevel};
use ptk_filter_core::upload_sessions::{self, Recorded};
use ptk_filter_core::uploads::{response_edits, watch, PendingLeg};
use ptk_filter_core::{PendingCheck, RequestHead};

use super::bound::Bound;
use super::PtkHttp;
use crate::host::{self, HostSharedData};
use crate::root::Worker;

impl PtkHttp {
    /// Watches the response of a token request that takes part in an upload.
    pub(super) fn watch_upload(
        &mut self,
        worker: &Worker,
        head: &RequestHead,
        pending: &PendingCheck,
    ) {
        let provider = pending.identified.provider;
        self.upload_watch = watch(&worker.config, head, &pending.hash, provider);
    }

    /// A request without a token that names an upload session: forward it only for a session
    /// the proxy started, whose token is still valid (`bound.rs`).
    pub(super) fn upload_leg(
        &mut self,
        worker: &Worker,
        leg: PendingLeg,
        head: RequestHead,
    ) -> Action {
        let now = host::now_ms();
        let session =
            upload_sessions::lookup(&HostSharedData, &worker.config.uploads, &leg.upload_id, now);
        self.bound_request(worker, Bound::Leg(leg), session, head)
    }

    /// Points the response's upload URLs back at the proxy, records the sessions it started and
    /// marks the one it finished.
    pub(super) fn upload_response(&mut self) {
        let Some(watch) = self.upload_watch.take() else {
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
                Recorded::Stored => worker.metrics.upload_started(),
                Recorded::Evicted => {
                    worker.metrics.upload_started();
                    worker.metrics.upload_evicted();
                }
                Recorded::Failed => {
                    worker.metrics.upload_unrecorded();
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
}
