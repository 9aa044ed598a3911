//! `POST /admin/login` and `POST /admin/logout`.
//!
//! Login takes the form field `password` (the login page) or JSON `{"password": ...}`
//! (scripts). Every attempt counts against a per-client-IP throttle (10 per 60 s) before the
//! password is looked at; failures are logged with the client IP, never with what was typed.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::error::{with_retry_after, AdminError};
use super::guard::{check_write, now_unix, session_of};
use super::pages::login_page;
use super::request_info::{check_origin, RequestInfo};
use super::session::{clear_cookie, set_cookie};
use super::AdminState;
use crate::expiry::{format_timestamp, now_timestamp};
use crate::ratelimit::RateDecision;

/// The login body (form or JSON). No `Debug`: it holds the password.
#[derive(Deserialize)]
struct LoginBody {
    password: Option<String>,
}

/// The logout form.
#[derive(Deserialize)]
struct LogoutForm {
    csrf: Option<String>,
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"))
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// Throttle, parse, compare. Returns the new session's cookie value.
async fn attempt(
    state: &AdminState,
    info: &RequestInfo,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<String, AdminError> {
    check_origin(headers, &info.host).map_err(|e| AdminError::CrossOrigin(e.to_string()))?;
    if let RateDecision::Limited { retry_after_s } = state.login_throttle.hit(info.client_ip).await
    {
        tracing::warn!(client_ip = %info.client_ip, "admin login throttled");
        return Err(AdminError::TooManyAttempts { retry_after_s });
    }
    let parsed: Option<LoginBody> = if is_json(headers) {
        serde_json::from_slice(body).ok()
    } else {
        serde_urlencoded::from_bytes(body).ok()
    };
    let password = parsed
        .and_then(|b| b.password)
        .ok_or_else(|| AdminError::BadRequest("password is required".into()))?;
    if !state.keys.password_ok(&password) {
        tracing::warn!(client_ip = %info.client_ip, "admin login failed");
        return Err(AdminError::WrongPassword);
    }
    tracing::info!(client_ip = %info.client_ip, "admin login");
    Ok(state.keys.issue(now_unix()))
}

/// `POST /admin/login`: sets the session cookie. A form gets a redirect to the dashboard (or
/// the login page with the error); JSON gets `{"ok":true,"csrf_token":...}` (or the error).
pub async fn login(
    State(state): State<AdminState>,
    info: RequestInfo,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json = is_json(&headers);
    let attempted = attempt(&state, &info, &headers, &body).await;
    state.metrics.admin_action("login", attempted.is_ok());
    match attempted {
        Ok(value) => {
            let cookie = set_cookie(&value, state.keys.max_age(), info.https);
            let response = if json {
                let csrf = state.keys.csrf_token(&value);
                Json(json!({"ok": true, "csrf_token": csrf})).into_response()
            } else {
                Redirect::to("/admin").into_response()
            };
            with_cookie(response, &cookie)
        }
        Err(error) if json => error.into_response(),
        Err(error) => {
            let page = (
                error.status(),
                login_page(Some(&error.to_string()), &state.about),
            )
                .into_response();
            with_retry_after(page, &error)
        }
    }
}

/// `POST /admin/logout` (form with the `csrf` field, or the `x-csrf-token` header): ends the
/// session server-side (its cookie is refused from now on, by every replica sharing the
/// store, even if a copy of it was taken), clears the cookie and goes back to the login page.
/// Without a session it just redirects.
pub async fn logout(
    State(state): State<AdminState>,
    info: RequestInfo,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AdminError> {
    if let Some(session) = session_of(&state, &headers).await? {
        let form: Option<LogoutForm> = serde_urlencoded::from_bytes(&body).ok();
        let token = form.as_ref().and_then(|f| f.csrf.as_deref());
        check_write(&state, &session, &headers, &info.host, token)?;
        let until = chrono::DateTime::from_timestamp(session.verified.expires_unix, 0)
            // Unrepresentable (never, in practice): remember it for good rather than not at all.
            .map_or_else(|| "9999-12-31T23:59:59.999Z".to_owned(), format_timestamp);
        state
            .sessions
            .revoke_session(&session.verified.nonce, &until, &now_timestamp())
            .await?;
    }
    let response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/admin")]).into_response();
    Ok(with_cookie(response, &clear_cookie(info.https)))
}
