//! The admin session's cookie side: a cookie holding its issue time and a random nonce, signed
//! with HMAC-SHA256, and the CSRF token derived from it (the nonce makes two sessions issued in
//! the same second distinct, so one session's CSRF token never works for another).
//!
//! A cookie is accepted while its signature verifies, its age (checked here, not only by the
//! browser) is within the max age, and its nonce was not ended by a logout. There is no list of
//! live sessions: logging out records the nonce in the store until the cookie would have
//! expired anyway (`guard::session_of` asks; `login::logout` records), so a copy of the cookie
//! stops working on every replica sharing the store.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use secrecy::{ExposeSecret as _, SecretBox, SecretString};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Name of the session cookie.
pub const COOKIE_NAME: &str = "ptk_admin";
/// How far in the future an issue time may lie (clock skew between replicas).
const MAX_CLOCK_SKEW_S: i64 = 60;

type HmacSha256 = Hmac<Sha256>;

/// What a valid cookie says about its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The session's random nonce: its identity for a server-side logout.
    pub nonce: String,
    /// When the cookie stops being accepted (Unix seconds).
    pub expires_unix: i64,
}

/// Why a cookie was refused. Never carries the cookie itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Not `<digits>.<nonce>.<signature>`.
    #[error("malformed session cookie")]
    Malformed,
    /// The signature does not verify (tampered, or signed with another secret).
    #[error("bad session signature")]
    BadSignature,
    /// Older than the max age, or issued in the future.
    #[error("session expired")]
    Expired,
}

/// The keys and rules for admin sessions, derived once from the admin secret.
pub struct SessionKeys {
    /// HMAC key for cookies and CSRF tokens (derived, so the raw secret is used only here).
    mac_key: SecretBox<[u8; 32]>,
    /// SHA-256 of the admin secret, for the constant-time password check.
    password_digest: SecretBox<[u8; 32]>,
    max_age: Duration,
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail; the fallback keeps clippy's
    // no-panic rule without an unreachable branch that could ever run.
    let mut m = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    for part in parts {
        m.update(part);
    }
    m.finalize().into_bytes().into()
}

impl SessionKeys {
    /// Derives the keys from the admin secret.
    pub fn new(secret: &SecretString, max_age: Duration) -> SessionKeys {
        let raw = secret.expose_secret().as_bytes();
        SessionKeys {
            mac_key: SecretBox::new(Box::new(mac(raw, &[b"ptk admin session v1"]))),
            password_digest: SecretBox::new(Box::new(Sha256::digest(raw).into())),
            max_age,
        }
    }

    /// How long a session lasts.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// True when `presented` is the admin secret. Both sides are SHA-256 digests compared in
    /// constant time, so neither the secret's bytes nor its length leak through timing.
    pub fn password_ok(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(digest.ct_eq(self.password_digest.expose_secret()))
    }

    fn sign(&self, what: &[u8], value: &[u8]) -> [u8; 32] {
        mac(self.mac_key.expose_secret(), &[what, b"\0", value])
    }

    /// A cookie value for a session issued at `issued_unix` (seconds):
    /// `<ts>.<base64url nonce>.<base64url MAC of both>`.
    pub fn issue(&self, issued_unix: i64) -> String {
        let nonce = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        let payload = format!("{issued_unix}.{nonce}");
        let sig = URL_SAFE_NO_PAD.encode(self.sign(b"session", payload.as_bytes()));
        format!("{payload}.{sig}")
    }

    /// Verifies a cookie value at `now_unix`: signature first (constant time), then age.
    /// Whether the session was ended by a logout is the store's to say ([`Verified::nonce`]).
    pub fn verify(&self, value: &str, now_unix: i64) -> Result<Verified, SessionError> {
        let (payload, sig) = value.rsplit_once('.').ok_or(SessionError::Malformed)?;
        let (ts, nonce) = payload.split_once('.').ok_or(SessionError::Malformed)?;
        if ts.is_empty() || ts.len() > 12 || !ts.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SessionError::Malformed);
        }
        let presented = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| SessionError::Malformed)?;
        let expected = self.sign(b"session", payload.as_bytes());
        if !bool::from(presented.as_slice().ct_eq(&expected)) {
            return Err(SessionError::BadSignature);
        }
        let issued: i64 = ts.parse().map_err(|_| SessionError::Malformed)?;
        let max_age = i64::try_from(self.max_age.as_secs()).unwrap_or(i64::MAX);
        let age = now_unix.saturating_sub(issued);
        if age > max_age || age < -MAX_CLOCK_SKEW_S {
            return Err(SessionError::Expired);
        }
        Ok(Verified {
            nonce: nonce.to_owned(),
            expires_unix: issued.saturating_add(max_age),
        })
    }

    /// The CSRF token of a session: a MAC of its cookie value. An attacker's page can neither
    /// read the cookie (HttpOnly) nor compute this without the secret.
    pub fn csrf_token(&self, cookie_value: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.sign(b"csrf", cookie_value.as_bytes()))
    }

    /// Constant-time check of a presented CSRF token against the session's.
    pub fn csrf_ok(&self, cookie_value: &str, presented: &str) -> bool {
        let expected = self.csrf_token(cookie_value);
        bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
    }
}

