//! The path logged for a refused request, as properties over random requests: a proxy token
//! (generated or custom-style) in any credential slot and also anywhere in the path, raw or
//! percent-encoded up to three times, in any ASCII case, never survives in what the access log
//! may print (raw or decoded), and no query or fragment does either; a path without any
//! secret is kept as it was, up to its query.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

mod common;
use common::head;
use proptest::prelude::*;
use proptest::sample::select;
use ptk_filter_core::log_path::redacted_path;

/// A generated token or a custom one (12 to 40 printable characters, trimmed, as the
/// token-service stores them), as in `properties.rs`.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        "ptk_[A-Za-z0-9_-]{32}",
        "[!-~][ -~]{10,38}[!-~]",
        "[a-zA-Z0-9éü€_.:/+=?#-]{12,24}",
    ]
}

/// Percent-encodes the bytes `mask` selects, and always those a URL part cannot hold raw.
fn encode(text: &str, mask: &[bool]) -> String {
    let mut out = String::new();
    for (i, b) in text.bytes().enumerate() {
        let must = !(b.is_ascii_graphic()) || b == b'%';
        if must || mask.get(i % mask.len().max(1)).copied().unwrap_or(false) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// The token as it is spelled in the path: raw, or encoded `layers` times, in `case`.
fn spelled(token: &str, layers: u8, mask: &[bool], case: u8) -> String {
    let cased = match case {
        0 => token.to_string(),
        1 => token.to_ascii_uppercase(),
        _ => token.to_ascii_lowercase(),
    };
    if layers == 0 {
        return cased;
    }
    let mut out = encode(&cased, mask);
    for _ in 1..layers {
        out = out.replace('%', "%25");
    }
    out
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

fn is_token_chars(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Every way the log could still show the token: the output raw and decoded up to 3 times.
fn shows(out: &str, token: &str) -> bool {
    let want = token.to_ascii_lowercase();
    let mut text = out.to_string();
    for _ in 0..4 {
        if text.to_ascii_lowercase().contains(&want) {
            return true;
        }
        text = decode(&text);
    }
    false
}

const SLOTS: [&str; 7] = [
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "api-key",
    "proxy-authorization",
    "query",
    "subprotocol",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn a_token_in_a_slot_never_reaches_the_logged_path(
        token in token(),
        slot in select(&SLOTS[..]),
        before in "(/[a-z0-9:._-]{0,8}){1,3}/?",
        after in "(/[a-z0-9:._-]{0,8}){0,2}",
        query in "(\\?[a-z=&]{0,10})?",
        layers in 0u8..=3,
        mask in prop::collection::vec(any::<bool>(), 1..8),
        case in 0u8..3,
        copies in 1usize..3,
    ) {
        // A subprotocol entry holds only token characters.
        let slot = if slot == "subprotocol" && !is_token_chars(&token) { "x-api-key" } else { slot };
        let spelling = spelled(&token, layers, &mask, case);
        // A raw `?` or `#` before the query would start it there: the `key=` after it would be
        // no credential slot at all.
        let slot = if slot == "query" && spelling.contains(['?', '#']) { "authorization" } else { slot };
        let mut path = before.clone();
        for _ in 0..copies {
            path.push_str(&spelling);
            path.push_str(&after);
        }
        let mut pairs: Vec<(String, String)> = vec![(":method".into(), "POST".into())];
        match slot {
            "query" => {
                let q = if query.is_empty() { "?".to_string() } else { format!("{query}&") };
                let value = percent_encoding::utf8_percent_encode(
                    &token, percent_encoding::NON_ALPHANUMERIC);
                path = format!("{path}{q}key={value}");
            }
            "subprotocol" => {
                path.push_str(&query);
                pairs.push(("sec-websocket-protocol".into(),
                            format!("realtime, openai-insecure-api-key.{token}")));
            }
            "authorization" | "proxy-authorization" => {
                path.push_str(&query);
                pairs.push((slot.into(), format!("Bearer {token}")));
            }
            _ => {
                path.push_str(&query);
                pairs.push((slot.into(), token.clone()));
            }
        }
        pairs.push((":path".into(), path.clone()));
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let out = redacted_path(&head(&pairs));
        let Some(out) = out else {
            panic!("a path holding the token was left as it was");
        };
        prop_assert!(!shows(&out, &token), "{out:?} shows the token");
        prop_assert!(!out.contains('?') && !out.contains('#'), "{out:?}");
        prop_assert!(out.contains("[redacted]"), "{out:?}");
    }

    #[test]
    fn a_path_without_secrets_is_kept_up_to_its_query(
        path in "(/[A-Za-z0-9:._~-]{0,12}){1,5}",
        query in "(\\?[a-z=&]{0,10})?",
        key in "[A-Za-z0-9]{12,40}",
    ) {
        prop_assume!(!path.to_ascii_lowercase().contains("ptk_"));
        prop_assume!(!path.to_ascii_lowercase().contains(&key.to_ascii_lowercase()));
        let target = format!("{path}{query}");
        let bearer = format!("Bearer {key}");
        let out = redacted_path(&head(&[(":path", &target), ("authorization", &bearer)]));
        if query.is_empty() {
            prop_assert_eq!(out, None);
        } else {
            prop_assert_eq!(out, Some(path));
        }
    }
}

#[test]
fn a_generated_token_in_no_slot_is_recognised_by_its_shape() {
    for path in [
        "/v1beta/models/m:generateContent&key=ptk_Ab3dEf6hIj9kLm2oPq5sTu8wXy1zAb4d",
        "/v1beta/models/m:generateContent%3Fkey=ptk_Ab3dEf6hIj9kLm2oPq5sTu8wXy1zAb4d",
        "/v1/models/%2570tk_Ab3dEf6hIj9kLm2oPq5sTu8wXy1zAb4d",
    ] {
        let out = redacted_path(&head(&[(":path", path)])).unwrap();
        assert!(!out.contains("Ab3dEf6hIj9kLm2oPq5sTu8wXy1zAb4d"), "{out}");
        assert!(out.ends_with("[redacted]"), "{out}");
    }
}
