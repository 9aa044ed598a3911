//! SQLite backend: a file in WAL mode behind two small r2d2 pools, one of readers and one
//! writer, so a read never waits behind a write (WAL lets readers run beside the writer, and
//! they never share a connection with it).
//!
//! Writes run on `spawn_blocking` and may wait (bounded) for the file's write lock, which
//! another process can hold for seconds; reads never take that lock. The check path's point
//! read runs inline only when a reader is idle (see [`SqliteStore::read_now`]).

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{params, Connection};

use super::migrations::migrate_sqlite;
use super::page::rows_to_fetch;
use super::sqlite_sql::{
    backend, immediate, listing_from_row, select_listing, FIRST_PAGE, NEXT_PAGE, SCHEMA_VERSION,
    SELECT_TOKEN, UPDATE_TOKEN,
};
use super::{
    Page, PageCursor, SessionStore, StoreError, TokenListing, TokenPatch, TokenRecord, TokenStore,
};

/// Reader connections kept open: more than the runtime's workers, so an inline read nearly
/// always finds one idle, plus room for the admin's listings.
const READERS: u32 = 8;

/// How long a write may wait for the file's write lock (another process, or a long admin
/// transaction) before it fails: bounded, and never on the check's critical path.
const WRITE_LOCK_WAIT_MS: u32 = 5_000;

/// How long a write may queue for the writer connection behind other writes.
const WRITER_QUEUE_WAIT: Duration = Duration::from_secs(10);

/// How long a reader may wait in SQLite's rare reader-side busy cases (WAL recovery after a
/// crash); readers never wait for the write lock itself.
const READ_BUSY_WAIT_MS: u32 = 250;

/// The SQLite token store.
#[derive(Clone)]
pub struct SqliteStore {
    /// `query_only` connections; WAL lets them read beside the writer.
    readers: Pool<SqliteConnectionManager>,
    /// The one writer connection (SQLite has one writer anyway): writes queue here in order
    /// instead of spinning on the file lock from several connections.
    writer: Pool<SqliteConnectionManager>,
}

/// Per-connection set-up both pools share. Foreign keys are per connection in SQLite. The
/// check path is a primary-key read per request: memory-map the file and give each connection
/// a 64 MiB page cache, so a store of a million tokens reads like a small one (the default
/// 2 MiB cache holds a few thousand rows).
fn connection_pragmas(busy_ms: u32, query_only: bool) -> String {
    format!(
        "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {busy_ms}; \
         PRAGMA mmap_size = 268435456; PRAGMA cache_size = -65536; \
         PRAGMA query_only = {query_only};"
    )
}

/// A pool of `size` connections to `path`, each set up with `pragmas`.
fn pool(
    path: &Path,
    size: u32,
    wait: Duration,
    pragmas: String,
) -> Result<Pool<SqliteConnectionManager>, StoreError> {
    let manager = SqliteConnectionManager::file(path).with_init(move |c| c.execute_batch(&pragmas));
    Pool::builder()
        .max_size(size)
        .connection_timeout(wait)
        .build(manager)
        .map_err(|e| StoreError::Pool(e.to_string()))
}

impl SqliteStore {
    /// Opens (creating the parent directory and the file if needed) the database and brings its
    /// schema to the latest migration.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Backend(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let mut setup = Connection::open(path).map_err(backend)?;
        setup
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        migrate_sqlite(&mut setup)?;
        setup
            .pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(backend)?;
        drop(setup);

