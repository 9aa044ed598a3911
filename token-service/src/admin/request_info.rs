//! Who is asking and how they reached us: client IP (for the login throttle), the host and
//! scheme the browser used (for cookies, the origin check and client snippets).
//!
//! Forwarding headers (`x-forwarded-for`, `-host`, `-proto`) are trusted only from Envoy, and
//! Envoy proves itself with the check secret: its `/admin` routes add `x-ptk-check-secret`.
//! Being on loopback proves nothing (any local process, or a mesh sidecar relaying anyone, is a
//! loopback peer). From Envoy, the client is the **rightmost** `x-forwarded-for` entry (the one
//! the nearest proxy wrote; the `/admin` routes overwrite the header with the client address
//! Envoy derived, the TCP peer unless trusted hops are configured, so a client cannot pick its
//! own throttle bucket; they overwrite `x-forwarded-host` and `-proto` with the request's host
//! and the listener's scheme too); from anyone else, including callers with a wrong secret, it
//! is the TCP peer. `x-envoy-external-address` (which Envoy adds with its
//! `use_remote_address: true`) is not read: one header, overwritten by the routes, is enough.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Uri};
use axum::middleware::Next;
use axum::response::Response;
use ptk_wire::CHECK_SECRET_HEADER;

use crate::http::{presents_check_secret, SecretDigest};

/// Set on every admin request by [`recognise_envoy`]: true when it carried the check secret,
/// i.e. it came through our Envoy and its forwarding headers may be believed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViaEnvoy(pub bool);

/// Admin middleware: compares the check-secret header (constant time, as the check API does),
/// records the answer as [`ViaEnvoy`], and removes the header, so no handler, log line or
/// echoed response can ever carry the secret. A wrong or missing value is not an error: the
/// caller is simply treated as a direct one.
pub async fn recognise_envoy(
    State(check_secret): State<Arc<SecretDigest>>,
    mut request: Request,
    next: Next,
) -> Response {
    let via_envoy = presents_check_secret(&check_secret, request.headers());
    request.headers_mut().remove(CHECK_SECRET_HEADER);
    request.extensions_mut().insert(ViaEnvoy(via_envoy));
    next.run(request).await
}

/// What the admin handlers need to know about the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// The client, for throttling and logs.
    pub client_ip: IpAddr,
    /// `host[:port]` as the browser addressed us (empty if unknown).
    pub host: String,
    /// True when the browser used https (then cookies get `Secure`).
    pub https: bool,
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A host header value we are willing to echo into URLs: host name or IP literal, optional
/// port, nothing else.
fn plausible_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
}

impl RequestInfo {
    /// Derives the info from the TCP peer, the request headers and whether the request came
    /// through Envoy (pure, for tests): forwarding headers count only `via_envoy`.
    pub fn from_parts(
        peer: Option<SocketAddr>,
        headers: &HeaderMap,
        via_envoy: ViaEnvoy,
    ) -> RequestInfo {
        let peer_ip = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip());
        let forwarded = |name| {
            if via_envoy.0 {
                header_str(headers, name)
            } else {
                None
            }
        };
        let client_ip = forwarded("x-forwarded-for")
            .and_then(|xff| xff.rsplit(',').map(str::trim).find(|e| !e.is_empty()))
            .and_then(|ip| ip.parse().ok())
            .unwrap_or(peer_ip);
        let host = forwarded("x-forwarded-host")
            .or_else(|| header_str(headers, header::HOST.as_str()))
            .filter(|h| plausible_host(h))
            .unwrap_or_default()
            .to_ascii_lowercase();
        let https =
            forwarded("x-forwarded-proto").is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
        RequestInfo {
            client_ip,
            host,
            https,
        }
    }

    /// `http(s)://host` as the browser sees us, for snippets; `None` if the host is unknown.
    pub fn origin(&self) -> Option<String> {
        if self.host.is_empty() {
            return None;
        }
        let scheme = if self.https { "https" } else { "http" };
        Some(format!("{scheme}://{}", self.host))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        // Without the middleware's mark (never, in the admin router) nothing is trusted.
        let via_envoy = parts
            .extensions
            .get::<ViaEnvoy>()
            .copied()
            .unwrap_or_default();
        Ok(RequestInfo::from_parts(peer, &parts.headers, via_envoy))
    }
}

