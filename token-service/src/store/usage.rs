//! Token usage rollups in the token database (`token_usage`, migration 3): their own small
//! trait, written once for both backends over the same statements (`sql.rs`), with their own
//! contract (`contract.rs`, `usage_*`).

use async_trait::async_trait;
use ptk_wire::TokenUsage;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::sql;
use super::sql_store::{store_error, SqlStore};
use super::StoreError;
use crate::usage::{UsageCounts, UsageKey, UsageRow};

/// Most rows one fleet-wide read returns (a CSV export of a busy month stays bounded).
pub const MAX_USAGE_ROWS: usize = 100_000;

/// Where metered usage is kept.
#[async_trait]
pub trait UsageStore: Send + Sync + 'static {
    /// Adds `rows` to the rows with the same key (or creates them), all or none.
    async fn add_usage(&self, rows: &[UsageRow]) -> Result<(), StoreError>;
    /// One token's rows from `since` (a UTC day, `YYYY-MM-DD`, inclusive) on, by day.
    async fn usage_of(&self, hash: &str, since: &str) -> Result<Vec<UsageRow>, StoreError>;
    /// Every token's rows from `since` on, by day then token, at most [`MAX_USAGE_ROWS`].
    async fn usage_since(&self, since: &str) -> Result<Vec<UsageRow>, StoreError>;
}

/// A count as the signed 64-bit integer both databases store (saturating).
fn stored(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored count back (a negative one, which nothing writes, reads as 0).
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
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
    let n = |i: usize| row.try_get::<i64, _>(i).map(count).map_err(store_error);
    Ok(UsageRow {
        key: UsageKey {
            hash: text(0)?,
            day: text(1)?,
            provider: text(2)?,
            model: text(3)?,
            api: text(4)?,
        },
        counts: UsageCounts {
            requests: n(5)?,
            incomplete: n(6)?,
            usage: TokenUsage {
                input: n(7)?,
                cached_input: n(8)?,
                cache_write: n(9)?,
                output: n(10)?,
                reasoning: n(11)?,
            },
            cost_nano_usd: n(12)?,
            unpriced_requests: n(13)?,
        },
    })
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
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
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

    async fn usage_since(&self, since: &str) -> Result<Vec<UsageRow>, StoreError> {
        let rows = sqlx::query(sql::USAGE_SINCE)
            .bind(since.to_owned())
            .bind(stored(MAX_USAGE_ROWS as u64))
            .fetch_all(&self.reads)
            .await
            .map_err(store_error)?;
        rows.iter().map(usage_row::<DB>).collect()
    }
}
