//! A plain-data view of a request's head, as the host shim hands it to the core.

/// Request headers and pseudo-headers (`:path`, `:method`, `:authority`) as Envoy gives them:
/// lowercase names, in arrival order, duplicates kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHead {
    headers: Vec<(String, String)>,
}

impl RequestHead {
    /// Wraps a header list. Names are lowercased here so callers need not care.
    pub fn new(headers: Vec<(String, String)>) -> Self {
        let mut headers = headers;
        // Envoy already hands over lowercase names; this only guards other callers, in place.
        for (name, _) in &mut headers {
            name.make_ascii_lowercase();
        }
        RequestHead { headers }
    }

    /// The first value of a header (name is matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a header, if it is present and not empty.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.header(name).filter(|v| !v.is_empty())
    }

    /// Every value of a header, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header and pseudo-header as `(name, value)`, in order, duplicates kept.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The full `:path` (path and query), or `/` when Envoy gave none.
    pub fn path_and_query(&self) -> &str {
        self.header(":path").unwrap_or("/")
    }

    /// The path without its query string.
    pub fn path(&self) -> &str {
        let full = self.path_and_query();
        full.split_once('?').map_or(full, |(path, _)| path)
    }

    /// The raw query string (without `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.path_and_query().split_once('?').map(|(_, q)| q)
    }

    /// The request method (`:method`), uppercase as sent.
    pub fn method(&self) -> &str {
        self.header(":method").unwrap_or("")
    }

    /// True for a WebSocket upgrade handshake (`upgrade: websocket`, any case).
    pub fn is_websocket_upgrade(&self) -> bool {
        self.header("upgrade")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
    }
}

/// A head from `(name, value)` pairs, for the unit tests of every module.
#[cfg(test)]
pub(crate) fn head(pairs: &[(&str, &str)]) -> RequestHead {
    RequestHead::new(
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn path_and_query_split() {
        let h = head(&[(":path", "/v1beta/models/x:gen?alt=sse&key=abc")]);
        assert_eq!(h.path(), "/v1beta/models/x:gen");
        assert_eq!(h.query(), Some("alt=sse&key=abc"));
        let bare = head(&[(":path", "/v1/chat")]);
        assert_eq!(bare.query(), None);
        assert_eq!(head(&[]).path(), "/");
    }

    #[test]
    fn header_lookup_is_case_insensitive_and_keeps_duplicates() {
        let h = head(&[("X-Api-Key", "a"), ("x-api-key", "b"), ("empty", "")]);
        assert_eq!(h.header("x-api-key"), Some("a"));
        assert_eq!(h.all("x-api-key").collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(h.non_empty("empty"), None);
    }

    #[test]
    fn websocket_upgrade_detection() {
        assert!(head(&[("upgrade", "WebSocket")]).is_websocket_upgrade());
        assert!(!head(&[("upgrade", "h2c")]).is_websocket_upgrade());
        assert!(!head(&[]).is_websocket_upgrade());
    }
}
