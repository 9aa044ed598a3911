//! Gemini resumable-upload URLs: pointing them back at the proxy.
//!
//! The start call of a resumable upload answers with `x-goog-upload-url` (and
//! `x-goog-upload-control-url`) on Google's own host. A client behind the proxy has no path to
//! that host, and the URL carries no key, so the proxy hands it back on **its own** scheme and
//! authority, exactly as the client addressed it, with path and query kept byte for byte. Only
//! URLs on the provider's configured authority are rewritten; any other host is left alone.

use crate::query::first_param;
use crate::request::RequestHead;

/// The response headers that carry an upload URL.
pub const UPLOAD_URL_HEADERS: [&str; 2] = ["x-goog-upload-url", "x-goog-upload-control-url"];

/// The query parameter naming an upload session.
pub const UPLOAD_ID_PARAM: &str = "upload_id";

/// Longest client authority echoed into a URL (a DNS name is at most 253 bytes, plus a port).
const MAX_AUTHORITY: usize = 262;

/// The scheme and authority a client used to reach the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOrigin {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The request's `:authority`, as sent.
    pub authority: String,
}

impl ClientOrigin {
    /// The origin of a request: its `:scheme` (which Envoy always sets, from the listener's TLS
    /// or a trusted `x-forwarded-proto`) and its `:authority` before the filter rewrites it.
    /// `None` when either is missing or unusable in a URL.
    pub fn of(head: &RequestHead) -> Option<ClientOrigin> {
        let scheme = match head.header(":scheme")? {
            s if s.eq_ignore_ascii_case("https") => "https",
            s if s.eq_ignore_ascii_case("http") => "http",
            _ => return None,
        };
        let authority = head.header(":authority")?;
        valid_authority(authority).then(|| ClientOrigin {
            scheme,
            authority: authority.to_string(),
        })
    }
}

/// A `host[:port]` that can go into a URL as is: letters, digits, `-._~%`, and `:[]` for ports
/// and IPv6 literals. No userinfo (`@`), no path, no spaces: the value is the client's own, but
/// it must not be able to turn the URL into something else.
fn valid_authority(authority: &str) -> bool {
    !authority.is_empty()
        && authority.len() <= MAX_AUTHORITY
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%:[]".contains(&b))
}

/// An absolute (`scheme://`) or scheme-relative (`//`) URL, split.
struct Parts<'a> {
    /// Lowercased scheme, `None` for a scheme-relative URL.
    scheme: Option<String>,
    authority: &'a str,
    /// Everything after the authority (`/path?query#fragment`), verbatim; may start `//`.
    rest: &'a str,
}

fn split(url: &str) -> Option<Parts<'_>> {
    let (scheme, after) = match url.strip_prefix("//") {
        Some(after) => (None, after),
        None => {
            let (scheme, after) = url.split_once("://")?;
            let mut chars = scheme.chars();
            let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
            if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
                return None;
            }
            (Some(scheme.to_ascii_lowercase()), after)
        }
    };
    // The authority ends at the first `/`, `?` or `#`: a path that starts with `//` stays path.
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    Some(Parts {
        scheme,
        authority,
        rest,
    })
}

/// `host` and `port` of an authority; IPv6 literals keep their brackets.
fn host_port(authority: &str) -> (&str, Option<&str>) {
    let colon = if authority.starts_with('[') {
        authority
            .find(']')
            // `]` is one byte, and `tail` a suffix of `authority`: neither saturates.
            .and_then(|close| authority.get(close.saturating_add(1)..))
            .and_then(|tail| {
                tail.strip_prefix(':')
                    .map(|_| authority.len().saturating_sub(tail.len()))
            })
    } else {
        authority.rfind(':')
    };
    match colon {
        Some(at) => (
            authority.get(..at).unwrap_or(authority),
            authority.get(at.saturating_add(1)..),
        ),
        None => (authority, None),
    }
}

fn default_port(scheme: Option<&str>) -> Option<&'static str> {
    match scheme {
        Some("https") => Some("443"),
        Some("http") => Some("80"),
        _ => None,
    }
}

