//! Google-minted ephemeral tokens on Gemini Live handshakes.
//!
//! A browser can get a short-lived `auth_tokens/…` token from its backend and open Gemini Live
//! with it (`?access_token=` from `@google/genai`, `Authorization: Token …` plus the same value
//! in `x-goog-api-key` from Python `google-genai`). That token is Google's own credential, not a
//! proxy token: route it to Gemini untouched, never swap it for the real key.

use crate::query::first_param;
use crate::request::RequestHead;
use crate::slots::{bearer_token, subprotocol_token};

/// Path marker of Gemini Live's WebSocket endpoints (SDKs may prefix it with `//`).
pub const LIVE_PATH_MARKER: &str = "/ws/google.ai.generativelanguage.";

/// Prefix of a Google-minted ephemeral token.
pub const EPHEMERAL_PREFIX: &str = "auth_tokens/";

fn is_ephemeral(value: &str) -> bool {
    value.starts_with(EPHEMERAL_PREFIX)
}

/// True when a Gemini Live upgrade carries only Google ephemeral credentials: at least one
/// `auth_tokens/…` value and nothing in any slot that could be a proxy token.
pub fn is_gemini_ephemeral(head: &RequestHead) -> bool {
    if !head.is_websocket_upgrade() || !head.path().contains(LIVE_PATH_MARKER) {
        return false;
    }
    let token_auth = head.non_empty("authorization").map(|v| {
        v.get(..6)
            .filter(|s| s.eq_ignore_ascii_case("token "))
            .and_then(|_| v.get(6..))
            .map(str::trim)
            .is_some_and(is_ephemeral)
    });
    let goog = head.non_empty("x-goog-api-key").map(is_ephemeral);
    let access = first_param(head.query(), "access_token").map(|v| is_ephemeral(&v));
    let any_ephemeral = [token_auth, goog, access].contains(&Some(true));
    let anything_else = [token_auth, goog, access].contains(&Some(false))
        || head.non_empty("x-api-key").is_some()
        || head
            .header("authorization")
            .and_then(bearer_token)
            .is_some()
        || first_param(head.query(), "key").is_some()
        || head
            .all("sec-websocket-protocol")
            .any(|o| subprotocol_token(o).is_some());
    any_ephemeral && !anything_else
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(path: &str, pairs: &[(&str, &str)]) -> RequestHead {
        let mut all = vec![
            (":path".to_string(), path.to_string()),
            ("upgrade".to_string(), "websocket".to_string()),
        ];
        all.extend(pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        RequestHead::new(all)
    }

    const LIVE: &str = "//ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained";

    #[test]
    fn node_access_token_form() {
        let path = format!("{LIVE}?access_token=auth_tokens/abc");
        assert!(is_gemini_ephemeral(&head(&path, &[])));
    }

    #[test]
    fn python_token_header_form() {
        let h = head(
            LIVE,
            &[
                ("authorization", "Token auth_tokens/abc"),
                ("x-goog-api-key", "auth_tokens/abc"),
            ],
        );
        assert!(is_gemini_ephemeral(&h));
    }

    #[test]
    fn proxy_tokens_and_mixed_slots_are_not_ephemeral() {
        assert!(!is_gemini_ephemeral(&head(
            LIVE,
            &[("x-goog-api-key", "ptk_x")]
        )));
        assert!(!is_gemini_ephemeral(&head(
            LIVE,
            &[
                ("authorization", "Token auth_tokens/a"),
                ("x-goog-api-key", "ptk_x")
            ]
        )));
        let mixed = format!("{LIVE}?access_token=auth_tokens/a&key=ptk_x");
        assert!(!is_gemini_ephemeral(&head(&mixed, &[])));
        let other_path = "/v1/realtime?access_token=auth_tokens/a";
        assert!(!is_gemini_ephemeral(&head(other_path, &[])));
        let not_upgrade = RequestHead::new(vec![(
            ":path".to_string(),
            format!("{LIVE}?access_token=auth_tokens/a"),
        )]);
        assert!(!is_gemini_ephemeral(&not_upgrade));
        assert!(!is_gemini_ephemeral(&head(LIVE, &[])));
    }
}
