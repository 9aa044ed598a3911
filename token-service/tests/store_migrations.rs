//! Versioned migrations: an SQLite database written by the code before migrations (its exact
//! schema and rows) upgrades in place when the service opens it, and its tokens still check.
//! (PostgreSQL's counterpart is in `src/store/postgres.rs`, beside its throwaway server.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use ptk_wire::{CheckResponse, DenyReason, Provider};
use secrecy::SecretString;
use token_service::store::{SessionStore, TokenStore};
use token_service::token::hash_token;

/// The schema exactly as the pre-migration code created it (version 1).
const OLD_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokens (
    hash          TEXT PRIMARY KEY NOT NULL,
    label         TEXT NOT NULL,
    last4         TEXT NOT NULL,
    providers     TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at    TEXT NOT NULL,
    expires_at    TEXT NULL,
    rate_limit    INTEGER NULL,
    rate_window_s INTEGER NULL
);
CREATE TABLE IF NOT EXISTS last_used (
    hash TEXT PRIMARY KEY NOT NULL REFERENCES tokens (hash) ON DELETE CASCADE,
    at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked_sessions (
    id    TEXT PRIMARY KEY NOT NULL,
    until TEXT NOT NULL
);
PRAGMA user_version = 1;
PRAGMA journal_mode = WAL;
";

const ACTIVE: &str = "ptk_old_schema_active_token_000";
const DISABLED: &str = "ptk_old_schema_disabled_token_0";

fn hash(plaintext: &str) -> String {
    hash_token(&SecretString::from(plaintext))
}

/// Writes an old-schema database at `db` with an active token (own quota, a last-used stamp),
/// a disabled one with an expiry, and a revoked admin session.
fn write_old_database(db: &std::path::Path) {
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(OLD_SCHEMA).unwrap();
    conn.execute(
        "INSERT INTO tokens VALUES (?1, 'old active', '_000', '[\"openai\",\"anthropic\"]',
         'active', '2025-01-02T03:04:05.678Z', NULL, 7, 60)",
        [hash(ACTIVE)],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO tokens VALUES (?1, 'old disabled', 'en_0', '[\"openai\"]',
         'disabled', '2025-01-02T03:04:06.000Z', '2999-01-01T00:00:00.000Z', NULL, NULL)",
        [hash(DISABLED)],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO last_used VALUES (?1, '2025-02-03T04:05:06.789Z')",
        [hash(ACTIVE)],
    )
    .unwrap();
    conn.execute_batch(
        "INSERT INTO revoked_sessions VALUES ('old-session', '2999-01-01T00:00:00.000Z')",
    )
    .unwrap();
}

#[tokio::test]
async fn an_old_schema_sqlite_database_upgrades_in_place_and_its_tokens_still_check() {
    let dir = tempfile::tempdir().unwrap();
    write_old_database(&dir.path().join("data/ptk.sqlite3"));
    let app = spawn_app_in(dir, Options::default()).await;

    match app.check(&hash(ACTIVE), Provider::Anthropic).await {
        CheckResponse::Allow { key, .. } => assert_eq!(key, ANTHROPIC_KEY),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        app.check(&hash(DISABLED), Provider::Openai).await,
        deny(DenyReason::Invalid)
    );

    let active = app.store.get_listing(&hash(ACTIVE)).await.unwrap().unwrap();
    assert_eq!(active.record.label, "old active");
    assert_eq!(active.record.created_at, "2025-01-02T03:04:05.678Z");
    assert_eq!(
        active.record.rate_limit.map(|l| (l.limit, l.window_s)),
        Some((7, 60))
    );
    assert!(active.last_used.is_some());
    let disabled = app.store.get(&hash(DISABLED)).await.unwrap().unwrap();
    assert_eq!(
        disabled.expires_at.as_deref(),
        Some("2999-01-01T00:00:00.000Z")
    );
    assert!(app.store.session_revoked("old-session").await.unwrap());

    // The upgrade is recorded, so the next start applies nothing again.
    let conn = rusqlite::Connection::open(&app.db_path).unwrap();
    let applied: Vec<i64> = conn
        .prepare("SELECT version FROM _sqlx_migrations ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(applied, [1, 2, 3, 6]);
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 6, "user_version mirrors the latest migration");
}
