//! The whole pipeline on arbitrary heads: whenever the core forwards, no credential value the
//! client sent (at least 12 bytes) is anywhere upstream, raw or decoded, and the real key is
//! there exactly once. Checked the slow way, independently of the guard's own code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptk_filter_core::credentials::{for_each_value, MIN_GUARDED_LEN};
use ptk_filter_core::guard::outbound;
use ptk_filter_core::{decide_headers, FilterConfig, HeadersDecision};
use ptk_fuzz::{head_from_bytes, occurs};

const KEY: &str = "sk-FUZZ-real-key-000";

fuzz_target!(|data: &[u8]| {
    let (switch, rest) = data.split_first().unwrap_or((&0, data));
    let config = if switch & 1 == 1 {
        FilterConfig::parse(br#"{"ephemeral":{"pass_through":true}}"#)
    } else {
        FilterConfig::parse(b"")
    };
    let Ok(config) = config else {
        return;
    };
    let head = head_from_bytes(rest);
    let HeadersDecision::Check(pending) = decide_headers(&config, &head) else {
        return;
    };
    let Ok(plan) = pending.allow(&config, &head, KEY) else {
        return;
    };
    let up: Vec<(&str, &str)> = outbound(&head, &plan).collect();
    let mut secrets = vec![pending.identified.token.clone()];
    for_each_value(&head, |_, value| {
        secrets.push(value.trim().to_string());
        if let Some((_, after)) = value.trim().split_once(char::is_whitespace) {
            secrets.push(after.trim().to_string());
        }
    });
    for secret in secrets.iter().filter(|s| s.len() >= MIN_GUARDED_LEN) {
        for (name, value) in &up {
            let found = occurs(name, secret, false) || occurs(value, secret, *name == ":path");
            assert!(
                !found,
                "a credential went upstream in {name}: {secret:?} in {value:?}"
            );
        }
    }
    let keys: usize = up.iter().map(|(_, v)| v.matches(KEY).count()).sum();
    assert_eq!(keys, 1, "the real key must be upstream exactly once");
});
