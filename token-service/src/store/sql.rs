//! Every statement the stores run, written once: the same text prepares on SQLite and on
//! PostgreSQL (a test prepares each on both). Parameters are `$1`, `$2`, ...: PostgreSQL's
//! form, which SQLite reads as named parameters and sqlx binds by their number, not by where
//! they appear (so `$2` may come before `$1`, and one number may appear twice).

/// A token row joined with its last-used stamp, as [`super::row::RawRow`] reads it (by
/// position).
macro_rules! select_token {
    ($tail:literal) => {
        concat!(
            "SELECT t.hash, t.label, t.last4, t.providers, t.status, t.created_at,
                t.expires_at, t.rate_limit, t.rate_window_s, l.at, t.key_pool, t.models
             FROM tokens t LEFT JOIN last_used l ON l.hash = t.hash ",
            $tail
        )
    };
}

/// A cheap round trip that touches the tokens table, so a missing schema is "not answering".
pub(super) const PING: &str = "SELECT 1 FROM tokens LIMIT 0";

/// One token by hash (`$1`).
pub(super) const GET_TOKEN: &str = select_token!("WHERE t.hash = $1");

/// Hashes per [`labels_of`] statement: well under SQLite's and PostgreSQL's bound on
/// parameters, few enough round trips for an admin view of thousands of tokens.
pub(super) const LABELS_CHUNK: usize = 500;

/// `SELECT hash, label` of the tokens among `count` hashes bound as `$1..$count`.
pub(super) fn labels_of(count: usize) -> String {
    let params: Vec<String> = (1..=count).map(|n| format!("${n}")).collect();
    format!(
        "SELECT hash, label FROM tokens WHERE hash IN ({})",
        params.join(", ")
    )
}

/// Every token, in the list's order (newest first, then hash).
pub(super) const LIST_TOKENS: &str = select_token!("ORDER BY t.created_at DESC, t.hash");

/// The first page of the list (`tokens_newest_first` serves the order); `$1` is the row count.
pub(super) const FIRST_PAGE: &str = select_token!("ORDER BY t.created_at DESC, t.hash LIMIT $1");

/// A later page: the rows after the cursor (`$2`, `$3`) in the list's order. `created_at <= $2`
/// is the index range; the `OR` only skips the cursor's own timestamp's earlier hashes.
pub(super) const NEXT_PAGE: &str = select_token!(
    "WHERE t.created_at <= $2 AND (t.created_at < $2 OR t.hash > $3)
        ORDER BY t.created_at DESC, t.hash LIMIT $1"
);

/// Hashes are lowercase hex and 'g' sorts after every hex digit, so `[$1, $1 || 'g')` is
/// exactly the hashes starting with `$1` (an index range; PostgreSQL's column is "C"-collated).
pub(super) const HASHES_WITH_PREFIX: &str = "SELECT hash FROM tokens
    WHERE hash >= $1 AND hash < $1 || 'g' ORDER BY hash LIMIT $2";

/// ON CONFLICT DO NOTHING: a duplicate is refused atomically, never overwritten (an overwrite
/// could resurrect a disabled token); a row comes back only when the token was inserted.
pub(super) const INSERT_TOKEN: &str = "INSERT INTO tokens (hash, label, last4, providers,
        status, created_at, expires_at, rate_limit, rate_window_s, key_pool, models)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
    ON CONFLICT (hash) DO NOTHING RETURNING hash";

