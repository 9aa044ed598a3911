//! The rate-limiter contract (`token_service::ratelimit`'s module docs), written once and run
//! against both backends: the in-memory limiter, and the Redis limiter against a real
//! `redis-server` started on a free loopback port (never skipped). Each case becomes a test
//! per backend (`memory::case`, `redis::case`), so a divergence names the backend.
//!
//! Windows are timed by each backend's own clock (Redis's `TIME`), so the cases that cross a
//! window boundary use one-second windows and sleep past them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::redis_server::{start_redis, Redis};
use token_service::ratelimit::{
    Acquired, InMemoryRateLimiter, RateDecision, RateLimit, RateLimiter, RedisRateLimiter,
    MAX_WINDOW_S,
};

/// A backend under test: `limiter`, and `replica`, a second handle on the same windows (the
/// same instance in memory; a second connection, as another replica has, for Redis).
struct Backend {
    limiter: Arc<dyn RateLimiter>,
    replica: Arc<dyn RateLimiter>,
    _redis: Option<Redis>,
}

async fn memory() -> Backend {
    let limiter: Arc<dyn RateLimiter> = Arc::new(InMemoryRateLimiter::new());
    Backend {
        replica: limiter.clone(),
        limiter,
        _redis: None,
    }
}

async fn redis() -> Backend {
    let redis = start_redis();
    Backend {
        limiter: Arc::new(RedisRateLimiter::connect(&redis.url).await.unwrap()),
        replica: Arc::new(RedisRateLimiter::connect(&redis.url).await.unwrap()),
        _redis: Some(redis),
    }
}

const fn quota(limit: u32, window_s: u32) -> RateLimit {
    RateLimit { limit, window_s }
}

/// `(lease, window, window_left_ms)` of an allow; panics on a limit.
async fn allowed(b: &Backend, key: &str, q: RateLimit, max_lease: u32) -> (u32, u64, u64) {
    match b.limiter.acquire(key, q, max_lease).await.unwrap() {
        Acquired::Allowed {
            lease,
            window,
            window_left_ms,
        } => (lease, window, window_left_ms),
        other => panic!("{key}: expected an allow, got {other:?}"),
    }
}

async fn hit(b: &Backend, key: &str, q: RateLimit) -> RateDecision {
    b.limiter.hit(key, q).await.unwrap()
}

/// Plain hits allowed before the first limit (at most 10,000).
async fn drain(b: &Backend, key: &str, q: RateLimit) -> u32 {
    let mut allowed = 0;
    while hit(b, key, q).await == RateDecision::Allowed && allowed < 10_000 {
        allowed += 1;
    }
    allowed
}

