//! `GET /healthz`: 200 `ok` when the store answers, 503 otherwise.

use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;

/// Liveness and store health in one probe: without its store the service can only deny.
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(e) => {
            tracing::error!(error_class = e.class(), error = %e, "health check: store failed");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
    }
}
