//! Reading the OpenAI responses that mint Realtime client secrets, as they pass, so the secret
//! can be bound to the proxy token that minted it ([`crate::client_secrets`]).
//!
//! Minting endpoints (verified against `openai` 6.49 for Node and 3.57 for Python):
//! - `POST /v1/realtime/client_secrets` and `POST /v1/realtime/translations/client_secrets`
//!   (GA): `{"value":"ek_…","expires_at":<unix s>,"session":{…}}`;
//! - `POST /v1/realtime/sessions` and `POST /v1/realtime/transcription_sessions` (beta):
//!   `{…,"client_secret":{"value":"ek_…","expires_at":<unix s>}}`.
//!
//! A 2xx answer's body is copied chunk by chunk while Envoy passes it on (never paused, never
//! buffered by Envoy on our behalf), up to [`MAX_BODY`], and parsed at its end: at the end of
//! the stream, or as soon as the announced `content-length` has been read (the client knows
//! the answer is complete then, and may use the secret before Envoy reports the end of the
//! stream; the binding is in place before the last bytes are released). Anything else
//! (an error, a compressed body, a longer body, no `expires_at`, an already expired secret)
//! binds nothing, so using that secret through the proxy gets 401: fail closed.

use serde::Deserialize;

use crate::bound_table::digest;
use crate::ephemeral::is_openai_secret;
use crate::request::RequestHead;

/// Paths of the minting endpoints (query aside).
pub const MINT_PATHS: [&str; 4] = [
    "/v1/realtime/client_secrets",
    "/v1/realtime/translations/client_secrets",
    "/v1/realtime/sessions",
    "/v1/realtime/transcription_sessions",
];

/// Most bytes of a minting response copied: the secret plus the session configuration it
/// echoes (a few KiB, more with long instructions or many tools).
pub const MAX_BODY: usize = 256 * 1024;

/// True for a request that mints a client secret.
pub fn mints(head: &RequestHead) -> bool {
    head.method() == "POST" && !head.is_websocket_upgrade() && MINT_PATHS.contains(&head.path())
}

/// One minting response being read, for the token with hash `token_hash`.
pub struct MintWatch {
    /// Lowercase hex SHA-256 of the minting token.
    pub token_hash: String,
    body: Vec<u8>,
    overflowed: bool,
    /// The announced `content-length`, if any.
    length: Option<usize>,
}

impl std::fmt::Debug for MintWatch {
    // The body holds the secret: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintWatch")
            .field("read", &self.body.len())
            .field("overflowed", &self.overflowed)
            .finish()
    }
}

/// A secret read from a minting response, ready to bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minted {
    /// SHA-256 of the secret.
    pub digest: [u8; 32],
    /// Until when it is accepted (ms since the epoch): its `expires_at`, capped.
    pub expires_ms: u64,
}

/// What the end of a minting response gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// These secrets (usually one).
    Secrets(Vec<Minted>),
    /// Nothing bindable: longer than [`MAX_BODY`], not the expected JSON, no live secret.
    Unreadable,
}

impl MintWatch {
    /// Watches the response of a minting request by the token with this hash.
    pub fn new(token_hash: &str) -> MintWatch {
        MintWatch {
            token_hash: token_hash.to_string(),
            body: Vec::new(),
            overflowed: false,
            length: None,
        }
    }

    /// Notes the response's `content-length` (ignored unless it is a plain number).
    pub fn expect(&mut self, content_length: Option<&str>) {
        self.length = content_length.and_then(|v| v.trim().parse().ok());
    }

    /// True once the announced length has been read: the body is whole.
    pub fn complete(&self) -> bool {
        !self.overflowed && self.length.is_some_and(|n| self.body.len() >= n)
    }

    /// Whether the body is worth reading: a 2xx answer in plain bytes (the filter asks for
    /// `accept-encoding: identity`; a provider that compresses anyway binds nothing).
    pub fn wants_body(status: Option<u16>, content_encoding: Option<&str>) -> bool {
        let plain = content_encoding.is_none_or(|e| {
            let e = e.trim();
            e.is_empty() || e.eq_ignore_ascii_case("identity")
        });
        status.is_some_and(|s| (200..300).contains(&s)) && plain
    }