/// The `Set-Cookie` value that starts a session.
pub fn set_cookie(value: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}={value}; Path=/admin; Max-Age={}; HttpOnly; SameSite=Strict{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that clears the cookie in the browser (the logout also ends the
/// session server-side; see the module docs).
pub fn clear_cookie(secure: bool) -> String {
    set_cookie("", Duration::ZERO, secure)
}

/// The session cookie's value from a `Cookie` header, if present.
pub fn cookie_value(cookie_header: &str) -> Option<&str> {
    cookie_header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const DAY: i64 = 86_400;
    const T: i64 = 1_800_000_000;

    fn keys() -> SessionKeys {
        SessionKeys::new(
            &SecretString::from("admin-secret-0123456789"),
            Duration::from_secs(86_400),
        )
    }

    #[test]
    fn password_check_is_exact() {
        let k = keys();
        assert!(k.password_ok("admin-secret-0123456789"));
        for wrong in [
            "",
            "admin-secret-012345678",
            "admin-secret-01234567890",
            "ADMIN-secret-0123456789",
        ] {
            assert!(!k.password_ok(wrong), "{wrong}");
        }
    }

    #[test]
    fn cookies_verify_within_their_age_only() {
        let k = keys();
        let cookie = k.issue(T);
        assert!(cookie.starts_with("1800000000."));
        let verified = k.verify(&cookie, T).unwrap();
        assert_eq!(verified.expires_unix, T + DAY);
        assert_eq!(Some(verified.nonce.as_str()), cookie.split('.').nth(1));
        assert!(
            k.verify(&cookie, T + DAY).is_ok(),
            "exactly max age is still fine"
        );
        assert_eq!(k.verify(&cookie, T + DAY + 1), Err(SessionError::Expired));
        assert_eq!(
            k.verify(&cookie, T - 61),
            Err(SessionError::Expired),
            "issued in the future"
        );
    }

    #[test]
    fn tampering_is_refused() {
        let k = keys();
        let cookie = k.issue(T);
        let (_, sig) = cookie.split_once('.').unwrap();
        // A later issue time with the old signature.
        assert_eq!(
            k.verify(&format!("{}.{sig}", T + 100), T),
            Err(SessionError::BadSignature)
        );
        // A signature from another secret.
        let other = SessionKeys::new(
            &SecretString::from("another-secret-0123456789"),
            k.max_age(),
        );
        assert_eq!(
            k.verify(&other.issue(T), T),
            Err(SessionError::BadSignature)
        );
        for garbage in [
            "",
            ".",
            "abc",
            "123",
            "12a.xyz",
            "123.!!!",
            "-5.AAAA",
            "1234567890123.AA",
        ] {
            assert!(k.verify(garbage, T).is_err(), "{garbage}");
        }
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_session() {
        let k = keys();
        let a = k.issue(T);
        let b = k.issue(T);
        assert_ne!(a, b, "same second, different sessions");
        let token = k.csrf_token(&a);
        assert!(k.csrf_ok(&a, &token));
        assert!(!k.csrf_ok(&b, &token));
        assert!(!k.csrf_ok(&a, ""));
        assert_ne!(
            token,
            a.split_once('.').unwrap().1,
            "csrf token is not the cookie MAC"
        );
    }

    #[test]
    fn cookie_headers() {
        let set = set_cookie("v", Duration::from_secs(86_400), false);
        assert_eq!(
            set,
            "ptk_admin=v; Path=/admin; Max-Age=86400; HttpOnly; SameSite=Strict"
        );
        assert!(set_cookie("v", Duration::from_secs(1), true).ends_with("; Secure"));
        assert!(clear_cookie(false).starts_with("ptk_admin=; Path=/admin; Max-Age=0"));
        assert_eq!(cookie_value("a=1; ptk_admin=xyz.abc; b=2"), Some("xyz.abc"));
        assert_eq!(cookie_value("ptk_administrator=1"), None);
        assert_eq!(cookie_value(""), None);
    }
}
