//! The path Envoy's access log may print for a request the filter answers itself.
//!
//! The access log prints `:path` (its format cuts it at the first character outside
//! `[-A-Za-z0-9/._:]`). A request the filter refuses is never forwarded, so its `:path` is
//! only ever logged: before answering, the shim replaces it with [`redacted_path`], which
//! keeps the path without its query or fragment and replaces with [`MARKER`]:
//!
//! - every credential value the request carried, in each form the final guard looks for
//!   ([`crate::credentials::guarded_values`]: whole, after its auth scheme, each comma-joined
//!   element, each piece between separators; 12 bytes or more), wherever it appears: raw or
//!   percent-decoded (up to three layers), ignoring ASCII case, a `+` standing for a space,
//!   overlapping occurrences included;
//! - every generated-token-shaped run: `ptk_` (any case) followed by one or more URL-safe
//!   characters (`A-Z a-z 0-9 - _`), in the same forms.
//!
//! A `?` or `#` inside a redacted run does not cut the path (a custom token may contain one:
//! cutting there would leave its first characters). A request with more or larger credential
//! values than the guard searches ([`crate::credentials::Excess`]), or a target longer than
//! [`MAX_SEARCHED_TARGET`], is logged as `/[redacted]` whole.
//!
//! What it cannot do: a custom token (any text of 12+ characters) in the path of a request
//! that carries no token in any credential slot cannot be told from an ordinary path.
//!
//! Pure and bounded: a pass over the target per decoding layer and value (linear, KMP), at
//! most `(1 + 3) × 32` passes over at most 2 KiB. Positions are offsets into such a text, so
//! adding one position or length to another cannot overflow: the saturating additions below
//! are exact.

use std::borrow::Cow;

use crate::credentials::guarded_values;
use crate::guard::DECODE_LAYERS;
use crate::request::RequestHead;

/// What replaces each redacted run.
pub const MARKER: &str = "[redacted]";

/// The prefix of a generated proxy token.
const TOKEN_PREFIX: &[u8] = crate::guard::TOKEN_PREFIX.as_bytes();

/// Longest request target searched. No provider API has a path near this; a refused request
/// with a longer one is logged as `/[redacted]` whole, so a client cannot make a refusal
/// cost more than `(1 + 3) × 32` passes over 2 KiB.
pub const MAX_SEARCHED_TARGET: usize = 2048;

/// The `:path` the access log may print for this request when the filter answers it itself,
/// or `None` when that is the current `:path` (no query, fragment or secret to remove).
pub fn redacted_path(head: &RequestHead) -> Option<String> {
    let target = head.path_and_query();
    let out = match guarded_values(head) {
        Ok(values) if target.len() <= MAX_SEARCHED_TARGET => redact(target, &values),
        // More than the guard searches, or a target no client needs: print nothing of it.
        _ => format!("/{MARKER}"),
    };
    (out != target).then_some(out)
}

/// A byte sequence derived from the target, each byte remembering the target bytes it came
/// from (`spans[i]` = start and end in the target of byte `i`).
struct Layer {
    bytes: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

impl Layer {
    fn raw(target: &str) -> Layer {
        let bytes = target.as_bytes().to_vec();
        let spans = (0..bytes.len()).zip(1..=bytes.len()).collect();
        Layer { bytes, spans }
    }

