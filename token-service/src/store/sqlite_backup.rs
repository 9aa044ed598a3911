//! Online backup and restore of the SQLite store, safe while `serve` runs.
//!
//! Copying the database file is not a backup: in WAL mode the newest commits live in the
//! `-wal` file until a checkpoint, and a copy taken mid-write can be torn. Instead:
//! - **backup** runs `VACUUM INTO`, which reads the database inside one read transaction (a
//!   consistent snapshot that writers in WAL mode never wait for) and writes a compact,
//!   self-contained file. It goes to a private (0700) directory next to the target, is checked
//!   (`PRAGMA integrity_check`), made owner-only (0600), and only then linked into place (never
//!   over an existing file), so a failed backup never leaves a file that looks like one and
//!   nobody else can plant, read or replace it on the way.
//! - **restore** checks the backup the same way, then copies it into the live database with
//!   SQLite's online backup API in one step: under SQLite's own locks, so a running `serve`
//!   sees the old tokens or the restored ones, never a half-written file. A backup taken by
//!   an older build (a lower schema version) is restored as it was and then migrated in place;
//!   one from a newer build is refused.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::migrations::SCHEMA_VERSION;
use super::sqlite::prepare_file;
use super::StoreError;

/// How long a restore keeps retrying while the live database is busy with a write.
const BUSY_PATIENCE: Duration = Duration::from_secs(10);

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn failed(what: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(what.to_string())
}

