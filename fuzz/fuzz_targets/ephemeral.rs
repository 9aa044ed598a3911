//! Ephemeral detection: never panics; off never passes; a pass means every credential value
//! of every slot is a provider ephemeral credential in its SDK form: for Gemini Live a Google
//! token, for an OpenAI Realtime use one and the same client secret. Checked independently of
//! the core's own walk over the slots (every header line, every query part on `&` and `;`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptk_filter_core::config::EphemeralConfig;
use ptk_filter_core::ephemeral::{
    pass_through, Ephemeral, GEMINI_PREFIX, LIVE_PATH_MARKER, OPENAI_CALL_PATHS, OPENAI_PREFIX,
    OPENAI_WS_PATHS,
};
use ptk_filter_core::plan::CREDENTIAL_HEADERS;
use ptk_filter_core::query::{is_credential_param, normalize_name};
use ptk_filter_core::RequestHead;
use ptk_fuzz::head_from_bytes;

fn shaped(value: &str, prefix: &str, extra: &[u8]) -> bool {
    value.strip_prefix(prefix).is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
    })
}

fn google(value: &str) -> bool {
    shaped(value, GEMINI_PREFIX, b"-_.~")
}

/// Every credential query part of the request, decoded.
fn credential_params(head: &RequestHead) -> Vec<(String, String)> {
    let query = head.query().unwrap_or("");
    query
        .split(['&', ';'])
        .filter(|p| !p.is_empty())
        .filter_map(|part| {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            is_credential_param(&normalize_name(name)).then(|| {
                let value = percent_encoding::percent_decode_str(&value.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned();
                (normalize_name(name).into_owned(), value)
            })
        })
        .collect()
}

fn check_gemini(head: &RequestHead) {
    assert!(head.is_websocket_upgrade() && head.path().contains(LIVE_PATH_MARKER));
    for (name, value) in head.iter() {
        if name == "authorization" {
            let token = value.get(6..).unwrap_or("");
            assert!(value
                .get(..6)
                .is_some_and(|s| s.eq_ignore_ascii_case("token ")));
            assert!(google(token), "authorization passed a non-ephemeral value");
        } else if CREDENTIAL_HEADERS.contains(&name) {
            assert_eq!(name, "x-goog-api-key", "{name} passed");
            assert!(google(value), "x-goog-api-key passed a non-ephemeral value");
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
    for (name, value) in credential_params(head) {
        assert_eq!(name, "access_token", "{name} passed");
        assert!(google(&value), "access_token passed a non-ephemeral value");
    }
}

fn check_openai(head: &RequestHead, secret: &str) {
    assert!(shaped(secret, OPENAI_PREFIX, b"-_"), "not a secret's shape");
    if head.is_websocket_upgrade() {
        assert!(OPENAI_WS_PATHS.contains(&head.path()));
    } else {
        assert!(head.method() == "POST" && OPENAI_CALL_PATHS.contains(&head.path()));
    }
    let mut seen = false;
    for (name, value) in head.iter() {
        if name == "authorization" {
            let (scheme, rest) = value.split_at_checked(6).unwrap_or(("", ""));
            assert!(scheme.eq_ignore_ascii_case("bearer"), "scheme passed");
            assert_eq!(rest.trim(), secret, "another authorization value passed");
            seen = true;
        } else if CREDENTIAL_HEADERS.contains(&name) {
            panic!("{name} passed next to a client secret");
        } else if name == "sec-websocket-protocol" {
            for entry in value.split(',').map(str::trim) {
                let lower = entry.to_ascii_lowercase();
                if let Some(at) = lower.strip_prefix("openai-insecure-api-key.") {
                    let at = entry.len() - at.len();
                    assert_eq!(entry.get(at..), Some(secret), "another key entry passed");
                    seen = true;
                }
            }
        }
    }
    assert!(seen, "passed without the secret in a slot");
    assert!(credential_params(head).is_empty(), "a credential parameter passed");
}

fuzz_target!(|data: &[u8]| {
    let head = head_from_bytes(data);
    assert_eq!(pass_through(&EphemeralConfig::default(), &head), None);
    let on = EphemeralConfig {
        pass_through: true,
        ..EphemeralConfig::default()
    };
    match pass_through(&on, &head) {
        None => {}
        Some(Ephemeral::GeminiLive) => check_gemini(&head),
        Some(Ephemeral::OpenaiClientSecret(secret)) => check_openai(&head, &secret),
    }
});
