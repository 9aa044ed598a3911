//! Black-box tests of `/admin/api/tokens`: every route, every validation error, and that
//! what the API does is what the check API then decides.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::admin::{error_of, Admin};
use common::*;
use ptk_wire::{CheckResponse, DenyReason, Provider};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use token_service::store::TokenStore as _;

async fn app_and_admin() -> (TestApp, Admin) {
    let app = spawn_app().await;
    let admin = app.login().await;
    (app, admin)
}

fn is_allow(verdict: &CheckResponse) -> bool {
    matches!(verdict, CheckResponse::Allow { .. })
}

#[tokio::test]
async fn create_returns_the_plaintext_once_and_stores_only_the_hash() {
    let (app, admin) = app_and_admin().await;
    let created = admin
        .create(json!({
            "label": "  alice laptop  ",
            "providers": ["gemini", "openai", "gemini"],
            "expires_at": "2099-01-01T02:00:00+02:00",
            "rate_limit": {"count": 5, "window_s": 30},
        }))
        .await;
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("ptk_") && token.len() == 36, "{token}");
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    assert_eq!(created["hash"], hash.as_str());
    assert_eq!(created["label"], "alice laptop");
    assert_eq!(created["last4"], &token[32..]);
    assert_eq!(created["providers"], json!(["gemini", "openai"]));
    assert_eq!(created["status"], "active");
    assert_eq!(created["state"], "active");
    assert_eq!(created["expires_at"], "2099-01-01T00:00:00.000Z");
    assert_eq!(created["rate_limit"], json!({"count": 5, "window_s": 30}));
    assert_eq!(created["last_used"], Value::Null);

    // Listing and reading never show the plaintext again.
    let list = admin.get("/admin/api/tokens").await.text().await.unwrap();
    assert!(!list.contains(token));
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["tokens"].as_array().unwrap().len(), 1);
    assert!(list["tokens"][0].get("token").is_none());
    let one: Value = admin.token(&hash).await.json().await.unwrap();
    assert_eq!(one, list["tokens"][0]);

    // The check API honours it: scope, and the token's own quota.
    assert!(is_allow(&app.check(&hash, Provider::Openai).await));
    assert_eq!(
        app.check(&hash, Provider::Anthropic).await,
        deny(DenyReason::ProviderNotAllowed)
    );
    let stored = app.store.get(&hash).await.unwrap().unwrap();
    assert_eq!(stored.rate_limit.unwrap().to_string(), "5/30");
}

#[tokio::test]
async fn custom_tokens_are_trimmed_and_duplicates_are_409() {
    let (app, admin) = app_and_admin().await;
    let body = json!({"label": "ci", "providers": ["anthropic"], "token": "  my-custom-token-1  "});
    let created = admin.create(body.clone()).await;
    assert_eq!(created["token"], "my-custom-token-1");
    assert_eq!(created["last4"], "en-1");
    let hash = created["hash"].as_str().unwrap().to_owned();
    // Disable it, then try to re-create the same token: refused, never overwritten.
    assert_eq!(
        admin
            .patch(&hash, json!({"status": "disabled"}))
            .await
            .status(),
        200
    );
    let r = admin
        .send(Method::POST, "/admin/api/tokens", Some(body))
        .await;
    let (status, code, message) = error_of(r).await;
    assert_eq!((status, code.as_str()), (StatusCode::CONFLICT, "conflict"));
    assert_eq!(message, "token already exists - delete it first");
    assert_eq!(
        app.check(&hash, Provider::Anthropic).await,
        deny(DenyReason::Invalid)
    );
}

