//! Budgets in the store (migration 6), the same contract on SQLite and PostgreSQL: a token's
//! budgets and group, groups (a group with members cannot be deleted), and the settled-spend
//! ledger written with the usage rollups in one transaction, exact and saturating.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/pg_server.rs"]
mod pg_server;

use ptk_wire::{BudgetPeriod, Provider, TokenUsage};
use token_service::budget::{BudgetPatch, Budgets, PeriodLimit};
use token_service::store::{
    BudgetStore, GroupDelete, PostgresStore, SpendRow, SqliteStore, StoreError, TokenRecord,
    TokenStatus, TokenStore, UsageStore,
};
use token_service::usage::{UsageCounts, UsageKey, UsageRow};

fn record(hash: &str) -> TokenRecord {
    TokenRecord {
        hash: hash.to_owned(),
        label: "budgeted".into(),
        last4: "abcd".into(),
        providers: vec![Provider::Openai],
        status: TokenStatus::Active,
        created_at: "2026-11-29T00:00:00.000Z".into(),
        expires_at: None,
        rate_limit: None,
        key_pool: None,
        models: None,
    }
}

fn per(limit: u64, period: BudgetPeriod) -> Option<PeriodLimit> {
    Some(PeriodLimit { limit, period })
}

fn spend(scope: &str, period: &str, tokens: u64, cost: u64) -> SpendRow {
    SpendRow {
        scope: scope.into(),
        period: period.into(),
        tokens,
        cost_nano_usd: cost,
    }
}

fn usage_row(hash: &str, input: u64) -> UsageRow {
    UsageRow {
        key: UsageKey {
            hash: hash.into(),
            day: "2026-11-29".into(),
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            api: "chat_completions".into(),
        },
        counts: UsageCounts {
            requests: 1,
            usage: TokenUsage {
                input,
                ..TokenUsage::default()
            },
            ..UsageCounts::default()
        },
    }
}