/// One statement for every patch: each `CASE` keeps the column unless the patch names it, so
/// the update never writes a value it did not mean to (no read-modify-write of the row), and
/// `RETURNING` hands back the row exactly as this statement wrote it, in [`GET_TOKEN`]'s column
/// order (a patch never touches the stamp, so that column is left empty).
pub(super) const UPDATE_TOKEN: &str = "UPDATE tokens SET
    status        = CASE WHEN $2 THEN $3 ELSE status END,
    expires_at    = CASE WHEN $4 THEN $5 ELSE expires_at END,
    rate_limit    = CASE WHEN $6 THEN $7 ELSE rate_limit END,
    rate_window_s = CASE WHEN $6 THEN $8 ELSE rate_window_s END,
    key_pool      = CASE WHEN $9 THEN $10 ELSE key_pool END,
    models        = CASE WHEN $11 THEN $12 ELSE models END
    WHERE hash = $1
    RETURNING hash, label, last4, providers, status, created_at, expires_at, rate_limit,
        rate_window_s, CAST(NULL AS TEXT), key_pool, models";

/// The stamp goes with the token (`ON DELETE CASCADE`; both drivers turn foreign keys on); a
/// row comes back only when there was a token.
pub(super) const DELETE_TOKEN: &str = "DELETE FROM tokens WHERE hash = $1 RETURNING hash";

/// Records a use, and only of a token that exists: a stamp never creates or revives one.
pub(super) const STAMP_LAST_USED: &str = "INSERT INTO last_used (hash, at)
    SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM tokens WHERE hash = $1)
    ON CONFLICT (hash) DO UPDATE SET at = excluded.at";

/// Drops the ended sessions that have expired anyway (`$1` is now).
pub(super) const FORGET_EXPIRED_SESSIONS: &str = "DELETE FROM revoked_sessions WHERE until < $1";

/// Ends a session (`$1`) until `$2`.
pub(super) const REVOKE_SESSION: &str = "INSERT INTO revoked_sessions (id, until)
    VALUES ($1, $2) ON CONFLICT (id) DO NOTHING";

/// Whether a session (`$1`) was ended.
pub(super) const SESSION_REVOKED: &str =
    "SELECT EXISTS (SELECT 1 FROM revoked_sessions WHERE id = $1)";

/// `column = column + excluded.column`, saturating at the largest BIGINT: a plain sum would
/// fail on PostgreSQL (out of range: the whole report refused) and turn into a float on
/// SQLite (the row unreadable from then on). Stored counts are never negative.
macro_rules! add_saturating {
    ($column:literal) => {
        concat!(
            $column,
            " = CASE WHEN token_usage.",
            $column,
            " > 9223372036854775807 - excluded.",
            $column,
            " THEN 9223372036854775807 ELSE token_usage.",
            $column,
            " + excluded.",
            $column,
            " END"
        )
    };
}

/// Adds one usage row (`$1`–`$5` its key, `$6`–`$14` its counts) to what the day already has.
pub(super) const ADD_USAGE: &str = concat!(
    "INSERT INTO token_usage (hash, day, provider, model, api,
        requests, incomplete, input_tokens, cached_input_tokens, cache_write_tokens,
        output_tokens, reasoning_tokens, cost_nano_usd, unpriced_requests)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
    ON CONFLICT (hash, day, provider, model, api) DO UPDATE SET ",
    add_saturating!("requests"),
    ", ",
    add_saturating!("incomplete"),
    ", ",
    add_saturating!("input_tokens"),
    ", ",
    add_saturating!("cached_input_tokens"),
    ", ",
    add_saturating!("cache_write_tokens"),
    ", ",
    add_saturating!("output_tokens"),
    ", ",
    add_saturating!("reasoning_tokens"),
    ", ",
    add_saturating!("cost_nano_usd"),
    ", ",
    add_saturating!("unpriced_requests"),
);

/// The columns of a usage row, in [`super::usage::usage_row`]'s order.
macro_rules! select_usage {
    ($tail:literal) => {
        concat!(
            "SELECT hash, day, provider, model, api, requests, incomplete, input_tokens,
                cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens,
                cost_nano_usd, unpriced_requests FROM token_usage ",
            $tail
        )
    };
}

/// One token's rows (`$1`) from a day on (`$2`, `YYYY-MM-DD`, inclusive), by day.
pub(super) const USAGE_OF: &str =
    select_usage!("WHERE hash = $1 AND day >= $2 ORDER BY day, provider, model, api");

