//! Every refusal of the admin surface, turned into a response in one place: JSON
//! `{"error":{"code","message"}}` with the matching status (and `Retry-After` on 429).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::store::StoreError;

/// Admin API errors. Messages are shown to the operator as-is and never carry a secret.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No valid session.
    #[error("login required")]
    Unauthenticated,
    /// Wrong admin secret at login.
    #[error("invalid password")]
    WrongPassword,
    /// Login throttle hit.
    #[error("too many login attempts; retry in {retry_after_s} s")]
    TooManyAttempts {
        /// Seconds until the throttle window resets.
        retry_after_s: u64,
    },
    /// Missing or wrong CSRF token.
    #[error("missing or invalid CSRF token (send the x-csrf-token header)")]
    Csrf,
    /// The request came from another site.
    #[error("{0}")]
    CrossOrigin(String),
    /// Invalid input.
    #[error("{0}")]
    BadRequest(String),
    /// No token with that hash.
    #[error("no such token")]
    NotFound,
    /// No such admin route (authenticated).
    #[error("no such admin route")]
    NoRoute,
    /// Creating a token whose hash exists.
    #[error("token already exists - delete it first")]
    Conflict,
    /// A write that conflicts with what is stored, said in words (a group that exists, or
    /// that tokens still belong to).
    #[error("{0}")]
    Refused(String),
    /// The store failed; details are logged, not returned.
    #[error("token store unavailable")]
    Store(#[from] StoreError),
    /// Reloading the provider keys failed; the previous keys stay. The reason names the file
    /// and line, never a value.
    #[error("keys reload failed, previous keys kept: {0}")]
    KeysReload(String),
    /// Something else failed on our side (e.g. the OS random source).
    #[error("internal error")]
    Internal(String),
}

impl AdminError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::Unauthenticated | AdminError::WrongPassword => StatusCode::UNAUTHORIZED,
            AdminError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            AdminError::Csrf | AdminError::CrossOrigin(_) => StatusCode::FORBIDDEN,
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::NotFound | AdminError::NoRoute => StatusCode::NOT_FOUND,
            AdminError::Conflict | AdminError::Refused(_) => StatusCode::CONFLICT,
            AdminError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::KeysReload(_) | AdminError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::Unauthenticated => "unauthenticated",
            AdminError::WrongPassword => "invalid_password",
            AdminError::TooManyAttempts { .. } => "too_many_attempts",
            AdminError::Csrf => "csrf",
            AdminError::CrossOrigin(_) => "cross_origin",
            AdminError::BadRequest(_) => "bad_request",
            AdminError::NotFound => "not_found",
            AdminError::NoRoute => "no_route",
            AdminError::Conflict | AdminError::Refused(_) => "conflict",
            AdminError::Store(_) => "store_unavailable",
            AdminError::KeysReload(_) => "keys_reload_failed",
            AdminError::Internal(_) => "internal",
        }
    }

    /// `Retry-After` seconds, for the throttle.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            AdminError::TooManyAttempts { retry_after_s } => Some(*retry_after_s),
            _ => None,
        }
    }

    /// Logs server-side failures (the response never carries their details).
    fn log(&self) {
        match self {
            AdminError::Store(e) => {
                tracing::error!(error_class = e.class(), error = %e, "admin: token store failed");
            }
            AdminError::Internal(e) => tracing::error!(error = %e, "admin: internal error"),
            _ => {}
        }
    }
}

/// Adds `Retry-After` when the error has one.
pub fn with_retry_after(mut response: Response, error: &AdminError) -> Response {
    if let Some(seconds) = error.retry_after() {
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        self.log();
        let body = json!({"error": {"code": self.code(), "message": self.to_string()}});
        let response = (self.status(), Json(body)).into_response();
        with_retry_after(response, &self)
    }
}
