//! The HTTP surface: `GET /healthz`, the check, revalidation and usage APIs. One router factory, so tests can drive
//! it in-process or through a real listener.

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use secrecy::{ExposeSecret as _, SecretBox};
use sha2::{Digest as _, Sha256};

use crate::check::Checker;
use crate::store::TokenStore;

mod check;
mod health;
mod revalidate;
mod usage;

pub use check::CheckApiError;

/// SHA-256 of the check secret. Requests are compared digest-to-digest in constant time, so
/// neither the secret's bytes nor its length leak through timing.
pub type SecretDigest = SecretBox<[u8; 32]>;

/// Digests the check secret once at start-up.
pub fn secret_digest(secret: &secrecy::SecretString) -> SecretDigest {
    SecretBox::new(Box::new(
        Sha256::digest(secret.expose_secret().as_bytes()).into(),
    ))
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
}

/// Builds the router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route(ptk_wire::CHECK_PATH, post(check::check))
        .route(ptk_wire::USAGE_PATH, post(usage::usage))
        .route(ptk_wire::REVALIDATE_PATH, post(revalidate::revalidate))
        .with_state(state)
}
