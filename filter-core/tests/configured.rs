//! An OpenAI-compatible provider the operator configures: its path prefix and authority in the
//! plugin config, its scope and key under its own name, OpenAI's dialect and error shape.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{anywhere, config, head, run, run_on, Outcome};
use ptk_filter_core::key_pool::first_key;
use ptk_filter_core::{
    check_call, decide_check_response, decide_headers, identify, CheckDecision, Dialect,
    FilterConfig, HeadersDecision, PendingCheck, RequestHead,
};
use ptk_wire::Provider;
use serde_json::Value;

const SELFHOSTED: &str = r#"{"providers":{"selfhosted":{"path_prefix":"/selfhosted/","authority":"llm.internal:8000","request_headers":{"x-tenant":"ops"}}}}"#;
const KEY: &str = "sk-selfhosted-REAL-key";
const TOKEN: &str = "ptk_configured_token_0001";

fn bearer(path: &str) -> RequestHead {
    head(&[
        (":method", "POST"),
        (":path", path),
        (":authority", "proxy.local"),
        ("authorization", &format!("Bearer {TOKEN}")),
    ])
}

fn pending(config: &FilterConfig, head: &RequestHead) -> PendingCheck {
    match decide_headers(config, head) {
        HeadersDecision::Check(p) => p,
        other => panic!("not a check: {other:?}"),
    }
}

fn value(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

#[test]
fn a_bearer_under_the_prefix_is_the_configured_provider_in_openai_dialect() {
    let c = config(SELFHOSTED);
    let p = pending(&c, &bearer("/selfhosted/v1/chat/completions"));
    assert_eq!(p.identified.provider.as_str(), "selfhosted");
    assert_eq!(p.identified.dialect, Dialect::Openai);
    assert!(p.cache_key.contains("/selfhosted/"), "{}", p.cache_key);
    let (_, body) = check_call(&c, "secret-secret-secret", &p);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["provider"], "selfhosted");
}

#[test]
fn it_goes_to_its_own_authority_with_its_own_key_and_without_its_prefix() {
    let c = config(SELFHOSTED);
    let h = bearer("/selfhosted/v1/chat/completions?stream=true");
    for fresh in [false, true] {
        let Outcome::Forwarded(up) = run_on(&c, &h, KEY, fresh) else {
            panic!("not forwarded");
        };
        assert_eq!(value(&up, ":authority").unwrap(), "llm.internal:8000");
        assert_eq!(
            value(&up, ":path").unwrap(),
            "/v1/chat/completions?stream=true"
        );
        assert_eq!(
            value(&up, "authorization").unwrap(),
            format!("Bearer {KEY}")
        );
        assert_eq!(value(&up, "x-tenant").unwrap(), "ops");
        assert!(!anywhere(&up, TOKEN), "{up:?}");
    }
}

#[test]
fn other_slots_and_paths_keep_their_built_in_meaning() {
    let c = config(SELFHOSTED);
    let provider = |h: &RequestHead| pending(&c, h).identified.provider;
    // Outside the prefix: OpenAI, as before.
    assert_eq!(provider(&bearer("/v1/chat/completions")), Provider::Openai);
    // Under the prefix, but another slot or a Bearer another dialect claims: built-in.
    let xkey = head(&[(":path", "/selfhosted/v1/messages"), ("x-api-key", TOKEN)]);
    assert_eq!(provider(&xkey), Provider::Anthropic);
    let versioned = head(&[
        (":path", "/selfhosted/v1/messages"),
        ("authorization", "Bearer t"),
        ("anthropic-version", "2023-06-01"),
    ]);
    assert_eq!(provider(&versioned), Provider::Anthropic);
    // The prefix is exact: no match without its trailing slash or in another case.
    assert_eq!(provider(&bearer("/selfhosted")), Provider::Openai);
    assert_eq!(provider(&bearer("/SelfHosted/v1/models")), Provider::Openai);
    // And without the configuration, the same request is OpenAI's.
    let plain = identify(&bearer("/selfhosted/v1/models")).unwrap();
    assert_eq!(plain.provider, Provider::Openai);
}

#[test]
fn its_refusals_are_in_openai_shape() {
    let c = config(SELFHOSTED);
    let h = bearer("/selfhosted/v1/chat/completions");
    let p = pending(&c, &h);
    let deny = br#"{"verdict":"deny","reason":"scope"}"#;
    let CheckDecision::Reply { refused, .. } =
        decide_check_response(&c, &h, &p, Some(200), Some(deny), 1, first_key)
    else {
        panic!("not refused");
    };
    assert_eq!(refused.reply.status, 403);
    let body: Value = serde_json::from_slice(&refused.reply.body).unwrap();
    assert_eq!(body["error"]["code"], "provider_not_allowed");
    assert!(body["type"].is_null(), "not Anthropic's shape: {body}");
}

#[test]
fn a_configured_provider_unknown_to_this_config_is_never_forwarded() {
    // Identified with one configuration, allowed under another that lacks it (a reload).
    let with = config(SELFHOSTED);
    let without = FilterConfig::parse(b"").unwrap();
    let h = bearer("/selfhosted/v1/chat/completions");
    let p = pending(&with, &h);
    let refused = p.allow(&without, &h, KEY).unwrap_err();
    assert_eq!(refused.reply.status, 503);
    assert!(matches!(run(&with, &h, KEY), Outcome::Forwarded(_)));
}

#[test]
fn bad_configured_providers_are_refused_by_name() {
    let cases = [
        (r#"{"providers":{"mistral":{"authority":"x"}}}"#, "mistral"),
        (
            r#"{"providers":{"local":{"path_prefix":"/local/"}}}"#,
            "local: a configured provider needs an authority",
        ),
        (
            r#"{"providers":{"local":{"path_prefix":"local","authority":"x"}}}"#,
            "local.path_prefix",
        ),
        (
            r#"{"providers":{"local":{"path_prefix":"/a/../b/","authority":"x"}}}"#,
            "local.path_prefix",
        ),
        (
            r#"{"providers":{"local":{"path_prefix":"/v1beta/","authority":"x"}}}"#,
            "overlaps Gemini",
        ),
        (
            r#"{"providers":{"a":{"path_prefix":"/x/","authority":"x"},"b":{"path_prefix":"/x/y/","authority":"y"}}}"#,
            "b.path_prefix: overlaps a's",
        ),
        (
            r#"{"providers":{"openai":{"path_prefix":"/o/"}}}"#,
            "openai.path_prefix: only configured providers",
        ),
        (
            r#"{"providers":{"Local":{"path_prefix":"/l/","authority":"x"}}}"#,
            "provider name \"Local\"",
        ),
        (
            r#"{"providers":{"local":{"path_prefix":"/l/","authority":"a b"}}}"#,
            "providers.local.authority",
        ),
    ];
    for (json, want) in cases {
        let err = FilterConfig::parse(json.as_bytes()).unwrap_err();
        assert!(err.contains(want), "{json}: {err}");
    }
}
