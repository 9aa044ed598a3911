//! `POST /v1/check`: authenticate the filter, parse the request, ask the [`Checker`].
//!
//! [`Checker`]: crate::check::Checker

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ptk_wire::CheckRequest;

use super::{presents_check_secret, AppState};
use crate::token::is_token_hash;

/// Everything the check API refuses before deciding. Deny verdicts are not errors: they are
/// `200` answers the filter maps to client statuses.
#[derive(Debug, thiserror::Error)]
pub enum CheckApiError {
    /// Missing or wrong `x-ptk-check-secret`.
    #[error("missing or wrong check secret")]
    Unauthorized,
    /// The body is not a valid `CheckRequest`.
    #[error("{0}")]
    BadRequest(&'static str),
    /// The store could not keep what was sent (metered usage).
    #[error("the token store is unavailable")]
    Unavailable,
}

impl IntoResponse for CheckApiError {
    fn into_response(self) -> Response {
        let status = match self {
            CheckApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            CheckApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            CheckApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, format!("{self}\n")).into_response()
    }
}

/// Checks the shared secret (constant time); every filter-facing route calls it first.
pub(super) fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), CheckApiError> {
    if presents_check_secret(&state.check_secret, headers) {
        Ok(())
    } else {
        Err(CheckApiError::Unauthorized)
    }
}

/// The secret first, then the body: a request without the secret is never parsed.
fn parse(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<CheckRequest, CheckApiError> {
    authorize(state, headers)?;
    let request: CheckRequest = serde_json::from_slice(body)
        .map_err(|_| CheckApiError::BadRequest("body must be a JSON CheckRequest"))?;
    if !is_token_hash(&request.hash) {
        return Err(CheckApiError::BadRequest(
            "hash must be 64 lowercase hex characters",
        ));
    }
    Ok(request)
}

/// The handler. The body is read as bytes (not the `Json` extractor) so the secret is checked
/// before the body is looked at, and every refusal goes through [`CheckApiError`].
pub async fn check(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, CheckApiError> {
    let request = match parse(&state, &headers, &body) {
        Ok(request) => request,
        Err(e) => {
            state.metrics.refused_check(match e {
                CheckApiError::Unauthorized => "unauthorized",
                CheckApiError::BadRequest(_) => "bad_request",
                // Parsing never meets the store.
                CheckApiError::Unavailable => "store_unavailable",
            });
            return Err(e);
        }
    };
    let started = Instant::now();
    let verdict = state.checker.check(&request).await;
    state.metrics.observe_check(&verdict, started.elapsed());
    let mut response = Json(verdict).into_response();
    // An allow carries a real key: nothing between us and the filter may keep a copy.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
