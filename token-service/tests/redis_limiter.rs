//! The Redis rate limiter against a real `redis-server` started on a free loopback port: two
//! limiter instances (two token-service replicas) sharing one window never grant more than
//! the limit, leases included; credits land only in their window; a dead Redis is an error
//! (the check API fails open on it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::redis_server::start_redis;
use token_service::ratelimit::RateLimit;
use token_service::ratelimit::RedisRateLimiter;
use token_service::ratelimit::{Acquired, RateLimiter};

const LIMIT: RateLimit = RateLimit {
    limit: 100,
    window_s: 60,
};

async fn granted(limiter: &RedisRateLimiter, key: &str) -> Option<(u32, u64)> {
    match limiter.acquire(key, LIMIT, 1000).await.unwrap() {
        Acquired::Allowed { lease, window, .. } => Some((1 + lease, window)),
        Acquired::Limited { retry_after_s } => {
            assert!((1..=60).contains(&retry_after_s));
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_never_grant_more_than_the_limit() {
    let redis = start_redis();
    let a = std::sync::Arc::new(RedisRateLimiter::connect(&redis.url).await.unwrap());
    let b = std::sync::Arc::new(RedisRateLimiter::connect(&redis.url).await.unwrap());
    let mut tasks = Vec::new();
    for i in 0..60 {
        let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move { granted(&limiter, "tok").await }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap().map_or(0, |(units, _)| units);
    }
    assert_eq!(
        total, 100,
        "requests plus leased units, across both replicas"
    );
    assert!(granted(&a, "tok").await.is_none());
    assert!(granted(&b, "other").await.is_some(), "keys are independent");
}

#[tokio::test]
async fn credits_return_units_to_their_window_only() {
    let redis = start_redis();
    let limiter = RedisRateLimiter::connect(&redis.url).await.unwrap();
    let (first, window) = granted(&limiter, "k").await.unwrap();
    assert_eq!(first, 1 + 24);
    let mut used = first;
    while let Some((units, _)) = granted(&limiter, "k").await {
        used += units;
    }
    assert_eq!(used, 100);
    limiter.credit("k", window, 24).await.unwrap();
    assert!(
        granted(&limiter, "k").await.is_some(),
        "credited units are usable again"
    );
    // A credit for a window that is not this one changes nothing.
    limiter.credit("k", window + (1 << 20), 50).await.unwrap();
    let mut again = 0;
    while let Some((units, _)) = granted(&limiter, "k").await {
        again += units;
    }
    assert!(again < 24, "{again}");
}

#[tokio::test]
async fn a_dead_redis_is_an_error_not_a_verdict() {
    let redis = start_redis();
    let limiter = RedisRateLimiter::connect(&redis.url).await.unwrap();
    drop(redis);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(limiter.acquire("k", LIMIT, 10).await.is_err());
}
