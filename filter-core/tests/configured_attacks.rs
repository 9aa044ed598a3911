//! A hostile client (path tricks, other slots under the prefix) and a careless operator (a
//! configured provider on a built-in's host) against the configured providers: a real key only
//! ever goes to the authority of the provider whose scope the check asked about.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{anywhere, config, head, run, Outcome};
use proptest::prelude::*;
use ptk_filter_core::{decide_headers, FilterConfig, HeadersDecision, RequestHead};
use ptk_wire::Provider;

const SELFHOSTED: &str = r#"{"providers":{"selfhosted":{"path_prefix":"/selfhosted/","authority":"llm.internal:8000"}}}"#;
const TOKEN: &str = "ptk_configured_attack_0001";

fn value(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// The key the token-service would hand out for a provider (each provider its own).
fn key_of(provider: Provider) -> String {
    format!("sk-REAL-{}-key", provider.as_str())
}

/// Runs `h` as allowed for the provider its check names; returns that provider and what went
/// upstream (`None`: answered locally).
fn forwarded(c: &FilterConfig, h: &RequestHead) -> Option<(Provider, Vec<(String, String)>)> {
    let HeadersDecision::Check(pending) = decide_headers(c, h) else {
        return None;
    };
    let provider = pending.identified.provider;
    match run(c, h, &key_of(provider)) {
        Outcome::Forwarded(up) => Some((provider, up)),
        _ => None,
    }
}

/// The invariant: the key of the provider the check named goes only to that provider's
/// authority, the proxy token never goes up, and a configured provider's path loses its prefix.
fn assert_bound(c: &FilterConfig, h: &RequestHead) {
    let Some((provider, up)) = forwarded(c, h) else {
        return;
    };
    let authority = value(&up, ":authority").unwrap();
    assert_eq!(authority, c.upstream(provider).authority, "{h:?} -> {up:?}");
    assert!(anywhere(&up, &key_of(provider)), "{up:?}");
    for other in [Provider::Openai, Provider::Anthropic, Provider::Gemini] {
        if other != provider {
            assert!(!anywhere(&up, &key_of(other)), "{up:?}");
        }
    }
    assert!(!anywhere(&up, TOKEN), "{up:?}");
    if provider.as_str() == "selfhosted" {
        // Exactly one prefix goes (a doubled one keeps its second copy); the query may lose
        // credential parameters, the path nothing else.
        let sent = h.path().strip_prefix("/selfhosted/").unwrap();
        let up_path = value(&up, ":path").unwrap();
        let up_path = up_path.split_once('?').map_or(up_path.as_str(), |(p, _)| p);
        assert_eq!(up_path, format!("/{sent}"), "{h:?}");
    }
}

const TRICKS: [&str; 16] = [
    "/selfhosted/../v1/chat/completions",
    "/selfhosted/%2e%2e/v1/chat/completions",
    "//selfhosted/v1/chat/completions",
    "/SELFHOSTED/v1/chat/completions",
    "/selfhosted;x=1/v1/chat/completions",
    "/selfhosted?/v1/chat/completions",
    "/selfhosted/?key=ptk_configured_attack_0001",
    "/selfhostedX/v1/chat/completions",
    "/selfhosted",
    "/selfhosted/selfhosted/v1/models",
    "/selfhosted/v1beta/openai/chat/completions",
    "/v1/../selfhosted/v1/models",
    "/selfhosted//v1/models",
    "/selfhosted/%2fv1/models",
    "/selfhosted/v1/realtime?model=x",
    "/%73elfhosted/v1/models",
];

#[test]
fn path_tricks_never_send_a_key_to_another_providers_authority() {
    let c = config(SELFHOSTED);
    let slots: [&[(&str, &str)]; 6] = [
        &[("authorization", "Bearer ptk_configured_attack_0001")],
        &[
            ("authorization", "Bearer ptk_configured_attack_0001"),
            ("anthropic-version", "2023-06-01"),
        ],
        &[("x-api-key", TOKEN)],
        &[("x-goog-api-key", TOKEN)],
        &[
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            (
                "sec-websocket-protocol",
                "realtime, openai-insecure-api-key.ptk_configured_attack_0001",
            ),
        ],
        &[
            ("authorization", "Bearer ptk_configured_attack_0001"),
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
        ],
    ];
    for path in TRICKS {
        for slot in slots {
            let mut pairs = vec![
                (":method", "POST"),
                (":path", path),
                (":authority", "llm.internal:8000"),
            ];
            pairs.extend_from_slice(slot);
            assert_bound(&c, &head(&pairs));
        }
    }
    let mut query = head(&[
        (":method", "GET"),
        (":path", "/selfhosted/v1/models?key=t0k3n"),
    ]);
    assert_bound(&c, &query);
    query = head(&[
        (":method", "GET"),
        (":authority", "api.openai.com"),
        (":path", "/selfhosted/v1/models"),
        ("authorization", "Bearer abc"),
    ]);
    assert_bound(&c, &query);
}

proptest! {
    #[test]
    fn any_path_near_the_prefix_keeps_each_key_on_its_own_authority(
        prefix in prop::sample::select(vec![
            "/selfhosted/", "/selfhosted", "//selfhosted/", "/SelfHosted/", "/selfhosted/..",
            "/selfhosted%2f", "/./selfhosted/", "/v1/", "", "/selfhosted/selfhosted/",
        ]),
        rest in "[a-z0-9/.%;?=&_-]{0,24}",
        authority in prop::sample::select(vec![
            "llm.internal:8000", "api.openai.com", "api.anthropic.com", "evil.example",
        ]),
        version in any::<bool>(),
    ) {
        let c = config(SELFHOSTED);
        let path = format!("{prefix}{rest}");
        let mut pairs = vec![
            (":method", "POST"),
            (":path", path.as_str()),
            (":authority", authority),
            ("authorization", "Bearer ptk_configured_attack_0001"),
        ];
        if version {
            pairs.push(("anthropic-version", "2023-06-01"));
        }
        assert_bound(&c, &head(&pairs));
    }
}

/// A configured provider's authority on a built-in provider's host would send its key to
/// that provider (and, for a provider accepting any key, its traffic to the wrong account):
/// refused at load, whatever the case or port.
#[test]
fn a_configured_provider_on_a_built_in_providers_host_is_refused() {
    let on = |authority: &str, extra: &str| {
        format!(
            r#"{{"providers":{{{extra}"selfhosted":{{"path_prefix":"/selfhosted/","authority":"{authority}"}}}}}}"#
        )
    };
    for (json, built_in) in [
        (on("api.openai.com", ""), "openai"),
        (on("API.OpenAI.com:443", ""), "openai"),
        (on("api.anthropic.com", ""), "anthropic"),
        (on("generativelanguage.googleapis.com", ""), "gemini"),
        (
            on(
                "openai-egress",
                r#""openai":{"authority":"openai-egress"},"#,
            ),
            "openai",
        ),
    ] {
        let err = FilterConfig::parse(json.as_bytes()).unwrap_err();
        assert!(
            err.contains("providers.selfhosted.authority") && err.contains(built_in),
            "{json}: {err}"
        );
    }
    // Its own host (and a host differing from a built-in's in more than case and port) loads.
    assert!(FilterConfig::parse(on("llm.internal:8000", "").as_bytes()).is_ok());
    assert!(FilterConfig::parse(on("api.openai.com.internal", "").as_bytes()).is_ok());
    let ipv6 = r#""openai":{"authority":"[::1]:9001"},"#;
    assert!(FilterConfig::parse(on("[::2]:9002", ipv6).as_bytes()).is_ok());
    assert!(FilterConfig::parse(on("[::1]:8000", ipv6).as_bytes()).is_err());
}
