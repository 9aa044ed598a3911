//! SQLite backend: a file in WAL mode behind two small pools (the same sqlx pool type as
//! PostgreSQL's), one of readers and one writer, so a read never waits behind a write (WAL lets
//! readers run beside the writer, and they never share a connection with it).
//!
//! sqlx runs each SQLite connection on its own thread, so a write waiting (bounded) for the
//! file's write lock, which another process can hold for seconds, never blocks the async
//! runtime; reads never take that lock.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Connection as _, Pool, Sqlite, SqliteConnection};

use super::migrations::{migrate_sqlite, SCHEMA_VERSION};
use super::sql_store::{store_error, SqlStore};
use super::StoreError;

/// The SQLite token store.
pub type SqliteStore = SqlStore<Sqlite>;

/// Reader connections kept open: more than the runtime's workers, plus room for the admin's
/// listings.
const READERS: u32 = 8;

/// How long a write may wait for the file's write lock (another process, or a long admin
/// transaction) before it fails: bounded, and never on the check's critical path.
const WRITE_LOCK_WAIT: Duration = Duration::from_secs(5);

/// How long a write may queue for the writer connection behind other writes.
const WRITER_QUEUE_WAIT: Duration = Duration::from_secs(10);

/// How long a reader may wait in SQLite's rare reader-side busy cases (WAL recovery after a
/// crash); readers never wait for the write lock itself.
const READ_BUSY_WAIT: Duration = Duration::from_millis(250);

/// Per-connection set-up both pools share (sqlx turns foreign keys on, per connection). The
/// check path is a primary-key read per request: memory-map the file and give each connection
/// a 64 MiB page cache, so a store of a million tokens reads like a small one (the default
/// 2 MiB cache holds a few thousand rows).
fn connect_options(path: &Path, busy: Duration, query_only: bool) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(busy)
        .pragma("mmap_size", "268435456")
        .pragma("cache_size", "-65536")
        .pragma("query_only", if query_only { "ON" } else { "OFF" })
}

/// A pool of up to `size` connections, opened on first use. A local file needs no liveness
/// ping before each use, nor reaping of idle connections.
fn pool(options: SqliteConnectOptions, size: u32, wait: Duration) -> Pool<Sqlite> {
    SqlitePoolOptions::new()
        .max_connections(size)
        .acquire_timeout(wait)
        .test_before_acquire(false)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(options)
}

/// Creates the file if missing, turns WAL on and brings the schema to the latest migration,
/// mirrored into `PRAGMA user_version` (which backups are checked against). Blocking: it runs
/// on a thread of its own, so it works from synchronous code and inside a runtime alike.
pub(super) fn prepare_file(path: &Path) -> Result<(), StoreError> {
    let options = connect_options(path, WRITE_LOCK_WAIT, false)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
    on_own_thread(|| async move {
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .map_err(store_error)?;
        migrate_sqlite(&mut conn).await?;
        let version = format!("PRAGMA user_version = {SCHEMA_VERSION}");
        sqlx::query(AssertSqlSafe(version))
            .execute(&mut conn)
            .await
            .map_err(store_error)?;
        conn.close().await.map_err(store_error)
    })
}

/// Runs the future `job` makes to completion on a new thread with a runtime of its own.
fn on_own_thread<T: Send, F: Future<Output = Result<T, StoreError>>>(
    job: impl FnOnce() -> F + Send,
) -> Result<T, StoreError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| StoreError::Task(e.to_string()))?
                    .block_on(job())
            })
            .join()
            .map_err(|_| StoreError::Task("the SQLite set-up thread panicked".into()))?
    })
}

