//! What an operator may set with `providers.<name>.request_headers`: lowercase, valid header
//! names that are not pseudo-headers, credentials (the real key is the filter's), hop-by-hop,
//! framing or routing headers Envoy owns, WebSocket handshake or `x-envoy-` headers; values of
//! visible ASCII. Errors name the field and never quote the value.

use crate::credentials::CREDENTIAL_HEADERS;

/// At most this many `request_headers` per provider.
pub const MAX_REQUEST_HEADERS: usize = 32;

/// Longest `request_headers` value accepted.
pub const MAX_HEADER_VALUE_LEN: usize = 1024;

/// Headers an operator may not set: hop-by-hop and framing headers Envoy owns, and the
/// routing header (`host` is `:authority`).
const RESERVED_HEADERS: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "expect",
];

/// Header-name prefixes an operator may not set: the WebSocket handshake, Envoy's own.
const RESERVED_PREFIXES: [&str; 2] = ["sec-websocket-", "x-envoy-"];

/// RFC 9110 `tchar`: the bytes a header name is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

pub(crate) fn check_header_name(field: &str, name: &str) -> Result<(), String> {
    let problem = if name.is_empty() {
        Some("a header name must not be empty")
    } else if name.starts_with(':') {
        Some("pseudo-headers cannot be set")
    } else if !name.bytes().all(is_tchar) {
        Some("not a valid header name")
    } else if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Some("header names must be lowercase")
    } else if CREDENTIAL_HEADERS.contains(&name) {
        Some("credential headers are set by the filter from the real key, never from config")
    } else if RESERVED_HEADERS.contains(&name)
        || RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
    {
        Some("hop-by-hop, framing, routing, WebSocket and x-envoy- headers cannot be set")
    } else {
        None
    };
    problem.map_or(Ok(()), |p| Err(format!("{field}: {p}")))
}

// The value is never quoted back: an operator may put something private there.
pub(crate) fn check_header_value(field: &str, value: &str) -> Result<(), String> {
    let visible = |b: u8| b.is_ascii_graphic() || b == b' ' || b == b'\t';
    if value.is_empty()
        || value.len() > MAX_HEADER_VALUE_LEN
        || value.trim() != value
        || !value.bytes().all(visible)
    {
        return Err(format!(
            "{field}: the value must be 1..={MAX_HEADER_VALUE_LEN} bytes of visible ASCII \
             (spaces inside only), without control characters"
        ));
    }
    Ok(())
}
