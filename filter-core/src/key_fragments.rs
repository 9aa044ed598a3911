//! Finding the operator's real key, or a recognisable fragment of it, in bytes a provider sent
//! back, and masking it in place (same length, so a `content-length` already sent stays true).
//!
//! What counts as a fragment:
//! - the whole key;
//! - [`VERBATIM_MIN`] or more consecutive characters of it, anywhere;
//! - its last [`SUFFIX_MIN`] or more characters right after a mask (`*`, `.`, `…`, `•`, or the
//!   JSON escapes `\u2026` / `\u2022`) and before a word boundary: how providers print a key
//!   they refuse (`sk-proj-***…INEL`, `sk-abc1*****wxyz`).
//!
//! A masked fragment takes its whole printed token with it: every ASCII letter and digit of
//! the run of key-ish characters around the match becomes `*`.
//!
//! Ranges are offsets into the text (a hit ends inside it), so the saturating arithmetic on
//! them below never saturates.

use std::collections::HashSet;
use std::ops::Range;

/// Shortest key suffix recognised after a mask.
pub const SUFFIX_MIN: usize = 4;

/// Shortest run of the key recognised without a mask. Long enough that no key's public prefix
/// (`sk-ant-api03-` is the longest, 13) matches on its own.
pub const VERBATIM_MIN: usize = 16;

/// Longest suffix tried after a mask (a masked key shows a few characters, never more).
const SUFFIX_MAX: usize = 16;

/// Byte sequences that precede a masked key's visible tail.
const MASKS: [&[u8]; 6] = [
    b"*",
    b".",
    "\u{2026}".as_bytes(),
    "\u{2022}".as_bytes(),
    b"\\u2026",
    b"\\u2022",
];

/// Where `key` shows in `text`: byte ranges of the printed tokens to mask, sorted, merged.
/// Empty for an empty key.
pub fn find(text: &[u8], key: &str) -> Vec<Range<usize>> {
    let key = key.as_bytes();
    if key.is_empty() || text.is_empty() {
        return Vec::new();
    }
    let mut hits: Vec<Range<usize>> = Vec::new();
    // The whole key (also covers keys shorter than VERBATIM_MIN).
    hits.extend(occurrences(text, key).map(|at| at..at.saturating_add(key.len())));
    // Long verbatim runs of it: one pass over the text against the set of the key's windows.
    if key.len() > VERBATIM_MIN {
        let windows: HashSet<&[u8]> = key.windows(VERBATIM_MIN).collect();
        hits.extend(
            text.windows(VERBATIM_MIN)
                .enumerate()
                .filter(|(_, w)| windows.contains(w))
                .map(|(at, _)| at..at.saturating_add(VERBATIM_MIN)),
        );
    }
    // The tail after a mask.
    let longest = key.len().min(SUFFIX_MAX);
    for len in SUFFIX_MIN..=longest {
        // `len <= key.len()` (`longest` is at most the key's length).
        let Some(tail) = key.len().checked_sub(len).and_then(|from| key.get(from..)) else {
            continue;
        };
        for at in occurrences(text, tail) {
            let end = at.saturating_add(len);
            if after_mask(text, at) && !text.get(end).copied().is_some_and(is_word_byte) {
                hits.push(at..end);
            }
        }
    }
    merge(hits.into_iter().map(|r| token_around(text, r)).collect())
}

/// Masks every fragment of `key` in `text` in place; returns how many tokens were masked.
pub fn mask(text: &mut [u8], key: &str) -> usize {
    let ranges = find(text, key);
    for range in &ranges {
        for byte in text.get_mut(range.clone()).unwrap_or_default() {
            if byte.is_ascii_alphanumeric() {
                *byte = b'*';
            }
        }
    }
    ranges.len()
}

/// True when `key` shows in `text` in any recognised form.
pub fn contains(text: &[u8], key: &str) -> bool {
    !find(text, key).is_empty()
}

fn occurrences<'a>(text: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    text.windows(needle.len())
        .enumerate()
        .filter(move |(_, w)| *w == needle)
        .map(|(at, _)| at)
}

fn after_mask(text: &[u8], at: usize) -> bool {
    let before = text.get(..at).unwrap_or_default();
    MASKS.iter().any(|m| before.ends_with(m))
}

/// Characters a key is made of.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')
}

/// Characters a printed key (masked or not) is made of.
fn is_key_byte(b: u8) -> bool {
    is_word_byte(b) || matches!(b, b'*' | b'.')
}

/// Widens a hit to the whole printed token: the run of key characters and masks before it, the
/// key characters after it.
fn token_around(text: &[u8], hit: Range<usize>) -> Range<usize> {
    let mut start = hit.start;
    loop {
        let before = text.get(..start).unwrap_or_default();
        if let Some(m) = MASKS.iter().find(|m| m.len() > 1 && before.ends_with(m)) {
            start = start.saturating_sub(m.len());
        } else if before.last().copied().is_some_and(is_key_byte) {
            start = start.saturating_sub(1);
        } else {
            break;
        }
    }
    let mut end = hit.end;
    while text.get(end).copied().is_some_and(is_word_byte) {
        end = end.saturating_add(1);
    }
    start..end
}

fn merge(mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match out.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => out.push(range),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-proj-Xq7vB2nLp9RtY4wZk8HsD3fGj6INEL";

    fn masked(text: &str) -> String {
        let mut bytes = text.as_bytes().to_vec();
        mask(&mut bytes, KEY);
        String::from_utf8(bytes).unwrap_or_default()
    }

    #[test]
    fn masked_forms() {
        for (text, want) in [
            (
                "Incorrect API key provided: sk-proj-***********INEL. You can",
                "Incorrect API key provided: **-****-***************. You can",
            ),
            (
                "provided: sk-Xq7v*************6INEL",
                "provided: **-**********************",
            ),
            ("\"sk-...INEL\"", "\"**-...****\""),
            ("sk-\u{2026}INEL", "**-\u{2026}****"),
            ("sk-\u{2022}\u{2022}INEL!", "**-\u{2022}\u{2022}****!"),
            ("(sk-\\u2026INEL)", "(**-\\*********)"),
            ("tail ***6INEL", "tail ********"),
        ] {
            assert_eq!(masked(text), want, "{text}");
        }
    }

    #[test]
    fn the_whole_key_and_long_runs_are_masked() {
        let text = format!("bad key {KEY} here");
        let out = masked(&text);
        assert_eq!(
            out,
            format!("bad key {} here", "**-****-******************************")
        );
        let run = &KEY[10..30];
        assert!(!masked(&format!("x {run} y")).contains(&KEY[12..28]));
    }

    #[test]
    fn innocent_text_is_left_alone() {
        for text in [
            "",
            "INEL alone is a word",
            "INELIGIBLE***INELIGIBLE",
            "model not found: gpt-9",
            "keys start with sk-proj-",
            "*INELx",
        ] {
            assert_eq!(masked(text), text, "{text}");
            assert!(!contains(text.as_bytes(), KEY));
        }
        assert!(find(b"anything", "").is_empty());
    }

    #[test]
    fn short_keys_match_whole() {
        let mut text = b"key abc123 refused".to_vec();
        assert_eq!(mask(&mut text, "abc123"), 1);
        assert_eq!(text, b"key ****** refused");
    }

    #[test]
    fn ranges_merge() {
        let text = format!("{KEY} and ***{}", &KEY[KEY.len() - 6..]);
        let ranges = find(text.as_bytes(), KEY);
        assert_eq!(ranges.len(), 2);
        assert_eq!(ranges[0], 0..KEY.len());
    }
}
