//! The final guard: after the rewrite, no proxy token may remain anywhere in what goes
//! upstream. The strip covers every slot and spelling we know of; this catches the ones we do
//! not (a token pasted into another header, a path segment, a query parameter under a name no
//! one expects, an encoding). A request that would still carry one is refused with 400
//! instead of forwarded.
//!
//! It looks for the identified token and every other value found in any credential slot (a
//! second token in another slot is a proxy token too), at least
//! [`crate::credentials::MIN_GUARDED_LEN`] bytes long, in every outbound
//! header name and value and in the path and query, raw and percent-decoded (up to three
//! layers; the path also `+`-decoded), ignoring ASCII case. It runs on every forwarded request,
//! so it borrows instead of copying and decodes only values that contain an escape.

use std::borrow::Cow;

use crate::credentials::{guarded_values, MAX_GUARDED_VALUES, MIN_GUARDED_LEN};
use crate::plan::RewritePlan;
use crate::request::RequestHead;

/// Percent-decoding layers looked through: a server decodes once, some frameworks twice.
const DECODE_LAYERS: u8 = 3;

/// The request as it goes upstream: the client's headers the plan leaves alone, then the
/// plan's own. (A set replaces every value of its header; a remove deletes every value.)
pub fn outbound<'a>(
    head: &'a RequestHead,
    plan: &'a RewritePlan,
) -> impl Iterator<Item = (&'a str, &'a str)> {
    // Names are lowercase on both sides (RequestHead lowercases, plans are written so).
    let touched = |name: &str| {
        plan.remove.iter().any(|r| r == name) || plan.set.iter().any(|(n, _)| n == name)
    };
    head.iter()
        .filter(move |(name, _)| !touched(name))
        .chain(plan.set.iter().map(|(n, v)| (n.as_str(), v.as_str())))
}

/// True when `needle` starts at `at` in `hay`, ignoring ASCII case; with `plus` a `+` in
/// `hay` also matches a space in `needle` (form decoding of a query).
fn matches_at(hay: &[u8], at: usize, needle: &[u8], plus: bool) -> bool {
    let Some(window) = hay.get(at..at.saturating_add(needle.len())) else {
        return false;
    };
    if !plus {
        return window.eq_ignore_ascii_case(needle);
    }
    window
        .iter()
        .zip(needle)
        .all(|(h, n)| h.eq_ignore_ascii_case(n) || (*h == b'+' && *n == b' '))
}

/// Case-insensitive substring search (a `+` may stand for a space when `plus`).
fn contains(hay: &[u8], needle: &[u8], plus: bool) -> bool {
    let Some(&first) = needle.first() else {
        return true;
    };
    let Some(last_start) = hay.len().checked_sub(needle.len()) else {
        return false;
    };
    // Only a needle with a space can match through a `+`; the others take the fast compare.
    let plus = plus && needle.contains(&b' ');
    let space_first = plus && first == b' ';
    (0..=last_start).any(|at| {
        hay.get(at)
            .is_some_and(|b| b.eq_ignore_ascii_case(&first) || (space_first && *b == b'+'))
            && matches_at(hay, at, needle, plus)
    })
}

/// True when any needle occurs in `text` raw or after up to [`DECODE_LAYERS`] layers of
/// percent-decoding, ignoring ASCII case; in a path a `+` also reads as a space. Only a value
/// with a `%` is decoded (one buffer per layer).
fn exposes(text: &[u8], needles: &[&[u8]], path: bool) -> bool {
    needles.iter().any(|n| contains(text, n, path))
        || decoded_exposes(text, needles, path, DECODE_LAYERS)
}

fn decoded_exposes(bytes: &[u8], needles: &[&[u8]], path: bool, layers: u8) -> bool {
    let Some(layers) = layers.checked_sub(1) else {
        return false;
    };
    if !bytes.contains(&b'%') {
        return false;
    }
    let mut next = Vec::with_capacity(bytes.len());
    next.extend(percent_encoding::percent_decode(bytes));
    if next == bytes {
        return false;
    }
    if exposes_in(&next, needles, path, layers) {
        return true;
    }
    // A server that reads the bytes as text replaces what is not UTF-8 (as the filter itself
    // does when it decodes `?key=`): that reading can hold a token the bytes do not.
    match String::from_utf8(next) {
        Ok(_) => false,
        Err(invalid) => {
            let lossy = String::from_utf8_lossy(invalid.as_bytes()).into_owned();
            exposes_in(lossy.as_bytes(), needles, path, layers)
        }
    }
}

