//! The contract every [`TokenStore`] backend must meet, written once against the trait.
//!
//! A backend's test module calls `token_store_contract!(make_fixture)` where `make_fixture` is
//! an `async fn() -> F` and `F` has a `store` field implementing [`TokenStore`] (the fixture
//! keeps whatever must outlive the test, such as a temp dir). Each case below becomes its own
//! `#[tokio::test]`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use ptk_wire::Provider;

use super::{
    SessionStore, StoreError, TokenPatch, TokenRecord, TokenStatus, TokenStore, UsageStore,
};
use crate::ratelimit::RateLimit;

pub(crate) use super::contract_pages::{
    an_exact_fit_has_no_next_page_and_limits_are_clamped,
    cursors_hold_their_place_while_tokens_come_and_go, pages_cut_the_list_in_its_order,
};

/// A valid record whose hash is `seed` repeated/padded to 64 hex characters.
pub(crate) fn sample_record(seed: &str) -> TokenRecord {
    let mut hash = seed.repeat(64 / seed.len().max(1) + 1);
    hash.truncate(64);
    TokenRecord {
        hash,
        label: "team a".into(),
        last4: "WXYZ".into(),
        providers: vec![Provider::Openai, Provider::Gemini],
        status: TokenStatus::Active,
        created_at: "2026-07-08T12:00:00.000Z".into(),
        expires_at: None,
        rate_limit: None,
        key_pool: None,
        models: None,
    }
}

/// Calls `$then!(args; case, case, ...)` (written `[$then] args`) with every contract case: the one list both runners
/// (a test per case, or all cases on one shared server) use.
macro_rules! with_contract_cases {
    ([$($then:tt)+] $($arg:tt)*) => {
        $($then)+! {$($arg)*;
            ping_answers,
            insert_then_get_round_trips,
            get_of_an_unknown_hash_is_none,
            duplicate_insert_is_refused_and_keeps_the_original,
            list_is_newest_first_with_last_used,
            prefix_lookup_finds_matches_only,
            status_changes_and_reports_missing,
            expiry_is_set_cleared_and_reports_missing,
            delete_removes_token_and_stamp,
            stamp_overwrites_and_never_touches_the_record,
            stamp_never_resurrects_a_deleted_token,
            racing_stamps_and_delete_leave_nothing_behind,
            get_listing_carries_the_stamp,
            labels_are_read_in_batches_across_chunks,
            update_writes_only_named_fields,
            update_of_a_missing_token_creates_nothing,
            concurrent_patches_never_resurrect_a_disabled_token,
            patches_racing_a_delete_leave_it_deleted,
            revoked_sessions_are_remembered_until_they_expire,
            usage_adds_up_per_key_and_reads_back_by_token_and_day,
            usage_added_to_a_full_row_stays_saturated_and_readable,
            pages_cut_the_list_in_its_order,
            an_exact_fit_has_no_next_page_and_limits_are_clamped,
            cursors_hold_their_place_while_tokens_come_and_go,
        }
    };
}
pub(crate) use with_contract_cases;

/// Generates one `#[tokio::test]` per contract case for a backend fixture factory.
macro_rules! token_store_contract {
    ($make:ident) => {
        $crate::store::contract::with_contract_cases!(
            [$crate::store::contract::token_store_contract] @cases $make
        );
    };
    (@cases $make:ident; $($case:ident),* $(,)?) => {
        mod contract {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let fixture = super::$make().await;
                    $crate::store::contract::$case(std::sync::Arc::new(fixture.store.clone()))
                        .await;
                }
            )*
        }
    };
}
pub(crate) use token_store_contract;

/// Every contract case by name, for a backend whose fixtures share one server (each case
/// still gets a fresh store from the caller).
pub(crate) fn all_cases() -> Vec<(&'static str, Case)> {
    macro_rules! list {
        (; $($case:ident),* $(,)?) => {
            vec![$((stringify!($case), (|s| Box::pin($case(s))) as Case)),*]
        };
    }
    with_contract_cases!([list])
}

/// One running contract case.
pub(crate) type CaseFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
/// A contract case: given a fresh store, run it.
pub(crate) type Case = fn(Store) -> CaseFuture;