/// Every token's rows from a day on (`$1`), by day then token (fleet totals, CSV export);
/// at most `$2` rows.
pub(super) const USAGE_SINCE: &str =
    select_usage!("WHERE day >= $1 ORDER BY day, hash, provider, model, api LIMIT $2");

/// The summed counts of a group, in [`super::usage`]'s order after the group's key columns
/// (`CAST`: PostgreSQL sums a BIGINT as NUMERIC).
macro_rules! sum_usage {
    ($key:literal, $tail:literal) => {
        concat!(
            "SELECT ",
            $key,
            ", CAST(SUM(requests) AS BIGINT), CAST(SUM(incomplete) AS BIGINT),
                CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(cached_input_tokens) AS BIGINT),
                CAST(SUM(cache_write_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT),
                CAST(SUM(reasoning_tokens) AS BIGINT), CAST(SUM(cost_nano_usd) AS BIGINT),
                CAST(SUM(unpriced_requests) AS BIGINT) FROM token_usage ",
            $tail
        )
    };
}

/// Every token's usage from a day on (`$1`) summed per provider and model, costliest first.
pub(super) const USAGE_BY_MODEL: &str = sum_usage!(
    "provider, model",
    "WHERE day >= $1 GROUP BY provider, model
        ORDER BY SUM(cost_nano_usd) DESC, provider, model"
);

/// Every token's usage from a day on (`$1`) summed per token, costliest first.
pub(super) const USAGE_BY_TOKEN: &str = sum_usage!(
    "hash",
    "WHERE day >= $1 GROUP BY hash ORDER BY SUM(cost_nano_usd) DESC, hash"
);

/// Every statement above, for the test that prepares each on both backends.
#[cfg(test)]
pub(super) const ALL: [&str; 18] = [
    PING,
    GET_TOKEN,
    LIST_TOKENS,
    FIRST_PAGE,
    NEXT_PAGE,
    HASHES_WITH_PREFIX,
    INSERT_TOKEN,
    UPDATE_TOKEN,
    DELETE_TOKEN,
    STAMP_LAST_USED,
    FORGET_EXPIRED_SESSIONS,
    REVOKE_SESSION,
    SESSION_REVOKED,
    ADD_USAGE,
    USAGE_OF,
    USAGE_SINCE,
    USAGE_BY_MODEL,
    USAGE_BY_TOKEN,
];

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use sqlx::{Executor as _, Pool};

    use super::ALL;
    use crate::store::SqliteStore;

    /// Prepares every statement on `pool`'s backend, and checks that `$n` binds the n-th value
    /// wherever it appears (SQLite numbers named parameters by first appearance; sqlx must
    /// bind them by name, or [`super::NEXT_PAGE`] would page with its values swapped).
    pub(crate) async fn statements_prepare_and_bind_by_number<DB>(pool: &Pool<DB>)
    where
        DB: sqlx::Database,
        for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
        DB::Arguments: sqlx::IntoArguments<DB>,
        usize: sqlx::ColumnIndex<DB::Row>,
        String: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
    {
        let mut conn = pool.acquire().await.unwrap();
        for statement in ALL {
            if let Err(e) = conn
                .prepare(sqlx::SqlSafeStr::into_sql_str(statement))
                .await
            {
                panic!("{} does not prepare: {e}\n{statement}", DB::NAME);
            }
        }
        let swapped: String = sqlx::query_scalar("SELECT $2 || $1 || $2")
            .bind("a".to_owned())
            .bind("b".to_owned())
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(swapped, "bab", "{}", DB::NAME);
    }

    #[tokio::test]
    async fn every_statement_prepares_on_sqlite_and_binds_by_number() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db.sqlite3")).unwrap();
        statements_prepare_and_bind_by_number(&store.writes).await;
    }
}
