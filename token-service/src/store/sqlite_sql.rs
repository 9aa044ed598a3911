//! The SQLite backend's SQL: statements, the write-transaction helper and row
//! decoding, kept apart from the store's async plumbing in `sqlite.rs`.

use rusqlite::{Connection, Row, Transaction, TransactionBehavior};

use super::row::RawRow;
use super::{StoreError, TokenListing};

/// The latest migration's version (`migrations/sqlite`), mirrored into `PRAGMA user_version`
/// so a backup can be checked against this build; a test ties the two.
pub(super) const SCHEMA_VERSION: i64 = 2;

pub(super) const SELECT_TOKEN: &str =
    "SELECT t.hash, t.label, t.last4, t.providers, t.status, t.created_at,
    t.expires_at, t.rate_limit, t.rate_window_s, l.at
    FROM tokens t LEFT JOIN last_used l ON l.hash = t.hash";

/// The first page of the list (`tokens_newest_first` serves the order); `?1` is the row count.
pub(super) const FIRST_PAGE: &str = "ORDER BY t.created_at DESC, t.hash LIMIT ?1";

/// A later page: the rows after the cursor (`?2`, `?3`) in the list's order. `created_at <= ?2`
/// is the index range; the `OR` only skips the cursor's own timestamp's earlier hashes.
pub(super) const NEXT_PAGE: &str = "WHERE t.created_at <= ?2 AND (t.created_at < ?2 OR t.hash > ?3)
    ORDER BY t.created_at DESC, t.hash LIMIT ?1";

/// Maps a SQLite error to the store's backend error.
pub(super) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Runs `job` in one `BEGIN IMMEDIATE` transaction: the write lock is taken up front, so
/// concurrent writers queue (busy_timeout) instead of failing on a lock upgrade, and whatever
/// `job` reads inside is exactly what it writes against.
pub(super) fn immediate<T>(
    conn: &mut Connection,
    job: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let out = job(&tx)?;
    tx.commit().map_err(backend)?;
    Ok(out)
}

/// Reads one token (with its stamp) on `conn`, which may be inside a transaction.
pub(super) fn select_listing(
    conn: &Connection,
    hash: &str,
) -> Result<Option<TokenListing>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!("{SELECT_TOKEN} WHERE t.hash = ?1"))
        .map_err(backend)?;
    let mut rows = stmt.query([hash]).map_err(backend)?;
    match rows.next().map_err(backend)? {
        Some(row) => Ok(Some(listing_from_row(row)?)),
        None => Ok(None),
    }
}

/// One statement for every patch: each `CASE` keeps the column unless the patch names it, so
/// the update never writes a value it did not mean to (no read-modify-write of the row).
pub(super) const UPDATE_TOKEN: &str = "UPDATE tokens SET
    status        = CASE WHEN ?2 THEN ?3 ELSE status END,
    expires_at    = CASE WHEN ?4 THEN ?5 ELSE expires_at END,
    rate_limit    = CASE WHEN ?6 THEN ?7 ELSE rate_limit END,
    rate_window_s = CASE WHEN ?6 THEN ?8 ELSE rate_window_s END
    WHERE hash = ?1";

/// Reads a row of [`SELECT_TOKEN`]. Rows that cannot be understood are `Corrupt`, so callers
/// fail closed instead of guessing.
pub(super) fn listing_from_row(row: &Row<'_>) -> Result<TokenListing, StoreError> {
    RawRow {
        hash: row.get(0).map_err(backend)?,
        label: row.get(1).map_err(backend)?,
        last4: row.get(2).map_err(backend)?,
        providers: row.get(3).map_err(backend)?,
        status: row.get(4).map_err(backend)?,
        created_at: row.get(5).map_err(backend)?,
        expires_at: row.get(6).map_err(backend)?,
        rate_limit: row.get(7).map_err(backend)?,
        rate_window_s: row.get(8).map_err(backend)?,
        last_used: row.get(9).map_err(backend)?,
    }
    .decode()
}
