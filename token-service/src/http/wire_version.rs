//! The wire version handshake on every filter-facing route: a call whose
//! `x-ptk-wire-version` names a major this service does not speak is refused with `400`
//! `unsupported_wire_version` (the filter answers 503 and logs the status), older minors and
//! calls without the header are served; every answer names the version this service speaks.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ptk_wire::{wire_compatible, UNSUPPORTED_WIRE_VERSION, WIRE_VERSION, WIRE_VERSION_HEADER};

use super::{presents_check_secret, AppState};

/// The middleware (`axum::middleware::from_fn_with_state`).
pub async fn wire_version(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let sent = request
        .headers()
        .get(WIRE_VERSION_HEADER)
        .map(|v| v.to_str().unwrap_or("(not text)").to_owned());
    let mut response = if wire_compatible(sent.as_deref()) {
        next.run(request).await
    } else {
        // The value is the filter's version string, never a secret; bounded before logging,
        // and logged only for a caller with the check secret (a filter), so anyone else who
        // reaches the port cannot fill the log.
        let shown: String = sent.unwrap_or_default().chars().take(32).collect();
        let from_a_filter = presents_check_secret(&state.check_secret, request.headers());
        if from_a_filter {
            tracing::warn!(
                path = %request.uri().path(),
                "refusing a call in wire protocol {shown:?}: this token-service ({}) speaks \
                 {WIRE_VERSION}; upgrade the filter or the service so their major versions match",
                env!("CARGO_PKG_VERSION"),
            );
        }
        let body = serde_json::json!({"error": {
            "code": UNSUPPORTED_WIRE_VERSION,
            "message": format!(
                "wire protocol {shown} not supported: this token-service ({}) speaks {WIRE_VERSION}",
                env!("CARGO_PKG_VERSION")
            ),
        }});
        (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
    };
    response
        .headers_mut()
        .insert(WIRE_VERSION_HEADER, HeaderValue::from_static(WIRE_VERSION));
    response
}
