//! The token and session stores written once, generic over the sqlx driver: the same
//! statements (`sql.rs`) on the same pool type for SQLite and PostgreSQL. What differs per
//! backend (opening, pragmas, TLS, migrations) lives in `sqlite.rs` and `postgres.rs`.
//!
//! Every call is async all the way down: sqlx runs each SQLite connection on its own thread
//! and PostgreSQL's on the socket, so no statement ever blocks the async runtime, however long
//! it waits for a lock.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::error::ErrorKind;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use super::page::rows_to_fetch;
use super::row::RawRow;
use super::sql;
use super::{
    Page, PageCursor, SessionStore, StoreError, TokenListing, TokenPatch, TokenRecord, TokenStore,
};

/// A store on two pools of one driver: reads and writes. SQLite gives writes their own single
/// connection (it has one writer anyway, and a write waiting for the file's lock must not
/// hold a connection a check needs); PostgreSQL uses one pool for both.
pub struct SqlStore<DB: Database> {
    pub(super) reads: Pool<DB>,
    pub(super) writes: Pool<DB>,
}

impl<DB: Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        SqlStore {
            reads: self.reads.clone(),
            writes: self.writes.clone(),
        }
    }
}

/// A driver error as the store's: a pool that gave no connection is `Pool`, anything else
/// `Backend`, with the causes ("error performing TLS handshake: invalid peer certificate").
pub(super) fn store_error(e: sqlx::Error) -> StoreError {
    let text = with_causes(&e);
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => StoreError::Pool(text),
        _ => StoreError::Backend(text),
    }
}

/// An error with its causes: the driver's own message alone often hides what an operator needs.
pub(super) fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Reads a row in [`sql::GET_TOKEN`]'s column order. Rows that cannot be understood are
/// `Corrupt`, so callers fail closed instead of guessing.
fn listing<DB>(row: &DB::Row) -> Result<TokenListing, StoreError>
where
    DB: Database,
    usize: ColumnIndex<DB::Row>,
    String: Type<DB> + for<'r> Decode<'r, DB>,
    i64: Type<DB> + for<'r> Decode<'r, DB>,
{
    let e = store_error;
    RawRow {
        hash: row.try_get(0).map_err(e)?,
        label: row.try_get(1).map_err(e)?,
        last4: row.try_get(2).map_err(e)?,
        providers: row.try_get(3).map_err(e)?,
        status: row.try_get(4).map_err(e)?,
        created_at: row.try_get(5).map_err(e)?,
        expires_at: row.try_get(6).map_err(e)?,
        rate_limit: row.try_get(7).map_err(e)?,
        rate_window_s: row.try_get(8).map_err(e)?,
        last_used: row.try_get(9).map_err(e)?,
        key_pool: row.try_get(10).map_err(e)?,
        models: row.try_get(11).map_err(e)?,
    }
    .decode()
}

/// A model allow-list as its column's JSON text (`None`: any model).
fn models_column(models: Option<&[String]>) -> Result<Option<String>, StoreError> {
    models
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Backend(e.to_string()))
}

