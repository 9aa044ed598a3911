//! The wire version handshake (`docs/wire-protocol.md`, "Versions"): the real app on port 0;
//! an unknown major is refused with a clear error, older minors and header-less calls (filters
//! older than the header) are served, and every answer names the service's version.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use ptk_wire::{Provider, CHECK_PATH, WIRE_VERSION, WIRE_VERSION_HEADER};

async fn check_with(app: &TestApp, body: &str, version: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(CHECK_PATH))
        .header("content-type", "application/json")
        .header("x-ptk-check-secret", SECRET)
        .body(body.to_owned());
    if let Some(v) = version {
        request = request.header(WIRE_VERSION_HEADER, v);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn same_major_any_minor_or_no_header_is_served() {
    let app = spawn_app().await;
    let hash = app
        .add_token("ptk_wire_version_token", &[Provider::Openai], |_| {})
        .await;
    let body = format!(r#"{{"hash":"{hash}","provider":"openai"}}"#);
    for version in [
        None,
        Some(WIRE_VERSION),
        Some("1.0"),
        Some("1.9"),
        Some("1"),
    ] {
        let response = check_with(&app, &body, version).await;
        assert_eq!(response.status(), 200, "{version:?}");
        assert_eq!(
            response.headers()[WIRE_VERSION_HEADER].to_str().unwrap(),
            WIRE_VERSION
        );
        let text = response.text().await.unwrap();
        assert!(text.contains(r#""verdict":"allow""#), "{text}");
    }
}

#[tokio::test]
async fn another_major_is_refused_with_a_clear_error() {
    let app = spawn_app().await;
    let hash = app
        .add_token("ptk_wire_version_token", &[Provider::Openai], |_| {})
        .await;
    let body = format!(r#"{{"hash":"{hash}","provider":"openai"}}"#);
    for version in ["2.0", "0.9", "garbage"] {
        let response = check_with(&app, &body, Some(version)).await;
        assert_eq!(response.status(), 400, "{version}");
        assert_eq!(
            response.headers()[WIRE_VERSION_HEADER].to_str().unwrap(),
            WIRE_VERSION
        );
        let json: serde_json::Value = response.json().await.unwrap();
        assert_eq!(json["error"]["code"], "unsupported_wire_version");
        let message = json["error"]["message"].as_str().unwrap();
        assert!(message.contains(version), "{message}");
        assert!(message.contains(WIRE_VERSION), "{message}");
        assert!(!message.contains(OPENAI_KEY));
    }
    // Usage and revalidation share the rule.
    for path in [ptk_wire::ACTIVITY_PATH, ptk_wire::REVALIDATE_PATH] {
        let response = app
            .client
            .post(app.url(path))
            .header("x-ptk-check-secret", SECRET)
            .header(WIRE_VERSION_HEADER, "2.0")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{path}");
    }
}
