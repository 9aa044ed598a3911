//! The path logged for a refused request (`log_path::redacted_path`) on arbitrary heads: never
//! panics; what the log may print holds no query or fragment, no credential value the client
//! sent (at least 12 bytes) and no `ptk_` + URL-safe run, raw or percent-decoded (three
//! layers), ignoring ASCII case, `+` and space alike. Checked the slow way, on bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptk_filter_core::credentials::{for_each_value, MAX_GUARDED_VALUES, MIN_GUARDED_LEN};
use ptk_filter_core::log_path::{redacted_path, MARKER};
use ptk_fuzz::head_from_bytes;

fn fold(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { b.to_ascii_lowercase() })
        .collect()
}

/// The logged path and its percent-decodings, folded, each marker a 0xFF byte (no UTF-8
/// text holds one, so no value can be spelled across a marker by the text around it).
fn layers(text: &str) -> Vec<Vec<u8>> {
    let mut current = Vec::new();
    for (i, part) in text.split(MARKER).enumerate() {
        if i > 0 {
            current.push(0xFF);
        }
        current.extend_from_slice(part.as_bytes());
    }
    let mut out = vec![fold(&current)];
    for _ in 0..3 {
        current = percent_encoding::percent_decode(&current).collect();
        out.push(fold(&current));
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

fn token_shaped(hay: &[u8]) -> bool {
    hay.windows(5).any(|w| {
        w.starts_with(b"ptk_") && w.get(4).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    })
}

fuzz_target!(|data: &[u8]| {
    let head = head_from_bytes(data);
    let out = redacted_path(&head).unwrap_or_else(|| head.path_and_query().to_string());
    assert!(!out.contains(['?', '#']), "query or fragment kept: {out:?}");
    let mut secrets = Vec::new();
    for_each_value(&head, |_, value| {
        secrets.push(value.trim().to_string());
        if let Some((_, after)) = value.trim().split_once(char::is_whitespace) {
            secrets.push(after.trim().to_string());
        }
    });
    secrets.retain(|s| s.len() >= MIN_GUARDED_LEN);
    let logged = layers(&out);
    if out == format!("/{MARKER}") && secrets.len() > MAX_GUARDED_VALUES {
        return;
    }
    for secret in &secrets {
        let needle = fold(secret.as_bytes());
        assert!(
            !logged.iter().any(|l| contains(l, &needle)),
            "a credential value is in the logged path: {secret:?} in {out:?}"
        );
    }
    assert!(
        !logged.iter().any(|l| token_shaped(l)),
        "a token-shaped run is in the logged path: {out:?}"
    );
});