/// The limit as the integer SQL binds.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[async_trait]
impl<DB> TokenStore for SqlStore<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    String: Type<DB> + for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    i64: Type<DB> + for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    bool: Type<DB> + for<'q> Encode<'q, DB>,
    Option<String>: for<'q> Encode<'q, DB>,
    Option<i64>: for<'q> Encode<'q, DB>,
{
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query(sql::PING)
            .fetch_optional(&self.reads)
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    async fn get(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self.get_listing(hash).await?.map(|l| l.record))
    }

    async fn get_listing(&self, hash: &str) -> Result<Option<TokenListing>, StoreError> {
        let row = sqlx::query(sql::GET_TOKEN)
            .bind(hash.to_owned())
            .fetch_optional(&self.reads)
            .await
            .map_err(store_error)?;
        row.as_ref().map(listing::<DB>).transpose()
    }

    async fn insert(&self, record: &TokenRecord) -> Result<(), StoreError> {
        let providers = serde_json::to_string(&record.providers)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let r = record.clone();
        let inserted = sqlx::query(sql::INSERT_TOKEN)
            .bind(r.hash)
            .bind(r.label)
            .bind(r.last4)
            .bind(providers)
            .bind(r.status.as_str().to_owned())
            .bind(r.created_at)
            .bind(r.expires_at)
            .bind(r.rate_limit.map(|l| i64::from(l.limit)))
            .bind(r.rate_limit.map(|l| i64::from(l.window_s)))
            .bind(r.key_pool)
            .bind(models_column(r.models.as_deref())?)
            .fetch_optional(&self.writes)
            .await
            .map_err(store_error)?;
        if inserted.is_none() {
            return Err(StoreError::Duplicate);
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<TokenListing>, StoreError> {
        let rows = sqlx::query(sql::LIST_TOKENS)
            .fetch_all(&self.reads)
            .await
            .map_err(store_error)?;
        rows.iter().map(listing::<DB>).collect()
    }

    async fn list_page(
        &self,
        limit: usize,
        after: Option<&PageCursor>,
    ) -> Result<Page, StoreError> {
        let rows = rows_to_fetch(limit);
        let query = match after {
            None => sqlx::query(sql::FIRST_PAGE).bind(rows),
            Some(cursor) => sqlx::query(sql::NEXT_PAGE)
                .bind(rows)
                .bind(cursor.created_at.clone())
                .bind(cursor.hash.clone()),
        };
        let found = query.fetch_all(&self.reads).await.map_err(store_error)?;
        let tokens = found.iter().map(listing::<DB>).collect::<Result<_, _>>()?;
        Ok(Page::from_rows(tokens, limit))
    }

    async fn hashes_with_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(sql::HASHES_WITH_PREFIX)
            .bind(prefix.to_owned())
            .bind(sql_limit(limit))
            .fetch_all(&self.reads)
            .await
            .map_err(store_error)?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(store_error))
            .collect()
    }

    async fn update(
        &self,
        hash: &str,
        patch: &TokenPatch,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let (limit, window) = match patch.rate_limit {
            Some(Some(rl)) => (Some(i64::from(rl.limit)), Some(i64::from(rl.window_s))),
            _ => (None, None),
        };
        let row = sqlx::query(sql::UPDATE_TOKEN)
            .bind(hash.to_owned())
            .bind(patch.status.is_some())
            .bind(patch.status.map(|s| s.as_str().to_owned()))
            .bind(patch.expires_at.is_some())
            .bind(patch.expires_at.clone().flatten())
            .bind(patch.rate_limit.is_some())
            .bind(limit)
            .bind(window)
            .bind(patch.key_pool.is_some())
            .bind(patch.key_pool.clone().flatten())
            .bind(patch.models.is_some())
            .bind(models_column(patch.models.clone().flatten().as_deref())?)
            .fetch_optional(&self.writes)
            .await
            .map_err(store_error)?;
        Ok(row
            .as_ref()
            .map(listing::<DB>)
            .transpose()?
            .map(|l| l.record))
    }

    async fn labels(&self, hashes: &[String]) -> Result<HashMap<String, String>, StoreError> {
        let mut out = HashMap::with_capacity(hashes.len());
        for chunk in hashes.chunks(sql::LABELS_CHUNK) {
            let statement = sql::labels_of(chunk.len());
            // Only placeholders are generated: the hashes are bound, never spliced in.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
            for hash in chunk {
                query = query.bind(hash.clone());
            }
            for row in query.fetch_all(&self.reads).await.map_err(store_error)? {
                let hash: String = row.try_get(0).map_err(store_error)?;
                let label: String = row.try_get(1).map_err(store_error)?;
                out.insert(hash, label);
            }
        }
        Ok(out)
    }

    async fn delete(&self, hash: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query(sql::DELETE_TOKEN)
            .bind(hash.to_owned())
            .fetch_optional(&self.writes)
            .await
            .map_err(store_error)?;
        Ok(deleted.is_some())
    }

    async fn stamp_last_used(&self, hash: &str, at: &str) -> Result<(), StoreError> {
        let stamped = sqlx::query(sql::STAMP_LAST_USED)
            .bind(hash.to_owned())
            .bind(at.to_owned())
            .execute(&self.writes)
            .await;
        match stamped {
            Ok(_) => Ok(()),
            // The token was deleted between the EXISTS and the insert: nothing to stamp.
            Err(e) if foreign_key_violation(&e) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }
}

#[async_trait]
impl<DB> SessionStore for SqlStore<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    String: Type<DB> + for<'q> Encode<'q, DB>,
    bool: Type<DB> + for<'r> Decode<'r, DB>,
{
    async fn revoke_session(&self, id: &str, until: &str, now: &str) -> Result<(), StoreError> {
        let mut tx = self.writes.begin().await.map_err(store_error)?;
        sqlx::query(sql::FORGET_EXPIRED_SESSIONS)
            .bind(now.to_owned())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        sqlx::query(sql::REVOKE_SESSION)
            .bind(id.to_owned())
            .bind(until.to_owned())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)
    }

    async fn session_revoked(&self, id: &str) -> Result<bool, StoreError> {
        sqlx::query(sql::SESSION_REVOKED)
            .bind(id.to_owned())
            .fetch_one(&self.reads)
            .await
            .map_err(store_error)?
            .try_get(0)
            .map_err(store_error)
    }
}

fn foreign_key_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| matches!(d.kind(), ErrorKind::ForeignKeyViolation))
}
