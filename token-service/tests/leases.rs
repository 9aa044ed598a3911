//! Rate-limit leases and usage reports through the running service.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use ptk_wire::Provider::Openai;
use ptk_wire::{CheckResponse, DenyReason, USAGE_PATH};
use token_service::ratelimit::RateLimit;

fn lease_of(r: &CheckResponse) -> (u32, u64) {
    match r {
        CheckResponse::Allow { lease, .. } => lease.map_or((0, 0), |l| (l.units, l.window)),
        other => panic!("expected allow, got {other:?}"),
    }
}

#[tokio::test]
async fn leased_units_count_against_the_limit_exactly() {
    let app = spawn_app().await;
    let hash = app
        .add_token("ptk_leased_token_0001", &[Openai], |r| {
            r.rate_limit = Some(RateLimit {
                limit: 100,
                window_s: 60,
            })
        })
        .await;
    let mut allowed = 0;
    for _ in 0..200 {
        match app.check(&hash, Openai).await {
            r @ CheckResponse::Allow { .. } => allowed += 1 + lease_of(&r).0,
            CheckResponse::Deny {
                reason: DenyReason::RateLimited,
                ..
            } => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(allowed, 100);
}

#[tokio::test]
async fn no_cache_means_no_lease() {
    let app = spawn_app_with(Options {
        cache_ttl_ms: 0,
        ..Options::default()
    })
    .await;
    let hash = app
        .add_token("ptk_uncached_token_01", &[Openai], |_| {})
        .await;
    assert_eq!(lease_of(&app.check(&hash, Openai).await), (0, 0));
}

#[tokio::test]
async fn returned_units_are_credited_back() {
    let app = spawn_app().await;
    let hash = app
        .add_token("ptk_returning_token_1", &[Openai], |r| {
            r.rate_limit = Some(RateLimit {
                limit: 9,
                window_s: 60,
            })
        })
        .await;
    let (units, window) = lease_of(&app.check(&hash, Openai).await);
    assert_eq!(units, 2, "(9 - 1) / 4");
    // Spend the rest of the window: 6 more single checks (leases 1, 1, 0...).
    let mut used = 1 + units;
    while used < 9 {
        used += 1 + lease_of(&app.check(&hash, Openai).await).0;
    }
    assert!(matches!(
        app.check(&hash, Openai).await,
        CheckResponse::Deny { .. }
    ));
    // The first lease expired unspent: handing it back makes room for two more requests.
    let body = format!(
        r#"{{"hash":"{hash}","provider":"openai","returned":{{"units":{units},"window":{window}}}}}"#
    );
    let answer: CheckResponse = serde_json::from_str(
        &app.post_check(body, Some(SECRET))
            .await
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(matches!(answer, CheckResponse::Allow { .. }), "{answer:?}");
}

#[tokio::test]
async fn usage_reports_need_the_secret_and_stamp_last_used() {
    let app = spawn_app().await;
    let hash = app
        .add_token("ptk_reported_token_01", &[Openai], |_| {})
        .await;
    let body = format!(r#"{{"entries":[{{"hash":"{hash}","count":5}}]}}"#);
    let url = app.url(USAGE_PATH);
    let refused = app
        .client
        .post(&url)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let bad = app
        .client
        .post(&url)
        .header(ptk_wire::CHECK_SECRET_HEADER, SECRET)
        .body(r#"{"entries":[{"hash":"nope","count":1}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let ok = app
        .client
        .post(&url)
        .header(ptk_wire::CHECK_SECRET_HEADER, SECRET)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 204);
    for _ in 0..50 {
        let stamped: Option<String> = rusqlite::Connection::open(&app.db_path)
            .unwrap()
            .query_row("SELECT at FROM last_used WHERE hash = ?1", [&hash], |r| {
                r.get(0)
            })
            .ok();
        if stamped.is_some() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("usage report did not stamp last_used");
}
