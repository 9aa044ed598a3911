//! The CLI and the admin API work on the same store and see each other's changes at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use assert_cmd::Command;
use common::*;
use ptk_wire::{DenyReason, Provider};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_token-service");

fn cli(app: &TestApp, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .env_clear()
        .env("PTK_DB", &app.db_path)
        .arg("tokens")
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

fn cli_list(app: &TestApp) -> Vec<Value> {
    serde_json::from_str::<Value>(&cli(app, &["list", "--json"]))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_changes_show_in_the_api_and_api_changes_in_the_cli() {
    let app = spawn_app().await;
    let admin = app.login().await;

    // CLI creates -> the API lists it.
    let made: Value = serde_json::from_str(&cli(
        &app,
        &[
            "create",
            "--label",
            "from-cli",
            "--providers",
            "openai",
            "--json",
        ],
    ))
    .unwrap();
    let cli_hash = made["hash"].as_str().unwrap().to_owned();
    let listed: Value = admin.get("/admin/api/tokens").await.json().await.unwrap();
    assert_eq!(listed["tokens"][0]["hash"], cli_hash.as_str());
    assert_eq!(listed["tokens"][0]["label"], "from-cli");

    // API creates and disables -> the CLI sees both.
    let api_hash = admin
        .create(json!({"label": "from-api", "providers": ["gemini"], "rate_limit": {"count": 3, "window_s": 9}}))
        .await["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        admin
            .patch(&cli_hash, json!({"status": "disabled"}))
            .await
            .status(),
        200
    );
    let rows = cli_list(&app);
    let row = |hash: &str| rows.iter().find(|r| r["hash"] == hash).unwrap().clone();
    assert_eq!(row(&api_hash)["label"], "from-api");
    assert_eq!(
        row(&api_hash)["rate_limit"],
        json!({"count": 3, "window_s": 9})
    );
    assert_eq!(row(&cli_hash)["status"], "disabled");

    // CLI re-enables and sets an expiry in the past -> the API shows it expired.
    cli(&app, &["enable", &cli_hash[..12]]);
    cli(
        &app,
        &["expire", &cli_hash[..12], "--at", "2001-01-01T00:00:00Z"],
    );
    let token: Value = admin.token(&cli_hash).await.json().await.unwrap();
    assert_eq!(
        (token["status"].as_str(), token["state"].as_str()),
        (Some("active"), Some("expired"))
    );
    assert_eq!(
        app.check(&cli_hash, Provider::Openai).await,
        deny(DenyReason::Expired)
    );

    // CLI deletes -> the API answers 404; API deletes -> the CLI lists nothing.
    cli(&app, &["delete", &cli_hash]);
    assert_eq!(admin.token(&cli_hash).await.status(), StatusCode::NOT_FOUND);
    let path = format!("/admin/api/tokens/{api_hash}");
    assert_eq!(
        admin.send(Method::DELETE, &path, None).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(cli_list(&app).is_empty());
}
