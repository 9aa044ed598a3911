//! Walks the provider registry: every provider and dialect has a slot rule, a credential
//! placement the rewrite strips and sets, an error shape, a route in `envoy.yaml`, a mock
//! upstream route and compat clients. Adding a provider without any of them fails here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use ptk_filter_core::credentials::CREDENTIAL_HEADERS;
use ptk_filter_core::providers::{self, Claim, Placement, TABLE};
use ptk_filter_core::{Dialect, ErrorShape, Refusal, Slot};
use ptk_wire::providers::FACTS;
use ptk_wire::Provider;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every file under `dir` (one level) with this extension, as text.
fn files(dir: &str, ext: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == ext) {
            out.push((
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
    out
}

#[test]
fn the_table_follows_the_shared_facts() {
    let listed: Vec<Provider> = TABLE.iter().map(|p| p.facts.provider).collect();
    assert_eq!(listed, Provider::ALL);
    assert_eq!(TABLE.len(), FACTS.len());
    for spec in TABLE {
        assert_eq!(providers::spec(spec.facts.provider), Some(spec));
        assert!(!spec.dialects.is_empty(), "{:?}", spec.facts.provider);
        for d in spec.dialects {
            assert_eq!(d.dialect.provider(), spec.facts.provider);
            assert_eq!(d.dialect.spec(), d, "{:?}", d.dialect);
        }
    }
}

#[test]
fn every_dialect_has_a_slot_rule_and_every_slot_one_owner() {
    for d in providers::dialects() {
        assert!(!d.claims.is_empty(), "{:?} has no slot rule", d.dialect);
    }
    let slots = [
        Slot::XApiKey,
        Slot::XGoogApiKey,
        Slot::Bearer,
        Slot::QueryKey,
        Slot::Subprotocol,
    ];
    for slot in slots {
        let owners = providers::dialects()
            .filter(|d| d.claims.contains(&Claim::Slot(slot)))
            .count();
        assert_eq!(owners, 1, "{slot:?} must mean exactly one dialect");
    }
}

#[test]
fn every_credential_placement_is_a_header_the_rewrite_strips() {
    for d in providers::dialects() {
        let header = match d.credential {
            Placement::Bearer => "authorization",
            Placement::Header(h) | Placement::ClientSlot(h) => h,
        };
        assert!(
            CREDENTIAL_HEADERS.contains(&header),
            "{:?}: {header}",
            d.dialect
        );
    }
}

#[test]
fn every_dialect_answers_in_its_error_shape() {
    for d in providers::dialects() {
        let reply = Refusal::Invalid.reply(d.error_shape);
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        let anthropic = body["type"] == "error";
        assert_eq!(anthropic, d.error_shape == ErrorShape::Anthropic, "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
}

#[test]
fn every_provider_has_an_envoy_route_and_a_mock_upstream_route() {
    let envoy = read("envoy.yaml");
    let mock = read("tests/mock_upstream/server.py");
    for spec in TABLE {
        let host = spec.facts.default_authority;
        assert!(
            envoy.contains(&format!("domains: [{host}]")),
            "envoy.yaml: {host}"
        );
        for d in spec.dialects {
            let route = format!("- name: {}\n", d.route_name);
            assert!(envoy.contains(&route), "envoy.yaml: route {}", d.route_name);
        }
        let name = spec.facts.provider.as_str();
        assert!(
            mock.contains(&format!("return \"{name}\"")),
            "mock upstream: {name}"
        );
        assert!(mock.contains(host), "mock upstream docstring: {host}");
    }
}

#[test]
fn every_provider_has_compat_clients() {
    let python = files("tests/compat/py", "py");
    let node = files("tests/compat/node", "mjs");
    for spec in TABLE {
        let name = spec.facts.provider.as_str();
        let py = format!("PROVIDER = \"{name}\"");
        assert!(
            python.iter().any(|(_, t)| t.contains(&py)),
            "no Python compat client for {name}"
        );
        let js = format!("TOKEN_OUT_OF_SCOPE.{name}");
        assert!(
            node.iter().any(|(_, t)| t.contains(&js)),
            "no Node compat client for {name}"
        );
    }
}

#[test]
fn the_dialect_table_covers_every_dialect() {
    let all = [
        Dialect::Openai,
        Dialect::Anthropic,
        Dialect::Gemini,
        Dialect::GeminiOpenai,
    ];
    let listed: Vec<Dialect> = providers::dialects().map(|d| d.dialect).collect();
    assert_eq!(listed.len(), all.len());
    for d in all {
        assert!(listed.contains(&d), "{d:?} is in no provider's entry");
    }
}