/// Opens an existing database without creating it.
fn open_existing(path: &Path) -> Result<Connection, StoreError> {
    if !path.is_file() {
        return Err(failed(format!("{} does not exist", path.display())));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(backend)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(backend)?;
    Ok(conn)
}

/// Checks that `conn` holds an intact token store of our schema or an older one (which
/// [`restore`] migrates); returns its token count.
fn verify(conn: &Connection, what: &Path) -> Result<u64, StoreError> {
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(backend)?;
    if integrity != "ok" {
        return Err(failed(format!(
            "{} failed its integrity check: {integrity}",
            what.display()
        )));
    }
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(backend)?;
    if !(1..=SCHEMA_VERSION).contains(&version) {
        return Err(failed(format!(
            "{} has schema version {version}, this build reads 1 to {SCHEMA_VERSION}",
            what.display()
        )));
    }
    let count: i64 = conn
        .query_row("SELECT count(*) FROM tokens", [], |r| r.get(0))
        .map_err(|e| failed(format!("{} is not a token store: {e}", what.display())))?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Writes a consistent copy of the live database `db` to `to` (which must not exist), readable
/// by its owner only (0600: it holds every token's hash, and a weak custom token cracks from
/// its hash offline); returns how many tokens it holds.
///
/// The copy is written in a private directory (0700) beside `to` and linked into place only
/// if `to` still does not exist: nobody who can write to `to`'s directory can plant the file
/// the backup lands in, read it while it is written, or have it overwrite theirs.
pub fn backup(db: &Path, to: &Path) -> Result<u64, StoreError> {
    if to.exists() {
        return Err(failed(format!(
            "{} exists; choose a new file (a backup never overwrites)",
            to.display()
        )));
    }
    let parent = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let private = tempfile::Builder::new()
        .prefix(".ptk-backup-")
        .tempdir_in(parent)
        .map_err(|e| failed(format!("cannot write in {}: {e}", parent.display())))?;
    let partial = private.path().join("backup.sqlite3");
    let source = open_existing(db)?;
    let target = partial
        .to_str()
        .ok_or_else(|| failed("the backup path must be valid UTF-8"))?;
    let count = source
        .execute("VACUUM INTO ?1", [target])
        .map_err(backend)
        .and_then(|_| verify(&Connection::open(&partial).map_err(backend)?, &partial))?;
    owner_only(&partial)?;
    // A hard link fails if `to` appeared meanwhile: never an overwrite. The private directory
    // (and its link to the copy) goes when `private` drops.
    std::fs::hard_link(&partial, to)
        .map_err(|e| failed(format!("cannot move the backup to {}: {e}", to.display())))?;
    Ok(count)
}

#[cfg(unix)]
fn owner_only(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| failed(format!("cannot restrict {}: {e}", path.display())))
}

#[cfg(not(unix))]
fn owner_only(_: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// Replaces the contents of the database `db` (created if missing) with the backup `from`,
/// after checking the backup; returns how many tokens the database now holds.
pub fn restore(from: &Path, db: &Path) -> Result<u64, StoreError> {
    let source = open_existing(from)?;
    verify(&source, from)?;
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut live = Connection::open(db).map_err(backend)?;
    live.busy_timeout(Duration::from_secs(5)).map_err(backend)?;
    copy_all(&source, &mut live)?;
    // A backup from an older build carries its migration history: bring it up to date (and
    // back to WAL mode: `VACUUM INTO` writes a rollback-journal file).
    prepare_file(db)?;
    verify(&live, db)
}

/// Copies every page in one backup step (atomic for other connections), retrying while
/// the destination is busy with another writer.
fn copy_all(source: &Connection, live: &mut Connection) -> Result<(), StoreError> {
    let started = Instant::now();
    loop {
        let copy = Backup::new(source, live).map_err(backend)?;
        match copy.step(-1).map_err(backend)? {
            StepResult::Done => return Ok(()),
            StepResult::Busy | StepResult::Locked | StepResult::More
                if started.elapsed() < BUSY_PATIENCE =>
            {
                drop(copy);
                std::thread::sleep(Duration::from_millis(50));
            }
            other => {
                let why = format!("{other:?}");
                return Err(failed(format!(
                    "the database stayed busy for {BUSY_PATIENCE:?} ({why}); nothing was restored"
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::store::{SqliteStore, TokenRecord, TokenStatus, TokenStore as _};

    fn record(n: usize) -> TokenRecord {
        TokenRecord {
            hash: format!("{n:064x}"),
            label: format!("t{n}"),
            last4: "abcd".into(),
            providers: vec![ptk_wire::Provider::Openai],
            status: TokenStatus::Active,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            expires_at: None,
            rate_limit: None,
            key_pool: None,
            models: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backup_under_concurrent_writes_then_restore() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("live.sqlite3");
        let store = SqliteStore::open(&db).unwrap();
        for n in 0..50 {
            store.insert(&record(n)).await.unwrap();
        }
        // A writer keeps inserting while three backups are taken.
        let writer_store = store.clone();
        let writer = tokio::spawn(async move {
            for n in 50..400 {
                writer_store.insert(&record(n)).await.unwrap();
            }
        });
        let mut counts = Vec::new();
        for i in 0..3 {
            let to = dir.path().join(format!("b{i}.sqlite3"));
            let db = db.clone();
            let count = tokio::task::spawn_blocking(move || backup(&db, &to))
                .await
                .unwrap()
                .unwrap();
            counts.push(count);
        }
        writer.await.unwrap();
        assert!(counts.iter().all(|c| (50..=400).contains(c)), "{counts:?}");
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
        // No leftovers, and a backup never overwrites.
        // Nothing left beside it (the private directory is gone), and only its owner reads it.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(".ptk-backup-"))
            .collect();
        assert!(names.is_empty(), "{names:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("b0.sqlite3"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(backup(&db, &dir.path().join("b0.sqlite3")).is_err());

        // Restore the first backup over the live store while it is open: exactly its tokens.
        store.delete(&record(0).hash).await.unwrap();
        let restored = restore(&dir.path().join("b0.sqlite3"), &db).unwrap();
        assert_eq!(restored, counts[0]);
        let tokens = store.list().await.unwrap();
        assert_eq!(tokens.len() as u64, counts[0]);
        assert!(store.get(&record(0).hash).await.unwrap().is_some());
        assert!(store
            .get(&record(usize::try_from(counts[0]).unwrap()).hash)
            .await
            .unwrap()
            .is_none());

        // A file that is not a backup is refused and changes nothing.
        let junk = dir.path().join("junk");
        std::fs::write(&junk, b"not a database at all, not even close").unwrap();
        assert!(restore(&junk, &db).is_err());
        assert_eq!(store.list().await.unwrap().len() as u64, counts[0]);
    }

    fn user_version(path: &Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    }

    /// A backup taken at schema 1 (before the list index) restores with its tokens and is
    /// migrated to this build's schema; a backup from a newer build is refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_older_schema_backup_restores_and_migrates_a_newer_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.sqlite3");
        let store = SqliteStore::open(&old).unwrap();
        for n in 0..3 {
            store.insert(&record(n)).await.unwrap();
        }
        drop(store);
        Connection::open(&old)
            .unwrap()
            .execute_batch(
                "DROP INDEX tokens_newest_first;
                 ALTER TABLE tokens DROP COLUMN key_pool;
                 ALTER TABLE tokens DROP COLUMN models;
                 DELETE FROM _sqlx_migrations WHERE version > 1;
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        let taken = dir.path().join("v1-backup.sqlite3");
        assert_eq!(backup(&old, &taken).unwrap(), 3);
        assert_eq!(user_version(&taken), 1);

        let live = dir.path().join("live.sqlite3");
        assert_eq!(restore(&taken, &live).unwrap(), 3);
        assert_eq!(user_version(&live), SCHEMA_VERSION);
        let indexed: bool = Connection::open(&live)
            .unwrap()
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'tokens_newest_first')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(indexed, "the restore did not migrate");
        let store = SqliteStore::open(&live).unwrap();
        assert_eq!(store.list_page(10, None).await.unwrap().tokens.len(), 3);

        let newer = dir.path().join("newer.sqlite3");
        std::fs::copy(&taken, &newer).unwrap();
        Connection::open(&newer)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = restore(&newer, &live).unwrap_err().to_string();
        assert!(err.contains("schema version"), "{err}");
        assert_eq!(store.list().await.unwrap().len(), 3);
    }
}
