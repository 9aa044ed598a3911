//! Shared helpers of the fuzz targets: turning fuzzer bytes into a request head, and the
//! independent (naive, allocation-happy) checks the targets assert against.

use ptk_filter_core::RequestHead;

/// A head from fuzzer bytes: the first line is `:path`, every other line `name: value` (a line
/// without `": "` is a name with an empty value). Invalid UTF-8 is replaced, as Envoy would
/// refuse it anyway.
pub fn head_from_bytes(data: &[u8]) -> RequestHead {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let mut headers = vec![(":path".to_string(), lines.next().unwrap_or("/").to_string())];
    for line in lines {
        let (name, value) = line.split_once(": ").unwrap_or((line, ""));
        headers.push((name.to_string(), value.to_string()));
    }
    RequestHead::new(headers)
}

/// `hay` lowercased, raw and percent-decoded (three layers, each read as text; in a path also
/// with `+` as a space).
fn layers(hay: &str, is_path: bool) -> Vec<String> {
    let mut layers = vec![hay.to_ascii_lowercase()];
    for plus in [false, is_path] {
        let mut text = hay.to_string();
        for _ in 0..3 {
            let spaced = if plus {
                text.replace('+', " ")
            } else {
                text.clone()
            };
            text = percent_encoding::percent_decode_str(&spaced)
                .decode_utf8_lossy()
                .into_owned();
            layers.push(text.to_ascii_lowercase());
        }
    }
    layers
}

/// True when `needle` occurs in `hay` raw or percent-decoded (three layers; in a path also
/// with `+` as a space), ignoring ASCII case: the guard's promise, checked the slow way.
pub fn occurs(hay: &str, needle: &str, is_path: bool) -> bool {
    let needle = needle.to_ascii_lowercase();
    layers(hay, is_path).iter().any(|l| l.contains(&needle))
}

/// True when `hay`, raw or decoded as [`occurs`] decodes, holds a generated token's shape:
/// `ptk_` (any case) at the start or after a byte that is not a letter or digit, and 32 URL-safe
/// characters. Checked the slow way, at every offset.
pub fn holds_token_shape(hay: &str, is_path: bool) -> bool {
    layers(hay, is_path).iter().any(|l| {
        let b = l.as_bytes();
        (0..b.len()).any(|at| {
            (at == 0 || !b[at - 1].is_ascii_alphanumeric())
                && b.get(at..at + 4) == Some(b"ptk_")
                && b.get(at + 4..at + 36).is_some_and(|body| {
                    body.iter()
                        .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
                })
        })
    })
}
