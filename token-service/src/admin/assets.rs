//! The dashboard's script and stylesheet, compiled into the binary (no CDN, no file lookups).

use axum::http::header;
use axum::response::IntoResponse;

const SCRIPT: &str = include_str!("assets/admin.js");
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
