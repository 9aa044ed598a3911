//! The metrics listener: `GET /metrics` only, in OpenMetrics text.
//!
//! Its own listener (`PTK_METRICS_LISTEN`), not the check or admin one: the check listener
//! is Envoy's (a scraper would need the check secret, which trades hashes for real keys), and
//! the admin listener sits behind a login session, which Prometheus does not hold. Metrics
//! carry no secret (fixed-word labels only), so this listener needs none; bind it where only
//! the scraper reaches it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::metrics::{Metrics, CONTENT_TYPE};

async fn metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.render())
}

/// The metrics listener's router.
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(self::metrics))
        .with_state(metrics)
}