async fn contract<S>(store: &S)
where
    S: BudgetStore + TokenStore + UsageStore,
{
    let (a, b) = ("a".repeat(64), "b".repeat(64));
    store.insert(&record(&a)).await.unwrap();
    store.insert(&record(&b)).await.unwrap();

    // No row: no budgets. A patch of an unknown token creates nothing.
    assert!(store.budgets_of(&a).await.unwrap().is_unbudgeted());
    let patch = BudgetPatch {
        tokens: Some(per(100_000, BudgetPeriod::Day)),
        tpm: Some(Some(5000)),
        ..BudgetPatch::default()
    };
    assert_eq!(
        store
            .patch_token_budgets(&"c".repeat(64), &patch)
            .await
            .unwrap(),
        None
    );
    let got = store
        .patch_token_budgets(&a, &patch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.own.tokens, per(100_000, BudgetPeriod::Day));
    assert_eq!(
        (got.own.tpm, got.own.cost, got.group),
        (Some(5000), None, None)
    );

    // A group must exist before a token joins it.
    let join = BudgetPatch {
        group: Some(Some("team".into())),
        ..BudgetPatch::default()
    };
    let refused = store.patch_token_budgets(&a, &join).await.unwrap_err();
    assert!(
        refused.to_string().contains("no group named \"team\""),
        "{refused}"
    );
    let team = Budgets {
        cost: per(25_500_000_000, BudgetPeriod::Month),
        ..Budgets::default()
    };
    store
        .create_group("team", &team, "2026-11-29T00:00:00.000Z")
        .await
        .unwrap();
    assert!(matches!(
        store.create_group("team", &Budgets::default(), "x").await,
        Err(StoreError::Duplicate)
    ));
    let joined = store.patch_token_budgets(&a, &join).await.unwrap().unwrap();
    // Patching the group left the token's own budgets as they were.
    assert_eq!(joined.own.tokens, per(100_000, BudgetPeriod::Day));
    assert_eq!(joined.group, Some(("team".to_owned(), team)));
    assert_eq!(store.group_of(&a).await.unwrap().as_deref(), Some("team"));
    assert_eq!(store.group_of(&b).await.unwrap(), None);

    // Clearing one budget leaves the others; updating the group's changes what members see.
    let clear = BudgetPatch {
        tpm: Some(None),
        ..BudgetPatch::default()
    };
    let cleared = store
        .patch_token_budgets(&a, &clear)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (cleared.own.tpm, cleared.own.tokens.is_some()),
        (None, true)
    );
    let more = BudgetPatch {
        tokens: Some(per(1_000_000, BudgetPeriod::Week)),
        ..BudgetPatch::default()
    };
    assert!(store.update_group("team", &more).await.unwrap());
    assert!(!store.update_group("nobody", &more).await.unwrap());
    let seen = store.budgets_of(&a).await.unwrap().group.unwrap().1;
    assert_eq!(
        (seen.tokens, seen.cost),
        (per(1_000_000, BudgetPeriod::Week), team.cost)
    );

    // A group with members stays; empty, it goes.
    let groups = store.groups().await.unwrap();
    assert_eq!((groups.len(), groups[0].members), (1, 1));
    assert_eq!(
        store.delete_group("team").await.unwrap(),
        GroupDelete::HasMembers(1)
    );
    assert_eq!(
        store.delete_group("none").await.unwrap(),
        GroupDelete::NotFound
    );
    let leave = BudgetPatch {
        group: Some(None),
        ..BudgetPatch::default()
    };
    store.patch_token_budgets(&a, &leave).await.unwrap();
    assert_eq!(
        store.delete_group("team").await.unwrap(),
        GroupDelete::Deleted
    );

    // The ledger: settle adds exactly, in one transaction with the usage rollups.
    let scope = format!("token:{a}");
    let rows = [
        spend(&scope, "2026-11-29", 120, 7),
        spend(&scope, "2026-11-29T10:05", 120, 7),
        spend(&scope, "2026-11-29T10:07", 1, 1),
    ];
    store
        .settle(&[usage_row(&a, 120)], &rows, "2026-11-29T10:00")
        .await
        .unwrap();
    store
        .settle(&[usage_row(&a, 5)], &rows[..1], "2026-11-29T10:06")
        .await
        .unwrap();
    let periods = [
        "2026-11-29",
        "2026-11-29T10:05",
        "2026-11-29T10:07",
        "2026-W48",
    ]
    .map(String::from);
    let mut got = store
        .spend(std::slice::from_ref(&scope), &periods)
        .await
        .unwrap();
    got.sort();
    // The 10:05 row was pruned by the second settlement (older than 10:06); day rows stay.
    assert_eq!(
        got,
        [
            spend(&scope, "2026-11-29", 240, 14),
            spend(&scope, "2026-11-29T10:07", 1, 1)
        ]
    );
    let usage = store.usage_of(&a, "2026-11-29").await.unwrap();
    assert_eq!(usage[0].counts.usage.input, 125);

    // Saturating, never wrapping or failing.
    let huge = spend(&scope, "2026-11", u64::MAX, u64::MAX);
    store
        .settle(&[], std::slice::from_ref(&huge), "0")
        .await
        .unwrap();
    store.settle(&[], &[huge], "0").await.unwrap();
    let month = store
        .spend(std::slice::from_ref(&scope), &["2026-11".to_owned()])
        .await
        .unwrap();
    assert_eq!(month[0].tokens, i64::MAX as u64);

    // Deleting the token takes its budget row with it.
    assert!(store.delete(&a).await.unwrap());
    assert!(store.budgets_of(&a).await.unwrap().is_unbudgeted());
}

#[tokio::test]
async fn the_budget_contract_holds_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("ptk.sqlite3")).unwrap();
    contract(&store).await;
}

#[tokio::test]
async fn the_budget_contract_holds_on_postgres() {
    let pg = pg_server::PgServer::start();
    pg.create_db("ptk").await;
    let store = PostgresStore::connect(&pg.url("ptk"), None).await.unwrap();
    contract(&store).await;
}
