//! Process signals: `SIGTERM`/Ctrl-C stop the service gracefully; `SIGHUP` reloads the
//! provider keys (the Unix convention for "re-read your configuration").

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::key_ring::KeyRing;
use crate::keys::KeysFileError;
use crate::metrics::Metrics;

/// Completes on Ctrl-C or `SIGTERM`.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// Starts reloading `ring` on every `SIGHUP` (registered before this returns, so a `SIGHUP`
/// from then on never takes the default action, which would end the process). The returned
/// task runs until aborted.
pub fn reload_keys_on_hangup(ring: Arc<KeyRing>, metrics: Arc<Metrics>) -> JoinHandle<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(mut hangup) => tokio::spawn(async move {
                while hangup.recv().await.is_some() {
                    let _ = reload_and_log(&ring, &metrics, "SIGHUP");
                }
            }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP: keys reload only through the admin API");
                tokio::spawn(async {})
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (ring, metrics);
        tokio::spawn(async {})
    }
}

/// Reloads `ring`, logs the result (provider names and the file's line, never a key) and
/// counts it as the admin action `keys_reload`.
pub fn reload_and_log(
    ring: &KeyRing,
    metrics: &Metrics,
    trigger: &'static str,
) -> Result<Vec<&'static str>, KeysFileError> {
    let result = ring.reload();
    metrics.admin_action("keys_reload", result.is_ok());
    match &result {
        Ok(providers) => tracing::info!(
            trigger,
            "provider keys reloaded; providers with keys: {}",
            if providers.is_empty() {
                "none".to_owned()
            } else {
                providers.join(", ")
            }
        ),
        Err(e) => tracing::error!(
            trigger,
            error = %e,
            "provider keys reload failed; keeping the previous keys"
        ),
    }
    result
}