/// Whether `url_authority` (under `scheme`) names the provider's configured authority: host
/// case-insensitively (a trailing dot ignored), ports equal once defaults are filled in.
fn same_authority(scheme: Option<&str>, url_authority: &str, provider: &str) -> bool {
    let (url_host, url_port) = host_port(url_authority);
    let (cfg_host, cfg_port) = host_port(provider);
    let trim = |h: &str| h.strip_suffix('.').unwrap_or(h).to_string();
    let default = default_port(scheme);
    trim(url_host).eq_ignore_ascii_case(&trim(cfg_host))
        && url_port.filter(|p| !p.is_empty()).or(default)
            == cfg_port.filter(|p| !p.is_empty()).or(default)
}

/// Whether `url` is an http(s) or scheme-relative URL on the provider's configured authority.
pub fn on_provider(url: &str, provider_authority: &str) -> bool {
    split(url.trim()).is_some_and(|parts| {
        matches!(parts.scheme.as_deref(), None | Some("http" | "https"))
            && same_authority(parts.scheme.as_deref(), parts.authority, provider_authority)
    })
}

/// The upload URL pointed at the proxy, or `None` to leave it as it is (not an http(s) URL, or
/// on another host than `provider_authority`).
pub fn rewrite(url: &str, provider_authority: &str, client: &ClientOrigin) -> Option<String> {
    if !on_provider(url, provider_authority) {
        return None;
    }
    let parts = split(url.trim())?;
    Some(format!(
        "{}://{}{}",
        client.scheme, client.authority, parts.rest
    ))
}

/// The upload id a URL (or a request's query) names: the decoded value of its one `upload_id`
/// parameter. `None` when there is none or more than one (which one a provider would use is
/// not ours to guess).
pub fn upload_id(query: Option<&str>) -> Option<String> {
    let query = query?;
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    let count = query
        .split('&')
        .filter_map(|segment| form_urlencoded::parse(segment.as_bytes()).next())
        .filter(|(name, _)| name == UPLOAD_ID_PARAM)
        .count();
    (count == 1)
        .then(|| first_param(Some(query), UPLOAD_ID_PARAM))
        .flatten()
}