/// What a backend under contract offers: the token, session and usage stores, which share its
/// database (the session and usage cases also check that they never touch tokens).
pub(crate) trait Backend: TokenStore + SessionStore + UsageStore {}
impl<B: TokenStore + SessionStore + UsageStore> Backend for B {}

pub(crate) type Store = Arc<dyn Backend>;

pub(crate) async fn ping_answers(store: Store) {
    store.ping().await.unwrap();
}

pub(crate) async fn insert_then_get_round_trips(store: Store) {
    let mut rec = sample_record("a1");
    rec.providers = vec![Provider::Gemini, Provider::Anthropic];
    rec.expires_at = Some("2030-01-01T00:00:00.000Z".into());
    rec.rate_limit = Some(RateLimit {
        limit: 3,
        window_s: 60,
    });
    rec.label = "ünïcode label".into();
    store.insert(&rec).await.unwrap();
    assert_eq!(store.get(&rec.hash).await.unwrap(), Some(rec));
}

pub(crate) async fn get_of_an_unknown_hash_is_none(store: Store) {
    assert_eq!(store.get(&"0".repeat(64)).await.unwrap(), None);
}

pub(crate) async fn duplicate_insert_is_refused_and_keeps_the_original(store: Store) {
    let rec = sample_record("b2");
    store.insert(&rec).await.unwrap();
    store
        .set_status(&rec.hash, TokenStatus::Disabled)
        .await
        .unwrap();
    let mut again = rec.clone();
    again.label = "intruder".into();
    let err = store.insert(&again).await.unwrap_err();
    assert!(matches!(err, StoreError::Duplicate), "{err}");
    let kept = store.get(&rec.hash).await.unwrap().unwrap();
    assert_eq!(kept.label, "team a");
    assert_eq!(
        kept.status,
        TokenStatus::Disabled,
        "no resurrection by re-insert"
    );
}

pub(crate) async fn list_is_newest_first_with_last_used(store: Store) {
    assert!(store.list().await.unwrap().is_empty());
    let mut old = sample_record("c3");
    old.created_at = "2026-01-01T00:00:00.000Z".into();
    let mut new = sample_record("d4");
    new.created_at = "2026-02-01T00:00:00.000Z".into();
    store.insert(&old).await.unwrap();
    store.insert(&new).await.unwrap();
    store
        .stamp_last_used(&old.hash, "2026-03-01T00:00:00.000Z")
        .await
        .unwrap();
    let list = store.list().await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].record, new);
    assert_eq!(list[0].last_used, None);
    assert_eq!(list[1].record, old);
    assert_eq!(
        list[1].last_used.as_deref(),
        Some("2026-03-01T00:00:00.000Z")
    );
}