    /// Copies one chunk (stops copying past [`MAX_BODY`]).
    pub fn push(&mut self, chunk: &[u8]) {
        if self.overflowed {
            return;
        }
        if self.body.len().saturating_add(chunk.len()) > MAX_BODY {
            self.overflowed = true;
            self.body = Vec::new();
            return;
        }
        self.body.extend_from_slice(chunk);
    }

    /// The secrets of the whole body, each expiring at its `expires_at` but no later than
    /// `now_ms + max_ttl_ms`; already expired ones are left out.
    pub fn finish(self, now_ms: u64, max_ttl_ms: u64) -> Read {
        if self.overflowed {
            return Read::Unreadable;
        }
        let minted: Vec<Minted> = secrets_in(&self.body)
            .into_iter()
            .filter_map(|(secret, expires_at_s)| {
                let expires_ms = expiry_ms(expires_at_s, now_ms, max_ttl_ms)?;
                Some(Minted {
                    digest: digest(&secret),
                    expires_ms,
                })
            })
            .collect();
        if minted.is_empty() {
            Read::Unreadable
        } else {
            Read::Secrets(minted)
        }
    }
}

/// A secret's `value` and `expires_at` (the session configuration is skipped unread).
#[derive(Deserialize)]
struct Secret {
    value: Option<String>,
    expires_at: Option<serde_json::Number>,
}

/// Both answer shapes: the GA fields at the top, the beta ones under `client_secret`.
#[derive(Deserialize)]
struct Answer {
    value: Option<String>,
    expires_at: Option<serde_json::Number>,
    client_secret: Option<Secret>,
}

/// `(secret, expires_at in seconds)` of every secret in a minting answer.
pub fn secrets_in(body: &[u8]) -> Vec<(String, u64)> {
    let Ok(answer) = serde_json::from_slice::<Answer>(body) else {
        return Vec::new();
    };
    let top = Secret {
        value: answer.value,
        expires_at: answer.expires_at,
    };
    [Some(top), answer.client_secret]
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let value = s.value.filter(|v| is_openai_secret(v))?;
            Some((value, s.expires_at?.as_u64()?))
        })
        .collect()
}

