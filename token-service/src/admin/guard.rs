//! Who may do what: a verified session for reads, and for writes also the CSRF token and a
//! same-origin request.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use secrecy::{ExposeSecret as _, SecretString};

use super::error::AdminError;
use super::request_info::{check_origin, RequestInfo};
use super::session::{cookie_value, Verified};
use super::AdminState;

/// Header carrying the CSRF token on API writes (forms use the field `csrf`).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A request with a valid session cookie. `Debug` never shows the cookie: it is a bearer
/// credential for the whole admin surface.
#[derive(Debug, Clone)]
pub struct Session {
    /// The verified cookie value (the CSRF token is derived from it).
    pub cookie: SecretString,
    /// Its nonce and expiry, for a server-side logout.
    pub verified: Verified,
}

/// Seconds since the Unix epoch, the session clock.
pub fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The verified session of a request, if any: a valid signature, within its age, and not
/// ended by a logout. Refusals are not logged: anyone can send junk. A store that cannot say
/// whether the session was ended is an error (503), never a session.
pub async fn session_of(
    state: &AdminState,
    headers: &HeaderMap,
) -> Result<Option<Session>, AdminError> {
    let now = now_unix();
    let Some((cookie, verified)) = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .filter_map(cookie_value)
        .find_map(|value| {
            let verified = state.keys.verify(value, now).ok()?;
            Some((SecretString::from(value), verified))
        })
    else {
        return Ok(None);
    };
    if state.sessions.session_revoked(&verified.nonce).await? {
        return Ok(None);
    }
    Ok(Some(Session { cookie, verified }))
}

impl FromRequestParts<AdminState> for Session {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        session_of(state, &parts.headers)
            .await?
            .ok_or(AdminError::Unauthenticated)
    }
}

/// Checks a state-changing request of `session`: same origin, and the session's CSRF token
/// (from the header, or `form_token` for plain HTML forms).
pub fn check_write(
    state: &AdminState,
    session: &Session,
    headers: &HeaderMap,
    host: &str,
    form_token: Option<&str>,
) -> Result<(), AdminError> {
    check_origin(headers, host).map_err(|e| AdminError::CrossOrigin(e.to_string()))?;
    let presented = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .or(form_token)
        .ok_or(AdminError::Csrf)?;
    if !state
        .keys
        .csrf_ok(session.cookie.expose_secret(), presented)
    {
        return Err(AdminError::Csrf);
    }
    Ok(())
}

/// A session allowed to change things: [`Session`] plus [`check_write`] on the header token.
#[derive(Debug, Clone)]
pub struct WriteSession(pub Session);

impl FromRequestParts<AdminState> for WriteSession {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state).await?;
        let info = match RequestInfo::from_request_parts(parts, state).await {
            Ok(info) => info,
            Err(never) => match never {},
        };
        check_write(state, &session, &parts.headers, &info.host, None)?;
        Ok(WriteSession(session))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn debug_of_a_session_never_shows_its_cookie() {
        let session = Session {
            cookie: SecretString::from("1800000000.nonce-abc.SIGNATURE-never-shown"),
            verified: Verified {
                nonce: "nonce-abc".into(),
                expires_unix: 1_800_086_400,
            },
        };
        let shown = format!("{:?}", WriteSession(session));
        assert!(!shown.contains("SIGNATURE-never-shown"), "{shown}");
        assert!(shown.contains("expires_unix"), "{shown}");
    }
}
