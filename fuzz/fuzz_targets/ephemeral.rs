//! Ephemeral detection: never panics; off never passes; a pass means every credential value
//! of every slot is a Google ephemeral token in its SDK form. Checked independently of the
//! core's own walk over the slots (every header line, every query part on `&` and `;`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptk_filter_core::config::EphemeralConfig;
use ptk_filter_core::ephemeral::{pass_through, GEMINI_PREFIX, LIVE_PATH_MARKER};
use ptk_filter_core::plan::CREDENTIAL_HEADERS;
use ptk_filter_core::query::{is_credential_param, normalize_name};
use ptk_fuzz::head_from_bytes;

fn ephemeral(value: &str) -> bool {
    value.strip_prefix(GEMINI_PREFIX).is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
    })
}

fuzz_target!(|data: &[u8]| {
    let head = head_from_bytes(data);
    assert_eq!(
        pass_through(
            &EphemeralConfig {
                pass_through: false
            },
            &head
        ),
        None
    );
    if pass_through(&EphemeralConfig { pass_through: true }, &head).is_none() {
        return;
    }
    assert!(head.is_websocket_upgrade() && head.path().contains(LIVE_PATH_MARKER));
    for (name, value) in head.iter() {
        if name == "authorization" {
            let token = value.get(6..).unwrap_or("");
            assert!(value
                .get(..6)
                .is_some_and(|s| s.eq_ignore_ascii_case("token ")));
            assert!(
                ephemeral(token),
                "authorization passed a non-ephemeral value"
            );
        } else if CREDENTIAL_HEADERS.contains(&name) {
            assert_eq!(name, "x-goog-api-key", "{name} passed");
            assert!(
                ephemeral(value),
                "x-goog-api-key passed a non-ephemeral value"
            );
        } else if name == "sec-websocket-protocol" {
            for entry in value.split(',').map(str::trim) {
                let lower = entry.to_ascii_lowercase();
                assert!(
                    !lower.starts_with("openai-insecure-api-key."),
                    "a key entry passed"
                );
            }
        }
    }
    let query = head.query().unwrap_or("");
    for part in query.split(['&', ';']).filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        if is_credential_param(&normalize_name(name)) {
            assert_eq!(normalize_name(name), "access_token", "{name} passed");
            let value = percent_encoding::percent_decode_str(&value.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned();
            assert!(
                ephemeral(&value),
                "access_token passed a non-ephemeral value"
            );
        }
    }
});
