//! `docs/admin-openapi.yaml` and the real admin router agree: every documented operation is
//! in the route table and answered by the running app, every route is documented, and every
//! method a path does not document is refused with 405.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use common::*;
use reqwest::{Method, StatusCode};
use serde_norway::Value;

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "options", "head", "patch"];

fn documented() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/admin-openapi.yaml"
    ))
    .unwrap();
    let doc: Value = serde_norway::from_str(&text).unwrap();
    assert_eq!(doc["openapi"].as_str(), Some("3.1.0"));
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().unwrap() {
        for (key, _) in item.as_mapping().unwrap() {
            let key = key.as_str().unwrap();
            if METHODS.contains(&key) {
                out.insert((path.as_str().unwrap().to_owned(), key.to_uppercase()));
            }
        }
    }
    out
}

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let table: BTreeSet<(String, String)> = token_service::admin::route_table()
        .iter()
        .map(|r| (r.path.to_owned(), r.method.as_str().to_owned()))
        .collect();
    let docs = documented();
    let undocumented: Vec<_> = table.difference(&docs).collect();
    let missing: Vec<_> = docs.difference(&table).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the OpenAPI file: {undocumented:?}"
    );
    assert!(missing.is_empty(), "documented but not routed: {missing:?}");
}

#[tokio::test]
async fn the_running_router_answers_exactly_the_documented_methods() {
    let app = spawn_app().await;
    let admin = app.login().await;
    let docs = documented();
    let paths: BTreeSet<&String> = docs.iter().map(|(p, _)| p).collect();
    let hash = "ab".repeat(32);
    for path in paths {
        let concrete = path.replace("{hash}", &hash);
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let r = admin
                .request(Method::from_bytes(method.as_bytes()).unwrap(), &concrete)
                .json(&serde_json::json!({}))
                .send()
                .await
                .unwrap();
            let status = r.status();
            if docs.contains(&(path.clone(), method.to_owned())) {
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                assert!(
                    status != StatusCode::NOT_FOUND || path.contains("{hash}"),
                    "{method} {path} is documented but not routed"
                );
                if status == StatusCode::NOT_FOUND {
                    let body: serde_json::Value = r.json().await.unwrap();
                    assert_eq!(body["error"]["code"], "not_found", "{method} {path}");
                }
            } else {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            }
        }
    }
    // Paths outside the table are 404 (no hidden routes).
    for path in [
        "/admin/",
        "/admin/api",
        "/admin/api/tokens/",
        "/admin/static/other.js",
        "/administrator",
    ] {
        assert_eq!(
            admin.get(path).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
}
