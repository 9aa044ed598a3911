//! Day-two operations against the real app on random ports: health probes per component,
//! the metrics listener, and key reloads through the admin API and `SIGHUP`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::admin::error_of;
use common::{deny, spawn_app_with, Options, SECRET};
use ptk_wire::CheckResponse;
use ptk_wire::DenyReason::{Invalid, StoreUnavailable};
use ptk_wire::Provider::{Gemini, Openai};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use token_service::ratelimit::RateLimit;
use token_service::ratelimit::{Acquired, RateLimitError, RateLimiter};

struct DownLimiter;

#[async_trait]
impl RateLimiter for DownLimiter {
    async fn acquire(&self, _: &str, _: RateLimit, _: u32) -> Result<Acquired, RateLimitError> {
        Err(RateLimitError("counter backend down".into()))
    }

    async fn ping(&self) -> Result<(), RateLimitError> {
        Err(RateLimitError("counter backend down".into()))
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

async fn get_json(client: &reqwest::Client, url: &str) -> (StatusCode, Value) {
    let r = client.get(url).send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

#[tokio::test]
async fn readiness_reports_each_component_and_liveness_needs_none() {
    let app = spawn_app_with(Options::default()).await;
    let (status, body) = get_json(&app.client, &app.url("/readyz")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        serde_json::json!({"status": "ready", "store": {"status": "ok"},
            "limiter": {"status": "ok", "backend": "memory"}})
    );

    // The store goes away: not ready (503, store named), but still alive.
    app.sql("DROP TABLE last_used; DROP TABLE tokens;");
    let (status, body) = get_json(&app.client, &app.url("/readyz")).await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["store"]["status"], "unavailable");
    assert_eq!(body["store"]["error"], "backend");
    assert_eq!(body["limiter"]["status"], "ok");
    let (status, body) = get_json(&app.client, &app.url("/livez")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("alive"))
    );

    // A limiter that does not answer: not ready, the limiter named.
    let app = spawn_app_with(Options {
        limiter: Arc::new(DownLimiter),
        ..Options::default()
    })
    .await;
    let (status, body) = get_json(&app.client, &app.url("/readyz")).await;
    assert_eq!(status, 503);
    assert_eq!(body["store"]["status"], "ok");
    assert_eq!(
        body["limiter"],
        serde_json::json!({"status": "unavailable", "backend": "redis", "error": "backend"})
    );
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_checks_errors_and_admin_actions_without_secrets() {
    let app = spawn_app_with(Options {
        limiter: Arc::new(DownLimiter),
        metrics: true,
        ..Options::default()
    })
    .await;
    let metrics_url = format!("http://{}/metrics", app.metrics_addr.unwrap());
    let hash = app
        .add_token("ptk_metrics_token_1", &[Openai], |_| {})
        .await;
    // Two allows (the limiter fails open), a scope deny, an invalid one, a refused secret.
    for _ in 0..2 {
        assert!(matches!(
            app.check(&hash, Openai).await,
            CheckResponse::Allow { .. }
        ));
    }
    app.check(&hash, Gemini).await;
    assert_eq!(app.check(&"0".repeat(64), Openai).await, deny(Invalid));
    assert_eq!(
        app.post_check("{}", Some("wrong-secret-0123456789"))
            .await
            .status(),
        401
    );
    let admin = app.login().await;
    let created = admin
        .create(serde_json::json!({"label": "m", "providers": ["openai"]}))
        .await;
    let r = admin
        .send(
            Method::DELETE,
            &format!("/admin/api/tokens/{}", created["hash"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    app.sql("DROP TABLE last_used; DROP TABLE tokens;");
    assert_eq!(app.check(&hash, Openai).await, deny(StoreUnavailable));

    let r = app.client.get(&metrics_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = r.text().await.unwrap();
    for (series, want) in [
        ("ptk_checks_total{outcome=\"allow\"}", 2.0),
        ("ptk_checks_total{outcome=\"scope\"}", 1.0),
        ("ptk_checks_total{outcome=\"invalid\"}", 1.0),
        ("ptk_checks_total{outcome=\"unauthorized\"}", 1.0),
        ("ptk_checks_total{outcome=\"store_unavailable\"}", 1.0),
        ("ptk_check_duration_seconds_count", 5.0),
        ("ptk_check_duration_seconds_bucket{le=\"+Inf\"}", 5.0),
        ("ptk_store_errors_total{operation=\"get\"}", 1.0),
        (
            "ptk_admin_actions_total{action=\"login\",result=\"ok\"}",
            1.0,
        ),
        (
            "ptk_admin_actions_total{action=\"create\",result=\"ok\"}",
            1.0,
        ),
        (
            "ptk_admin_actions_total{action=\"delete\",result=\"ok\"}",
            1.0,
        ),
    ] {
        assert_eq!(metric(&text, series), want, "{series} in\n{text}");
    }
    // Every allow tried the limiter (the login throttle too), and each failure counted.
    assert!(
        metric(&text, "ptk_limiter_errors_total{operation=\"acquire\"}") >= 2.0,
        "{text}"
    );
    for secret in [&hash[..], common::OPENAI_KEY, SECRET, "ptk_metrics_token_1"] {
        assert!(!text.contains(secret), "{secret} in metrics");
    }
}

#[tokio::test]
async fn keys_reload_through_the_admin_api_and_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.env");
    std::fs::write(&file, "OPENAI_API_KEY=sk-first\n").unwrap();
    let app = spawn_app_with(Options {
        keys_file: Some(file.clone()),
        metrics: true,
        ..Options::default()
    })
    .await;
    let hash = app
        .add_token("ptk_rotation_token_1", &[Openai], |_| {})
        .await;
    let key_of = |v: CheckResponse| match v {
        CheckResponse::Allow { key, .. } => key,
        other => panic!("not an allow: {other:?}"),
    };
    // The options' start-up keys until the first reload.
    assert_eq!(key_of(app.check(&hash, Openai).await), common::OPENAI_KEY);

    let admin = app.login().await;
    let r = admin
        .send(Method::POST, "/admin/api/keys/reload", None)
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"providers": ["openai"], "keys_file": true})
    );
    assert_eq!(key_of(app.check(&hash, Openai).await), "sk-first");
    // The dashboard shows the reloaded key set (only OpenAI now), never a key.
    let page = admin.get("/admin").await.text().await.unwrap();
    assert!(page.contains(r#"class="pill key-on openai""#), "{page}");
    assert!(page.contains(r#"class="pill key-off anthropic""#), "{page}");
    assert!(!page.contains("sk-first"));

    // A broken file: 500 naming the line, never the value; the old key keeps working.
    std::fs::write(&file, "OPENAI_API_KEY=sk-second\nsk-pasted-by-mistake\n").unwrap();
    let r = admin
        .send(Method::POST, "/admin/api/keys/reload", None)
        .await;
    let (status, code, message) = error_of(r).await;
    assert_eq!(
        (status.as_u16(), code.as_str()),
        (500, "keys_reload_failed")
    );
    assert!(
        message.contains("line 2") && !message.contains("sk-"),
        "{message}"
    );
    assert_eq!(key_of(app.check(&hash, Openai).await), "sk-first");

    // Without the session's CSRF token, no reload.
    let r = admin
        .client
        .post(admin.url("/admin/api/keys/reload"))
        .header("cookie", &admin.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // SIGHUP to this process reloads too.
    std::fs::write(&file, "OPENAI_API_KEY=sk-third\n").unwrap();
    // SAFETY-free: `kill` on our own pid through the standard tool, no libc binding needed.
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut key = String::new();
    for _ in 0..100 {
        key = key_of(app.check(&hash, Openai).await);
        if key == "sk-third" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(key, "sk-third");

    let text = reqwest::get(format!("http://{}/metrics", app.metrics_addr.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("ptk_admin_actions_total{action=\"keys_reload\",result=\"ok\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("ptk_admin_actions_total{action=\"keys_reload\",result=\"error\"} 1"),
        "{text}"
    );
}
