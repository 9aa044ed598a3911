//! Budgets end to end through the check and activity APIs: grants reserved at admission,
//! `budget_exhausted` naming the budget and its reset, the ledger exact after a mix of reports,
//! group budgets shared by their tokens, cost budgets converted at the priciest price, two
//! replicas on one Redis never granting more than fits, and a restart keeping settled spend.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use common::redis_server::start_redis;
use common::{OPENAI_KEY, SECRET};
use ptk_wire::{
    BudgetGrant, BudgetKind, BudgetPeriod, BudgetScope, CheckRequest, CheckResponse, DenyReason,
    Provider,
};
use secrecy::SecretString;
use serde_json::{json, Value};
use token_service::budget::admission::cost_per_token;
use token_service::budget::reserve::{Hold, Sizing};
use token_service::budget::{
    Admission, Admitted, BudgetPatch, BudgetSettings, Budgets, MemoryReservations, PeriodLimit,
    RedisReservations, Reservations,
};
use token_service::keys::ProviderKeys;
use token_service::pricing::PriceTable;
use token_service::ratelimit::{LimiterBackend, RateLimit};
use token_service::store::{BudgetStore, SqliteStore, StoreLocation, TokenStore};
use token_service::{Application, Settings};

struct Replica {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A token-service on `db` whose limiter and reservations live in `limiter`.
async fn replica(db: &Path, limiter: LimiterBackend) -> Replica {
    let keys = ProviderKeys::none().with(Provider::Openai, OPENAI_KEY);
    let settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: StoreLocation::Sqlite(db.to_path_buf()),
        check_secret: SecretString::from(SECRET),
        keys: keys.clone(),
        keys_file: None,
        env_keys: keys,
        metrics_listen: None,
        default_rate_limit: RateLimit {
            limit: 100_000,
            window_s: 60,
        },
        limiter,
        cache_ttl_ms: 30_000,
        admin: None,
        budget_webhook: None,
    };
    let app = Application::build(settings).await.unwrap();
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    Replica {
        addr,
        stop: Some(stop),
    }
}

fn db_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("data/ptk.sqlite3")
}

/// A token (OpenAI) with `patch` as its budgets; returns its hash.
async fn budgeted(db: &Path, n: u8, patch: BudgetPatch) -> String {
    let store = SqliteStore::open(db).unwrap();
    let hash = format!("{n:02x}").repeat(32);
    let record = token_service::store::TokenRecord {
        hash: hash.clone(),
        label: format!("budgeted {n}"),
        last4: "abcd".into(),
        providers: vec![Provider::Openai],
        status: token_service::store::TokenStatus::Active,
        created_at: token_service::expiry::now_timestamp(),
        expires_at: None,
        rate_limit: None,
        key_pool: None,
        models: None,
    };
    store.insert(&record).await.unwrap();
    if !patch.is_empty() {
        store
            .patch_token_budgets(&hash, &patch)
            .await
            .unwrap()
            .unwrap();
    }
    hash
}

fn tokens_per_day(limit: u64) -> BudgetPatch {
    BudgetPatch {
        tokens: Some(Some(PeriodLimit {
            limit,
            period: BudgetPeriod::Day,
        })),
        ..BudgetPatch::default()
    }
}

async fn check(addr: SocketAddr, hash: &str, want: Option<u64>) -> CheckResponse {
    let request = CheckRequest {
        hash: hash.to_owned(),
        provider: Provider::Openai,
        returned: None,
        budget_want: want,
        releases: Vec::new(),
        grant_id: None,
    };
    post_check(addr, &request).await
}

