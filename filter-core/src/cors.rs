//! CORS, exactly as the original Worker did it (§5): preflights answered before any auth, and
//! every non-upgrade response to a request with an `Origin` decorated with the reflected origin.
//!
//! Reflective CORS is deliberate: the proxy token is the credential and the real key never
//! rides a browser-visible path. Done here rather than by Envoy's CORS filter because the
//! table needs to echo `access-control-request-headers` (so new SDK headers never need a
//! config change), answer Origin-less preflights, and decorate the filter's own local replies.

use crate::expose;
use crate::refusal::LocalReply;
use crate::request::RequestHead;

/// `access-control-allow-methods` on preflights: every method the providers' APIs use.
/// The original Worker left PATCH out, which broke `@google/genai`'s `caches.update` and
/// `models.update` in browsers; PUT and DELETE are used too (Gemini uploads, deletions).
pub const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";

/// `access-control-max-age` on preflights.
pub const MAX_AGE: &str = "86400";

/// True for a CORS preflight: any `OPTIONS` that is not a WebSocket upgrade.
pub fn is_preflight(head: &RequestHead) -> bool {
    head.method().eq_ignore_ascii_case("OPTIONS") && !head.is_websocket_upgrade()
}

/// The request's `Origin`, when CORS decoration applies (present, not a WebSocket upgrade).
pub fn origin_of(head: &RequestHead) -> Option<String> {
    if head.is_websocket_upgrade() {
        return None;
    }
    head.header("origin").map(str::to_string)
}

/// The 204 answer to a preflight; no token is read, nothing is forwarded.
pub fn preflight_reply(head: &RequestHead) -> LocalReply {
    let allow_headers = head
        .non_empty("access-control-request-headers")
        .unwrap_or("*");
    let mut reply = LocalReply {
        status: 204,
        headers: vec![
            ("access-control-allow-methods".into(), ALLOW_METHODS.into()),
            ("access-control-allow-headers".into(), allow_headers.into()),
            ("access-control-max-age".into(), MAX_AGE.into()),
        ],
        body: Vec::new(),
    };
    if let Some(origin) = origin_of(head) {
        reply.headers.extend(decoration(&origin, None, None));
    }
    reply
}

/// Headers that decorate a response for a request with this `Origin`. `vary` is appended to
/// the response's existing value, if any; the provider's `access-control-expose-headers`
/// (`existing_expose`) is kept and merged with what the SDKs read ([`expose::merged`]).
pub fn decoration(
    origin: &str,
    existing_vary: Option<&str>,
    existing_expose: Option<&str>,
) -> Vec<(String, String)> {
    let vary = match existing_vary.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v)
            if v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("origin")) =>
        {
            v.to_string()
        }
        Some(v) => format!("{v}, Origin"),
        None => "Origin".to_string(),
    };
    vec![
        ("access-control-allow-origin".into(), origin.into()),
        ("vary".into(), vary),
        (
            "access-control-expose-headers".into(),
            expose::merged(existing_expose),
        ),
    ]
}

/// A local reply decorated for `origin` (no-op without one). It exposes what the SDKs read,
/// `retry-after` included (the 429s carry it).
pub fn decorate(mut reply: LocalReply, origin: Option<&str>) -> LocalReply {
    if let Some(origin) = origin {
        reply.headers.extend(decoration(origin, None, None));
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::head;

    fn get<'a>(r: &'a LocalReply, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn preflight_with_origin_echoes_requested_headers() {
        let h = head(&[
            (":method", "OPTIONS"),
            ("origin", "https://app.example"),
            (
                "access-control-request-headers",
                "x-stainless-os, authorization",
            ),
        ]);
        assert!(is_preflight(&h));
        let r = preflight_reply(&h);
        assert_eq!(r.status, 204);
        assert!(r.body.is_empty());
        assert_eq!(get(&r, "access-control-allow-methods"), Some(ALLOW_METHODS));
        assert_eq!(
            get(&r, "access-control-allow-headers"),
            Some("x-stainless-os, authorization")
        );
        assert_eq!(get(&r, "access-control-max-age"), Some("86400"));
        assert_eq!(
            get(&r, "access-control-allow-origin"),
            Some("https://app.example")
        );
        assert_eq!(get(&r, "vary"), Some("Origin"));
        assert_eq!(
            get(&r, "access-control-expose-headers"),
            Some(expose::sdk_list().as_str())
        );
        assert_eq!(get(&r, "access-control-allow-credentials"), None);
    }

    #[test]
    fn preflight_without_origin_or_requested_headers() {
        let r = preflight_reply(&head(&[(":method", "OPTIONS")]));
        assert_eq!(r.status, 204);
        assert_eq!(get(&r, "access-control-allow-headers"), Some("*"));
        assert_eq!(get(&r, "access-control-allow-origin"), None);
        assert_eq!(get(&r, "vary"), None);
    }

    #[test]
    fn upgrades_are_never_preflights_or_decorated() {
        let h = head(&[
            (":method", "OPTIONS"),
            ("upgrade", "websocket"),
            ("origin", "https://a"),
        ]);
        assert!(!is_preflight(&h));
        assert_eq!(origin_of(&h), None);
        assert!(!is_preflight(&head(&[(":method", "POST")])));
    }

    #[test]
    fn vary_is_appended_once() {
        let v = |existing| {
            decoration("o", existing, None)
                .into_iter()
                .find(|(n, _)| n == "vary")
                .map(|(_, v)| v)
        };
        assert_eq!(v(None).as_deref(), Some("Origin"));
        assert_eq!(
            v(Some("Accept-Encoding")).as_deref(),
            Some("Accept-Encoding, Origin")
        );
        assert_eq!(
            v(Some("accept-encoding, origin")).as_deref(),
            Some("accept-encoding, origin")
        );
    }

    #[test]
    fn preflights_allow_every_method_the_providers_use() {
        let methods: Vec<&str> = ALLOW_METHODS.split(", ").collect();
        for needed in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            assert!(methods.contains(&needed), "{needed}");
        }
    }

    #[test]
    fn the_provider_expose_list_is_kept() {
        let expose = |provider| {
            decoration("o", None, provider)
                .into_iter()
                .find(|(n, _)| n == "access-control-expose-headers")
                .map(|(_, v)| v)
        };
        assert_eq!(expose(Some("*")).as_deref(), Some("*"));
        assert!(expose(Some("x-a"))
            .is_some_and(|v| v.starts_with("x-a, ") && v.contains("retry-after")));
        assert_eq!(expose(None), Some(expose::sdk_list()));
    }

    #[test]
    fn local_replies_expose_retry_after() {
        let reply = decorate(
            crate::Refusal::RateLimited { retry_after_s: 7 }.reply(crate::ErrorShape::Openai),
            Some("https://a"),
        );
        assert_eq!(get(&reply, "retry-after"), Some("7"));
        let exposed = get(&reply, "access-control-expose-headers").unwrap_or_default();
        assert!(exposed.split(", ").any(|n| n == "retry-after"), "{exposed}");
    }
}