/// When a secret with this `expires_at` stops being accepted: that instant, no later than
/// `max_ttl_ms` from now; `None` when it has already passed.
pub fn expiry_ms(expires_at_s: u64, now_ms: u64, max_ttl_ms: u64) -> Option<u64> {
    let at = expires_at_s
        .saturating_mul(1000)
        .min(now_ms.saturating_add(max_ttl_ms));
    (at > now_ms).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::head;

    const SECRET: &str = "ek_68af296e8e408191a1120ab6383263c2";
    const NOW_MS: u64 = 1_756_310_000_000;
    const HOUR_MS: u64 = 3_600_000;

    #[test]
    fn the_four_minting_endpoints_and_nothing_else() {
        for path in MINT_PATHS {
            assert!(
                mints(&head(&[(":method", "POST"), (":path", path)])),
                "{path}"
            );
            let with_query = format!("{path}?x=1");
            assert!(mints(&head(&[(":method", "POST"), (":path", &with_query)])));
            assert!(!mints(&head(&[(":method", "GET"), (":path", path)])));
        }
        for path in [
            "/v1/realtime",
            "/v1/realtime/calls",
            "/v1/realtime/client_secrets/x",
            "/v1/chat/completions",
            "/realtime/client_secrets",
        ] {
            assert!(
                !mints(&head(&[(":method", "POST"), (":path", path)])),
                "{path}"
            );
        }
    }

    #[test]
    fn both_answer_shapes_give_the_secret_and_its_expiry() {
        let ga = format!(
            r#"{{"value":"{SECRET}","expires_at":1756310470,"session":{{"type":"realtime","model":"gpt-realtime","instructions":"be brief","client_secret":null}}}}"#
        );
        assert_eq!(
            secrets_in(ga.as_bytes()),
            vec![(SECRET.to_string(), 1_756_310_470)]
        );
        let beta = format!(
            r#"{{"id":"sess_1","object":"realtime.session","model":"gpt-4o-realtime-preview","client_secret":{{"value":"{SECRET}","expires_at":1756310070}}}}"#
        );
        assert_eq!(
            secrets_in(beta.as_bytes()),
            vec![(SECRET.to_string(), 1_756_310_070)]
        );
    }

    #[test]
    fn anything_else_binds_nothing() {
        for body in [
            "".to_string(),
            "not json".to_string(),
            format!(r#"{{"value":"{SECRET}"}}"#),
            format!(r#"{{"value":"{SECRET}","expires_at":"soon"}}"#),
            format!(r#"{{"value":"{SECRET}","expires_at":-1}}"#),
            format!(r#"{{"value":"{SECRET}","expires_at":1.5}}"#),
            r#"{"value":"sk-not-a-secret","expires_at":1756310470}"#.to_string(),
            r#"{"value":"ek_has space","expires_at":1756310470}"#.to_string(),
            r#"{"client_secret":{"value":42,"expires_at":1}}"#.to_string(),
            r#"[1,2]"#.to_string(),
        ] {
            assert!(secrets_in(body.as_bytes()).is_empty(), "{body}");
        }
    }

    #[test]
    fn expiry_is_the_secrets_own_capped_and_never_in_the_past() {
        let in_10_min = NOW_MS / 1000 + 600;
        assert_eq!(
            expiry_ms(in_10_min, NOW_MS, 2 * HOUR_MS),
            Some(in_10_min * 1000)
        );
        // A secret that claims a week is held to the cap.
        let in_a_week = NOW_MS / 1000 + 7 * 24 * 3600;
        assert_eq!(
            expiry_ms(in_a_week, NOW_MS, 2 * HOUR_MS),
            Some(NOW_MS + 2 * HOUR_MS)
        );
        assert_eq!(
            expiry_ms(NOW_MS / 1000, NOW_MS, HOUR_MS),
            None,
            "now is too late"
        );
        assert_eq!(expiry_ms(0, NOW_MS, HOUR_MS), None);
        assert_eq!(expiry_ms(u64::MAX, NOW_MS, HOUR_MS), Some(NOW_MS + HOUR_MS));
    }

    #[test]
    fn only_plain_successes_are_read() {
        assert!(MintWatch::wants_body(Some(200), None));
        assert!(MintWatch::wants_body(Some(201), Some("identity")));
        assert!(!MintWatch::wants_body(Some(200), Some("gzip")));
        assert!(!MintWatch::wants_body(Some(400), None));
        assert!(!MintWatch::wants_body(Some(401), None));
        assert!(!MintWatch::wants_body(None, None));
    }

    #[test]
    fn chunks_are_joined_and_the_copy_is_bounded() {
        let expires = NOW_MS / 1000 + 60;
        let body = format!(r#"{{"value":"{SECRET}","expires_at":{expires}}}"#);
        let mut watch = MintWatch::new("ab");
        for chunk in body.as_bytes().chunks(7) {
            watch.push(chunk);
        }
        assert!(!format!("{watch:?}").contains(SECRET));
        assert_eq!(
            watch.finish(NOW_MS, HOUR_MS),
            Read::Secrets(vec![Minted {
                digest: digest(SECRET),
                expires_ms: expires * 1000
            }])
        );
        // With a content-length the body is whole once that many bytes are in.
        let mut announced = MintWatch::new("ab");
        announced.expect(Some(&body.len().to_string()));
        let (head, tail) = body.as_bytes().split_at(10);
        announced.push(head);
        assert!(!announced.complete());
        announced.push(tail);
        assert!(announced.complete());
        let mut unannounced = MintWatch::new("ab");
        unannounced.expect(Some("junk"));
        unannounced.push(body.as_bytes());
        assert!(!unannounced.complete(), "only the end of the stream tells");
        // Past the bound nothing is kept, and nothing is bound.
        let mut long = MintWatch::new("ab");
        long.push(body.as_bytes());
        long.push(&vec![b' '; MAX_BODY]);
        assert!(long.body.is_empty());
        long.push(b"more");
        assert!(long.body.is_empty());
        assert_eq!(long.finish(NOW_MS, HOUR_MS), Read::Unreadable);
        // An expired secret binds nothing either.
        let old = format!(
            r#"{{"value":"{SECRET}","expires_at":{}}}"#,
            NOW_MS / 1000 - 1
        );
        let mut stale = MintWatch::new("ab");
        stale.push(old.as_bytes());
        assert_eq!(stale.finish(NOW_MS, HOUR_MS), Read::Unreadable);
    }
}
