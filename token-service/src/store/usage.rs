//! Token usage rollups in the token database (`token_usage`, migration 3): their own small
//! trait, written once for both backends over the same statements (`sql.rs`), with their own
//! contract (`contract.rs`, `usage_*`).

use async_trait::async_trait;
use ptk_wire::TokenUsage;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::sql;
use super::sql_store::{store_error, SqlStore};
use super::StoreError;
use crate::usage::{ModelTotals, UsageCounts, UsageKey, UsageRow};

/// Most rows a CSV export returns; a wider export is refused, asking for a later `since`
/// (never cut silently).
pub const MAX_USAGE_ROWS: usize = 100_000;

/// Where metered usage is kept.
#[async_trait]
pub trait UsageStore: Send + Sync + 'static {
    /// Adds `rows` to the rows with the same key (or creates them), all or none.
    async fn add_usage(&self, rows: &[UsageRow]) -> Result<(), StoreError>;
    /// One token's rows from `since` (a UTC day, `YYYY-MM-DD`, inclusive) on, by day.
    async fn usage_of(&self, hash: &str, since: &str) -> Result<Vec<UsageRow>, StoreError>;
    /// Every token's rows from `since` on, by day then token, at most `limit`.
    async fn usage_since(&self, since: &str, limit: usize) -> Result<Vec<UsageRow>, StoreError>;
    /// Every token's usage from `since` on, summed per provider and model (in the store).
    async fn usage_by_model(&self, since: &str) -> Result<Vec<ModelTotals>, StoreError>;
    /// Every token's usage from `since` on, summed per token hash (in the store).
    async fn usage_by_token(&self, since: &str) -> Result<Vec<(String, UsageCounts)>, StoreError>;
}

/// A count as the signed 64-bit integer both databases store (saturating).
pub(super) fn stored(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored count back (a negative one, which nothing writes, reads as 0).
pub(super) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Reads nine summed counts starting at column `at`.
fn counts_at<DB>(row: &DB::Row, at: usize) -> Result<UsageCounts, StoreError>
where
    DB: Database,
    usize: ColumnIndex<DB::Row>,
    i64: Type<DB> + for<'r> Decode<'r, DB>,
{
    let n = |i: usize| {
        row.try_get::<i64, _>(at.saturating_add(i))
            .map(count)
            .map_err(store_error)
    };
    Ok(UsageCounts {
        requests: n(0)?,
        incomplete: n(1)?,
        usage: TokenUsage {
            input: n(2)?,
            cached_input: n(3)?,
            cache_write: n(4)?,
            output: n(5)?,
            reasoning: n(6)?,
        },
        cost_nano_usd: n(7)?,
        unpriced_requests: n(8)?,
    })
}

/// Reads a row in [`sql::USAGE_OF`]'s column order.
fn usage_row<DB>(row: &DB::Row) -> Result<UsageRow, StoreError>
where
    DB: Database,
    usize: ColumnIndex<DB::Row>,
    String: Type<DB> + for<'r> Decode<'r, DB>,
    i64: Type<DB> + for<'r> Decode<'r, DB>,
{
    let text = |i: usize| row.try_get::<String, _>(i).map_err(store_error);
    Ok(UsageRow {
        key: UsageKey {
            hash: text(0)?,
            day: text(1)?,
            provider: text(2)?,
            model: text(3)?,
            api: text(4)?,
        },
        counts: counts_at::<DB>(row, 5)?,
    })
}

/// Adds `rows` to the usage rollups inside the caller's transaction (the budget ledger's
/// settlement writes them with its own rows, all or none).
pub(super) async fn insert_usage<DB>(
    conn: &mut DB::Connection,
    rows: &[UsageRow],
) -> Result<(), StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    String: Type<DB> + for<'q> Encode<'q, DB>,
    i64: Type<DB> + for<'q> Encode<'q, DB>,
{
    for UsageRow { key, counts } in rows {
        let usage = &counts.usage;
        sqlx::query(sql::ADD_USAGE)
            .bind(key.hash.clone())
            .bind(key.day.clone())
            .bind(key.provider.clone())
            .bind(key.model.clone())
            .bind(key.api.clone())
            .bind(stored(counts.requests))
            .bind(stored(counts.incomplete))
            .bind(stored(usage.input))
            .bind(stored(usage.cached_input))
            .bind(stored(usage.cache_write))
            .bind(stored(usage.output))
            .bind(stored(usage.reasoning))
            .bind(stored(counts.cost_nano_usd))
            .bind(stored(counts.unpriced_requests))
            .execute(&mut *conn)
            .await
            .map_err(store_error)?;
    }
    Ok(())
}

#[async_trait]
impl<DB> UsageStore for SqlStore<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    String: Type<DB> + for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    i64: Type<DB> + for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
{
    async fn add_usage(&self, rows: &[UsageRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.writes.begin().await.map_err(store_error)?;
        insert_usage::<DB>(&mut *tx, rows).await?;
        tx.commit().await.map_err(store_error)
    }

    async fn usage_of(&self, hash: &str, since: &str) -> Result<Vec<UsageRow>, StoreError> {
        let rows = sqlx::query(sql::USAGE_OF)
            .bind(hash.to_owned())
            .bind(since.to_owned())
            .fetch_all(&self.reads)
            .await
            .map_err(store_error)?;
        rows.iter().map(usage_row::<DB>).collect()
    }

    async fn usage_since(&self, since: &str, limit: usize) -> Result<Vec<UsageRow>, StoreError> {
        let rows = sqlx::query(sql::USAGE_SINCE)
            .bind(since.to_owned())
            .bind(stored(u64::try_from(limit).unwrap_or(u64::MAX)))
            .fetch_all(&self.reads)
            .await
            .map_err(store_error)?;
        rows.iter().map(usage_row::<DB>).collect()
    }

    async fn usage_by_model(&self, since: &str) -> Result<Vec<ModelTotals>, StoreError> {
        let rows = sqlx::query(sql::USAGE_BY_MODEL)
            .bind(since.to_owned())
            .fetch_all(&self.reads)
            .await
            .map_err(store_error)?;
        let totals = rows
            .iter()
            .map(|row| {
                Ok(ModelTotals {
                    provider: row.try_get::<String, _>(0).map_err(store_error)?,
                    model: row.try_get::<String, _>(1).map_err(store_error)?,
                    counts: counts_at::<DB>(row, 2)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(totals)
    }

    async fn usage_by_token(&self, since: &str) -> Result<Vec<(String, UsageCounts)>, StoreError> {
        let rows = sqlx::query(sql::USAGE_BY_TOKEN)
            .bind(since.to_owned())
            .fetch_all(&self.reads)
            .await
            .map_err(store_error)?;
        let totals = rows
            .iter()
            .map(|row| {
                let hash = row.try_get::<String, _>(0).map_err(store_error)?;
                Ok((hash, counts_at::<DB>(row, 1)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(totals)
    }
}