/// The window starts at the key's first hit, not on a clock boundary: with an hour-long
/// window, an epoch-aligned limiter would have a full hour left only in the first second of
/// the hour.
async fn the_first_hit_starts_the_window(b: Backend) {
    let (_, _, left) = allowed(&b, "k", quota(5, 3600), 0).await;
    assert!((3_599_000..=3_600_000).contains(&left), "{left}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, _, left) = allowed(&b, "fresh", quota(5, 3600), 0).await;
    assert!((3_599_000..=3_600_000).contains(&left), "{left}");
}

/// The limit is exact, and `Retry-After` is the window's time left rounded up.
async fn limits_after_the_quota_with_the_time_left(b: Backend) {
    let q = quota(3, 60);
    for _ in 0..3 {
        assert_eq!(hit(&b, "k", q).await, RateDecision::Allowed);
    }
    assert_eq!(
        hit(&b, "k", q).await,
        RateDecision::Limited { retry_after_s: 60 }
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        hit(&b, "k", q).await,
        RateDecision::Limited { retry_after_s: 59 },
        "58.8 s left, rounded up"
    );
}

/// After a window ends, the next hit opens a new one (a new id, the full count again), and the
/// last second of a window answers `Retry-After: 1`, never 0.
async fn a_new_window_starts_after_the_last_ended(b: Backend) {
    let q = quota(2, 1);
    let (_, first, left) = allowed(&b, "k", q, 0).await;
    assert!(left <= 1000, "{left}");
    assert_eq!(hit(&b, "k", q).await, RateDecision::Allowed);
    assert_eq!(
        hit(&b, "k", q).await,
        RateDecision::Limited { retry_after_s: 1 }
    );
    tokio::time::sleep(Duration::from_millis(left + 100)).await;
    let (_, second, left) = allowed(&b, "k", q, 0).await;
    assert_ne!(first, second);
    assert!((900..=1000).contains(&left), "{left}");
    assert_eq!(hit(&b, "k", q).await, RateDecision::Allowed);
    assert!(matches!(
        hit(&b, "k", q).await,
        RateDecision::Limited { .. }
    ));
}

/// Leases are a quarter of what is left (capped by `max_lease`), shrink towards the limit, and
/// are counted when granted: requests plus leased units are exactly the limit.
async fn leases_count_against_the_limit_exactly(b: Backend) {
    let q = quota(100, 60);
    let mut units = 0;
    let mut leases = vec![];
    while let Acquired::Allowed { lease, .. } = b.limiter.acquire("k", q, 1000).await.unwrap() {
        units += 1 + lease;
        leases.push(lease);
    }
    assert_eq!(units, 100);
    assert_eq!(leases.first(), Some(&24), "(100 - 1) / 4");
    assert!(leases.windows(2).all(|w| w[1] <= w[0]), "{leases:?}");
    assert_eq!(leases.last(), Some(&0));
    assert_eq!(allowed(&b, "capped", q, 5).await.0, 5);
    assert_eq!(allowed(&b, "none", q, 0).await.0, 0);
}

/// Unspent units handed back count again in their own window; a credit for any other window
/// id, or for a window that has ended, changes nothing; a credit never frees more than used.
async fn credits_count_only_in_their_window(b: Backend) {
    let q = quota(100, 60);
    let (lease, window, _) = allowed(&b, "k", q, 1000).await;
    assert_eq!(lease, 24);
    assert_eq!(drain(&b, "k", q).await, 75);
    b.limiter.credit("k", window, 24).await.unwrap();
    b.limiter
        .credit("k", window.wrapping_add(1), 50)
        .await
        .unwrap();
    b.limiter.credit("other", window, 50).await.unwrap();
    assert_eq!(drain(&b, "k", q).await, 24);
    b.limiter.credit("k", window, u32::MAX).await.unwrap();
    assert_eq!(drain(&b, "k", q).await, 100, "back to empty, not below");

    let short = quota(9, 1);
    let (lease, old, left) = allowed(&b, "s", short, 100).await;
    assert_eq!(lease, 2, "(9 - 1) / 4");
    tokio::time::sleep(Duration::from_millis(left + 100)).await;
    allowed(&b, "s", short, 100).await;
    b.limiter.credit("s", old, 3).await.unwrap();
    assert_eq!(
        drain(&b, "s", short).await,
        6,
        "the old window's credit is ignored"
    );
}

/// Keys count separately.
async fn keys_are_independent(b: Backend) {
    let q = quota(1, 10);
    assert_eq!(hit(&b, "a", q).await, RateDecision::Allowed);
    assert_eq!(
        hit(&b, "a", q).await,
        RateDecision::Limited { retry_after_s: 10 }
    );
    assert_eq!(hit(&b, "b", q).await, RateDecision::Allowed);
}

/// A quota whose window length changed (a reconfigured default) starts a fresh window.
async fn a_changed_window_length_starts_over(b: Backend) {
    assert_eq!(hit(&b, "k", quota(1, 60)).await, RateDecision::Allowed);
    assert_eq!(hit(&b, "k", quota(1, 5)).await, RateDecision::Allowed);
    assert_eq!(
        hit(&b, "k", quota(1, 5)).await,
        RateDecision::Limited { retry_after_s: 5 }
    );
}

/// Quotas the input refuses (windows over `MAX_WINDOW_S`, zero limits or windows) never reach
/// a limiter from the CLI, settings or admin API; a record edited by hand could carry one, and
/// then both backends count it the same way: long windows exactly, credits included.
async fn quotas_outside_the_input_bounds_count_the_same(b: Backend) {
    for window_s in [MAX_WINDOW_S + 1, u32::MAX] {
        let q = quota(5, window_s);
        let key = format!("long{window_s}");
        let (lease, window, left) = allowed(&b, &key, q, 10).await;
        assert_eq!(lease, 1, "(5 - 1) / 4");
        assert!(u64::from(window_s) * 1000 - left < 1000, "{left}");
        b.limiter.credit(&key, window, 1).await.unwrap();
        assert_eq!(drain(&b, &key, q).await, 4);
        assert_eq!(
            hit(&b, &key, q).await,
            RateDecision::Limited {
                retry_after_s: u64::from(window_s)
            }
        );
    }
    assert_eq!(
        hit(&b, "zero-limit", quota(0, 60)).await,
        RateDecision::Limited { retry_after_s: 60 }
    );
    for _ in 0..3 {
        assert_eq!(
            hit(&b, "zero-window", quota(1, 0)).await,
            RateDecision::Allowed,
            "every hit opens a new, empty window"
        );
    }
}

/// Concurrent grants through two handles (two replicas on one Redis) never exceed the limit.
async fn concurrent_grants_never_exceed_the_limit(b: Backend) {
    let q = quota(100, 60);
    let mut tasks = Vec::new();
    for i in 0..60 {
        let limiter = if i % 2 == 0 {
            b.limiter.clone()
        } else {
            b.replica.clone()
        };
        tasks.push(tokio::spawn(async move {
            match limiter.acquire("k", q, 1000).await.unwrap() {
                Acquired::Allowed { lease, .. } => 1 + lease,
                Acquired::Limited { .. } => 0,
            }
        }));
    }
    let mut units = 0;
    for task in tasks {
        units += task.await.unwrap();
    }
    assert_eq!(units, 100);
}

macro_rules! contract {
    ($($case:ident),+ $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::memory().await).await;
                }
            )+
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::redis().await).await;
                }
            )+
        }
    };
}

contract!(
    the_first_hit_starts_the_window,
    limits_after_the_quota_with_the_time_left,
    a_new_window_starts_after_the_last_ended,
    leases_count_against_the_limit_exactly,
    credits_count_only_in_their_window,
    keys_are_independent,
    a_changed_window_length_starts_over,
    quotas_outside_the_input_bounds_count_the_same,
    concurrent_grants_never_exceed_the_limit,
);
