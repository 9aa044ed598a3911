//! Black-box tests of `POST /v1/check` and `GET /healthz`: the real app on port 0, a fresh
//! temp database each, every decision branch.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use common::*;
use ptk_wire::{CheckResponse, DenyReason, Provider};
use token_service::expiry::format_timestamp;
use token_service::ratelimit::RateLimit;
use token_service::ratelimit::{Acquired, RateLimitError, RateLimiter};
use token_service::store::{TokenStatus, TokenStore};

use DenyReason::*;
use Provider::*;

#[tokio::test]
async fn healthz_is_ok_while_the_store_answers() {
    let app = spawn_app().await;
    let response = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok");
    app.sql("DROP TABLE last_used; DROP TABLE tokens;");
    let response = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(response.status(), 503);
}

#[tokio::test]
async fn missing_or_wrong_secret_is_401_with_a_plain_body() {
    let app = spawn_app().await;
    let hash = app
        .add_token("ptk_secret_test_token", &[Openai], |_| {})
        .await;
    let body = format!(r#"{{"hash":"{hash}","provider":"openai"}}"#);
    for secret in [
        None,
        Some("wrong"),
        Some("test-check-secret-012345678"),
        Some(""),
    ] {
        let response = app.post_check(body.clone(), secret).await;
        assert_eq!(response.status(), 401, "{secret:?}");
        let text = response.text().await.unwrap();
        assert_eq!(text, "missing or wrong check secret\n");
        assert!(!text.contains(OPENAI_KEY));
    }
    // Checked before the body: garbage with no secret is still 401, not 400.
    assert_eq!(app.post_check("{", None).await.status(), 401);
}

#[tokio::test]
async fn malformed_requests_are_400() {
    let app = spawn_app().await;
    let good_hash = "a".repeat(64);
    for body in [
        "".to_owned(),
        "not json".to_owned(),
        "{}".to_owned(),
        format!(r#"{{"hash":"{good_hash}"}}"#),
        format!(r#"{{"hash":"{good_hash}","provider":"azure"}}"#),
        format!(r#"{{"hash":"{}","provider":"openai"}}"#, "A".repeat(64)),
        format!(r#"{{"hash":"{}","provider":"openai"}}"#, "a".repeat(63)),
        r#"{"hash":"ptk_plaintext_token","provider":"openai"}"#.to_owned(),
    ] {
        let response = app.post_check(body.clone(), Some(SECRET)).await;
        assert_eq!(response.status(), 400, "{body}");
    }
}

/// Rolling upgrades: a newer filter may send fields this service does not know (at the top
/// and inside `returned`); they are ignored and the check is answered as usual.
#[tokio::test]
async fn a_check_request_with_unknown_fields_is_answered() {
    let app = spawn_app().await;
    let hash = app
        .add_token("ptk_newer_filter_token", &[Openai], |_| {})
        .await;
    for (hash, want_allow) in [(hash.as_str(), true), (&*"0".repeat(64), false)] {
        let body = format!(
            r#"{{"hash":"{hash}","provider":"openai","model":"gpt-5","returned":{{"units":0,"window":1,"spent":2}}}}"#
        );
        let response = app.post_check(body.clone(), Some(SECRET)).await;
        assert_eq!(response.status(), 200, "{body}");
        let verdict: CheckResponse = response.json().await.unwrap();
        match verdict {
            CheckResponse::Allow { key, .. } => {
                assert!(want_allow, "{body}");
                assert_eq!(key, OPENAI_KEY);
            }
            other => assert_eq!(other, deny(Invalid), "{body}"),
        }
    }
}

#[tokio::test]
async fn unknown_and_disabled_tokens_are_invalid() {
    let app = spawn_app().await;
    assert_eq!(app.check(&"0".repeat(64), Openai).await, deny(Invalid));
    let hash = app
        .add_token("ptk_disabled_token_x", &[Openai], |r| {
            r.status = TokenStatus::Disabled
        })
        .await;
    assert_eq!(app.check(&hash, Openai).await, deny(Invalid));
}

#[tokio::test]
async fn a_malformed_expiry_fails_closed() {
    let app = spawn_app().await;
    let hash = app
        .add_token("ptk_bad_expiry_token", &[Openai], |_| {})
        .await;
    app.sql(&format!(
        "UPDATE tokens SET expires_at = 'next tuesday' WHERE hash = '{hash}'"
    ));
    assert_eq!(app.check(&hash, Openai).await, deny(Invalid));
}

#[tokio::test]
async fn expiry_now_or_past_is_expired() {
    let app = spawn_app().await;
    let now = app
        .add_token("ptk_expires_right_now", &[Openai], |r| {
            r.expires_at = Some(format_timestamp(Utc::now()))
        })
        .await;
    let past = app
        .add_token("ptk_expired_last_year", &[Openai], |r| {
            r.expires_at = Some("2025-01-01T00:00:00.000Z".into())
        })
        .await;
    assert_eq!(app.check(&now, Openai).await, deny(Expired));
    assert_eq!(app.check(&past, Openai).await, deny(Expired));
}

#[tokio::test]
async fn precedence_disabled_beats_expired_beats_scope() {
    let app = spawn_app().await;
    let disabled_expired = app
        .add_token("ptk_disabled_and_expired", &[Openai], |r| {
            r.status = TokenStatus::Disabled;
            r.expires_at = Some("2025-01-01T00:00:00.000Z".into());
        })
        .await;
    assert_eq!(app.check(&disabled_expired, Openai).await, deny(Invalid));
    let expired_other = app
        .add_token("ptk_expired_wrong_provider", &[Openai], |r| {
            r.expires_at = Some("2025-01-01T00:00:00.000Z".into());
        })
        .await;
    assert_eq!(app.check(&expired_other, Anthropic).await, deny(Expired));
}

#[tokio::test]
async fn provider_outside_scope_is_scope() {
    let app = spawn_app().await;
    let hash = app
        .add_token("ptk_openai_only_token", &[Openai], |_| {})
        .await;
    assert_eq!(app.check(&hash, Anthropic).await, deny(ProviderNotAllowed));
    assert_eq!(app.check(&hash, Gemini).await, deny(ProviderNotAllowed));
}

#[tokio::test]
async fn a_provider_without_a_key_is_unconfigured() {
    let app = spawn_app().await;
    let hash = app
        .add_token("ptk_gemini_scoped_token", &[Gemini, Openai], |_| {})
        .await;
    assert_eq!(app.check(&hash, Gemini).await, deny(ProviderUnconfigured));
    assert!(matches!(
        app.check(&hash, Openai).await,
        CheckResponse::Allow { .. }
    ));
}

#[tokio::test]
async fn allow_carries_the_real_key_and_round_trips_the_wire_type() {
    let app = spawn_app().await;
    let hash = app
        .add_token("ptk_allowed_token_abc", &[Openai, Anthropic], |_| {})
        .await;
    let body = format!(r#"{{"hash":"{hash}","provider":"anthropic"}}"#);
    let response = app.post_check(body, Some(SECRET)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let text = response.text().await.unwrap();
    let parsed: CheckResponse = serde_json::from_str(&text).unwrap();
    match &parsed {
        CheckResponse::Allow {
            key,
            cache_ttl_ms,
            lease: Some(lease),
            limits: None,
            ..
        } => {
            assert_eq!(key, ANTHROPIC_KEY);
            assert_eq!(*cache_ttl_ms, 1000);
            assert_eq!(
                lease.units, 24,
                "a quarter of the 99 left of the default 100"
            );
        }
        other => panic!("expected an allow with a lease, got {other:?}"),
    }
    let again: serde_json::Value = serde_json::to_value(&parsed).unwrap();
    assert_eq!(
        again,
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    );
}

#[tokio::test]
async fn cache_ttl_is_capped_at_the_expiry() {
    let app = spawn_app_with(Options {
        cache_ttl_ms: 60_000,
        ..Options::default()
    })
    .await;
    let soon = app
        .add_token("ptk_expires_in_a_few_s", &[Openai], |r| {
            r.expires_at = Some(format_timestamp(Utc::now() + chrono::Duration::seconds(5)))
        })
        .await;
    match app.check(&soon, Openai).await {
        CheckResponse::Allow { cache_ttl_ms, .. } => {
            assert!(cache_ttl_ms > 0 && cache_ttl_ms <= 5_000, "{cache_ttl_ms}")
        }
        other => panic!("expected allow, got {other:?}"),
    }
    let later = app
        .add_token("ptk_expires_next_year", &[Openai], |r| {
            r.expires_at = Some(format_timestamp(Utc::now() + chrono::Duration::days(365)))
        })
        .await;
    match app.check(&later, Openai).await {
        CheckResponse::Allow { cache_ttl_ms, .. } => assert_eq!(cache_ttl_ms, 60_000),
        other => panic!("expected allow, got {other:?}"),
    }
}

#[tokio::test]
async fn the_fourth_request_over_3_per_60_is_rate_limited() {
    let app = spawn_app().await;
    let hash = app
        .add_token("ptk_three_per_minute", &[Openai], |r| {
            r.rate_limit = Some(RateLimit {
                limit: 3,
                window_s: 60,
            })
        })
        .await;
    // Denials before the limiter never consume quota.
    for _ in 0..5 {
        assert_eq!(app.check(&hash, Anthropic).await, deny(ProviderNotAllowed));
    }
    for i in 0..3 {
        assert!(
            matches!(app.check(&hash, Openai).await, CheckResponse::Allow { .. }),
            "request {i}"
        );
    }
    match app.check(&hash, Openai).await {
        CheckResponse::Deny {
            reason: RateLimited,
            retry_after_s: Some(s),
            ..
        } => assert!((1..=60).contains(&s), "{s}"),
        other => panic!("expected rate_limited, got {other:?}"),
    }
}

#[tokio::test]
async fn tokens_without_a_limit_use_the_default() {
    let app = spawn_app_with(Options {
        default_rate_limit: RateLimit {
            limit: 2,
            window_s: 30,
        },
        ..Options::default()
    })
    .await;
    let hash = app
        .add_token("ptk_default_limit_tok", &[Openai], |_| {})
        .await;
    for _ in 0..2 {
        assert!(matches!(
            app.check(&hash, Openai).await,
            CheckResponse::Allow { .. }
        ));
    }
    assert!(matches!(
        app.check(&hash, Openai).await,
        CheckResponse::Deny {
            reason: RateLimited,
            retry_after_s: Some(1..=30),
            ..
        }
    ));
}

#[tokio::test]
async fn a_store_failure_is_store_unavailable() {
    let app = spawn_app().await;
    let hash = app
        .add_token("ptk_store_goes_away", &[Openai], |_| {})
        .await;
    app.sql("DROP TABLE last_used; DROP TABLE tokens;");
    assert_eq!(app.check(&hash, Openai).await, deny(StoreUnavailable));
}

struct FailingLimiter;

#[async_trait]
impl RateLimiter for FailingLimiter {
    async fn acquire(
        &self,
        _key: &str,
        _quota: RateLimit,
        _max_lease: u32,
    ) -> Result<Acquired, RateLimitError> {
        Err(RateLimitError("counter backend down".into()))
    }
}

#[tokio::test]
async fn a_failing_rate_limiter_fails_open() {
    let app = spawn_app_with(Options {
        limiter: Arc::new(FailingLimiter),
        default_rate_limit: RateLimit {
            limit: 1,
            window_s: 60,
        },
        ..Options::default()
    })
    .await;
    let hash = app
        .add_token("ptk_limiter_is_broken", &[Openai], |_| {})
        .await;
    for _ in 0..3 {
        assert_eq!(
            app.check(&hash, Openai).await,
            CheckResponse::Allow {
                key: OPENAI_KEY.into(),
                cache_ttl_ms: 1000,
                lease: None,
                limits: None,
                pool: Vec::new(),
            }
        );
    }
    // Failing open applies only after validation: bad tokens are still denied.
    assert_eq!(app.check(&hash, Gemini).await, deny(ProviderNotAllowed));
}

async fn last_used_of(app: &TestApp, hash: &str) -> Option<String> {
    app.store
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.record.hash == hash)
        .and_then(|l| l.last_used)
}

async fn wait_for_last_used(app: &TestApp, hash: &str) -> String {
    for _ in 0..100 {
        if let Some(at) = last_used_of(app, hash).await {
            return at;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("last_used was never stamped");
}

#[tokio::test]
async fn allow_stamps_last_used_once_per_minute_without_touching_the_record() {
    let app = spawn_app().await;
    let hash = app
        .add_token("ptk_stamped_on_allow", &[Openai], |_| {})
        .await;
    let before = app.store.get(&hash).await.unwrap().unwrap();
    assert_eq!(app.check(&hash, Anthropic).await, deny(ProviderNotAllowed));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        last_used_of(&app, &hash).await,
        None,
        "denials are not uses"
    );

    assert!(matches!(
        app.check(&hash, Openai).await,
        CheckResponse::Allow { .. }
    ));
    let first = wait_for_last_used(&app, &hash).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(matches!(
        app.check(&hash, Openai).await,
        CheckResponse::Allow { .. }
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(last_used_of(&app, &hash).await, Some(first), "throttled");
    assert_eq!(app.store.get(&hash).await.unwrap().unwrap(), before);
}

#[tokio::test]
async fn a_stamp_never_resurrects_a_deleted_token() {
    let app = spawn_app().await;
    let hash = app
        .add_token("ptk_deleted_after_use", &[Openai], |_| {})
        .await;
    assert!(matches!(
        app.check(&hash, Openai).await,
        CheckResponse::Allow { .. }
    ));
    wait_for_last_used(&app, &hash).await;
    assert!(app.store.delete(&hash).await.unwrap());
    // A stamp arriving after the delete (as a slow background write would) is dropped.
    app.store
        .stamp_last_used(&hash, "2030-01-01T00:00:00.000Z")
        .await
        .unwrap();
    assert_eq!(app.store.get(&hash).await.unwrap(), None);
    assert!(app.store.list().await.unwrap().is_empty());
    assert_eq!(app.check(&hash, Openai).await, deny(Invalid));
    let conn = rusqlite::Connection::open(&app.db_path).unwrap();
    let orphans: i64 = conn
        .query_row("SELECT count(*) FROM last_used", [], |r| r.get(0))
        .unwrap();
    assert_eq!(orphans, 0);
}
