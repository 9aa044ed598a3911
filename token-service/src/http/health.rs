//! Health probes on the check listener (no check secret: probes and Envoy's health path call
//! them):
//! - `GET /livez`: the process serves HTTP. Touches no dependency, so a store or Redis outage
//!   never gets a healthy process restarted (that would not fix the dependency).
//! - `GET /readyz`: each component (store, rate limiter) answers within [`PROBE_TIMEOUT`];
//!   JSON per component, 503 when one does not (the process should get no traffic).
//! - `GET /healthz`: the original probe, kept for existing checks: 200 `ok` when the store
//!   answers.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use super::AppState;

/// How long each component may take to answer a readiness probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

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

/// `GET /livez`: always 200 while the process answers.
pub async fn livez() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "alive" }))
}

/// One component's state in the readiness report. Only fixed words: the error itself goes
/// to the log, since the report is reachable without a secret.
#[derive(Debug, Serialize)]
pub struct Component {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    /// The backend (`memory`, `redis` for the limiter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<&'static str>,
    /// Why it is unavailable: an error class (`backend`, `pool`, `timeout`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
}

/// The readiness report.
#[derive(Debug, Serialize)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// The store.
    pub store: Component,
    /// The rate limiter.
    pub limiter: Component,
}

async fn store_component(state: &AppState) -> Component {
    let error = match tokio::time::timeout(PROBE_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            tracing::error!(error_class = e.class(), error = %e, "readiness: store failed");
            Some(e.class())
        }
        Err(_) => {
            tracing::error!("readiness: store did not answer within {PROBE_TIMEOUT:?}");
            Some("timeout")
        }
    };
    component(None, error)
}

async fn limiter_component(state: &AppState) -> Component {
    let backend = Some(state.limiter.backend());
    let error = match tokio::time::timeout(PROBE_TIMEOUT, state.limiter.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "readiness: rate limiter failed");
            Some("backend")
        }
        Err(_) => {
            tracing::error!("readiness: rate limiter did not answer within {PROBE_TIMEOUT:?}");
            Some("timeout")
        }
    };
    component(backend, error)
}

fn component(backend: Option<&'static str>, error: Option<&'static str>) -> Component {
    Component {
        status: if error.is_none() { "ok" } else { "unavailable" },
        backend,
        error,
    }
}

/// `GET /readyz`: 200 when every component answers, else 503; the body says which.
///
/// A failing limiter makes the service not ready although checks fail open without it: a
/// replica whose Redis is gone enforces no shared limit, and the load balancer should prefer
/// one whose Redis answers.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let (store, limiter) = tokio::join!(store_component(&state), limiter_component(&state));
    let ready = store.error.is_none() && limiter.error.is_none();
    let report = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        store,
        limiter,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}