async fn post_check(addr: SocketAddr, request: &CheckRequest) -> CheckResponse {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}{}", ptk_wire::CHECK_PATH))
        .header(ptk_wire::CHECK_SECRET_HEADER, SECRET)
        .json(request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn grant_of(verdict: &CheckResponse) -> Option<BudgetGrant> {
    match verdict {
        CheckResponse::Allow { limits, .. } => limits.as_ref().and_then(|l| l.budget),
        CheckResponse::Deny { .. } => None,
    }
}

async fn report(addr: SocketAddr, body: Value) {
    let status = reqwest::Client::new()
        .post(format!("http://{addr}{}", ptk_wire::ACTIVITY_PATH))
        .header(ptk_wire::CHECK_SECRET_HEADER, SECRET)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
}

fn entry(hash: &str, model: &str, incomplete: u64, input: u64, output: u64, short: u64) -> Value {
    json!({"hash": hash, "provider": "openai", "api": "chat_completions", "model": model,
           "status": 200, "streamed": true, "requests": 1, "incomplete": incomplete,
           "usage": {"input": input, "cached_input": 0, "cache_write": 0, "output": output,
                     "reasoning": 0}, "shortfall_tokens": short})
}

async fn day_spend(db: &Path, scope: &str) -> (u64, u64) {
    let store = SqliteStore::open(db).unwrap();
    let day = Utc::now().format("%Y-%m-%d").to_string();
    let rows = store.spend(&[scope.to_owned()], &[day]).await.unwrap();
    rows.first().map_or((0, 0), |r| (r.tokens, r.cost_nano_usd))
}

#[tokio::test]
async fn a_grant_is_reserved_settled_released_and_a_spent_budget_names_its_reset() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let app = replica(&db, LimiterBackend::Memory).await;
    let hash = budgeted(&db, 1, tokens_per_day(10_000)).await;
    let unbudgeted = budgeted(&db, 2, BudgetPatch::default()).await;

    // Unbudgeted: a plain allow, as before.
    assert!(matches!(
        check(app.addr, &unbudgeted, None).await,
        CheckResponse::Allow { limits: None, .. }
    ));
    // A quarter of 10,000 is below the minimum grant (4,096): the grant is the minimum, and
    // neither it nor the verdict outlives today (UTC).
    let verdict = check(app.addr, &hash, None).await;
    let grant = grant_of(&verdict).unwrap();
    assert_eq!(grant.tokens, 4096);
    let to_midnight = (Utc::now()
        .date_naive()
        .succ_opt()
        .unwrap()
        .and_hms_opt(0, 0, 0))
    .unwrap()
    .and_utc()
        - Utc::now();
    assert!(grant.expires_in_ms <= 30_000);
    assert!(i64::try_from(grant.expires_in_ms).unwrap() <= to_midnight.num_milliseconds() + 1);
    let CheckResponse::Allow { cache_ttl_ms, .. } = verdict else {
        unreachable!()
    };
    assert!(cache_ttl_ms <= grant.expires_in_ms);

    // 9,000 tokens settle and the grant comes back: 1,000 remain, granted whole.
    report(
        app.addr,
        json!({"entries": [], "token_usage": [entry(&hash, "gpt-4o-mini", 0, 8000, 1000, 0)],
               "grant_releases": [{"grant": grant.id, "tokens": grant.tokens}]}),
    )
    .await;
    assert_eq!(day_spend(&db, &format!("token:{hash}")).await.0, 9000);
    let last = grant_of(&check(app.addr, &hash, None).await).unwrap();
    assert_eq!(last.tokens, 1000);

    // Nothing left: the deny names the token's daily token budget and its reset.
    match check(app.addr, &hash, Some(1)).await {
        CheckResponse::Deny {
            reason: DenyReason::BudgetExhausted,
            retry_after_s: Some(retry),
            budget: Some(b),
        } => {
            assert_eq!(
                (b.scope, b.kind, b.period),
                (BudgetScope::Token, BudgetKind::Tokens, BudgetPeriod::Day)
            );
            let reset = i64::try_from(b.resets_at_s).unwrap();
            assert_eq!(reset % 86_400, 0, "midnight UTC");
            assert!((1..=86_400).contains(&retry));
            assert!((reset - Utc::now().timestamp()).abs() <= i64::try_from(retry).unwrap() + 1);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_ledger_is_exact_after_a_mix_of_reports_and_incomplete_requests_cost_their_estimate() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let app = replica(&db, LimiterBackend::Memory).await;
    let hash = budgeted(&db, 3, tokens_per_day(1_000_000)).await;
    let mix = json!({"entries": [], "token_usage": [
        // complete
        entry(&hash, "gpt-4o-mini", 0, 1000, 200, 0),
        // aborted stream: 50 seen, estimated 350: charged 350
        entry(&hash, "gpt-4o-mini", 1, 50, 0, 300),
        // a model the price table does not know: every token at the priciest price
        entry(&hash, "made-up-model", 0, 10, 10, 0),
        // an upstream error that used no tokens
        entry(&hash, "gpt-4o-mini", 0, 0, 0, 0),
    ]});
    report(app.addr, mix.clone()).await;
    report(app.addr, mix).await;
    let prices = PriceTable::bundled();
    let (_, mini) = prices.lookup("openai", "gpt-4o-mini").unwrap();
    let usage = |input, output| ptk_wire::TokenUsage {
        input,
        output,
        ..ptk_wire::TokenUsage::default()
    };
    let one_report_cost = mini.nano_usd(&usage(1000, 200), false)
        + mini.nano_usd(&usage(50, 0), false)
        + mini.output * 300 / 1000
        + prices.priciest("openai").unwrap() * 20 / 1000;
    let (tokens, cost) = day_spend(&db, &format!("token:{hash}")).await;
    assert_eq!(
        tokens,
        2 * (1200 + 350 + 20),
        "each report counted exactly once"
    );
    assert_eq!(cost, 2 * one_report_cost);
    // The usage rollups keep what the provider metered (no shortfall in them).
    let store = SqliteStore::open(&db).unwrap();
    let day = Utc::now().format("%Y-%m-%d").to_string();
    let rows = token_service::store::UsageStore::usage_of(&store, &hash, &day)
        .await
        .unwrap();
    let input: u64 = rows.iter().map(|r| r.counts.usage.input).sum();
    let output: u64 = rows.iter().map(|r| r.counts.usage.output).sum();
    assert_eq!((input, output), (2 * 1060, 2 * 210));
}

#[tokio::test]
async fn a_group_budget_binds_every_token_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let app = replica(&db, LimiterBackend::Memory).await;
    let store = SqliteStore::open(&db).unwrap();
    let team = Budgets {
        tokens: Some(PeriodLimit {
            limit: 5000,
            period: BudgetPeriod::Week,
        }),
        ..Budgets::default()
    };
    store
        .create_group("team-a", &team, "2026-11-29T00:00:00.000Z")
        .await
        .unwrap();
    let join = BudgetPatch {
        group: Some(Some("team-a".into())),
        ..BudgetPatch::default()
    };
    // Token 4's own budget is generous; the group's is what binds it.
    let mut own = tokens_per_day(1_000_000);
    own.group = join.group.clone();
    let a = budgeted(&db, 4, own).await;
    let b = budgeted(&db, 5, join).await;
    assert!(grant_of(&check(app.addr, &b, None).await).is_some());
    report(
        app.addr,
        json!({"entries": [], "token_usage": [entry(&a, "gpt-4o-mini", 0, 4000, 1000, 0)]}),
    )
    .await;
    // The group's ledger has token 4's spend (in every period: its week binds).
    assert_eq!(day_spend(&db, "group:team-a").await.0, 5000);
    for hash in [&a, &b] {
        match check(app.addr, hash, None).await {
            CheckResponse::Deny {
                reason: DenyReason::BudgetExhausted,
                budget: Some(budget),
                ..
            } => assert_eq!(
                (budget.scope, budget.period),
                (BudgetScope::Group, BudgetPeriod::Week)
            ),
            other => panic!("{hash}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_cost_budget_is_granted_at_the_priciest_price_of_the_tokens_providers() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let app = replica(&db, LimiterBackend::Memory).await;
    let one_dollar = BudgetPatch {
        cost: Some(Some(PeriodLimit {
            limit: 1_000_000_000,
            period: BudgetPeriod::Month,
        })),
        ..BudgetPatch::default()
    };
    let hash = budgeted(&db, 6, one_dollar).await;
    let per_token = cost_per_token(PriceTable::bundled(), &[Provider::Openai]);
    let room = 1_000_000_000 / per_token;
    // Larger than any cheaper conversion could keep within $1.
    let want = room;
    let grant = grant_of(&check(app.addr, &hash, Some(want)).await).unwrap();
    assert_eq!(grant.tokens, room);
    // Spent entirely on the output of OpenAI's priciest model (o1-pro), it stays within $1.
    let (_, o1_pro) = PriceTable::bundled().lookup("openai", "o1-pro").unwrap();
    assert!(grant.tokens * o1_pro.output.div_ceil(1000) <= 1_000_000_000);
    // With that grant out, not one more token fits.
    assert!(matches!(
        check(app.addr, &hash, Some(1)).await,
        CheckResponse::Deny {
            reason: DenyReason::BudgetExhausted,
            ..
        }
    ));
}

async fn concurrent_checks(replicas: &[&Replica], hash: &str, n: usize, want: u64) -> usize {
    let mut tasks = Vec::new();
    for i in 0..n {
        let addr = replicas[i % replicas.len()].addr;
        let hash = hash.to_owned();
        tasks.push(tokio::spawn(
            async move { check(addr, &hash, Some(want)).await },
        ));
    }
    let mut granted = 0;
    for task in tasks {
        match task.await.unwrap() {
            CheckResponse::Allow { limits, .. } => {
                assert!(limits.unwrap().budget.unwrap().tokens >= want);
                granted += 1;
            }
            CheckResponse::Deny { reason, .. } => assert_eq!(reason, DenyReason::BudgetExhausted),
        }
    }
    granted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_checks_on_two_replicas_on_one_redis_get_only_the_grants_that_fit() {
    let redis = start_redis();
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let backend = || LimiterBackend::Redis(SecretString::from(redis.url.clone()));
    let one = replica(&db, backend()).await;
    let two = replica(&db, backend()).await;
    // 10,000 tokens; each grant is 4,096 (the minimum): two fit, the third (1,808 left) not.
    let hash = budgeted(&db, 7, tokens_per_day(10_000)).await;
    assert_eq!(concurrent_checks(&[&one, &two], &hash, 50, 4000).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_checks_on_one_memory_replica_get_only_the_grants_that_fit() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let one = replica(&db, LimiterBackend::Memory).await;
    let hash = budgeted(&db, 8, tokens_per_day(10_000)).await;
    assert_eq!(concurrent_checks(&[&one], &hash, 50, 4000).await, 2);
}

/// Admission with fixed 100-token grants against 1,000 tokens: exactly ten of many concurrent
/// admissions succeed, from two `Admission`s (two replicas' checkers) on one backend.
async fn ten_of_fifty(reservations: [Arc<dyn Reservations>; 2]) {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let hash = budgeted(&db, 9, tokens_per_day(1000)).await;
    let settings = BudgetSettings {
        min_grant: 100,
        max_grant: 100,
        grace_ms: 1000,
    };
    let store: Arc<dyn BudgetStore> = Arc::new(SqliteStore::open(&db).unwrap());
    let admissions = reservations.map(|r| Arc::new(Admission::new(store.clone(), r, settings)));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let admission = admissions[i % 2].clone();
        let hash = hash.clone();
        tasks.push(tokio::spawn(async move {
            admission
                .admit(&hash, &[Provider::Openai], None, None, 30_000, Utc::now())
                .await
                .unwrap()
        }));
    }
    let mut granted = 0;
    for task in tasks {
        if let Admitted::Granted(g) = task.await.unwrap() {
            assert_eq!(g.tokens, 100);
            granted += 1;
        }
    }
    assert_eq!(granted, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reservations_are_atomic_in_memory_and_in_redis_across_two_checkers() {
    let memory: Arc<dyn Reservations> = Arc::new(MemoryReservations::new());
    ten_of_fifty([memory.clone(), memory]).await;
    let redis = start_redis();
    let one: Arc<dyn Reservations> =
        Arc::new(RedisReservations::connect(&redis.url).await.unwrap());
    let two: Arc<dyn Reservations> =
        Arc::new(RedisReservations::connect(&redis.url).await.unwrap());
    ten_of_fifty([one, two]).await;
}

#[tokio::test]
async fn redis_reservations_release_lapse_and_refuse_a_stale_read() {
    let redis = start_redis();
    let r = RedisReservations::connect(&redis.url).await.unwrap();
    let scopes = ["token:x".to_owned()];
    let hold = |cap| Hold {
        key: "token:x|cost|2026-11".into(),
        cap,
        per_token: 7,
    };
    let sizing = Sizing {
        want: 0,
        min: 100,
        max: 100,
    };
    let granted = r
        .reserve(&[hold(1000)], &scopes, &[0], sizing, 60_000, None)
        .await
        .unwrap();
    let token_service::budget::reserve::Reserved::Granted { id, tokens: 100 } = granted else {
        panic!("{granted:?}")
    };
    assert_eq!(r.reserved("token:x|cost|2026-11").await.unwrap(), 700);
    // 300 left: 42 tokens at 7 each, fewer than the minimum, granted whole.
    let small = r
        .reserve(&[hold(1000)], &scopes, &[0], sizing, 60_000, None)
        .await
        .unwrap();
    assert!(matches!(
        small,
        token_service::budget::reserve::Reserved::Granted { tokens: 42, .. }
    ));
    r.release(id, 40).await.unwrap();
    assert_eq!(
        r.reserved("token:x|cost|2026-11").await.unwrap(),
        700 - 280 + 294
    );
    // The release bumped the scope's epoch: a check that read the ledger before it reads again.
    let stale = r
        .reserve(&[hold(1000)], &scopes, &[0], sizing, 100, None)
        .await
        .unwrap();
    assert_eq!(stale, token_service::budget::reserve::Reserved::Stale);
    assert_eq!(r.epochs(&scopes).await.unwrap(), [1]);
    // A grant that lapses stops holding.
    r.release(id, 1000).await.unwrap();
    let short = r
        .reserve(&[hold(10_000)], &scopes, &[2], sizing, 150, None)
        .await
        .unwrap();
    assert!(matches!(
        short,
        token_service::budget::reserve::Reserved::Granted { .. }
    ));
    let before = r.reserved("token:x|cost|2026-11").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        r.reserved("token:x|cost|2026-11").await.unwrap(),
        before - 700
    );
}

/// A Redis that lost `ptk:bud:seq` starts the grant ids again at random, not at 1; an id near
/// the top of that range (16 digits, past what Lua prints exactly) is still released.
#[tokio::test]
async fn redis_grant_ids_restart_at_random_and_large_ids_are_released() {
    let redis = start_redis();
    let r = RedisReservations::connect(&redis.url).await.unwrap();
    let mut conn = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let scopes = ["token:y".to_owned()];
    let hold = [Hold {
        key: "token:y|tokens|2026-11-29".into(),
        cap: 1000,
        per_token: 1,
    }];
    let sizing = Sizing {
        want: 0,
        min: 100,
        max: 100,
    };
    let mut ids = Vec::new();
    for _ in 0..2 {
        let _: () = redis::cmd("DEL")
            .arg("ptk:bud:seq")
            .query_async(&mut conn)
            .await
            .unwrap();
        let granted = r.reserve(&hold, &scopes, &[0], sizing, 60_000, None).await;
        let Ok(token_service::budget::reserve::Reserved::Granted { id, .. }) = granted else {
            panic!("{granted:?}")
        };
        ids.push(id);
    }
    assert!(ids.iter().all(|&id| id > 1 << 32), "{ids:?}");
    assert_ne!(ids[0], ids[1]);
    let _: () = redis::cmd("SET")
        .arg("ptk:bud:seq")
        .arg((1u64 << 52) - 2)
        .query_async(&mut conn)
        .await
        .unwrap();
    let granted = r.reserve(&hold, &scopes, &[0], sizing, 60_000, None).await;
    let Ok(token_service::budget::reserve::Reserved::Granted { id, tokens: 100 }) = granted else {
        panic!("{granted:?}")
    };
    assert_eq!(id, (1u64 << 52) - 1);
    let key = "token:y|tokens|2026-11-29";
    assert_eq!(r.reserved(key).await.unwrap(), 300);
    r.release(id, 100).await.unwrap();
    assert_eq!(r.reserved(key).await.unwrap(), 200);
}

/// A filter's proposed grant id: the grant takes it, a live grant's id is refused (never
/// replaced by one of the service's own), and a release of it frees the grant.
async fn proposed_ids_are_used_refused_when_taken_and_released(r: &dyn Reservations) {
    use token_service::budget::reserve::Reserved;
    let key = "token:z|tokens|2026-11-29";
    let scopes = ["token:z".to_owned()];
    let hold = [Hold {
        key: key.into(),
        cap: 1000,
        per_token: 1,
    }];
    let sizing = Sizing {
        want: 0,
        min: 100,
        max: 100,
    };
    // 16 digits: past what Lua's number-to-text keeps.
    let proposed = (1u64 << 52) - 3;
    let granted = r.reserve(&hold, &scopes, &[0], sizing, 60_000, Some(proposed));
    assert_eq!(
        granted.await.unwrap(),
        Reserved::Granted {
            id: proposed,
            tokens: 100
        }
    );
    let again = r.reserve(&hold, &scopes, &[0], sizing, 60_000, Some(proposed));
    assert_eq!(again.await.unwrap(), Reserved::IdTaken);
    for out_of_range in [0, 1u64 << 52, u64::MAX] {
        let refused = r.reserve(&hold, &scopes, &[0], sizing, 60_000, Some(out_of_range));
        assert_eq!(refused.await.unwrap(), Reserved::IdTaken);
    }
    assert_eq!(r.reserved(key).await.unwrap(), 100);
    // What an abandoned check's filter sends: the whole grant, whatever it was.
    r.release(proposed, u64::MAX).await.unwrap();
    assert_eq!(r.reserved(key).await.unwrap(), 0);
    // Released whole, the id is free again; an unknown id's release is a no-op.
    r.release(42, u64::MAX).await.unwrap();
    let reused = r.reserve(&hold, &scopes, &[1], sizing, 60_000, Some(proposed));
    assert!(matches!(reused.await.unwrap(), Reserved::Granted { id, .. } if id == proposed));
}

#[tokio::test]
async fn proposed_grant_ids_in_memory_and_in_redis() {
    proposed_ids_are_used_refused_when_taken_and_released(&MemoryReservations::new()).await;
    let redis = start_redis();
    let r = RedisReservations::connect(&redis.url).await.unwrap();
    proposed_ids_are_used_refused_when_taken_and_released(&r).await;
}

/// Through `/v1/check`: a proposed id names the grant; a taken one is `store_unavailable`.
#[tokio::test]
async fn a_check_reserves_under_the_proposed_grant_id_and_refuses_a_taken_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let service = replica(&db, LimiterBackend::Memory).await;
    let hash = budgeted(&db, 10, tokens_per_day(1_000_000)).await;
    let proposed = (1u64 << 40) + 7;
    let verdict = check_proposing(service.addr, &hash, proposed).await;
    assert_eq!(grant_of(&verdict).unwrap().id, proposed);
    assert!(matches!(
        check_proposing(service.addr, &hash, proposed).await,
        CheckResponse::Deny {
            reason: DenyReason::StoreUnavailable,
            ..
        }
    ));
}

async fn check_proposing(addr: SocketAddr, hash: &str, grant_id: u64) -> CheckResponse {
    let request = CheckRequest {
        hash: hash.to_owned(),
        provider: Provider::Openai,
        returned: None,
        budget_want: None,
        releases: Vec::new(),
        grant_id: Some(grant_id),
    };
    post_check(addr, &request).await
}

#[tokio::test]
async fn settled_spend_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let hash = {
        let first = replica(&db, LimiterBackend::Memory).await;
        let hash = budgeted(&db, 10, tokens_per_day(10_000)).await;
        report(
            first.addr,
            json!({"entries": [], "token_usage": [entry(&hash, "gpt-4o-mini", 0, 9500, 0, 0)]}),
        )
        .await;
        hash
    };
    // A new process (fresh reservations) reads the ledger: 500 left.
    let second = replica(&db, LimiterBackend::Memory).await;
    assert_eq!(
        grant_of(&check(second.addr, &hash, None).await)
            .unwrap()
            .tokens,
        500
    );
    assert!(matches!(
        check(second.addr, &hash, Some(1)).await,
        CheckResponse::Deny {
            reason: DenyReason::BudgetExhausted,
            ..
        }
    ));
}

#[tokio::test]
async fn a_budget_set_on_a_token_already_checked_applies_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let app = replica(&db, LimiterBackend::Memory).await;
    let hash = budgeted(&db, 11, BudgetPatch::default()).await;
    assert!(grant_of(&check(app.addr, &hash, None).await).is_none());
    // Set from another process (the CLI): the service remembers a token's budgets for 1 s.
    let store = SqliteStore::open(&db).unwrap();
    store
        .patch_token_budgets(&hash, &tokens_per_day(10))
        .await
        .unwrap();
    tokio::time::sleep(token_service::budget::admission::BUDGETS_CACHE_TTL).await;
    assert_eq!(
        grant_of(&check(app.addr, &hash, None).await)
            .unwrap()
            .tokens,
        10
    );
}

#[tokio::test]
async fn a_check_the_rate_limiter_refuses_gives_its_grant_back() {
    let redis = start_redis();
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let app = replica(
        &db,
        LimiterBackend::Redis(SecretString::from(redis.url.clone())),
    )
    .await;
    let hash = budgeted(&db, 12, tokens_per_day(10_000)).await;
    let store = SqliteStore::open(&db).unwrap();
    let patch = token_service::store::TokenPatch {
        rate_limit: Some(Some(RateLimit {
            limit: 1,
            window_s: 60,
        })),
        ..Default::default()
    };
    store.update(&hash, &patch).await.unwrap().unwrap();
    let first = grant_of(&check(app.addr, &hash, None).await).unwrap();
    for _ in 0..3 {
        assert!(matches!(
            check(app.addr, &hash, None).await,
            CheckResponse::Deny {
                reason: DenyReason::RateLimited,
                ..
            }
        ));
    }
    let reservations = RedisReservations::connect(&redis.url).await.unwrap();
    let key = format!("token:{hash}|tokens|{}", Utc::now().format("%Y-%m-%d"));
    assert_eq!(reservations.reserved(&key).await.unwrap(), first.tokens);
}

#[tokio::test]
async fn a_top_up_or_renewal_check_takes_no_rate_limit_unit_and_no_lease() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let app = replica(&db, LimiterBackend::Memory).await;
    let hash = budgeted(&db, 13, tokens_per_day(1_000_000)).await;
    let store = SqliteStore::open(&db).unwrap();
    let patch = token_service::store::TokenPatch {
        rate_limit: Some(Some(RateLimit {
            limit: 2,
            window_s: 60,
        })),
        ..Default::default()
    };
    store.update(&hash, &patch).await.unwrap().unwrap();
    // Grants for requests already admitted (a top-up) or for none (a renewal, want 0):
    // however many, they neither use the token's 2 requests a minute nor lease any.
    for want in [Some(0), Some(4_096), Some(0), Some(0), Some(10)] {
        let verdict = check(app.addr, &hash, want).await;
        assert!(grant_of(&verdict).is_some(), "{verdict:?}");
        assert!(
            matches!(&verdict, CheckResponse::Allow { lease: None, .. }),
            "{verdict:?}"
        );
    }
    // The token's own requests still get their 2, then the rate limit.
    for _ in 0..2 {
        assert!(grant_of(&check(app.addr, &hash, None).await).is_some());
    }
    assert!(matches!(
        check(app.addr, &hash, None).await,
        CheckResponse::Deny {
            reason: DenyReason::RateLimited,
            ..
        }
    ));
}

#[tokio::test]
async fn a_check_gives_back_the_rest_of_a_dead_grant_before_it_is_decided() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let app = replica(&db, LimiterBackend::Memory).await;
    let hash = budgeted(&db, 14, tokens_per_day(1_000)).await;
    let first = grant_of(&check(app.addr, &hash, None).await).unwrap();
    assert_eq!(first.tokens, 1_000);
    // While that grant is reserved there is no room.
    assert!(matches!(
        check(app.addr, &hash, None).await,
        CheckResponse::Deny {
            reason: DenyReason::BudgetExhausted,
            ..
        }
    ));
    // The filter's verdict ran out with 700 of it unspent: given back on the next check, which
    // then has that room (what the filter spent stays reserved until it is settled).
    let request = CheckRequest {
        hash: hash.clone(),
        provider: Provider::Openai,
        returned: None,
        budget_want: None,
        releases: vec![ptk_wire::GrantRelease {
            grant: first.id,
            tokens: 700,
        }],
        grant_id: None,
    };
    let second = grant_of(&post_check(app.addr, &request).await).unwrap();
    assert_eq!(second.tokens, 700);
}
