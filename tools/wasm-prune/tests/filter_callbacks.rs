//! The drop list must never name a callback the filter implements: its export would be gone
//! and Envoy would silently never call it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// `(export, [trait methods])` from filter/unused-callbacks.txt.
fn drop_list() -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("filter/unused-callbacks.txt"))
        .expect("filter/unused-callbacks.txt");
    text.lines()
        .map(|line| line.split('#').next().unwrap().trim())
        .filter(|line| !line.is_empty())
        .map(|line| {
            let mut cols = line.split_whitespace();
            let export = cols.next().unwrap().to_string();
            let methods = cols
                .next()
                .unwrap_or_else(|| panic!("{export}: name the trait method(s) it serves"))
                .split(',')
                .map(str::to_string)
                .collect();
            (export, methods)
        })
        .collect()
}

fn filter_sources() -> String {
    let dir = Path::new(ROOT).join("filter/src");
    let mut all = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            all.push_str(&std::fs::read_to_string(path).unwrap());
        }
    }
    all
}

#[test]
fn no_dropped_callback_is_implemented_by_the_filter() {
    let sources = filter_sources();
    let list = drop_list();
    assert!(list.len() >= 6, "the list lost its entries");
    for (export, methods) in &list {
        for method in methods {
            assert!(
                !sources.contains(&format!("fn {method}(")),
                "filter/src implements `{method}`, but filter/unused-callbacks.txt drops \
                 `{export}`: remove that line or Envoy will never call it"
            );
        }
    }
}

#[test]
fn the_callbacks_the_filter_needs_are_never_dropped() {
    let exports: Vec<String> = drop_list().into_iter().map(|(e, _)| e).collect();
    for needed in [
        "proxy_on_request_headers",
        "proxy_on_response_headers",
        "proxy_on_response_body",
        "proxy_on_http_call_response",
        "proxy_on_context_create",
        "proxy_on_delete",
        "proxy_on_tick",
        "proxy_on_configure",
        "proxy_on_vm_start",
        "proxy_on_memory_allocate",
    ] {
        assert!(
            !exports.iter().any(|e| e == needed),
            "{needed} must stay exported"
        );
    }
}
