//! Provider-minted ephemeral credentials, relayed untouched when the operator opts in
//! (`ephemeral.pass_through`, off by default).
//!
//! A browser can get a short-lived token from its backend and open a provider's realtime API
//! with it. Such a token is the provider's own credential, not a proxy token: with the switch
//! on it is routed to the provider without a check and never swapped for the real key. The
//! proxy cannot tell who minted it, so it relays any of them (the documented trade-off).
//!
//! The rule that keeps proxy tokens out: a request passes only when at least one credential
//! value is present and **every** value of **every** slot (each value of each credential
//! header, each credential query parameter under any spelling, empty or not, each subprotocol
//! key entry) is an ephemeral credential of that provider, in the form its SDK sends. One
//! other value anywhere, and the request takes the normal path (check, strip, swap, guard).
//!
//! Each kind is one recogniser over [`Place`]s plus a request shape; another provider's kind
//! (e.g. OpenAI client secrets) is one more variant and recogniser.

use ptk_wire::Provider;

use crate::config::EphemeralConfig;
use crate::credentials::{for_each_value, Place};
use crate::request::RequestHead;

/// Path marker of Gemini Live's WebSocket endpoints (SDKs may prefix it with `//`).
pub const LIVE_PATH_MARKER: &str = "/ws/google.ai.generativelanguage.";

/// Prefix of a Google-minted ephemeral token.
pub const GEMINI_PREFIX: &str = "auth_tokens/";

/// Longest ephemeral token accepted (Google's are `auth_tokens/` + 64 hex characters).
pub const MAX_LEN: usize = 512;

/// A kind of provider-minted ephemeral credential the filter can relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ephemeral {
    /// Google `auth_tokens/…` on a Gemini Live handshake: `?access_token=` (`@google/genai`),
    /// or `Authorization: Token …` plus `x-goog-api-key` (Python `google-genai`).
    GeminiLive,
}

impl Ephemeral {
    /// The provider the request goes to, untouched.
    pub fn provider(self) -> Provider {
        match self {
            Ephemeral::GeminiLive => Provider::Gemini,
        }
    }
}

/// `auth_tokens/` followed by 1.. URL-safe characters: nothing else can ride in the value.
fn is_gemini_token(value: &str) -> bool {
    value.len() <= MAX_LEN
        && value.strip_prefix(GEMINI_PREFIX).is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
        })
}

/// One credential value in the form a Gemini ephemeral client sends it.
fn gemini_place(place: Place<'_>, value: &str) -> bool {
    match place {
        Place::Header("authorization") => {
            value.split_at_checked(6).is_some_and(|(scheme, rest)| {
                scheme.eq_ignore_ascii_case("token ") && is_gemini_token(rest)
            })
        }
        Place::Header("x-goog-api-key") => is_gemini_token(value),
        Place::Query("access_token") => is_gemini_token(value),
        _ => false,
    }
}

/// True when the request carries at least one credential value and `accept` takes them all.
fn only(head: &RequestHead, accept: fn(Place<'_>, &str) -> bool) -> bool {
    let (mut any, mut all) = (false, true);
    for_each_value(head, |place, value| {
        any = true;
        all &= accept(place, &value);
    });
    any && all
}

/// The ephemeral credential a request carries, when pass-through is on and nothing in any
/// slot could be a proxy token; `None` sends it down the normal path.
pub fn pass_through(config: &EphemeralConfig, head: &RequestHead) -> Option<Ephemeral> {
    if !config.pass_through {
        return None;
    }
    let live = head.is_websocket_upgrade() && head.path().contains(LIVE_PATH_MARKER);
    (live && only(head, gemini_place)).then_some(Ephemeral::GeminiLive)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ON: EphemeralConfig = EphemeralConfig { pass_through: true };

    #[test]
    fn token_shape_is_strict() {
        assert!(is_gemini_token("auth_tokens/cd02d243f0cc8cc2"));
        assert!(is_gemini_token("auth_tokens/a-b_c.d~e"));
        for bad in [
            "auth_tokens/",
            "auth_tokens/a b",
            "auth_tokens/a,ptk_x",
            "auth_tokens/a/b",
            "AUTH_TOKENS/abc",
            "ptk_auth_tokens/abc",
        ] {
            assert!(!is_gemini_token(bad), "{bad}");
        }
        assert!(!is_gemini_token(&format!(
            "auth_tokens/{}",
            "a".repeat(MAX_LEN)
        )));
    }

    #[test]
    fn off_by_default() {
        let head = RequestHead::new(vec![
            (
                ":path".into(),
                format!("{LIVE_PATH_MARKER}x?access_token=auth_tokens/a"),
            ),
            ("upgrade".into(), "websocket".into()),
        ]);
        assert_eq!(pass_through(&EphemeralConfig::default(), &head), None);
        assert_eq!(pass_through(&ON, &head), Some(Ephemeral::GeminiLive));
    }
}