pub(crate) async fn prefix_lookup_finds_matches_only(store: Store) {
    for seed in ["abc1", "abc2", "abd3", "f"] {
        store.insert(&sample_record(seed)).await.unwrap();
    }
    let abc = store.hashes_with_prefix("abc", 10).await.unwrap();
    assert_eq!(abc.len(), 2);
    assert!(abc.iter().all(|h| h.starts_with("abc")));
    assert_eq!(store.hashes_with_prefix("ab", 10).await.unwrap().len(), 3);
    assert_eq!(store.hashes_with_prefix("ab", 2).await.unwrap().len(), 2);
    assert_eq!(
        store
            .hashes_with_prefix("abd3abd3", 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.hashes_with_prefix("ffff", 10).await.unwrap().len(), 1);
    assert!(store
        .hashes_with_prefix("0123", 10)
        .await
        .unwrap()
        .is_empty());
    let full = sample_record("f").hash;
    assert_eq!(
        store.hashes_with_prefix(&full, 10).await.unwrap(),
        vec![full]
    );
}

pub(crate) async fn status_changes_and_reports_missing(store: Store) {
    let rec = sample_record("e5");
    store.insert(&rec).await.unwrap();
    assert!(store
        .set_status(&rec.hash, TokenStatus::Disabled)
        .await
        .unwrap());
    assert_eq!(
        store.get(&rec.hash).await.unwrap().unwrap().status,
        TokenStatus::Disabled
    );
    assert!(store
        .set_status(&rec.hash, TokenStatus::Active)
        .await
        .unwrap());
    assert_eq!(
        store.get(&rec.hash).await.unwrap().unwrap().status,
        TokenStatus::Active
    );
    assert!(!store
        .set_status(&"9".repeat(64), TokenStatus::Disabled)
        .await
        .unwrap());
}

pub(crate) async fn expiry_is_set_cleared_and_reports_missing(store: Store) {
    let rec = sample_record("a6");
    store.insert(&rec).await.unwrap();
    let at = "2031-05-05T05:05:05.000Z";
    assert!(store.set_expiry(&rec.hash, Some(at)).await.unwrap());
    let got = store.get(&rec.hash).await.unwrap().unwrap();
    assert_eq!(got.expires_at.as_deref(), Some(at));
    assert_eq!(got.status, TokenStatus::Active, "only the expiry changes");
    assert!(store.set_expiry(&rec.hash, None).await.unwrap());
    assert_eq!(
        store.get(&rec.hash).await.unwrap().unwrap().expires_at,
        None
    );
    assert!(!store.set_expiry(&"9".repeat(64), Some(at)).await.unwrap());
}

pub(crate) async fn delete_removes_token_and_stamp(store: Store) {
    let rec = sample_record("b7");
    store.insert(&rec).await.unwrap();
    store
        .stamp_last_used(&rec.hash, "2026-03-01T00:00:00.000Z")
        .await
        .unwrap();
    assert!(store.delete(&rec.hash).await.unwrap());
    assert_eq!(store.get(&rec.hash).await.unwrap(), None);
    assert!(
        !store.delete(&rec.hash).await.unwrap(),
        "second delete finds nothing"
    );
    // Re-creating the same hash starts clean: no orphaned stamp comes back.
    store.insert(&rec).await.unwrap();
    assert_eq!(store.list().await.unwrap()[0].last_used, None);
}

pub(crate) async fn stamp_overwrites_and_never_touches_the_record(store: Store) {
    let rec = sample_record("c8");
    store.insert(&rec).await.unwrap();
    store
        .set_status(&rec.hash, TokenStatus::Disabled)
        .await
        .unwrap();
    store
        .stamp_last_used(&rec.hash, "2026-03-01T00:00:00.000Z")
        .await
        .unwrap();
    store
        .stamp_last_used(&rec.hash, "2026-03-02T00:00:00.000Z")
        .await
        .unwrap();
    let list = store.list().await.unwrap();
    assert_eq!(
        list[0].last_used.as_deref(),
        Some("2026-03-02T00:00:00.000Z")
    );
    assert_eq!(list[0].record.status, TokenStatus::Disabled);
}

pub(crate) async fn stamp_never_resurrects_a_deleted_token(store: Store) {
    let rec = sample_record("d9");
    store
        .stamp_last_used(&rec.hash, "2026-03-01T00:00:00.000Z")
        .await
        .unwrap();
    assert_eq!(store.get(&rec.hash).await.unwrap(), None);
    assert!(store.list().await.unwrap().is_empty());
    store.insert(&rec).await.unwrap();
    assert_eq!(
        store.list().await.unwrap()[0].last_used,
        None,
        "a stamp for a missing token is dropped, not kept for later"
    );
}

pub(crate) async fn racing_stamps_and_delete_leave_nothing_behind(store: Store) {
    let rec = sample_record("ea");
    store.insert(&rec).await.unwrap();
    let mut stamps = Vec::new();
    for i in 0..20 {
        let (store, hash) = (store.clone(), rec.hash.clone());
        stamps.push(tokio::spawn(async move {
            let at = format!("2026-03-01T00:00:{i:02}.000Z");
            store.stamp_last_used(&hash, &at).await.unwrap();
        }));
    }
    assert!(store.delete(&rec.hash).await.unwrap());
    for s in stamps {
        s.await.unwrap();
    }
    assert_eq!(store.get(&rec.hash).await.unwrap(), None);
    store.insert(&rec).await.unwrap();
    assert_eq!(store.list().await.unwrap()[0].last_used, None);
}

pub(crate) async fn get_listing_carries_the_stamp(store: Store) {
    let rec = sample_record("1b");
    store.insert(&rec).await.unwrap();
    let listing = store.get_listing(&rec.hash).await.unwrap().unwrap();
    assert_eq!((listing.record, listing.last_used), (rec.clone(), None));
    store
        .stamp_last_used(&rec.hash, "2026-03-01T00:00:00.000Z")
        .await
        .unwrap();
    let listing = store.get_listing(&rec.hash).await.unwrap().unwrap();
    assert_eq!(
        listing.last_used.as_deref(),
        Some("2026-03-01T00:00:00.000Z")
    );
    assert!(store.get_listing(&"0".repeat(64)).await.unwrap().is_none());
}

pub(crate) async fn labels_are_read_in_batches_across_chunks(store: Store) {
    let mut wanted = Vec::new();
    for (n, seed) in ["3a", "3b", "3c"].into_iter().enumerate() {
        let mut rec = sample_record(seed);
        rec.label = format!("label {n}, \"quoted\"");
        store.insert(&rec).await.unwrap();
        wanted.push(rec);
    }
    // More hashes than two chunks hold, the real ones at a chunk's start, middle and end.
    let mut hashes: Vec<String> = (0..1_201).map(|n| format!("{n:064x}")).collect();
    hashes[0].clone_from(&wanted[0].hash);
    hashes[777].clone_from(&wanted[1].hash);
    hashes[1_200].clone_from(&wanted[2].hash);
    let labels = store.labels(&hashes).await.unwrap();
    assert_eq!(labels.len(), 3, "{labels:?}");
    for rec in &wanted {
        assert_eq!(labels.get(&rec.hash), Some(&rec.label));
    }
    assert!(store.labels(&[]).await.unwrap().is_empty());
}

pub(crate) async fn update_writes_only_named_fields(store: Store) {
    let rec = sample_record("2c");
    store.insert(&rec).await.unwrap();
    let quota = RateLimit {
        limit: 7,
        window_s: 30,
    };
    let all = TokenPatch {
        key_pool: Some(Some("team_a".into())),
        status: Some(TokenStatus::Disabled),
        expires_at: Some(Some("2031-01-01T00:00:00.000Z".into())),
        rate_limit: Some(Some(quota)),
        models: Some(Some(vec!["gpt-5*".into(), "gpt-4o".into()])),
    };
    let got = store.update(&rec.hash, &all).await.unwrap().unwrap();
    assert_eq!(got.status, TokenStatus::Disabled);
    assert_eq!(got.models, Some(vec!["gpt-5*".into(), "gpt-4o".into()]));
    assert_eq!(got.expires_at.as_deref(), Some("2031-01-01T00:00:00.000Z"));
    assert_eq!(got.rate_limit, Some(quota));
    assert_eq!(got.key_pool.as_deref(), Some("team_a"));
    assert_eq!(
        store
            .get(&rec.hash)
            .await
            .unwrap()
            .unwrap()
            .key_pool
            .as_deref(),
        Some("team_a")
    );
    assert_eq!(
        (got.label.as_str(), got.created_at.as_str()),
        ("team a", rec.created_at.as_str())
    );
    // Clearing the expiry touches nothing else: the token stays disabled with its quota.
    let clear = TokenPatch {
        expires_at: Some(None),
        ..TokenPatch::default()
    };
    let got = store.update(&rec.hash, &clear).await.unwrap().unwrap();
    assert_eq!(got.expires_at, None);
    assert_eq!(got.status, TokenStatus::Disabled);
    assert_eq!(got.rate_limit, Some(quota));
    assert_eq!(got.key_pool.as_deref(), Some("team_a"));
    let back_to_default = TokenPatch {
        rate_limit: Some(None),
        ..TokenPatch::default()
    };
    let got = store
        .update(&rec.hash, &back_to_default)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.rate_limit, None);
    assert_eq!(
        got.models.as_ref().map(Vec::len),
        Some(2),
        "models not named: kept"
    );
    let any_model = TokenPatch {
        models: Some(None),
        ..TokenPatch::default()
    };
    let got = store.update(&rec.hash, &any_model).await.unwrap().unwrap();
    assert_eq!(got.models, None);
    assert_eq!(store.get(&rec.hash).await.unwrap(), Some(got.clone()));
    // An empty patch changes nothing and still reports the record.
    let same = store
        .update(&rec.hash, &TokenPatch::default())
        .await
        .unwrap();
    assert_eq!(same, Some(got));
}