#[tokio::test]
async fn create_validation_errors_are_400_with_a_clear_message() {
    let (_app, admin) = app_and_admin().await;
    let ok = || json!({"label": "x", "providers": ["openai"]});
    let with = |key: &str, value: Value| {
        let mut body = ok();
        body[key] = value;
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!({"providers": ["openai"]}), "label is required"),
        (with("label", json!("   ")), "label is required"),
        (json!({"label": "x"}), "pick at least one provider"),
        (with("providers", json!([])), "pick at least one provider"),
        (
            with("providers", json!(["azure"])),
            "unknown provider \"azure\"",
        ),
        (
            with("providers", json!(["OpenAI"])),
            "unknown provider \"OpenAI\"",
        ),
        (
            with("providers", json!("openai")),
            "invalid JSON body: invalid type",
        ),
        (
            with("token", json!("short-token")),
            "custom token too short (min 12 chars)",
        ),
        (
            with("token", json!("  elevenchars ")),
            "custom token too short",
        ),
        (
            with("token", json!("t".repeat(257))),
            "custom token too long (max 256 chars)",
        ),
        (
            with("token", json!("ek_looks-like-an-openai-client-secret")),
            "custom token must not start with \"ek_\"",
        ),
        (
            with("token", json!("auth_tokens/looks-like-google")),
            "custom token must not start with \"auth_tokens/\"",
        ),
        (
            with("expires_at", json!("2030-01-01T00:00")),
            "invalid expires_at",
        ),
        (
            with("expires_at", json!("2030-01-01")),
            "invalid expires_at",
        ),
        (
            with("expires_at", json!("not-a-date")),
            "invalid expires_at",
        ),
        (with("expires_at", json!("")), "invalid expires_at"),
        (with("expires_at", json!("never")), "invalid expires_at"),
        (
            with("rate_limit", json!({"count": 0, "window_s": 60})),
            "must be at least 1",
        ),
        (
            with("rate_limit", json!({"count": 5, "window_s": 0})),
            "must be at least 1",
        ),
        (
            // At most about 12 days (MAX_WINDOW_S): longer is refused.
            with("rate_limit", json!({"count": 5, "window_s": 1_048_576})),
            "must be at most 1048575",
        ),
        (
            with("rate_limit", json!({"count": 5})),
            "missing field `window_s`",
        ),
        (
            with("rate_limit", json!({"count": -1, "window_s": 5})),
            "invalid JSON body",
        ),
        (with("rate_limit", json!("5/60")), "invalid JSON body"),
        (with("owner", json!("bob")), "unknown field `owner`"),
    ];
    for (body, want) in cases {
        let r = admin
            .send(Method::POST, "/admin/api/tokens", Some(body.clone()))
            .await;
        let (status, code, message) = error_of(r).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "bad_request"),
            "{body}"
        );
        assert!(
            message.contains(want),
            "{body}: {message:?} should contain {want:?}"
        );
    }
    // Not JSON at all, or not labelled as JSON.
    let raw = admin
        .request(Method::POST, "/admin/api/tokens")
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    let (status, _, message) = error_of(raw).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.starts_with("invalid JSON body"), "{message}");
    let form = admin
        .request(Method::POST, "/admin/api/tokens")
        .form(&[("label", "x"), ("providers", "openai")])
        .send()
        .await
        .unwrap();
    let (status, _, message) = error_of(form).await;
    assert_eq!(
        (status, message.as_str()),
        (
            StatusCode::BAD_REQUEST,
            "content-type must be application/json"
        )
    );
    let list: Value = admin.get("/admin/api/tokens").await.json().await.unwrap();
    assert_eq!(list["tokens"], json!([]), "nothing invalid was stored");
}

#[tokio::test]
async fn bad_hashes_are_400_and_unknown_ones_404() {
    let (app, admin) = app_and_admin().await;
    let unknown = "0".repeat(64);
    let bad = ["abc", &"A".repeat(64), &"g".repeat(64), &"0".repeat(65)];
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        for hash in bad {
            let r = admin
                .send(
                    method.clone(),
                    &format!("/admin/api/tokens/{hash}"),
                    Some(json!({"status": "active"})),
                )
                .await;
            let (status, _, message) = error_of(r).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {hash}");
            assert!(message.starts_with("bad token id"), "{message}");
        }
        let r = admin
            .send(
                method.clone(),
                &format!("/admin/api/tokens/{unknown}"),
                Some(json!({"status": "active"})),
            )
            .await;
        let (status, code, message) = error_of(r).await;
        assert_eq!(
            (status, code.as_str(), message.as_str()),
            (StatusCode::NOT_FOUND, "not_found", "no such token"),
            "{method}"
        );
    }
    assert!(
        app.store.list().await.unwrap().is_empty(),
        "nothing was created"
    );
}