/// The query part of a URL (after the first `?`, fragment included, still percent-encoded),
/// or `None` when it has no `?`.
pub fn url_query(url: &str) -> Option<&str> {
    url.split_once('?').map(|(_, q)| q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::head;

    const GOOGLE: &str = "generativelanguage.googleapis.com";
    const TAIL: &str = "/upload/v1beta/files?upload_id=AbC-123_x&upload_protocol=resumable";

    fn origin(scheme: &'static str, authority: &str) -> ClientOrigin {
        ClientOrigin {
            scheme,
            authority: authority.to_string(),
        }
    }

    #[test]
    fn provider_urls_point_back_at_the_proxy_as_the_client_addressed_it() {
        let google = format!("https://{GOOGLE}{TAIL}");
        let cases = [
            (origin("http", "127.0.0.1:10000"), "http://127.0.0.1:10000"),
            (
                origin("https", "127.0.0.1:10443"),
                "https://127.0.0.1:10443",
            ),
            (
                origin("https", "proxy.example.com"),
                "https://proxy.example.com",
            ),
            (origin("http", "[::1]:8080"), "http://[::1]:8080"),
            (origin("http", "LLM.Corp:80"), "http://LLM.Corp:80"),
        ];
        for (client, base) in cases {
            assert_eq!(
                rewrite(&google, GOOGLE, &client),
                Some(format!("{base}{TAIL}")),
                "{client:?}"
            );
        }
    }

    #[test]
    fn every_spelling_of_the_provider_authority_matches() {
        let client = origin("http", "p:1");
        for url in [
            format!("https://{GOOGLE}{TAIL}"),
            format!("HTTPS://GenerativeLanguage.GoogleAPIs.com{TAIL}"),
            format!("https://{GOOGLE}:443{TAIL}"),
            format!("https://{GOOGLE}.{TAIL}"),
            format!("http://{GOOGLE}{TAIL}"),
            format!("http://{GOOGLE}:80{TAIL}"),
            format!("//{GOOGLE}{TAIL}"),
            format!("  https://{GOOGLE}{TAIL}  "),
        ] {
            assert_eq!(
                rewrite(&url, GOOGLE, &client),
                Some(format!("http://p:1{TAIL}")),
                "{url}"
            );
        }
    }

    #[test]
    fn paths_queries_and_fragments_are_kept_verbatim() {
        let client = origin("https", "p");
        let cases = [
            (
                "//upload/v1beta/files?upload_id=a",
                "https://p//upload/v1beta/files?upload_id=a",
            ),
            (
                "/upload/x?upload_id=a%2Fb&k=%20#frag",
                "https://p/upload/x?upload_id=a%2Fb&k=%20#frag",
            ),
            ("?upload_id=a", "https://p?upload_id=a"),
            ("", "https://p"),
            ("/a//b/../c", "https://p/a//b/../c"),
        ];
        for (tail, want) in cases {
            let url = format!("https://{GOOGLE}{tail}");
            assert_eq!(
                rewrite(&url, GOOGLE, &client).as_deref(),
                Some(want),
                "{tail}"
            );
        }
    }

    #[test]
    fn foreign_hosts_ports_schemes_and_userinfo_are_left_alone() {
        let client = origin("http", "p:1");
        for url in [
            format!("https://storage.googleapis.com{TAIL}"),
            format!("https://{GOOGLE}.evil.example{TAIL}"),
            format!("https://evil.example/{GOOGLE}{TAIL}"),
            format!("https://{GOOGLE}:8443{TAIL}"),
            format!("http://{GOOGLE}:443{TAIL}"),
            format!("https://user@{GOOGLE}{TAIL}"),
            format!("ftp://{GOOGLE}{TAIL}"),
            format!("{GOOGLE}{TAIL}"),
            TAIL.to_string(),
            format!("//evil.example//{GOOGLE}{TAIL}"),
            format!("1https://{GOOGLE}{TAIL}"),
            String::new(),
        ] {
            assert_eq!(rewrite(&url, GOOGLE, &client), None, "{url}");
        }
    }

    #[test]
    fn a_configured_port_must_match() {
        let client = origin("http", "p");
        let gateway = "gw.internal:8443";
        assert!(rewrite(&format!("https://gw.internal:8443{TAIL}"), gateway, &client).is_some());
        assert!(rewrite(&format!("https://gw.internal{TAIL}"), gateway, &client).is_none());
        assert!(rewrite(&format!("https://[::1]:9{TAIL}"), "[::1]:9", &client).is_some());
        assert!(rewrite(&format!("https://[::1]{TAIL}"), "[::1]:9", &client).is_none());
    }

    #[test]
    fn the_client_origin_comes_from_scheme_and_authority() {
        let of = |pairs: &[(&str, &str)]| ClientOrigin::of(&head(pairs));
        assert_eq!(
            of(&[(":scheme", "https"), (":authority", "127.0.0.1:10443")]),
            Some(origin("https", "127.0.0.1:10443"))
        );
        assert_eq!(
            of(&[(":scheme", "HTTP"), (":authority", "proxy")]),
            Some(origin("http", "proxy"))
        );
        for bad in [
            vec![(":authority", "proxy")],
            vec![(":scheme", "ftp"), (":authority", "proxy")],
            vec![(":scheme", "http")],
            vec![(":scheme", "http"), (":authority", "")],
            vec![(":scheme", "http"), (":authority", "user@proxy")],
            vec![(":scheme", "http"), (":authority", "proxy/evil")],
            vec![(":scheme", "http"), (":authority", "proxy evil")],
            vec![(":scheme", "http"), (":authority", "proxy?x")],
        ] {
            assert_eq!(of(&bad), None, "{bad:?}");
        }
        let long = "a".repeat(MAX_AUTHORITY + 1);
        assert_eq!(of(&[(":scheme", "http"), (":authority", &long)]), None);
    }

    #[test]
    fn the_upload_id_is_the_one_decoded_parameter() {
        assert_eq!(
            upload_id(Some("upload_id=AbC&upload_protocol=resumable")),
            Some("AbC".into())
        );
        assert_eq!(upload_id(Some("x=1&upload%5Fid=a%2Bb")), Some("a+b".into()));
        assert_eq!(upload_id(Some("upload_id=a#upload_id=b")), Some("a".into()));
        assert_eq!(upload_id(Some("upload_id=a&upload_id=b")), None);
        assert_eq!(upload_id(Some("upload_id=a&upload%5fid=a")), None);
        assert_eq!(upload_id(Some("upload_id=")), None);
        assert_eq!(upload_id(Some("upload_ids=a")), None);
        assert_eq!(upload_id(None), None);
        assert_eq!(
            url_query(&format!("https://{GOOGLE}{TAIL}")),
            Some("upload_id=AbC-123_x&upload_protocol=resumable")
        );
    }
}