impl SqlStore<Sqlite> {
    /// Opens (creating the parent directory and the file if needed) the database and brings its
    /// schema to the latest migration. Blocking (see [`prepare_file`]).
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Backend(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        prepare_file(path)?;
        Ok(SqlStore {
            reads: pool(
                connect_options(path, READ_BUSY_WAIT, true),
                READERS,
                Duration::from_secs(5),
            ),
            writes: pool(
                connect_options(path, WRITE_LOCK_WAIT, false),
                1,
                WRITER_QUEUE_WAIT,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use rusqlite::Connection;

    use super::*;
    use crate::store::contract::{sample_record, token_store_contract};
    use crate::store::TokenStore as _;

    /// A fresh store in its own temp dir; the dir lives as long as the fixture.
    pub(crate) struct Fixture {
        pub store: SqliteStore,
        pub dir: tempfile::TempDir,
    }

    async fn fresh() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("nested/dir/ptk.sqlite3")).unwrap();
        Fixture { store, dir }
    }

    token_store_contract!(fresh);

    fn raw(f: &Fixture) -> Connection {
        Connection::open(f.dir.path().join("nested/dir/ptk.sqlite3")).unwrap()
    }

    #[tokio::test]
    async fn open_creates_dirs_schema_and_wal() {
        let f = fresh().await;
        let conn = raw(&f);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        // Opening again over an existing file is fine and keeps the data.
        f.store.insert(&sample_record("aa")).await.unwrap();
        let again = SqliteStore::open(&f.dir.path().join("nested/dir/ptk.sqlite3")).unwrap();
        assert_eq!(again.list().await.unwrap().len(), 1);
    }

    /// A database an earlier build migrated with refinery (its own history table, every
    /// version applied) opens: sqlx records versions 1 and 2 over the tables already there, and
    /// the tokens read back as they were.
    #[tokio::test]
    async fn a_database_migrated_by_refinery_opens_with_its_tokens() {
        let f = fresh().await;
        let rec = sample_record("ee");
        f.store.insert(&rec).await.unwrap();
        let conn = raw(&f);
        conn.execute_batch(
            "DROP TABLE _sqlx_migrations;
             CREATE TABLE refinery_schema_history (version INT4 PRIMARY KEY, name VARCHAR(255),
                 applied_on VARCHAR(255), checksum VARCHAR(255));
             INSERT INTO refinery_schema_history VALUES
                 (1, 'initial_schema', '2026-11-01T00:00:00Z', '1'),
                 (2, 'list_page_index', '2026-11-01T00:00:00Z', '2');",
        )
        .unwrap();
        let again = SqliteStore::open(&f.dir.path().join("nested/dir/ptk.sqlite3")).unwrap();
        assert_eq!(again.get(&rec.hash).await.unwrap(), Some(rec));
        let applied: Vec<i64> = conn
            .prepare("SELECT version FROM _sqlx_migrations ORDER BY version")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(applied, [1, 2, 3, 6]);
    }

    #[tokio::test]
    async fn unreadable_rows_are_corrupt_not_guessed() {
        let f = fresh().await;
        let rec = sample_record("bb");
        f.store.insert(&rec).await.unwrap();
        raw(&f)
            .execute("UPDATE tokens SET providers = 'openai,[' ", [])
            .unwrap();
        let err = f.store.get(&rec.hash).await.unwrap_err();
        assert_eq!(err.class(), "corrupt_record");
        assert!(!err.to_string().contains(&rec.hash), "{err}");
    }

    #[tokio::test]
    async fn a_malformed_expiry_is_kept_as_text() {
        let f = fresh().await;
        let rec = sample_record("cc");
        f.store.insert(&rec).await.unwrap();
        raw(&f)
            .execute("UPDATE tokens SET expires_at = 'soon'", [])
            .unwrap();
        let got = f.store.get(&rec.hash).await.unwrap().unwrap();
        assert_eq!(got.expires_at.as_deref(), Some("soon"));
    }

    #[tokio::test]
    async fn a_dropped_schema_is_a_backend_error() {
        let f = fresh().await;
        f.store.ping().await.unwrap();
        raw(&f)
            .execute_batch("DROP TABLE last_used; DROP TABLE tokens;")
            .unwrap();
        assert_eq!(f.store.ping().await.unwrap_err().class(), "backend");
        let err = f.store.get(&"d".repeat(64)).await.unwrap_err();
        assert_eq!(err.class(), "backend");
    }
}
