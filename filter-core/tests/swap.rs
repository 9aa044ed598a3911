//! Strip-all-then-set-one (original Worker §2.2, DESIGN.md step 4): for every route and slot,
//! every credential slot is stripped and exactly one real key is set, in the right place.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::head;
use ptk_filter_core::config::ProviderConfig;
use ptk_filter_core::plan::{clean_subprotocols, rewrite_plan, CREDENTIAL_HEADERS};
use ptk_filter_core::{identify, RequestHead, RewritePlan};

const TOKEN: &str = "ptk_SENTINEL_token_value_000000000";
const KEY: &str = "sk-REAL-key";
const HOST: &str = "provider.example";

fn upstream() -> ProviderConfig {
    ProviderConfig {
        authority: HOST.to_string(),
        request_headers: Vec::new(),
        stream_usage: false,
        geo_fallback: None,
    }
}

fn plan_for(h: &RequestHead) -> RewritePlan {
    let id = identify(h).expect("a token");
    rewrite_plan(h, &id, KEY, &upstream())
}

/// The headers the upstream would see after applying the plan to the client's headers.
fn apply(h: &RequestHead, plan: &RewritePlan, pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let _ = h;
    let mut out: Vec<(String, String)> = pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .filter(|(n, _)| !plan.remove.contains(n))
        .collect();
    for (name, value) in &plan.set {
        out.retain(|(n, _)| n != name);
        out.push((name.clone(), value.clone()));
    }
    out
}

fn credential_slots(out: &[(String, String)]) -> Vec<(String, String)> {
    out.iter()
        .filter(|(n, _)| CREDENTIAL_HEADERS.contains(&n.as_str()))
        .cloned()
        .collect()
}

type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    (&'static str, &'static str),
    &'static str,
);

/// (name, inbound headers with the token in one or more slots, the one expected credential,
/// expected upstream :path)
const CASES: &[Case] = &[
    ("openai bearer", &[(":path", "/v1/chat/completions"), ("authorization", "Bearer ptk_SENTINEL_token_value_000000000")], ("authorization", "Bearer sk-REAL-key"), "/v1/chat/completions"),
    ("gemini-openai bearer", &[(":path", "/v1beta/openai/chat/completions"), ("authorization", "Bearer ptk_SENTINEL_token_value_000000000")], ("authorization", "Bearer sk-REAL-key"), "/v1beta/openai/chat/completions"),
    ("anthropic x-api-key stays x-api-key", &[(":path", "/v1/messages"), ("x-api-key", "ptk_SENTINEL_token_value_000000000"), ("anthropic-version", "2023-06-01")], ("x-api-key", "sk-REAL-key"), "/v1/messages"),
    ("anthropic bearer stays bearer", &[(":path", "/v1/messages"), ("authorization", "Bearer ptk_SENTINEL_token_value_000000000"), ("anthropic-version", "2026-10-21")], ("authorization", "Bearer sk-REAL-key"), "/v1/messages"),
    ("gemini header", &[(":path", "/v1beta/models/m:generateContent"), ("x-goog-api-key", "ptk_SENTINEL_token_value_000000000")], ("x-goog-api-key", "sk-REAL-key"), "/v1beta/models/m:generateContent"),
    ("gemini query key moves to the header, other params verbatim", &[(":path", "/v1beta/models/m:streamGenerateContent?alt=sse&key=ptk_SENTINEL_token_value_000000000&foo=a%20b")], ("x-goog-api-key", "sk-REAL-key"), "/v1beta/models/m:streamGenerateContent?alt=sse&foo=a%20b"),
    ("every slot at once routes to anthropic and strips all", &[(":path", "/v1/messages?key=ptk_SENTINEL_token_value_000000000&k%65y=ptk_SENTINEL_token_value_000000000"), ("x-api-key", "ptk_SENTINEL_token_value_000000000"), ("x-goog-api-key", "ptk_SENTINEL_token_value_000000000"), ("authorization", "Bearer ptk_SENTINEL_token_value_000000000")], ("x-api-key", "sk-REAL-key"), "/v1/messages"),
    ("openai bearer strips a stray query key", &[(":path", "/v1/chat?key=ptk_SENTINEL_token_value_000000000"), ("authorization", "Bearer ptk_SENTINEL_token_value_000000000")], ("authorization", "Bearer sk-REAL-key"), "/v1/chat"),
    ("gemini header strips stray bearer and query", &[(":path", "/v1beta/m?key=x&alt=sse"), ("x-goog-api-key", "ptk_SENTINEL_token_value_000000000"), ("authorization", "Bearer other")], ("x-goog-api-key", "sk-REAL-key"), "/v1beta/m?alt=sse"),
];