#[tokio::test]
async fn patch_changes_status_expiry_and_quota_and_the_check_follows() {
    let (app, admin) = app_and_admin().await;
    let hash = admin
        .create(json!({"label": "p", "providers": ["openai"]}))
        .await["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let patch = |body: Value| admin.patch(&hash, body);

    let r: Value = patch(json!({"status": "disabled"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (r["status"].as_str(), r["state"].as_str()),
        (Some("disabled"), Some("disabled"))
    );
    assert_eq!(
        app.check(&hash, Provider::Openai).await,
        deny(DenyReason::Invalid)
    );

    let r: Value = patch(json!({"status": "active", "expires_at": "2000-01-01T00:00:00Z"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (r["status"].as_str(), r["state"].as_str()),
        (Some("active"), Some("expired"))
    );
    assert_eq!(r["expires_at"], "2000-01-01T00:00:00.000Z");
    assert_eq!(
        app.check(&hash, Provider::Openai).await,
        deny(DenyReason::Expired)
    );

    let r: Value = patch(json!({"expires_at": null}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (r["state"].as_str(), &r["expires_at"]),
        (Some("active"), &Value::Null)
    );
    assert!(is_allow(&app.check(&hash, Provider::Openai).await));

    let r: Value = patch(json!({"rate_limit": {"count": 1, "window_s": 60}}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["rate_limit"], json!({"count": 1, "window_s": 60}));
    let r: Value = patch(json!({"rate_limit": null}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["rate_limit"], Value::Null);
    // A patch names only what it changes: label, providers, created stay.
    assert_eq!(
        (r["label"].as_str(), &r["providers"]),
        (Some("p"), &json!(["openai"]))
    );
}

#[tokio::test]
async fn patch_validation_errors_are_400_and_change_nothing() {
    let (app, admin) = app_and_admin().await;
    let hash = admin
        .create(json!({"label": "v", "providers": ["openai"]}))
        .await["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        admin
            .patch(&hash, json!({"status": "disabled"}))
            .await
            .status(),
        200
    );
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "nothing to update"),
        (
            json!({"status": "enabled"}),
            "status must be \"active\" or \"disabled\"",
        ),
        (json!({"status": "ACTIVE"}), "status must be"),
        (json!({"status": null}), "status must be"),
        (json!({"status": 1}), "invalid JSON body"),
        (json!({"expires_at": "tomorrow"}), "invalid expires_at"),
        (json!({"expires_at": ""}), "invalid expires_at"),
        (
            json!({"rate_limit": {"count": 0, "window_s": 1}}),
            "must be at least 1",
        ),
        (json!({"label": "renamed"}), "unknown field `label`"),
        (
            json!({"providers": ["gemini"]}),
            "unknown field `providers`",
        ),
        // A valid field does not carry an invalid one through.
        (
            json!({"status": "active", "expires_at": "nope"}),
            "invalid expires_at",
        ),
    ];
    for (body, want) in cases {
        let (status, _, message) = error_of(admin.patch(&hash, body.clone()).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            message.contains(want),
            "{body}: {message:?} should contain {want:?}"
        );
    }
    let token: Value = admin.token(&hash).await.json().await.unwrap();
    assert_eq!(
        token["status"], "disabled",
        "still disabled after the refused patches"
    );
    assert_eq!(
        app.check(&hash, Provider::Openai).await,
        deny(DenyReason::Invalid)
    );
}

#[tokio::test]
async fn delete_removes_the_token_for_good() {
    let (app, admin) = app_and_admin().await;
    let hash = admin
        .create(json!({"label": "d", "providers": ["openai"]}))
        .await["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(is_allow(&app.check(&hash, Provider::Openai).await));
    let path = format!("/admin/api/tokens/{hash}");
    let r = admin.send(Method::DELETE, &path, None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.text().await.unwrap(), "");
    assert_eq!(admin.get(&path).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        admin.send(Method::DELETE, &path, None).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        admin
            .patch(&hash, json!({"status": "active"}))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.check(&hash, Provider::Openai).await,
        deny(DenyReason::Invalid)
    );
    assert!(
        app.store.list().await.unwrap().is_empty(),
        "the patch did not recreate it"
    );
}

#[tokio::test]
async fn list_is_newest_first_with_last_used() {
    let (app, admin) = app_and_admin().await;
    let first = admin
        .create(json!({"label": "first", "providers": ["openai"]}))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    admin
        .create(json!({"label": "second", "providers": ["openai"]}))
        .await;
    let hash = first["hash"].as_str().unwrap();
    assert!(is_allow(&app.check(hash, Provider::Openai).await));
    // The stamp is written in the background; give it a moment.
    let mut last_used = Value::Null;
    for _ in 0..50 {
        let list: Value = admin.get("/admin/api/tokens").await.json().await.unwrap();
        let labels: Vec<&str> = list["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["label"].as_str().unwrap())
            .collect();
        assert_eq!(labels, ["second", "first"]);
        last_used = list["tokens"][1]["last_used"].clone();
        if !last_used.is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(last_used.as_str().unwrap().ends_with('Z'), "{last_used}");
}

/// The model allow-list through the admin API: created, patched, cleared, validated, and the
/// check answers `allow_limited` with it (a plain `allow` without it), and the revalidation
/// of open streams carries it.
#[tokio::test]
async fn models_are_created_patched_cleared_and_reach_the_check() {
    let (app, admin) = app_and_admin().await;
    let created = admin
        .create(json!({"label": "m", "providers": ["openai"],
            "models": [" gpt-5* ", "gpt-4o", "GPT-5*"]}))
        .await;
    assert_eq!(created["models"], json!(["gpt-5*", "gpt-4o"]));
    let hash = created["hash"].as_str().unwrap().to_owned();
    let limits = |verdict: CheckResponse| match verdict {
        CheckResponse::Allow { limits, .. } => limits.and_then(|l| l.models),
        other => panic!("{other:?}"),
    };
    let want = |m: &[&str]| Some(m.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(
        limits(app.check(&hash, Provider::Openai).await),
        want(&["gpt-5*", "gpt-4o"])
    );
    // On the wire: allow_limited (older filters fail closed on it).
    let body = format!(r#"{{"hash":"{hash}","provider":"openai"}}"#);
    let raw: Value = app
        .post_check(body, Some(SECRET))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(raw["verdict"], "allow_limited");
    assert_eq!(raw["limits"], json!({"models": ["gpt-5*", "gpt-4o"]}));

    let r: Value = admin
        .patch(&hash, json!({"models": ["claude-*"]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["models"], json!(["claude-*"]));
    assert_eq!(
        limits(app.check(&hash, Provider::Openai).await),
        want(&["claude-*"])
    );
    let revalidated: Value = app
        .client
        .post(app.url(ptk_wire::REVALIDATE_PATH))
        .header(ptk_wire::CHECK_SECRET_HEADER, SECRET)
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"entries":[{{"hash":"{hash}","provider":"openai"}}]}}"#
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        revalidated["verdicts"][0]["limits"],
        json!({"models": ["claude-*"]})
    );

    for (bad, why) in [
        (json!([]), "empty"),
        (json!(["gpt 5"]), "' '"),
        (json!(["x".repeat(129)]), "longer than 128"),
    ] {
        let response = admin.patch(&hash, json!({ "models": bad })).await;
        assert_eq!(response.status(), 400);
        let text = response.text().await.unwrap();
        assert!(text.contains("models") && text.contains(why), "{text}");
    }
    let r: Value = admin
        .patch(&hash, json!({"models": null}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["models"], Value::Null);
    assert_eq!(limits(app.check(&hash, Provider::Openai).await), None);
    let body = format!(r#"{{"hash":"{hash}","provider":"openai"}}"#);
    let raw: Value = app
        .post_check(body, Some(SECRET))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(raw["verdict"], "allow");
}
