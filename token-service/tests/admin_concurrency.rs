//! Writes are atomic: concurrent PATCHes through the real admin API can never resurrect a
//! disabled or deleted token, and each PATCH lands whole (last committed writer wins, per
//! request, never a mix of two requests' fields).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::admin::Admin;
use common::*;
use ptk_wire::{DenyReason, Provider};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use token_service::store::TokenStore as _;

async fn create(admin: &Admin) -> String {
    admin
        .create(json!({"label": "race", "providers": ["openai"]}))
        .await["hash"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Sends all `bodies` as PATCHes at once; returns (status, body) per request.
async fn patch_all(admin: &Admin, hash: &str, bodies: Vec<Value>) -> Vec<(StatusCode, Value)> {
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let admin = admin.clone();
            let hash = hash.to_owned();
            tokio::spawn(async move {
                let r = admin.patch(&hash, body).await;
                let status = r.status();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

fn expiry(i: usize) -> String {
    format!("2099-01-01T00:{:02}:{:02}.000Z", i / 60, i % 60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expiry_edits_racing_a_disable_never_re_enable() {
    let app = spawn_app().await;
    let admin = app.login().await;
    for round in 0..3 {
        let hash = create(&admin).await;
        let bodies = (0..50)
            .map(|i| {
                if i == 17 + round {
                    json!({"status": "disabled"})
                } else {
                    json!({"expires_at": expiry(i)})
                }
            })
            .collect();
        for (status, body) in patch_all(&admin, &hash, bodies).await {
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let token: Value = admin.token(&hash).await.json().await.unwrap();
        assert_eq!(
            token["status"], "disabled",
            "round {round}: an expiry edit revived it"
        );
        assert_eq!(
            app.check(&hash, Provider::Openai).await,
            deny(DenyReason::Invalid)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn patches_racing_a_delete_never_bring_it_back() {
    let app = spawn_app().await;
    let admin = app.login().await;
    let hash = create(&admin).await;
    let path = format!("/admin/api/tokens/{hash}");
    let bodies: Vec<Value> = (0..50)
        .map(|i| match i % 3 {
            0 => json!({"status": "active"}),
            1 => json!({"status": "disabled"}),
            _ => json!({"expires_at": expiry(i)}),
        })
        .collect();
    let deleter = {
        let admin = admin.clone();
        let path = path.clone();
        tokio::spawn(async move { admin.send(Method::DELETE, &path, None).await.status() })
    };
    let results = patch_all(&admin, &hash, bodies).await;
    assert_eq!(deleter.await.unwrap(), StatusCode::NO_CONTENT);
    for (status, body) in &results {
        assert!(
            *status == StatusCode::OK || *status == StatusCode::NOT_FOUND,
            "{status} {body}"
        );
    }
    // Gone, and it stays gone: no late patch recreated it.
    assert_eq!(admin.get(&path).await.status(), StatusCode::NOT_FOUND);
    assert!(app.store.list().await.unwrap().is_empty());
    assert_eq!(
        app.check(&hash, Provider::Openai).await,
        deny(DenyReason::Invalid)
    );
    let late = admin.patch(&hash, json!({"status": "active"})).await;
    assert_eq!(late.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_patch_lands_whole_and_the_last_committed_one_wins() {
    let app = spawn_app().await;
    let admin = app.login().await;
    let hash = create(&admin).await;
    let bodies: Vec<Value> = (0..50)
        .map(|i| {
            let status = if i % 2 == 0 { "active" } else { "disabled" };
            json!({"status": status, "expires_at": expiry(i)})
        })
        .collect();
    let results = patch_all(&admin, &hash, bodies.clone()).await;
    for ((status, returned), sent) in results.iter().zip(&bodies) {
        assert_eq!(*status, StatusCode::OK);
        // Each response is the record as that request committed it.
        assert_eq!(returned["status"], sent["status"]);
        assert_eq!(returned["expires_at"], sent["expires_at"]);
    }
    let token: Value = admin.token(&hash).await.json().await.unwrap();
    let pair = (token["status"].clone(), token["expires_at"].clone());
    // The final record is exactly one request's pair, never one request's status with
    // another's expiry.
    assert!(
        bodies
            .iter()
            .any(|b| (b["status"].clone(), b["expires_at"].clone()) == pair),
        "mixed record {pair:?}"
    );
}