/// Why a state-changing request looks cross-site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// `Sec-Fetch-Site` says another site sent it.
    #[error("cross-site request refused (Sec-Fetch-Site)")]
    CrossSite,
    /// `Origin` names another origin (or `null`).
    #[error("cross-origin request refused (Origin)")]
    CrossOrigin,
}

/// The origin check for state-changing requests (Fetch Metadata first, `Origin` as fallback):
/// a browser's `Sec-Fetch-Site` must be `same-origin` (or `none`: typed by the user); it is
/// authoritative when present, because a page cannot set it and because under our
/// `referrer-policy: no-referrer` Chromium sends `Origin: null` even for same-origin form
/// posts and fetches. Without it (older browsers), an `Origin` must name this host. Clients
/// that send neither (curl, scripts) pass here and still need the CSRF token.
pub fn check_origin(headers: &HeaderMap, host: &str) -> Result<(), OriginError> {
    if let Some(site) = header_str(headers, "sec-fetch-site") {
        return match site {
            "same-origin" | "none" => Ok(()),
            _ => Err(OriginError::CrossSite),
        };
    }
    if let Some(origin) = header_str(headers, header::ORIGIN.as_str()) {
        // An origin is scheme://host[:port] and nothing more (`null` has no scheme).
        let authority = origin
            .parse::<Uri>()
            .ok()
            .filter(|uri| uri.scheme().is_some() && uri.path_and_query().is_none_or(|p| p == "/"))
            .and_then(|uri| uri.authority().map(|a| a.as_str().to_owned()));
        match authority {
            Some(a) if !host.is_empty() && a.eq_ignore_ascii_case(host) => {}
            _ => return Err(OriginError::CrossOrigin),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, value.parse().unwrap());
        }
        h
    }

    const LOOPBACK: &str = "127.0.0.1:40000";
    const REMOTE: &str = "203.0.113.9:40000";

    fn info(peer: &str, pairs: &[(&'static str, &str)], via_envoy: bool) -> RequestInfo {
        RequestInfo::from_parts(
            Some(peer.parse().unwrap()),
            &headers(pairs),
            ViaEnvoy(via_envoy),
        )
    }

    #[test]
    fn forwarded_headers_count_only_via_envoy_wherever_the_peer_is() {
        let pairs = [
            ("x-forwarded-for", "10.9.9.9, 198.51.100.7"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "proxy.example:8443"),
            ("host", "127.0.0.1:10081"),
        ];
        // Envoy next to us, or Envoy in another container: the peer does not matter.
        for peer in [LOOPBACK, REMOTE] {
            let via_envoy = info(peer, &pairs, true);
            assert_eq!(
                via_envoy.client_ip.to_string(),
                "198.51.100.7",
                "rightmost entry"
            );
            assert!(via_envoy.https);
            assert_eq!(via_envoy.origin().unwrap(), "https://proxy.example:8443");
        }
        // Anyone else, a local process included: the TCP peer and the Host header.
        for (peer, ip) in [(LOOPBACK, "127.0.0.1"), (REMOTE, "203.0.113.9")] {
            let direct = info(peer, &pairs, false);
            assert_eq!(direct.client_ip.to_string(), ip);
            assert!(!direct.https);
            assert_eq!(direct.origin().unwrap(), "http://127.0.0.1:10081");
        }
    }

    #[test]
    fn unusable_headers_fall_back_to_the_peer() {
        let i = info(
            REMOTE,
            &[("x-forwarded-for", "not-an-ip"), ("host", "a b")],
            true,
        );
        assert_eq!(i.client_ip.to_string(), "203.0.113.9");
        assert_eq!(i.origin(), None);
        let none = RequestInfo::from_parts(None, &HeaderMap::new(), ViaEnvoy(true));
        assert!(none.client_ip.is_unspecified());
    }

    /// The middleware over a handler that echoes every header it sees and the mark.
    async fn through_middleware(presented: Option<&str>) -> (bool, String) {
        use axum::body::Body;
        use tower::ServiceExt as _;
        let digest = Arc::new(crate::http::secret_digest(&"right-check-secret-01".into()));
        let echo = |ViaEnvoyExt(via): ViaEnvoyExt, headers: HeaderMap| async move {
            format!("{}|{headers:?}", via.0)
        };
        let app = axum::Router::new()
            .route("/", axum::routing::get(echo))
            .layer(axum::middleware::from_fn_with_state(
                digest,
                recognise_envoy,
            ));
        let mut request = Request::builder().uri("/").header("x-other", "kept");
        if let Some(value) = presented {
            request = request.header(CHECK_SECRET_HEADER, value);
        }
        let response = app
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let (via, headers) = text.split_once('|').unwrap();
        (via == "true", headers.to_owned())
    }

    /// Reads the mark the way handlers do (through the request's extensions).
    struct ViaEnvoyExt(ViaEnvoy);
    impl<S: Send + Sync> FromRequestParts<S> for ViaEnvoyExt {
        type Rejection = std::convert::Infallible;
        async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
            Ok(ViaEnvoyExt(
                parts
                    .extensions
                    .get::<ViaEnvoy>()
                    .copied()
                    .unwrap_or_default(),
            ))
        }
    }

    #[tokio::test]
    async fn the_secret_header_marks_envoy_and_never_reaches_a_handler() {
        for (presented, want) in [
            (Some("right-check-secret-01"), true),
            (Some("wrong-check-secret-01"), false),
            (Some(""), false),
            (None, false),
        ] {
            let (via, headers) = through_middleware(presented).await;
            assert_eq!(via, want, "{presented:?}");
            assert!(!headers.contains(CHECK_SECRET_HEADER), "{headers}");
            assert!(!headers.contains("check-secret-01"), "{headers}");
            assert!(headers.contains("x-other"), "{headers}");
        }
    }

    #[test]
    fn origin_check() {
        let host = "127.0.0.1:10000";
        let ok: &[&[(&'static str, &str)]] = &[
            &[],
            &[
                ("sec-fetch-site", "same-origin"),
                ("origin", "http://127.0.0.1:10000"),
            ],
            &[("sec-fetch-site", "none")],
            // Chromium under referrer-policy no-referrer: same-origin, but Origin is "null".
            &[("sec-fetch-site", "same-origin"), ("origin", "null")],
            &[("origin", "https://127.0.0.1:10000")],
        ];
        for pairs in ok {
            assert_eq!(check_origin(&headers(pairs), host), Ok(()), "{pairs:?}");
        }
        let bad: &[(&[(&'static str, &str)], OriginError)] = &[
            (&[("sec-fetch-site", "cross-site")], OriginError::CrossSite),
            (&[("sec-fetch-site", "same-site")], OriginError::CrossSite),
            (
                &[("origin", "http://evil.example")],
                OriginError::CrossOrigin,
            ),
            (&[("origin", "null")], OriginError::CrossOrigin),
            (
                &[("origin", "http://127.0.0.1:10000.evil.example")],
                OriginError::CrossOrigin,
            ),
        ];
        for (pairs, want) in bad {
            assert_eq!(check_origin(&headers(pairs), host), Err(*want), "{pairs:?}");
        }
        assert!(check_origin(&headers(&[("origin", "http://x")]), "").is_err());
    }

    /// An `Origin` is parsed as a URI (the http crate's): only scheme://host[:port], naming
    /// this host exactly, passes.
    #[test]
    fn origins_are_scheme_and_authority_only() {
        let host = "127.0.0.1:10000";
        for bad in [
            "http://127.0.0.1:10000/x",
            "http://127.0.0.1:10000?x",
            "http://u@127.0.0.1:10000",
            "127.0.0.1:10000",
            "http://127.0.0.1:1000",
            "http://[::1]:10000",
        ] {
            assert_eq!(
                check_origin(&headers(&[("origin", bad)]), host),
                Err(OriginError::CrossOrigin),
                "{bad}"
            );
        }
        for good in ["http://127.0.0.1:10000/", "HTTP://127.0.0.1:10000"] {
            assert_eq!(
                check_origin(&headers(&[("origin", good)]), host),
                Ok(()),
                "{good}"
            );
        }
    }
}