        let readers = pool(
            path,
            READERS,
            Duration::from_secs(5),
            connection_pragmas(READ_BUSY_WAIT_MS, true),
        )?;
        let writer = pool(
            path,
            1,
            WRITER_QUEUE_WAIT,
            connection_pragmas(WRITE_LOCK_WAIT_MS, false),
        )?;
        Ok(SqliteStore { readers, writer })
    }

    /// Runs `job` on a connection from `pool` on the blocking thread pool.
    async fn on_blocking<T, F>(
        pool: &Pool<SqliteConnectionManager>,
        job: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| StoreError::Pool(e.to_string()))?;
            job(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs a write on the writer connection, off the async runtime (it may wait for the lock).
    async fn write<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        Self::on_blocking(&self.writer, job).await
    }

    /// Runs a read on a reader connection, off the async runtime.
    async fn read<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        Self::on_blocking(&self.readers, job).await
    }

    /// Runs a point read right here on the async worker when a reader is idle, else on the
    /// blocking pool. The check path's primary-key read is served from the memory-mapped file
    /// in microseconds, less than the two thread switches a `spawn_blocking` hop costs
    /// (measured: most of the service's CPU per check went to context switches). It can wait
    /// on nothing: `try_get` never waits for the pool, and a WAL reader never waits for the
    /// write lock.
    async fn read_now<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        match self.readers.try_get() {
            Some(conn) => job(&conn),
            None => self.read(move |c| job(c)).await,
        }
    }
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        // Touch the tokens table, not just the connection: a missing schema is "not answering".
        self.read(|c| {
            c.query_row("SELECT count(*) FROM tokens WHERE 0", [], |_| Ok(()))
                .map_err(backend)
        })
        .await
    }

    async fn get(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self.get_listing(hash).await?.map(|l| l.record))
    }

    async fn get_listing(&self, hash: &str) -> Result<Option<TokenListing>, StoreError> {
        let hash = hash.to_owned();
        self.read_now(move |c| select_listing(c, &hash)).await
    }

    async fn insert(&self, record: &TokenRecord) -> Result<(), StoreError> {
        let r = record.clone();
        let providers =
            serde_json::to_string(&r.providers).map_err(|e| StoreError::Backend(e.to_string()))?;
        self.write(move |c| {
            // ON CONFLICT DO NOTHING + row count: a duplicate is refused atomically, never
            // overwritten (an overwrite could resurrect a disabled token).
            let inserted = immediate(c, |tx| {
                tx.execute(
                    "INSERT INTO tokens (hash, label, last4, providers, status, created_at,
                        expires_at, rate_limit, rate_window_s)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (hash) DO NOTHING",
                    params![
                        r.hash,
                        r.label,
                        r.last4,
                        providers,
                        r.status.as_str(),
                        r.created_at,
                        r.expires_at,
                        r.rate_limit.map(|l| l.limit),
                        r.rate_limit.map(|l| l.window_s),
                    ],
                )
                .map_err(backend)
            })?;
            if inserted == 0 {
                return Err(StoreError::Duplicate);
            }
            Ok(())
        })
        .await
    }

    async fn list(&self) -> Result<Vec<TokenListing>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "{SELECT_TOKEN} ORDER BY t.created_at DESC, t.hash"
                ))
                .map_err(backend)?;
            let mut rows = stmt.query([]).map_err(backend)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(backend)? {
                out.push(listing_from_row(row)?);
            }
            Ok(out)
        })
        .await
    }

    async fn list_page(
        &self,
        limit: usize,
        after: Option<&PageCursor>,
    ) -> Result<Page, StoreError> {
        let rows = rows_to_fetch(limit);
        let after = after.cloned();
        let tokens = self
            .read(move |c| {
                let mut out = Vec::new();
                let mut stmt;
                let mut rows = match &after {
                    None => {
                        stmt = c
                            .prepare_cached(&format!("{SELECT_TOKEN} {FIRST_PAGE}"))
                            .map_err(backend)?;
                        stmt.query(params![rows])
                    }
                    Some(cursor) => {
                        stmt = c
                            .prepare_cached(&format!("{SELECT_TOKEN} {NEXT_PAGE}"))
                            .map_err(backend)?;
                        stmt.query(params![rows, cursor.created_at, cursor.hash])
                    }
                }
                .map_err(backend)?;
                while let Some(row) = rows.next().map_err(backend)? {
                    out.push(listing_from_row(row)?);
                }
                Ok(out)
            })
            .await?;
        Ok(Page::from_rows(tokens, limit))
    }

    async fn hashes_with_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let prefix = prefix.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            // Hashes are lowercase hex and 'g' sorts after every hex digit, so
            // [prefix, prefix + "g") is exactly the hashes starting with prefix (index range).
            let mut stmt = c
                .prepare_cached(
                    "SELECT hash FROM tokens WHERE hash >= ?1 AND hash < ?1 || 'g'
                     ORDER BY hash LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![prefix, limit], |row| row.get::<_, String>(0))
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn update(
        &self,
        hash: &str,
        patch: &TokenPatch,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let hash = hash.to_owned();
        let patch = patch.clone();
        self.write(move |c| {
            immediate(c, |tx| {
                let (limit, window) = match patch.rate_limit {
                    Some(Some(rl)) => (Some(rl.limit), Some(rl.window_s)),
                    _ => (None, None),
                };
                let changed = tx
                    .execute(
                        UPDATE_TOKEN,
                        params![
                            hash,
                            patch.status.is_some(),
                            patch.status.map(|s| s.as_str()),
                            patch.expires_at.is_some(),
                            patch.expires_at.clone().flatten(),
                            patch.rate_limit.is_some(),
                            limit,
                            window,
                        ],
                    )
                    .map_err(backend)?;
                if changed == 0 {
                    return Ok(None);
                }
                // Read back inside the same transaction: what we return is what we committed.
                Ok(select_listing(tx, &hash)?.map(|l| l.record))
            })
        })
        .await
    }

    async fn delete(&self, hash: &str) -> Result<bool, StoreError> {
        let hash = hash.to_owned();
        self.write(move |c| {
            immediate(c, |tx| {
                // The cascade would do this too; being explicit keeps it right even on a
                // connection opened without foreign keys (e.g. an operator's sqlite3 shell).
                tx.execute("DELETE FROM last_used WHERE hash = ?1", [&hash])
                    .map_err(backend)?;
                let deleted = tx
                    .execute("DELETE FROM tokens WHERE hash = ?1", [&hash])
                    .map_err(backend)?;
                Ok(deleted > 0)
            })
        })
        .await
    }

    async fn stamp_last_used(&self, hash: &str, at: &str) -> Result<(), StoreError> {
        let hash = hash.to_owned();
        let at = at.to_owned();
        self.write(move |c| {
            immediate(c, |tx| {
                tx.execute(
                    "INSERT INTO last_used (hash, at)
                     SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM tokens WHERE hash = ?1)
                     ON CONFLICT (hash) DO UPDATE SET at = excluded.at",
                    params![hash, at],
                )
                .map(|_| ())
                .map_err(backend)
            })
        })
        .await
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn revoke_session(&self, id: &str, until: &str, now: &str) -> Result<(), StoreError> {
        let (id, until, now) = (id.to_owned(), until.to_owned(), now.to_owned());
        self.write(move |c| {
            immediate(c, |tx| {
                tx.execute("DELETE FROM revoked_sessions WHERE until < ?1", [&now])
                    .map_err(backend)?;
                tx.execute(
                    "INSERT INTO revoked_sessions (id, until) VALUES (?1, ?2)
                     ON CONFLICT (id) DO NOTHING",
                    params![id, until],
                )
                .map(|_| ())
                .map_err(backend)
            })
        })
        .await
    }

    async fn session_revoked(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.read_now(move |c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM revoked_sessions WHERE id = ?1)",
                [&id],
                |row| row.get(0),
            )
            .map_err(backend)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::store::contract::{sample_record, token_store_contract};

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
