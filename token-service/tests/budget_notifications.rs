//! Budget threshold notifications: delivered once, signed, retried, never blocking, and sent
//! once across replicas (claims in memory and in a real Redis).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac as _};
use ptk_wire::{BudgetKind, BudgetPeriod};
use secrecy::SecretString;
use serde_json::Value;
use sha2::Sha256;
use token_service::metrics::Metrics;
use token_service::notify::{
    BudgetEvent, BudgetScope, Claims, MemoryClaims, Notifier, RedisClaims, WebhookSettings,
    SIGNATURE_HEADER,
};

use common::redis_server::start_redis;

/// What the receiver saw, and the statuses it answers in turn (then 200).
#[derive(Default)]
struct Receiver {
    bodies: Vec<(Value, Option<String>)>,
    answers: Vec<u16>,
    hang: bool,
}

type Shared = Arc<Mutex<Receiver>>;

async fn receive(State(shared): State<Shared>, headers: HeaderMap, body: String) -> StatusCode {
    let (status, hang) = {
        let mut r = shared.lock().unwrap();
        let signature = headers
            .get(SIGNATURE_HEADER)
            .map(|v| v.to_str().unwrap().to_owned());
        r.bodies
            .push((serde_json::from_str(&body).unwrap(), signature.clone()));
        if let Some(sig) = &signature {
            assert!(verify(sig, &body), "bad signature {sig}");
        }
        let status = if r.answers.is_empty() {
            200
        } else {
            r.answers.remove(0)
        };
        (status, r.hang)
    };
    if hang {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    StatusCode::from_u16(status).unwrap()
}

const SECRET: &str = "whsec-test-secret";

fn verify(header: &str, body: &str) -> bool {
    let (t, v1) = header.split_once(',').unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let v1 = v1.strip_prefix("v1=").unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    mac.verify_slice(&hex::decode(v1).unwrap()).is_ok()
}

async fn receiver(state: Receiver) -> (String, Shared) {
    let shared: Shared = Arc::new(Mutex::new(state));
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/hook?secret=in-the-url",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, shared)
}

fn settings(url: &str, signed: bool) -> WebhookSettings {
    WebhookSettings {
        url: SecretString::from(url.to_owned()),
        secret: signed.then(|| SecretString::from(SECRET)),
        thresholds: vec![80, 100],
        attempts: 4,
        first_backoff: Duration::from_millis(20),
        timeout: Duration::from_millis(500),
    }
}

fn event(threshold: u8) -> BudgetEvent {
    BudgetEvent {
        scope: BudgetScope::Group {
            group: "research".into(),
        },
        budget: BudgetKind::Tokens,
        period: BudgetPeriod::Day,
        period_id: "2026-11-30".into(),
        threshold_percent: threshold,
        limit: 1000,
        spent: 1000,
        resets_at: "2026-12-01T00:00:00Z".into(),
    }
}

/// Waits until `done` holds for the receiver, or panics after 5 s.
async fn until(shared: &Shared, done: impl Fn(&Receiver) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done(&shared.lock().unwrap()) {
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn counted(metrics: &Metrics, outcome: &str) -> u64 {
    metrics
        .render()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "ptk_budget_notifications_total{{outcome=\"{outcome}\"}} "
            ))
        })
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn a_crossing_is_delivered_signed_once_and_retried_through_transient_failures() {
    let (url, shared) = receiver(Receiver {
        answers: vec![503, 429],
        ..Receiver::default()
    })
    .await;
    let metrics = Arc::new(Metrics::new());
    let claims: Arc<dyn Claims> = Arc::new(MemoryClaims::default());
    let notifier = Notifier::start(settings(&url, true), claims, metrics.clone()).unwrap();
    notifier.notify(event(100));
    notifier.notify(event(100)); // the same crossing again: this replica queued it already
    until(&shared, |r| r.bodies.len() >= 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = shared.lock().unwrap();
    assert_eq!(r.bodies.len(), 3, "two failures, then one delivery");
    let (body, signature) = &r.bodies[2];
    assert!(signature.is_some());
    assert_eq!(body["type"], "budget.threshold");
    assert_eq!(body["scope"], "group");
    assert_eq!(body["group"], "research");
    assert_eq!(body["threshold_percent"], 100);
    assert!(body["text"].as_str().unwrap().contains("has used up 100%"));
    assert_eq!(counted(&metrics, "delivered"), 1);
    assert_eq!(counted(&metrics, "duplicate"), 0, "never reached the claim");
}

#[tokio::test]
async fn a_refusing_webhook_is_not_retried_and_an_unsigned_one_gets_no_signature() {
    let (url, shared) = receiver(Receiver {
        answers: vec![400],
        ..Receiver::default()
    })
    .await;
    let metrics = Arc::new(Metrics::new());
    let notifier = Notifier::start(
        settings(&url, false),
        Arc::new(MemoryClaims::default()),
        metrics.clone(),
    )
    .unwrap();
    notifier.notify(event(80));
    until(&shared, |r| !r.bodies.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = shared.lock().unwrap();
    assert_eq!(r.bodies.len(), 1);
    assert_eq!(r.bodies[0].1, None);
    assert_eq!(counted(&metrics, "failed"), 1);
}

#[tokio::test]
async fn notify_never_waits_on_a_hanging_webhook() {
    let (url, shared) = receiver(Receiver {
        hang: true,
        ..Receiver::default()
    })
    .await;
    let metrics = Arc::new(Metrics::new());
    let notifier = Notifier::start(
        settings(&url, false),
        Arc::new(MemoryClaims::default()),
        metrics.clone(),
    )
    .unwrap();
    let started = Instant::now();
    for n in 0..3000u32 {
        let mut e = event(80);
        e.period_id = format!("p{n}");
        notifier.notify(e);
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "notify waited: {:?}",
        started.elapsed()
    );
    until(&shared, |r| !r.bodies.is_empty()).await;
    assert!(
        counted(&metrics, "dropped") > 0,
        "a full queue drops, never blocks"
    );
}

#[tokio::test]
async fn two_replicas_on_one_redis_send_a_crossing_once() {
    let redis = start_redis();
    let (url, shared) = receiver(Receiver::default()).await;
    let metrics = Arc::new(Metrics::new());
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let claims: Arc<dyn Claims> = Arc::new(RedisClaims::connect(&redis.url).await.unwrap());
        replicas.push(Notifier::start(settings(&url, false), claims, metrics.clone()).unwrap());
    }
    for replica in &replicas {
        replica.notify(event(80));
        replica.notify(event(100));
    }
    until(&shared, |r| r.bodies.len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let thresholds: Vec<Value> = shared
        .lock()
        .unwrap()
        .bodies
        .iter()
        .map(|(b, _)| b["threshold_percent"].clone())
        .collect();
    assert_eq!(thresholds.len(), 2, "{thresholds:?}");
    assert!(thresholds.contains(&Value::from(80)) && thresholds.contains(&Value::from(100)));
    assert_eq!(counted(&metrics, "duplicate"), 2);
}

/// Posts an activity report carrying one usage entry of `input`/`output` tokens for `hash`.
async fn report_usage(app: &common::TestApp, hash: &str, input: u64, output: u64) {
    let body = serde_json::json!({"entries": [], "token_usage": [{
        "hash": hash, "provider": "openai", "api": "chat_completions", "model": "gpt-4o",
        "status": 200, "streamed": false, "requests": 1, "incomplete": 0,
        "usage": {"input": input, "cached_input": 0, "cache_write": 0, "output": output,
                  "reasoning": 0}}]});
    let status = app
        .client
        .post(app.url(ptk_wire::ACTIVITY_PATH))
        .header(ptk_wire::CHECK_SECRET_HEADER, common::SECRET)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
}

fn per_day(limit: u64) -> Option<token_service::budget::PeriodLimit> {
    Some(token_service::budget::PeriodLimit {
        limit,
        period: BudgetPeriod::Day,
    })
}

#[tokio::test]
async fn settled_reports_notify_each_threshold_once_for_the_token_and_its_group() {
    use token_service::budget::{BudgetPatch, Budgets};
    use token_service::store::BudgetStore as _;
    let (url, shared) = receiver(Receiver::default()).await;
    let app = common::spawn_app_with(common::Options {
        budget_webhook: Some(settings(&url, true)),
        ..common::Options::default()
    })
    .await;
    let group = Budgets {
        tokens: per_day(10_000),
        ..Budgets::default()
    };
    app.store
        .create_group("research", &group, "2026-11-30T00:00:00.000Z")
        .await
        .unwrap();
    let hash = app
        .add_token(
            "ptk_notify_test_token_0001",
            &[ptk_wire::Provider::Openai],
            |r| {
                r.label = "alice".into();
            },
        )
        .await;
    let patch = BudgetPatch {
        tokens: Some(per_day(1_000)),
        group: Some(Some("research".into())),
        ..BudgetPatch::default()
    };
    app.store
        .patch_token_budgets(&hash, &patch)
        .await
        .unwrap()
        .unwrap();

    report_usage(&app, &hash, 500, 200).await; // 700 of 1,000: nothing yet
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(shared.lock().unwrap().bodies.is_empty());
    report_usage(&app, &hash, 90, 10).await; // 800: the token's 80 %
    until(&shared, |r| !r.bodies.is_empty()).await;
    report_usage(&app, &hash, 100, 0).await; // 900: nothing new
    report_usage(&app, &hash, 7_000, 100).await; // 8,000: the token's 100 %, the group's 80 %
    until(&shared, |r| r.bodies.len() >= 3).await;
    report_usage(&app, &hash, 10, 0).await; // both still past: nothing new
    tokio::time::sleep(Duration::from_millis(400)).await;

    let seen: Vec<(String, u64)> = shared
        .lock()
        .unwrap()
        .bodies
        .iter()
        .map(|(b, _)| {
            (
                b["scope"].as_str().unwrap().to_owned(),
                b["threshold_percent"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            ("group".to_owned(), 80),
            ("token".to_owned(), 80),
            ("token".to_owned(), 100)
        ],
        "{seen:?}"
    );
    let r = shared.lock().unwrap();
    let token_event = r
        .bodies
        .iter()
        .map(|(b, _)| b)
        .find(|b| b["threshold_percent"] == 100)
        .unwrap();
    assert_eq!(token_event["label"], "alice");
    assert_eq!(token_event["token"], &hash[..12]);
    assert_eq!(token_event["spent"], 8_000);
    assert_eq!(token_event["limit"], 1_000);
    assert_eq!(token_event["period"], "day");
    assert!(
        !serde_json::to_string(token_event).unwrap().contains(&hash),
        "the full hash never leaves"
    );
}
