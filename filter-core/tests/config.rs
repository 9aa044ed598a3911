//! Plugin configuration: strict parsing, named defaults, errors that name the field.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ptk_filter_core::config::validate_secret;
use ptk_filter_core::FilterConfig;
use ptk_wire::Provider;

#[test]
fn empty_config_gives_the_defaults() {
    for empty in [&b""[..], b"  ", b"{}"] {
        let c = FilterConfig::parse(empty).unwrap();
        assert_eq!(c.token_service.cluster, "token_service");
        assert_eq!(c.token_service.timeout_ms, 1000);
        assert_eq!(c.token_service.secret_env, "PTK_CHECK_SECRET");
        assert_eq!(c.token_service.retries, 1);
        assert_eq!(c.upstream(Provider::Openai).authority, "api.openai.com");
        assert_eq!(
            c.upstream(Provider::Anthropic).authority,
            "api.anthropic.com"
        );
        assert_eq!(
            c.upstream(Provider::Gemini).authority,
            "generativelanguage.googleapis.com"
        );
    }
}

#[test]
fn partial_config_keeps_other_defaults() {
    let c = FilterConfig::parse(br#"{"token_service":{"timeout_ms":250},"providers":{"gemini":{"authority":"g.local:9100"}}}"#).unwrap();
    assert_eq!(c.token_service.timeout_ms, 250);
    assert_eq!(c.token_service.cluster, "token_service");
    assert_eq!(c.upstream(Provider::Gemini).authority, "g.local:9100");
    assert_eq!(c.upstream(Provider::Openai).authority, "api.openai.com");
}

#[test]
fn bad_configs_are_refused_naming_the_field() {
    let cases: [(&[u8], &str); 9] = [
        (
            br#"{"token_service":{"retries":2}}"#,
            "token_service.retries",
        ),
        (br#"{"token_servic":{}}"#, "token_servic"),
        (br#"{"token_service":{"timeout":5}}"#, "timeout"),
        (
            br#"{"token_service":{"timeout_ms":0}}"#,
            "token_service.timeout_ms",
        ),
        (
            br#"{"token_service":{"timeout_ms":600000}}"#,
            "token_service.timeout_ms",
        ),
        (
            br#"{"token_service":{"cluster":""}}"#,
            "token_service.cluster",
        ),
        (
            br#"{"providers":{"openai":{"authority":"https://api.openai.com/v1"}}}"#,
            "providers.openai.authority",
        ),
        (br#"{"providers":{"mistral":{"authority":"x"}}}"#, "mistral"),
        (b"[1,2", "configuration"),
    ];
    for (input, needle) in cases {
        let err = FilterConfig::parse(input).unwrap_err();
        assert!(
            err.contains(needle),
            "{} -> {err}",
            String::from_utf8_lossy(input)
        );
    }
    assert!(FilterConfig::parse(&[0xff, 0xfe]).is_err());
}

#[test]
fn secret_must_be_present_and_long_enough() {
    assert!(validate_secret("PTK_CHECK_SECRET", None)
        .unwrap_err()
        .contains("PTK_CHECK_SECRET"));
    assert!(validate_secret("S", Some("short")).is_err());
    let secret = validate_secret("S", Some("0123456789abcdef")).unwrap();
    assert_eq!(secret.expose(), "0123456789abcdef");
    // The secret unlocks real keys: it never shows in a debug print.
    assert!(!format!("{secret:?}").contains("0123456789abcdef"));
}

#[test]
fn guess_throttle_settings_are_validated() {
    let config = FilterConfig::parse(b"").unwrap();
    assert!(config.guess_throttle.enabled);
    let cases: [(&[u8], &str); 4] = [
        (
            br#"{"guess_throttle":{"window_ms":0}}"#,
            "guess_throttle.window_ms",
        ),
        (
            br#"{"guess_throttle":{"max_refusals":0}}"#,
            "guess_throttle.max_refusals",
        ),
        (
            br#"{"guess_throttle":{"addresses":100000000}}"#,
            "guess_throttle.addresses",
        ),
        (br#"{"guess_throttle":{"limit":3}}"#, "unknown field"),
    ];
    for (input, needle) in cases {
        let err = FilterConfig::parse(input).unwrap_err();
        assert!(err.contains(needle), "{err}");
    }
    let off = FilterConfig::parse(br#"{"guess_throttle":{"enabled":false}}"#).unwrap();
    assert!(!off.guess_throttle.enabled);
}