pub(crate) async fn update_of_a_missing_token_creates_nothing(store: Store) {
    let patch = TokenPatch {
        status: Some(TokenStatus::Active),
        ..TokenPatch::default()
    };
    assert_eq!(store.update(&"3".repeat(64), &patch).await.unwrap(), None);
    assert!(store.list().await.unwrap().is_empty());
}

pub(crate) async fn concurrent_patches_never_resurrect_a_disabled_token(store: Store) {
    let rec = sample_record("4d");
    store.insert(&rec).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = store.clone();
        let hash = rec.hash.clone();
        tasks.push(tokio::spawn(async move {
            let patch = if i == 20 {
                TokenPatch {
                    status: Some(TokenStatus::Disabled),
                    ..TokenPatch::default()
                }
            } else {
                TokenPatch {
                    expires_at: Some(Some(format!("2031-01-01T00:00:{:02}.000Z", i))),
                    ..TokenPatch::default()
                }
            };
            store.update(&hash, &patch).await.unwrap().unwrap()
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let got = store.get(&rec.hash).await.unwrap().unwrap();
    assert_eq!(
        got.status,
        TokenStatus::Disabled,
        "an expiry edit revived it"
    );
}

pub(crate) async fn patches_racing_a_delete_leave_it_deleted(store: Store) {
    let rec = sample_record("5e");
    store.insert(&rec).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = store.clone();
        let hash = rec.hash.clone();
        tasks.push(tokio::spawn(async move {
            if i == 10 {
                assert!(store.delete(&hash).await.unwrap());
                return;
            }
            let status = if i % 2 == 0 {
                TokenStatus::Active
            } else {
                TokenStatus::Disabled
            };
            let patch = TokenPatch {
                status: Some(status),
                ..TokenPatch::default()
            };
            store.update(&hash, &patch).await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.get(&rec.hash).await.unwrap(), None);
    assert!(store.list().await.unwrap().is_empty());
}

pub(crate) async fn revoked_sessions_are_remembered_until_they_expire(store: Store) {
    assert!(!store.session_revoked("nonce-a").await.unwrap());
    let (t1, t2, t3) = (
        "2026-07-08T12:00:00.000Z",
        "2026-07-09T12:00:00.000Z",
        "2026-07-10T12:00:00.000Z",
    );
    store.revoke_session("nonce-a", t2, t1).await.unwrap();
    assert!(store.session_revoked("nonce-a").await.unwrap());
    assert!(!store.session_revoked("nonce-b").await.unwrap());
    // Revoking twice is harmless.
    store.revoke_session("nonce-a", t2, t1).await.unwrap();
    assert!(store.session_revoked("nonce-a").await.unwrap());
    // A later revocation sweeps entries whose cookies have expired by now.
    store.revoke_session("nonce-b", t3, t3).await.unwrap();
    assert!(
        !store.session_revoked("nonce-a").await.unwrap(),
        "expired entry kept"
    );
    assert!(store.session_revoked("nonce-b").await.unwrap());
    // Sessions never touch tokens.
    assert!(store.list().await.unwrap().is_empty());
}

pub(crate) async fn usage_added_to_a_full_row_stays_saturated_and_readable(store: Store) {
    // An upstream that reports absurd counts fills a row; the next report adding to it must
    // neither fail (PostgreSQL: bigint out of range, the whole report refused with 503) nor
    // turn the column into a float (SQLite: every later read of the row fails).
    let a = "a".repeat(64);
    let full = usage_row(&a, "2026-11-30", "gpt-z", u64::MAX, u64::MAX);
    store.add_usage(std::slice::from_ref(&full)).await.unwrap();
    store.add_usage(std::slice::from_ref(&full)).await.unwrap();
    store
        .add_usage(&[usage_row(&a, "2026-11-30", "gpt-z", 1, 1)])
        .await
        .unwrap();
    let rows = store.usage_of(&a, "2026-11-30").await.unwrap();
    let c = &rows[0].counts;
    assert_eq!(
        (c.requests, c.usage.input),
        (i64::MAX as u64, i64::MAX as u64)
    );
    assert_eq!(c.incomplete, 3);
    assert_eq!(store.usage_since("2026-11-30", 10).await.unwrap().len(), 1);
}

fn usage_row(
    hash: &str,
    day: &str,
    model: &str,
    requests: u64,
    input: u64,
) -> crate::usage::UsageRow {
    use crate::usage::{UsageCounts, UsageKey, UsageRow};
    UsageRow {
        key: UsageKey {
            hash: hash.into(),
            day: day.into(),
            provider: "openai".into(),
            model: model.into(),
            api: "chat_completions".into(),
        },
        counts: UsageCounts {
            requests,
            incomplete: 1,
            usage: ptk_wire::TokenUsage {
                input,
                cached_input: 1,
                cache_write: 2,
                output: 3,
                reasoning: 1,
            },
            cost_nano_usd: 1_000,
            unpriced_requests: 0,
        },
    }
}

pub(crate) async fn usage_adds_up_per_key_and_reads_back_by_token_and_day(store: Store) {
    let (a, b) = ("a".repeat(64), "b".repeat(64));
    store.add_usage(&[]).await.unwrap();
    let first = [
        usage_row(&a, "2026-11-28", "gpt-x", 1, 10),
        usage_row(&a, "2026-11-29", "gpt-x", 2, 20),
        usage_row(&b, "2026-11-29", "gpt-y", 5, 50),
    ];
    store.add_usage(&first).await.unwrap();
    // The same key again adds to it; every count and the cost.
    store
        .add_usage(&[usage_row(&a, "2026-11-29", "gpt-x", 3, 30)])
        .await
        .unwrap();
    let rows = store.usage_of(&a, "2026-11-29").await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let c = &rows[0].counts;
    assert_eq!(
        (c.requests, c.incomplete, c.usage.input, c.usage.output),
        (5, 2, 50, 6)
    );
    assert_eq!(
        (c.usage.cached_input, c.usage.cache_write, c.usage.reasoning),
        (2, 4, 2)
    );
    assert_eq!(c.cost_nano_usd, 2_000);
    let all_of_a = store.usage_of(&a, "2026-01-01").await.unwrap();
    let days: Vec<&str> = all_of_a.iter().map(|r| r.key.day.as_str()).collect();
    assert_eq!(days, ["2026-11-28", "2026-11-29"]);
    let fleet = store.usage_since("2026-11-29", 10).await.unwrap();
    let hashes: Vec<&str> = fleet.iter().map(|r| r.key.hash.as_str()).collect();
    assert_eq!(hashes, [a.as_str(), b.as_str()]);
    assert_eq!(store.usage_since("2026-01-01", 2).await.unwrap().len(), 2);
    // Summed in the store, per model and per token.
    let models = store.usage_by_model("2026-01-01").await.unwrap();
    let names: Vec<(&str, u64)> = models
        .iter()
        .map(|m| (m.model.as_str(), m.counts.requests))
        .collect();
    assert_eq!(
        names,
        [("gpt-x", 6), ("gpt-y", 5)],
        "cost first (gpt-x 3,000 vs 1,000)"
    );
    assert_eq!(models[0].counts.usage.input, 60);
    let tokens = store.usage_by_token("2026-11-29").await.unwrap();
    assert_eq!(tokens.len(), 2);
    assert_eq!(
        (tokens[0].0.as_str(), tokens[0].1.requests),
        (a.as_str(), 5)
    );
    // Counts beyond i64 are stored saturated, never wrapped negative.
    store
        .add_usage(&[usage_row(&b, "2026-11-30", "gpt-z", u64::MAX, 1)])
        .await
        .unwrap();
    let big = store.usage_of(&b, "2026-11-30").await.unwrap();
    assert_eq!(big[0].counts.requests, i64::MAX as u64);
    // Usage never touches tokens.
    assert!(store.list().await.unwrap().is_empty());
}