#[test]
fn swap_table() {
    for (name, pairs, (cred_name, cred_value), want_path) in CASES {
        let h = head(pairs);
        let plan = plan_for(&h);
        let out = apply(&h, &plan, pairs);
        assert_eq!(
            credential_slots(&out),
            vec![(cred_name.to_string(), cred_value.to_string())],
            "case {name}: exactly one credential"
        );
        let path = out
            .iter()
            .find(|(n, _)| n == ":path")
            .map(|(_, v)| v.as_str());
        assert_eq!(path, Some(*want_path), "case {name}: path");
        assert_eq!(
            plan.set_value(":authority"),
            Some(HOST),
            "case {name}: authority"
        );
        for (n, v) in &out {
            assert!(!v.contains(TOKEN), "case {name}: token leaked in {n}");
        }
    }
}

#[test]
fn authority_is_set_only_when_the_client_names_another_host() {
    let sent_to_proxy = [
        (":authority", "127.0.0.1:10000"),
        (":path", "/v1/chat/completions"),
        ("authorization", "Bearer ptk_x"),
    ];
    let plan = plan_for(&head(&sent_to_proxy));
    assert_eq!(plan.set_value(":authority"), Some(HOST));

    let sent_to_provider_host = [
        (":authority", HOST),
        (":path", "/v1/chat/completions"),
        ("authorization", "Bearer ptk_x"),
    ];
    let h = head(&sent_to_provider_host);
    let plan = plan_for(&h);
    assert_eq!(
        plan.set_value(":authority"),
        None,
        "already right: no host call"
    );
    let out = apply(&h, &plan, &sent_to_provider_host);
    assert!(out.contains(&(":authority".to_string(), HOST.to_string())));
}

#[test]
fn other_headers_pass_untouched() {
    let pairs = [
        (":path", "/v1/messages"),
        ("x-api-key", TOKEN),
        ("anthropic-version", "2023-06-01"),
        ("content-type", "application/json"),
        ("openai-beta", "assistants=v2"),
    ];
    let h = head(&pairs);
    let plan = plan_for(&h);
    for kept in ["anthropic-version", "content-type", "openai-beta"] {
        assert!(!plan.remove.iter().any(|r| r == kept), "{kept} removed");
        assert!(plan.set_value(kept).is_none(), "{kept} rewritten");
    }
}

/// Issue 10 item 12 changes DESIGN.md step 4 ("keep org/project entries"): the organization
/// and project entries pick whose account the operator's key is used for, so they go too.
#[test]
fn subprotocol_entry_is_removed_and_the_rest_kept_in_order() {
    let pairs = [
        (":path", "/v1/realtime?model=m"),
        ("upgrade", "websocket"),
        ("sec-websocket-protocol", "realtime, openai-insecure-api-key.ptk_SENTINEL_token_value_000000000, openai-organization.org1, openai-beta.realtime-v1"),
    ];
    let h = head(&pairs);
    let plan = plan_for(&h);
    assert_eq!(
        plan.set_value("sec-websocket-protocol"),
        Some("realtime, openai-beta.realtime-v1")
    );
    assert_eq!(plan.set_value("authorization"), Some("Bearer sk-REAL-key"));
}

#[test]
fn subprotocol_header_removed_when_only_the_key_was_offered() {
    let pairs = [
        (":path", "/v1/realtime"),
        ("upgrade", "websocket"),
        (
            "sec-websocket-protocol",
            "openai-insecure-api-key.ptk_SENTINEL_token_value_000000000",
        ),
    ];
    let plan = plan_for(&head(&pairs));
    assert!(plan.remove.iter().any(|r| r == "sec-websocket-protocol"));
    assert!(plan.set_value("sec-websocket-protocol").is_none());
    assert_eq!(clean_subprotocols(" , openai-insecure-api-key.x ,"), None);
}

#[test]
fn a_key_bearing_subprotocol_is_stripped_even_when_another_slot_won() {
    let pairs = [
        (":path", "/v1/realtime"),
        ("upgrade", "websocket"),
        ("authorization", "Bearer B1234567890123"),
        (
            "sec-websocket-protocol",
            "realtime, openai-insecure-api-key.OTHER",
        ),
    ];
    let plan = plan_for(&head(&pairs));
    assert_eq!(plan.set_value("sec-websocket-protocol"), Some("realtime"));
}

#[test]
fn plan_debug_never_prints_the_key() {
    let plan = plan_for(&head(&[("authorization", "Bearer t")]));
    assert!(!format!("{plan:?}").contains(KEY));
}
