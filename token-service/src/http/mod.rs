//! The HTTP surface: the health probes (`/healthz`, `/livez`, `/readyz`), the check,
//! revalidation and usage APIs; and the metrics listener's `/metrics`. One router factory
//! each, so tests can drive them in-process or through a real listener.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;
use ptk_wire::CHECK_SECRET_HEADER;
use secrecy::{ExposeSecret as _, SecretBox};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::check::Checker;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::store::TokenStore;

mod activity;
mod check;
pub mod health;
mod metrics;
mod revalidate;
mod wire_version;

pub use check::CheckApiError;
pub use metrics::metrics_router;

/// SHA-256 of the check secret. Requests are compared digest-to-digest in constant time, so
/// neither the secret's bytes nor its length leak through timing.
pub type SecretDigest = SecretBox<[u8; 32]>;

/// Digests the check secret once at start-up.
pub fn secret_digest(secret: &secrecy::SecretString) -> SecretDigest {
    SecretBox::new(Box::new(
        Sha256::digest(secret.expose_secret().as_bytes()).into(),
    ))
}

/// True when `headers` carry [`CHECK_SECRET_HEADER`] equal to the check secret, compared
/// digest-to-digest in constant time. The check and usage APIs require it; the admin listener
/// uses it to recognise Envoy (whose `/admin` routes add it) before trusting forwarding headers.
pub fn presents_check_secret(digest: &SecretDigest, headers: &HeaderMap) -> bool {
    let Some(presented) = headers.get(CHECK_SECRET_HEADER) else {
        return false;
    };
    let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    bool::from(presented.ct_eq(digest.expose_secret()))
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// Decides checks.
    pub checker: Arc<Checker>,
    /// The store, for health checks.
    pub store: Arc<dyn TokenStore>,
    /// Digest of the check secret.
    pub check_secret: Arc<SecretDigest>,
    /// The rate limiter, for the readiness probe.
    pub limiter: Arc<dyn RateLimiter>,
    /// Check outcomes and latency.
    pub metrics: Arc<Metrics>,
    /// Where the metered token usage the filter reports is kept.
    pub usage: Arc<dyn crate::store::UsageStore>,
    /// Budgets: reports settle through it (ledger with the usage, then grant releases).
    pub budgets: Arc<crate::budget::Admission>,
    /// Budget threshold notifications (a disabled one without a webhook).
    pub notifier: crate::notify::Notifier,
}

/// Builds the router.
pub fn router(state: AppState) -> Router {
    let versioned = axum::middleware::from_fn_with_state(state.clone(), wire_version::wire_version);
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route(ptk_wire::CHECK_PATH, post(check::check))
        // A worker's full report (4,096 usage keys with 128-byte model names, plus its request
        // counts) is a few MB: past axum's 2 MiB default it would be lost whole.
        .route(
            ptk_wire::ACTIVITY_PATH,
            post(activity::activity).layer(DefaultBodyLimit::max(activity::MAX_REPORT_BYTES)),
        )
        .route(ptk_wire::REVALIDATE_PATH, post(revalidate::revalidate))
        .layer(versioned)
        .with_state(state)
}
