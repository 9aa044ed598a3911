//! Refused provider keys in Redis, against a real `redis-server`: two token-service replicas
//! (two limiter instances on one Redis) agree a key is refused, as soon as either is told, and
//! until when; the refusal lapses when its time is up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::redis_server::start_redis;
use ptk_wire::{KeyEvent, KeyEventKind, Provider};
use token_service::key_health::{fingerprint, KeyHealth, KeyState, REFUSED_TTL_S};
use token_service::key_pools::{parse_list, NamedKey};
use token_service::keys::ProviderKeys;
use token_service::ratelimit::{RateLimiter, RedisRateLimiter};

fn names(keys: Vec<&NamedKey>) -> Vec<String> {
    keys.iter().map(|k| k.id.clone()).collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn two_replicas_agree_a_key_is_refused_and_the_refusal_lapses() {
    let redis = start_redis();
    let a = Arc::new(RedisRateLimiter::connect(&redis.url).await.unwrap());
    let b = Arc::new(RedisRateLimiter::connect(&redis.url).await.unwrap());
    let pool = parse_list("[one]sk-key-aaaa1111,[two]sk-key-bbbb2222", "K").unwrap();
    let keys = ProviderKeys::none().with_pool(Provider::Openai, None, pool.clone());
    let replica_a = KeyHealth::new(a.clone());
    let replica_b = KeyHealth::new(b.clone());
    assert_eq!(
        names(replica_b.usable(Provider::Openai, &pool).await),
        ["one", "two"]
    );

    // A filter's report reaches replica A; replica B stops handing the key out at once.
    let refused = KeyEvent {
        provider: Provider::Openai,
        key: "two".into(),
        event: KeyEventKind::Refused,
        cooling_ms: None,
    };
    let before = unix_now();
    replica_a.report(&keys, &[refused]).await;
    assert_eq!(
        names(replica_b.usable(Provider::Openai, &pool).await),
        ["one"]
    );
    let refs: Vec<&NamedKey> = pool.iter().collect();
    let states = replica_b.states(Provider::Openai, &refs).await;
    assert_eq!(states[0], KeyState::Usable);
    let KeyState::Refused { until_s } = states[1] else {
        panic!("{states:?}")
    };
    let end = before + REFUSED_TTL_S;
    assert!((end..=end + 2).contains(&until_s), "{until_s} vs {end}");
    // Redis holds a fingerprint, never the key.
    let mut conn = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(stored.iter().all(|k| !k.contains("bbbb2222")), "{stored:?}");

    // A short refusal written by B lapses for A when its time is up.
    let print = fingerprint(pool[0].secret());
    b.refuse_key(&print, 1).await.unwrap();
    assert!(a.refused_until(std::slice::from_ref(&print)).await.unwrap()[0].is_some());
    assert_eq!(
        names(replica_a.usable(Provider::Openai, &pool).await),
        [] as [String; 0]
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(a.refused_until(&[print]).await.unwrap(), [None]);
    assert_eq!(
        names(replica_a.usable(Provider::Openai, &pool).await),
        ["one"]
    );
}