    /// The layer percent-decoded once (`%XX` with two hex digits; anything else kept), or
    /// `None` when there is nothing to decode.
    fn decoded(&self) -> Option<Layer> {
        if !self.bytes.contains(&b'%') {
            return None;
        }
        let mut bytes = Vec::with_capacity(self.bytes.len());
        let mut spans = Vec::with_capacity(self.bytes.len());
        let mut changed = false;
        // The bytes not yet decoded and their spans (one span per byte).
        let (mut rest, mut rest_spans) = (self.bytes.as_slice(), self.spans.as_slice());
        while let Some(&b) = rest.first() {
            let escape = match rest {
                [b'%', hi, lo, ..] => hex(*hi).zip(hex(*lo)).map(|(h, l)| h << 4 | l),
                _ => None,
            };
            let (byte, width) = escape.map_or((b, 1), |decoded| (decoded, 3));
            let (taken, later) = rest_spans
                .split_at_checked(width)
                .unwrap_or((rest_spans, &[]));
            let start = taken.first().map_or(0, |s| s.0);
            let end = taken.last().map_or(start, |s| s.1);
            bytes.push(byte);
            spans.push((start, end));
            changed |= width == 3;
            rest = rest.get(width..).unwrap_or_default();
            rest_spans = later;
        }
        changed.then_some(Layer { bytes, spans })
    }
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// How bytes compare: ASCII case ignored, `+` the same as a space (a form-decoded value).
fn fold(b: u8) -> u8 {
    match b {
        b'+' => b' ',
        _ => b.to_ascii_lowercase(),
    }
}

/// A value to find, folded, with its KMP failure table.
struct Needle {
    bytes: Vec<u8>,
    fail: Vec<usize>,
}

/// The KMP fallback from a partial match of `k` bytes: `fail[k - 1]`, or 0 from none.
fn fall_back(fail: &[usize], k: usize) -> usize {
    k.checked_sub(1)
        .and_then(|last| fail.get(last))
        .copied()
        .unwrap_or(0)
}

impl Needle {
    fn new(value: &str) -> Needle {
        let bytes: Vec<u8> = value.bytes().map(fold).collect();
        let mut fail = vec![0; bytes.len()];
        let mut k = 0;
        for (i, &b) in bytes.iter().enumerate().skip(1) {
            while k > 0 && bytes.get(k) != Some(&b) {
                k = fall_back(&fail, k);
            }
            if bytes.get(k) == Some(&b) {
                k = k.saturating_add(1);
            }
            if let Some(slot) = fail.get_mut(i) {
                *slot = k;
            }
        }
        Needle { bytes, fail }
    }

