//! Versioned schema migrations (sqlx's migrator), one SQL file per version per backend:
//! `migrations/sqlite/<n>_<name>.sql` and `migrations/postgres/<n>_<name>.sql`, embedded in the
//! binary. Each store runs them when it opens; the applied versions (with a checksum of each
//! file: an applied migration must never be edited) are kept in `_sqlx_migrations`.
//!
//! Version 1 is the schema as it stood before migrations, written with `IF NOT EXISTS`, so a
//! database created by that older code (0.1.0) upgrades in place with its tokens intact. For
//! the same reason a database an earlier build migrated with refinery (whose history table,
//! `refinery_schema_history`, is left alone) upgrades too: sqlx finds no history of its own,
//! and every version up to the one that build had finds its tables and indexes already there.

use sqlx::migrate::Migrator;
use sqlx::{PgPool, SqliteConnection};

use super::StoreError;

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");

static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

/// The latest migration's version, mirrored into SQLite's `PRAGMA user_version` so a backup
/// can be checked against this build; a test ties the two.
pub(super) const SCHEMA_VERSION: i64 = 6;

fn failed(e: sqlx::migrate::MigrateError) -> StoreError {
    StoreError::Backend(format!("schema migration failed: {e}"))
}

/// Brings the SQLite database on `conn` to the latest schema.
pub(super) async fn migrate_sqlite(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    // Two processes opening a fresh file at once may both apply version 1 (it is idempotent);
    // the one that records it second fails on the history's key. Running again then finds
    // every version recorded and does nothing, or fails for a real reason.
    if SQLITE.run(&mut *conn).await.is_ok() {
        return Ok(());
    }
    SQLITE.run(conn).await.map_err(failed)
}

/// Brings the PostgreSQL database to the latest schema, one replica at a time (the migrator
/// holds an advisory lock while it runs).
pub(super) async fn migrate_postgres(pool: &PgPool) -> Result<(), StoreError> {
    POSTGRES.run(pool).await.map_err(failed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn versions(migrator: &Migrator) -> Vec<(i64, String)> {
        migrator
            .iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect()
    }

    /// Both backends have the same versions under the same names, and SQLite's
    /// `user_version` (which backups are checked against) is the latest of them.
    #[test]
    fn both_backends_have_the_same_migrations_and_the_latest_is_the_schema_version() {
        let mut sqlite = versions(&SQLITE);
        let mut postgres = versions(&POSTGRES);
        sqlite.sort();
        postgres.sort();
        assert_eq!(sqlite, postgres);
        assert_eq!(sqlite.last().map(|(v, _)| *v), Some(SCHEMA_VERSION));
    }
}
