//! Plugin configuration parsing: never panics; an accepted config is deterministic and keeps
//! the invariants the filter relies on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptk_filter_core::config::MAX_TIMEOUT_MS;
use ptk_filter_core::plan::CREDENTIAL_HEADERS;
use ptk_filter_core::FilterConfig;
use ptk_wire::Provider;

fuzz_target!(|data: &[u8]| {
    let Ok(config) = FilterConfig::parse(data) else {
        return;
    };
    assert_eq!(FilterConfig::parse(data).ok().as_ref(), Some(&config));
    let ts = &config.token_service;
    assert!((1..=MAX_TIMEOUT_MS).contains(&ts.timeout_ms));
    for provider in Provider::ALL {
        let upstream = config.upstream(provider);
        assert!(!upstream.authority.is_empty());
        for (name, value) in &upstream.request_headers {
            assert!(!name.is_empty() && !name.starts_with(':'));
            assert_eq!(name, &name.to_ascii_lowercase());
            assert!(!CREDENTIAL_HEADERS.contains(&name.as_str()));
            assert!(!value.is_empty() && !value.contains(['\r', '\n', '\0']));
        }
    }
});