    /// Calls `found(start, end)` for every occurrence in `text` (folded on the fly),
    /// overlapping ones included, in one pass.
    fn find_all(&self, text: &[u8], mut found: impl FnMut(usize, usize)) {
        let len = self.bytes.len();
        if len == 0 || len > text.len() {
            return;
        }
        let mut k = 0;
        // `end`: the text bytes read so far, this one included (so `k <= end`).
        for (end, &t) in (1usize..).zip(text) {
            let t = fold(t);
            while k > 0 && self.bytes.get(k) != Some(&t) {
                k = fall_back(&self.fail, k);
            }
            if self.bytes.get(k) == Some(&t) {
                k = k.saturating_add(1);
            }
            if k == len {
                found(end.saturating_sub(len), end);
                k = fall_back(&self.fail, k);
            }
        }
    }
}

fn url_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Calls `found(start, end)` for every `ptk_` + URL-safe run in `text`.
fn token_runs(text: &[u8], mut found: impl FnMut(usize, usize)) {
    let mut i: usize = 0;
    while let Some(window) = text.get(i..i.saturating_add(TOKEN_PREFIX.len())) {
        if !window.eq_ignore_ascii_case(TOKEN_PREFIX) {
            i = i.saturating_add(1);
            continue;
        }
        let body = i.saturating_add(TOKEN_PREFIX.len());
        let end = body.saturating_add(
            text.get(body..)
                .unwrap_or_default()
                .iter()
                .take_while(|b| url_safe(**b))
                .count(),
        );
        if end > body {
            found(i, end);
        }
        i = end.max(i.saturating_add(1));
    }
}

/// Marks the target bytes behind `layer` bytes `start..end`.
fn mark(marked: &mut [bool], layer: &Layer, start: usize, end: usize) {
    let from = layer.spans.get(start).map_or(0, |s| s.0);
    let to = layer.spans.get(end.saturating_sub(1)).map_or(from, |s| s.1);
    for m in marked.get_mut(from..to).unwrap_or_default() {
        *m = true;
    }
}

/// The target without query or fragment, every occurrence of `values` and every token-shaped
/// run replaced by [`MARKER`].
fn redact(target: &str, values: &[Cow<'_, str>]) -> String {
    // A value longer than the target cannot be in it, in any layer (decoding only shortens).
    let needles: Vec<Needle> = values
        .iter()
        .filter(|v| v.len() <= target.len())
        .map(|v| Needle::new(v))
        .collect();
    let mut marked = vec![false; target.len()];
    let mut layer = Some(Layer::raw(target));
    for _ in 0..=DECODE_LAYERS {
        let Some(current) = layer.take() else {
            break;
        };
        for needle in &needles {
            needle.find_all(&current.bytes, |s, e| mark(&mut marked, &current, s, e));
        }
        token_runs(&current.bytes, |s, e| mark(&mut marked, &current, s, e));
        layer = current.decoded();
    }
    let mut out = String::with_capacity(target.len());
    let mut in_run = false;
    for (i, c) in target.char_indices() {
        // A character with any byte redacted is redacted whole (output stays UTF-8).
        let hidden = marked
            .get(i..i.saturating_add(c.len_utf8()))
            .is_some_and(|bytes| bytes.iter().any(|m| *m));
        if hidden {
            if !in_run {
                out.push_str(MARKER);
            }
            in_run = true;
            continue;
        }
        in_run = false;
        if c == '?' || c == '#' {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::credentials::{MAX_GUARDED_LEN, MAX_GUARDED_VALUES};
    use crate::request::head;

    const GENERATED: &str = "ptk_Ab3dEf6hIj9kLm2oPq5sTu8wXy1zAb4d";
    const CUSTOM: &str = "Summer2026!!";

    /// A request target, its credential slots, and the path the log may print (`None`: kept).
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, Option<String>);

    fn redacted(path: &str, slots: &[(&str, &str)]) -> Option<String> {
        let mut pairs = vec![(":method", "POST"), (":path", path)];
        pairs.extend_from_slice(slots);
        redacted_path(&head(&pairs))
    }

    #[test]
    fn table() {
        let bearer = format!("Bearer {CUSTOM}");
        let gen_bearer = format!("Bearer {GENERATED}");
        let sub = format!("realtime, openai-insecure-api-key.{GENERATED}");
        let joined = format!("other-value-12, {CUSTOM}");
        let cases: Vec<Case> = vec![
            // Nothing to remove: no host call.
            ("/v1/models".into(), vec![], None),
            ("/v1beta/models/m:generateContent".into(), vec![], None),
            ("/v1/models".into(), vec![("authorization", &bearer)], None),
            // Query and fragment dropped, with or without a credential.
            (
                "/v1/models?alt=sse".into(),
                vec![],
                Some("/v1/models".into()),
            ),
            ("/v1/models#frag".into(), vec![], Some("/v1/models".into())),
            (
                format!("/v1beta/models/m:generateContent?key={CUSTOM}"),
                vec![],
                Some("/v1beta/models/m:generateContent".into()),
            ),
            // The attack's paths: `&key=` and an encoded `?`, a token in no slot.
            (
                format!("/v1beta/models/m:generateContent&key={GENERATED}"),
                vec![],
                Some("/v1beta/models/m:generateContent&key=[redacted]".into()),
            ),
            (
                format!("/v1beta/models/m:generateContent%3Fkey={GENERATED}"),
                vec![],
                Some("/v1beta/models/m:generateContent%3Fkey=[redacted]".into()),
            ),
            // A custom token in no slot cannot be recognised (documented).
            (format!("/v1/models/{CUSTOM}"), vec![], None),
            // A credential value of each slot, in the path.
            (
                format!("/v1/models/{CUSTOM}"),
                vec![("authorization", &bearer)],
                Some("/v1/models/[redacted]".into()),
            ),
            (
                format!("/v1/files/{CUSTOM}/content"),
                vec![("x-api-key", CUSTOM)],
                Some("/v1/files/[redacted]/content".into()),
            ),
            (
                format!("/v1/x/{CUSTOM}"),
                vec![("x-goog-api-key", CUSTOM)],
                Some("/v1/x/[redacted]".into()),
            ),
            (
                format!("/v1/x/{CUSTOM}"),
                vec![("api-key", CUSTOM)],
                Some("/v1/x/[redacted]".into()),
            ),
            (
                format!("/v1/x/{CUSTOM}"),
                vec![("proxy-authorization", &bearer)],
                Some("/v1/x/[redacted]".into()),
            ),
            (
                format!("/v1/x/{GENERATED}/y"),
                vec![("sec-websocket-protocol", &sub)],
                Some("/v1/x/[redacted]/y".into()),
            ),
            (
                format!("/v1/x/Summer2026%21%21/y?key={CUSTOM}"),
                vec![],
                Some("/v1/x/[redacted]/y".into()),
            ),
            // Encoded once, twice, three times; in another case; `+` for a space.
            (
                "/v1/models/Summer2026%21%21".into(),
                vec![("x-api-key", CUSTOM)],
                Some("/v1/models/[redacted]".into()),
            ),
            (
                "/v1/models/Summer2026%2521%2521".into(),
                vec![("x-api-key", CUSTOM)],
                Some("/v1/models/[redacted]".into()),
            ),
            (
                "/v1/models/Summer2026%252521%252521".into(),
                vec![("x-api-key", CUSTOM)],
                Some("/v1/models/[redacted]".into()),
            ),
            (
                "/v1/models/sUMMER2026!!".into(),
                vec![("x-api-key", CUSTOM)],
                Some("/v1/models/[redacted]".into()),
            ),
            (
                "/v1/a+custom+token/x".into(),
                vec![("x-api-key", "a custom token")],
                Some("/v1/[redacted]/x".into()),
            ),
            (
                "/v1/models/%70tk_abc".into(),
                vec![],
                Some("/v1/models/[redacted]".into()),
            ),
            (
                "/v1/PTK_abc/x".into(),
                vec![],
                Some("/v1/[redacted]/x".into()),
            ),
            // `ptk_` alone is no token.
            ("/v1/ptk_/x".into(), vec![], None),
            // A `?` inside a token does not cut the path before it.
            (
                "/v1/Summer2026?!/x?alt=sse".into(),
                vec![("x-api-key", "Summer2026?!")],
                Some("/v1/[redacted]/x".into()),
            ),
            // Overlapping occurrences of a periodic token.
            (
                "/abcabcabcabcabcabc/x".into(),
                vec![("x-api-key", "abcabcabcabc")],
                Some("/[redacted]/x".into()),
            ),
            // The token after its scheme, inside a comma-joined header, next to another.
            (
                format!("/v1/{GENERATED}"),
                vec![("authorization", &gen_bearer)],
                Some("/v1/[redacted]".into()),
            ),
            (
                format!("/v1/{CUSTOM}/x"),
                vec![("x-api-key", &joined)],
                Some("/v1/[redacted]/x".into()),
            ),
            // Values shorter than any token are not searched.
            (
                "/v1/models/shortkey".into(),
                vec![("x-api-key", "shortkey")],
                None,
            ),
            // Non-ASCII text around and inside a token.
            (
                "/v1/é/tökenwithümlauts/ü".into(),
                vec![("x-api-key", "tökenwithümlauts")],
                Some("/v1/é/[redacted]/ü".into()),
            ),
            // A path that is all token.
            (GENERATED.into(), vec![], Some("[redacted]".into())),
            ("?key=x".into(), vec![], Some("/".into())),
        ];
        for (path, slots, want) in cases {
            assert_eq!(redacted(&path, &slots), want, "{path} {slots:?}");
        }
    }

    #[test]
    fn more_values_than_the_guard_searches_hide_the_whole_path() {
        let values: Vec<String> = (0..=MAX_GUARDED_VALUES)
            .map(|n| format!("custom-token-{n:04}"))
            .collect();
        let mut pairs = vec![(":path", "/v1/models/custom-token-0000")];
        pairs.extend(values.iter().map(|v| ("x-api-key", v.as_str())));
        assert_eq!(redacted_path(&head(&pairs)).as_deref(), Some("/[redacted]"));
    }

    #[test]
    fn a_credential_value_longer_than_the_guard_searches_hides_the_whole_path() {
        let long = format!("custom-{}", "t".repeat(MAX_GUARDED_LEN));
        let path = format!("/v1/models/{}", &long[..40]);
        let pairs = [(":path", path.as_str()), ("x-api-key", long.as_str())];
        assert_eq!(redacted_path(&head(&pairs)).as_deref(), Some("/[redacted]"));
    }

    #[test]
    fn a_target_longer_than_searched_is_hidden_whole() {
        let long = format!("/v1/{}", "a".repeat(MAX_SEARCHED_TARGET));
        assert_eq!(redacted(&long, &[]).as_deref(), Some("/[redacted]"));
        let longest = format!("/{}", "a".repeat(MAX_SEARCHED_TARGET - 1));
        assert_eq!(redacted(&longest, &[]), None);
    }

    #[test]
    fn needle_finds_every_occurrence_once_linearly() {
        let needle = Needle::new("aaa");
        let mut found = Vec::new();
        needle.find_all(b"aaaaa", |s, e| found.push((s, e)));
        assert_eq!(found, vec![(0, 3), (1, 4), (2, 5)]);
        let needle = Needle::new("abab");
        let mut found = Vec::new();
        needle.find_all(b"xABABABx", |s, e| found.push((s, e)));
        assert_eq!(found, vec![(1, 5), (3, 7)]);
    }

    #[test]
    fn token_runs_stop_at_the_first_non_url_safe_character() {
        let mut found = Vec::new();
        token_runs(b"/a/ptk_ab-c_d.e/ptk_/xptk_z", |s, e| found.push((s, e)));
        assert_eq!(found, vec![(3, 13), (22, 27)]);
    }
}
