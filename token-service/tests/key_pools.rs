//! Provider key pools through the real app: the allow carries the token's pool (the default
//! one, or the named pool it is bound to), and a key a filter reports refused is handed out
//! no more.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use ptk_wire::{CheckResponse, Provider, ACTIVITY_PATH, CHECK_SECRET_HEADER};
use token_service::key_pools::parse_list;
use token_service::keys::ProviderKeys;

fn options() -> Options {
    let default = parse_list("[a]sk-pool-key-aaaa,[b]sk-pool-key-bbbb", "K").unwrap();
    let team = parse_list("[t1]sk-team-key-1111", "K").unwrap();
    Options {
        keys: ProviderKeys::none()
            .with_pool(Provider::Openai, None, default)
            .with_pool(Provider::Openai, Some("team_a"), team),
        ..Options::default()
    }
}

fn pool_of(verdict: &CheckResponse) -> (String, Vec<String>) {
    let CheckResponse::Allow { key, pool, .. } = verdict else {
        panic!("{verdict:?}")
    };
    (key.clone(), pool.iter().map(|k| k.id.clone()).collect())
}

#[tokio::test]
async fn a_bound_token_gets_its_pool_and_a_refused_key_is_handed_out_no_more() {
    let app = spawn_app_with(options()).await;
    let free = app
        .add_token("ptk_pool_free_token", &[Provider::Openai], |_| {})
        .await;
    let bound = app
        .add_token("ptk_pool_bound_token", &[Provider::Openai], |r| {
            r.key_pool = Some("team_a".into());
        })
        .await;
    let elsewhere = app
        .add_token("ptk_pool_other_token", &[Provider::Openai], |r| {
            r.key_pool = Some("nobody".into());
        })
        .await;
    let (key, pool) = pool_of(&app.check(&free, Provider::Openai).await);
    assert_eq!(
        (key.as_str(), pool),
        ("sk-pool-key-aaaa", vec!["a".into(), "b".into()])
    );
    // A bound token uses only its own pool (one key: no pool to rotate).
    let (key, pool) = pool_of(&app.check(&bound, Provider::Openai).await);
    assert_eq!((key.as_str(), pool.len()), ("sk-team-key-1111", 0));
    // A pool with no key for the provider is an unconfigured provider, never the default pool.
    assert_eq!(
        app.check(&elsewhere, Provider::Openai).await,
        deny(ptk_wire::DenyReason::ProviderUnconfigured)
    );
    let report =
        r#"{"entries":[],"key_events":[{"provider":"openai","key":"a","event":"refused"}]}"#;
    let response = app
        .client
        .post(app.url(ACTIVITY_PATH))
        .header(CHECK_SECRET_HEADER, SECRET)
        .header("content-type", "application/json")
        .body(report)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (key, pool) = pool_of(&app.check(&free, Provider::Openai).await);
    assert_eq!(
        (key.as_str(), pool.len()),
        ("sk-pool-key-bbbb", 0),
        "a refused key came back"
    );
}
