//! The dashboard's script and stylesheet, compiled into the binary (no CDN, no file lookups).

use axum::http::header;
use axum::response::IntoResponse;

const SCRIPT: &str = include_str!("assets/admin.js");
const USAGE_SCRIPT: &str = include_str!("assets/usage.js");
const STYLESHEET: &str = include_str!("assets/admin.css");

/// `GET /admin/static/admin.js`.
pub async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SCRIPT,
    )
}

/// `GET /admin/static/usage.js`: the usage view (its own file: it only reads).
pub async fn usage_script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        USAGE_SCRIPT,
    )
}

/// `GET /admin/static/admin.css`.
pub async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        STYLESHEET,
    )
}

/// `GET /favicon.ico` (and `/admin/favicon.ico`): 204, no auth. Browsers ask for it on every
/// page; without this route the admin listener's catch-all would answer 401.
pub async fn favicon() -> impl IntoResponse {
    (
        axum::http::StatusCode::NO_CONTENT,
        [(header::CACHE_CONTROL, "public, max-age=86400")],
    )
}
