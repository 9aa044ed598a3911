//! Versioned schema migrations (refinery), one SQL file per version per backend:
//! `migrations/sqlite/V<n>__<name>.sql` and `migrations/postgres/V<n>__<name>.sql`. Each store
//! runs them when it opens; the applied versions are kept in `refinery_schema_history`.
//!
//! Version 1 is the schema as it stood before migrations, written with `IF NOT EXISTS`, so a
//! database created by that older code upgrades in place with its tokens intact.
//!
//! refinery rather than sqlx: it runs on the drivers the stores already use, so SQLite keeps
//! rusqlite's online backup API (`sqlite_backup.rs`) and the check path's inline point read,
//! and PostgreSQL keeps tokio-postgres with its rustls verification (`PTK_DATABASE_CA_FILE`).

use rusqlite::Connection;

use super::StoreError;

mod sqlite {
    refinery::embed_migrations!("migrations/sqlite");
}

mod postgres {
    refinery::embed_migrations!("migrations/postgres");
}

/// Serialises PostgreSQL migrations when several replicas start at once (an arbitrary
/// constant; a session-level advisory lock held while refinery runs).
const POSTGRES_MIGRATION_LOCK: i64 = 0x7074_6b5f_7363_6d61;

fn failed(e: refinery::Error) -> StoreError {
    StoreError::Backend(format!("schema migration failed: {e}"))
}

/// Brings the SQLite database on `conn` to the latest schema.
pub(super) fn migrate_sqlite(conn: &mut Connection) -> Result<(), StoreError> {
    let runner = sqlite::migrations::runner();
    // Two processes opening a fresh file at once may both apply version 1 (it is idempotent);
    // the one that records it second fails on the history's key. Running again then finds
    // every version recorded and does nothing, or fails for a real reason.
    runner
        .run(conn)
        .or_else(|_| runner.run(conn))
        .map(|_| ())
        .map_err(failed)
}

/// Brings the PostgreSQL database on `client` to the latest schema, one replica at a time.
pub(super) async fn migrate_postgres(
    client: &mut tokio_postgres::Client,
) -> Result<(), StoreError> {
    let backend = |e: tokio_postgres::Error| StoreError::Backend(e.to_string());
    client
        .execute("SELECT pg_advisory_lock($1)", &[&POSTGRES_MIGRATION_LOCK])
        .await
        .map_err(backend)?;
    let ran = postgres::migrations::runner().run_async(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&POSTGRES_MIGRATION_LOCK])
        .await;
    ran.map_err(failed)?;
    unlocked.map(|_| ()).map_err(backend)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::store::sqlite_sql::SCHEMA_VERSION;

    fn versions(runner: &refinery::Runner) -> Vec<(i64, String)> {
        runner
            .get_migrations()
            .iter()
            .map(|m| (i64::from(m.version()), m.name().to_owned()))
            .collect()
    }

    /// Both backends have the same versions under the same names, and SQLite's
    /// `user_version` (which backups are checked against) is the latest of them.
    #[test]
    fn both_backends_have_the_same_migrations_and_the_latest_is_the_schema_version() {
        let mut sqlite = versions(&sqlite::migrations::runner());
        let mut postgres = versions(&postgres::migrations::runner());
        sqlite.sort();
        postgres.sort();
        assert_eq!(sqlite, postgres);
        assert_eq!(sqlite.last().map(|(v, _)| *v), Some(SCHEMA_VERSION));
    }
}
