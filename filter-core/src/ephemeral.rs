//! Provider-minted ephemeral credentials, relayed untouched when the operator opts in
//! (`ephemeral.pass_through`, off by default).
//!
//! A browser can get a short-lived token from its backend and open a provider's realtime API
//! with it. Such a token is the provider's own credential, not a proxy token: with the switch
//! on it is routed to the provider and never swapped for the real key.
//! - **Gemini Live** (`auth_tokens/…`): relayed without a check. The proxy cannot tell who
//!   minted it, so it relays any of them (the documented trade-off).
//! - **OpenAI Realtime client secrets** (`ek_…`): only recognised here; the pipeline relays one
//!   only if the proxy saw it minted for a proxy token that is still valid
//!   ([`crate::client_secrets`]).
//!
//! The rule that keeps proxy tokens out: a request passes only when at least one credential
//! value is present and **every** value of **every** slot (each value of each credential
//! header, each credential query parameter under any spelling, empty or not, each subprotocol
//! key entry) is an ephemeral credential of that provider, in the form its SDK sends. One
//! other value anywhere, and the request takes the normal path (check, strip, swap, guard).
//!
//! Each kind is one recogniser over [`Place`]s plus a request shape.

use ptk_wire::Provider;

use crate::config::EphemeralConfig;
use crate::credentials::{for_each_value, Place};
use crate::request::RequestHead;
use crate::slots::bearer_token;

/// Path marker of Gemini Live's WebSocket endpoints (SDKs may prefix it with `//`).
pub use crate::providers::gemini::LIVE_PATH_MARKER;

/// Prefix of a Google-minted ephemeral token (declared by the Gemini registry entry).
pub use crate::providers::gemini::EPHEMERAL_PREFIX as GEMINI_PREFIX;

/// Prefix of an OpenAI Realtime client secret (declared by the OpenAI registry entry).
pub use crate::providers::openai::EPHEMERAL_PREFIX as OPENAI_PREFIX;

/// Longest ephemeral token accepted (Google's are `auth_tokens/` + 64 hex characters, OpenAI's
/// `ek_` + 32).
pub const MAX_LEN: usize = 512;

/// Paths (query aside) of OpenAI Realtime WebSockets that take a client secret: the Realtime
/// API and its translation sessions (minted by `/v1/realtime/translations/client_secrets`).
pub const OPENAI_WS_PATHS: [&str; 2] = ["/v1/realtime", "/v1/realtime/translations"];

/// Paths (query aside) where a browser `POST`s its WebRTC SDP offer with a client secret: the
/// GA `/v1/realtime/calls` and the beta `/v1/realtime?model=…`.
pub const OPENAI_CALL_PATHS: [&str; 2] = ["/v1/realtime/calls", "/v1/realtime"];

/// A kind of provider-minted ephemeral credential the filter can relay.
#[derive(Clone, PartialEq, Eq)]
pub enum Ephemeral {
    /// Google `auth_tokens/…` on a Gemini Live handshake: `?access_token=` (`@google/genai`),
    /// or `Authorization: Token …` plus `x-goog-api-key` (Python `google-genai`).
    GeminiLive,
    /// This OpenAI client secret (`ek_…`) on a Realtime use: the WebRTC `POST` of an SDP offer
    /// or a WebSocket handshake, as `Authorization: Bearer` or the subprotocol entry
    /// `openai-insecure-api-key.<secret>` (the browser `OpenAIRealtimeWebSocket`).
    OpenaiClientSecret(String),
}

impl std::fmt::Debug for Ephemeral {
    // A client secret is a credential: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ephemeral::GeminiLive => f.write_str("GeminiLive"),
            Ephemeral::OpenaiClientSecret(_) => f.write_str("OpenaiClientSecret([redacted])"),
        }
    }
}

impl Ephemeral {
    /// The provider the request goes to, untouched.
    pub fn provider(&self) -> Provider {
        match self {
            Ephemeral::GeminiLive => Provider::Gemini,
            Ephemeral::OpenaiClientSecret(_) => Provider::Openai,
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

/// `ek_` followed by 1.. characters of `[A-Za-z0-9_-]`: nothing else can ride in the value.
pub fn is_openai_secret(value: &str) -> bool {
    value.len() <= MAX_LEN
        && value.strip_prefix(OPENAI_PREFIX).is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The client secret in one credential value, in the form an OpenAI Realtime client sends it.
fn openai_place<'v>(place: Place<'_>, value: &'v str) -> Option<&'v str> {
    let secret = match place {
        Place::Header("authorization") => bearer_token(value)?,
        Place::Subprotocol => value,
        _ => return None,
    };
    is_openai_secret(secret).then_some(secret)
}

/// A Realtime use of a client secret: a WebSocket handshake on a Realtime path, or the
/// WebRTC `POST` of an SDP offer.
fn is_openai_use(head: &RequestHead) -> bool {
    let path = head.path();
    if head.is_websocket_upgrade() {
        OPENAI_WS_PATHS.contains(&path)
    } else {
        head.method() == "POST" && OPENAI_CALL_PATHS.contains(&path)
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

/// The one OpenAI client secret a request carries when every credential value is that same
/// secret in its SDK form (two different secrets, or anything else anywhere: `None`).
fn only_openai_secret(head: &RequestHead) -> Option<String> {
    let mut found: Option<String> = None;
    let mut all = true;
    for_each_value(head, |place, value| {
        if !all {
            return;
        }
        match (openai_place(place, &value), &found) {
            (Some(secret), None) => found = Some(secret.to_string()),
            (Some(secret), Some(first)) if secret == first => {}
            _ => all = false,
        }
    });
    found.filter(|_| all)
}

/// The ephemeral credential a request carries, when pass-through is on and nothing in any
/// slot could be a proxy token; `None` sends it down the normal path.
pub fn pass_through(config: &EphemeralConfig, head: &RequestHead) -> Option<Ephemeral> {
    if !config.pass_through {
        return None;
    }
    if head.is_websocket_upgrade() && head.path().contains(LIVE_PATH_MARKER) {
        return only(head, gemini_place).then_some(Ephemeral::GeminiLive);
    }
    if is_openai_use(head) {
        return only_openai_secret(head).map(Ephemeral::OpenaiClientSecret);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> EphemeralConfig {
        EphemeralConfig {
            pass_through: true,
            ..EphemeralConfig::default()
        }
    }

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
        assert_eq!(pass_through(&on(), &head), Some(Ephemeral::GeminiLive));
    }

    #[test]
    fn openai_secret_shape_is_strict() {
        assert!(is_openai_secret("ek_68af296e8e408191a1120ab6383263c2"));
        assert!(is_openai_secret("ek_a-b_C"));
        for bad in [
            "ek_",
            "EK_abc",
            "ek-abc",
            "ek_a b",
            "ek_a,ptk_x",
            "ek_a.b",
            "ek_a/b",
            "ek_a%20",
            "ptk_ek_abc",
            " ek_abc",
        ] {
            assert!(!is_openai_secret(bad), "{bad}");
        }
        assert!(!is_openai_secret(&format!("ek_{}", "a".repeat(MAX_LEN))));
    }

    #[test]
    fn an_openai_secret_is_named_only_by_its_kind() {
        let kind = Ephemeral::OpenaiClientSecret("ek_visible_nowhere".into());
        assert!(!format!("{kind:?}").contains("ek_visible_nowhere"));
        assert_eq!(kind.provider(), Provider::Openai);
    }
}