fn exposes_in(bytes: &[u8], needles: &[&[u8]], path: bool, layers: u8) -> bool {
    needles.iter().any(|n| contains(bytes, n, path))
        || decoded_exposes(bytes, needles, path, layers)
}

/// True when `needle` occurs in `hay` raw or percent-decoded (up to three layers), ignoring
/// ASCII case; in a path (`path`) a `+` also reads as a space.
pub fn occurs(hay: &[u8], needle: &[u8], path: bool) -> bool {
    exposes(hay, &[needle], path)
}

/// True when the outbound request (`head` with `plan` applied) still holds `token` or any
/// other credential value the client sent; also (fail closed) when the client sent more than
/// [`MAX_GUARDED_VALUES`] distinct ones.
pub fn leaks(head: &RequestHead, plan: &RewritePlan, token: &str) -> bool {
    let mut needles = guarded_values(head);
    if needles.len() > MAX_GUARDED_VALUES {
        return true;
    }
    if token.len() >= MIN_GUARDED_LEN && !needles.iter().any(|n| n == token) {
        needles.push(Cow::Borrowed(token));
    }
    // A needle that contains another is found whenever it is: drop it (`Bearer t` holds `t`).
    let mut i = 0;
    while let Some(needle) = needles.get(i) {
        let redundant = needles.iter().any(|other| {
            other.len() < needle.len() && contains(needle.as_bytes(), other.as_bytes(), false)
        });
        if redundant {
            needles.swap_remove(i);
        } else {
            i += 1;
        }
    }
    let needles: Vec<&[u8]> = needles.iter().map(|n| n.as_bytes()).collect();
    let Some(shortest) = needles.iter().map(|n| n.len()).min() else {
        return false;
    };
    // A text shorter than every needle can hold none, decoded or not: most headers stop here,
    // before the plan is even consulted.
    let check =
        |text: &str, path: bool| text.len() >= shortest && exposes(text.as_bytes(), &needles, path);
    let touched = |name: &str| {
        plan.remove.iter().any(|r| r == name) || plan.set.iter().any(|(n, _)| n == name)
    };
    let kept = head.iter().any(|(name, value)| {
        (name.len() >= shortest || value.len() >= shortest)
            && !touched(name)
            && (check(name, false) || check(value, name == ":path"))
    });
    kept || plan
        .set
        .iter()
        .any(|(name, value)| check(name, false) || check(value, name == ":path"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_search() {
        assert!(occurs(b"xxPTK_abcyy", b"ptk_ABC", false));
        assert!(!occurs(b"ptk_ab", b"ptk_abc", false));
        assert!(occurs(b"anything", b"", false));
        assert!(!occurs(b"", b"a", false));
    }

    #[test]
    fn decoded_layers_are_searched() {
        let needle = b"ptk_secret_value_1";
        let cases: [(&str, bool); 9] = [
            ("/p/ptk_secret_value_1", true),
            ("/p/ptk%5Fsecret%5Fvalue%5F1", true),
            ("/p/%70%74%6b_secret_value_1", true),
            ("/p/ptk%255Fsecret%255Fvalue%255F1", true),
            ("/p/ptk%25%35%46secret_value_1", true),
            ("/p/PTK_SECRET_VALUE_1", true),
            ("x ptk%5fsecret_value_1", true),
            ("/p/ptk_secret_value_2", false),
            ("/p/%%%ptk_secret_%value_1", false),
        ];
        for (value, want) in cases {
            assert_eq!(occurs(value.as_bytes(), needle, false), want, "{value}");
        }
        assert!(occurs(b"/p?q=my+custom+token", b"my custom token", true));
        assert!(occurs(
            b"/p?q=my%2Bcustom+token%20x",
            b"my custom token",
            true
        ));
        assert!(!occurs(b"x: my+custom+token", b"my custom token", false));
        // Bytes that are not UTF-8 once decoded also read as a server that replaces them would.
        let lossy = "\u{fffd}\u{fffd}custom-token".as_bytes();
        assert!(occurs(b"/p?x=%C3%28custom-token", b"(custom-token", true));
        assert!(occurs(b"/p?x=%FF%FEcustom-token", lossy, true));
        assert!(occurs(b"/p?x=%25FF%25FEcustom-token", lossy, true));
    }
}
