//! Budgets in the token database (migration 6): a token's budgets and group, the groups, and
//! the settled-spend ledger, which is written in one transaction with the usage rollups.

use async_trait::async_trait;
use ptk_wire::BudgetPeriod;
use sqlx::error::ErrorKind;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::budget_sql as sql;
use super::sql_store::{store_error, SqlStore};
use super::usage::{count, insert_usage, stored};
use super::StoreError;
use crate::budget::{BudgetPatch, Budgets, PeriodLimit};
use crate::usage::UsageRow;

/// A token's own budgets and its group's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenBudgets {
    /// The token's own.
    pub own: Budgets,
    /// Its group's name and budgets, when it belongs to one.
    pub group: Option<(String, Budgets)>,
}

impl TokenBudgets {
    /// Whether no budget applies (neither the token's nor its group's).
    pub fn is_unbudgeted(&self) -> bool {
        self.own.is_empty() && self.group.as_ref().is_none_or(|(_, g)| g.is_empty())
    }
}

/// A group as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// Its name.
    pub name: String,
    /// Its budgets.
    pub budgets: Budgets,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Tokens that belong to it.
    pub members: u64,
}

/// Settled spend of one scope in one period.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SpendRow {
    /// `token:<hash>` or `group:<name>`.
    pub scope: String,
    /// Period id.
    pub period: String,
    /// Tokens.
    pub tokens: u64,
    /// Nanodollars.
    pub cost_nano_usd: u64,
}

/// Why a group could not be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupDelete {
    /// Deleted.
    Deleted,
    /// No such group.
    NotFound,
    /// Tokens still belong to it.
    HasMembers(u64),
}

/// Budget storage.
#[async_trait]
pub trait BudgetStore: Send + Sync + 'static {
    /// A token's budgets and its group's (none when it has no budget row).
    async fn budgets_of(&self, hash: &str) -> Result<TokenBudgets, StoreError>;
    /// Applies `patch` to a token's budgets and group; `Ok(None)` when there is no such token,
    /// [`StoreError::Backend`] naming the group when it does not exist.
    async fn patch_token_budgets(
        &self,
        hash: &str,
        patch: &BudgetPatch,
    ) -> Result<Option<TokenBudgets>, StoreError>;
    /// Creates a group; [`StoreError::Duplicate`] when the name is taken.
    async fn create_group(
        &self,
        name: &str,
        budgets: &Budgets,
        now: &str,
    ) -> Result<(), StoreError>;
    /// Patches a group's budgets (its `group` field is ignored); `false` when none is named so.
    async fn update_group(&self, name: &str, patch: &BudgetPatch) -> Result<bool, StoreError>;
    /// Every group, by name.
    async fn groups(&self) -> Result<Vec<GroupRecord>, StoreError>;
    /// Deletes a group that no token belongs to.
    async fn delete_group(&self, name: &str) -> Result<GroupDelete, StoreError>;
    /// The group a token belongs to (`None`: none, or no such token).
    async fn group_of(&self, hash: &str) -> Result<Option<String>, StoreError>;
    /// Settled spend of up to two scopes in up to four periods (rows that exist).
    async fn spend(
        &self,
        scopes: &[String],
        periods: &[String],
    ) -> Result<Vec<SpendRow>, StoreError>;
    /// Adds usage rollups and ledger rows in one transaction (all or none), and drops the
    /// touched scopes' minute rows older than `prune_before` (a minute id).
    async fn settle(
        &self,
        usage: &[UsageRow],
        spend: &[SpendRow],
        prune_before: &str,
    ) -> Result<(), StoreError>;
}

type Columns = (
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
);

/// Five budget columns (token limit and period, cost limit and period, tpm) as [`Budgets`].
fn budgets((tokens, token_period, cost, cost_period, tpm): Columns) -> Result<Budgets, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("budget {what}"));
    let limit = |n: Option<i64>, p: Option<String>, what: &str| match (n, p) {
        (None, _) => Ok(None),
        (Some(n), Some(p)) => Ok(Some(PeriodLimit {
            limit: u64::try_from(n)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| corrupt(what))?,
            period: BudgetPeriod::parse(&p).ok_or_else(|| corrupt(what))?,
        })),
        (Some(_), None) => Err(corrupt(what)),
    };
    Ok(Budgets {
        tokens: limit(tokens, token_period, "token budget")?,
        cost: limit(cost, cost_period, "cost budget")?,
        tpm: tpm.map(count).filter(|n| *n > 0),
    })
}

/// A patch's limit as the (named, limit, period) its statement binds.
fn limit_binds(change: Option<Option<PeriodLimit>>) -> (bool, Option<i64>, Option<String>) {
    let value = change.flatten();
    (
        change.is_some(),
        value.map(|l| stored(l.limit)),
        value.map(|l| l.period.as_str().to_owned()),
    )
}

fn columns_at<DB>(row: &DB::Row, at: usize) -> Result<Columns, StoreError>
where
    DB: Database,
    usize: ColumnIndex<DB::Row>,
    String: Type<DB> + for<'r> Decode<'r, DB>,
    i64: Type<DB> + for<'r> Decode<'r, DB>,
{
    let e = store_error;
    Ok((
        row.try_get(at).map_err(e)?,
        row.try_get(at + 1).map_err(e)?,
        row.try_get(at + 2).map_err(e)?,
        row.try_get(at + 3).map_err(e)?,
        row.try_get(at + 4).map_err(e)?,
    ))
}

fn foreign_key_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| matches!(d.kind(), ErrorKind::ForeignKeyViolation))
}

#[async_trait]
impl<DB> BudgetStore for SqlStore<DB>
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
    async fn budgets_of(&self, hash: &str) -> Result<TokenBudgets, StoreError> {
        let row = sqlx::query(sql::BUDGETS_OF)
            .bind(hash.to_owned())
            .fetch_optional(&self.reads)
            .await
            .map_err(store_error)?;
        let Some(row) = row else {
            return Ok(TokenBudgets::default());
        };
        let own = budgets(columns_at::<DB>(&row, 0)?)?;
        let group: Option<String> = row.try_get(5).map_err(store_error)?;
        let group = match group {
            Some(name) => Some((name, budgets(columns_at::<DB>(&row, 6)?)?)),
            None => None,
        };
        Ok(TokenBudgets { own, group })
    }

    async fn patch_token_budgets(
        &self,
        hash: &str,
        patch: &BudgetPatch,
    ) -> Result<Option<TokenBudgets>, StoreError> {
        let (t_named, t_limit, t_period) = limit_binds(patch.tokens);
        let (c_named, c_limit, c_period) = limit_binds(patch.cost);
        let done = sqlx::query(sql::PATCH_TOKEN_BUDGETS)
            .bind(hash.to_owned())
            .bind(patch.group.is_some())
            .bind(patch.group.clone().flatten())
            .bind(t_named)
            .bind(t_limit)
            .bind(t_period)
            .bind(c_named)
            .bind(c_limit)
            .bind(c_period)
            .bind(patch.tpm.is_some())
            .bind(patch.tpm.flatten().map(stored))
            .fetch_optional(&self.writes)
            .await;
        match done {
            Ok(None) => Ok(None),
            Ok(Some(_)) => Ok(Some(self.budgets_of(hash).await?)),
            Err(e) if foreign_key_violation(&e) => Err(StoreError::Backend(format!(
                "no group named {:?} (create it with `groups create`)",
                patch.group.clone().flatten().unwrap_or_default()
            ))),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn create_group(
        &self,
        name: &str,
        budgets: &Budgets,
        now: &str,
    ) -> Result<(), StoreError> {
        let created = sqlx::query(sql::CREATE_GROUP)
            .bind(name.to_owned())
            .bind(budgets.tokens.map(|l| stored(l.limit)))
            .bind(budgets.tokens.map(|l| l.period.as_str().to_owned()))
            .bind(budgets.cost.map(|l| stored(l.limit)))
            .bind(budgets.cost.map(|l| l.period.as_str().to_owned()))
            .bind(budgets.tpm.map(stored))
            .bind(now.to_owned())
            .fetch_optional(&self.writes)
            .await
            .map_err(store_error)?;
        created.map(|_| ()).ok_or(StoreError::Duplicate)
    }

    async fn update_group(&self, name: &str, patch: &BudgetPatch) -> Result<bool, StoreError> {
        let (t_named, t_limit, t_period) = limit_binds(patch.tokens);
        let (c_named, c_limit, c_period) = limit_binds(patch.cost);
        let updated = sqlx::query(sql::UPDATE_GROUP)
            .bind(name.to_owned())
            .bind(t_named)
            .bind(t_limit)
            .bind(t_period)
            .bind(c_named)
            .bind(c_limit)
            .bind(c_period)
            .bind(patch.tpm.is_some())
            .bind(patch.tpm.flatten().map(stored))
            .fetch_optional(&self.writes)
            .await
            .map_err(store_error)?;
        Ok(updated.is_some())
    }

    async fn groups(&self) -> Result<Vec<GroupRecord>, StoreError> {
        let rows = sqlx::query(sql::LIST_GROUPS)
            .fetch_all(&self.reads)
            .await
            .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                Ok(GroupRecord {
                    name: row.try_get(0).map_err(store_error)?,
                    budgets: budgets(columns_at::<DB>(row, 1)?)?,
                    created_at: row.try_get(6).map_err(store_error)?,
                    members: count(row.try_get(7).map_err(store_error)?),
                })
            })
            .collect()
    }

    async fn delete_group(&self, name: &str) -> Result<GroupDelete, StoreError> {
        let deleted = sqlx::query(sql::DELETE_GROUP)
            .bind(name.to_owned())
            .fetch_optional(&self.writes)
            .await
            .map_err(store_error)?;
        if deleted.is_some() {
            return Ok(GroupDelete::Deleted);
        }
        let groups = self.groups().await?;
        Ok(match groups.iter().find(|g| g.name == name) {
            Some(g) => GroupDelete::HasMembers(g.members),
            None => GroupDelete::NotFound,
        })
    }

    async fn group_of(&self, hash: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(sql::GROUP_OF)
            .bind(hash.to_owned())
            .fetch_optional(&self.reads)
            .await
            .map_err(store_error)?;
        match row {
            Some(row) => row.try_get(0).map_err(store_error),
            None => Ok(None),
        }
    }

    async fn spend(
        &self,
        scopes: &[String],
        periods: &[String],
    ) -> Result<Vec<SpendRow>, StoreError> {
        // Fixed arity (the statement's IN lists): pad with repeats of the first.
        let pick = |list: &[String], i: usize| {
            list.get(i)
                .or_else(|| list.first())
                .cloned()
                .unwrap_or_default()
        };
        let rows = sqlx::query(sql::SPEND_OF)
            .bind(pick(scopes, 0))
            .bind(pick(scopes, 1))
            .bind(pick(periods, 0))
            .bind(pick(periods, 1))
            .bind(pick(periods, 2))
            .bind(pick(periods, 3))
            .fetch_all(&self.reads)
            .await
            .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                Ok(SpendRow {
                    scope: row.try_get(0).map_err(store_error)?,
                    period: row.try_get(1).map_err(store_error)?,
                    tokens: count(row.try_get(2).map_err(store_error)?),
                    cost_nano_usd: count(row.try_get(3).map_err(store_error)?),
                })
            })
            .collect()
    }

    async fn settle(
        &self,
        usage: &[UsageRow],
        spend: &[SpendRow],
        prune_before: &str,
    ) -> Result<(), StoreError> {
        if usage.is_empty() && spend.is_empty() {
            return Ok(());
        }
        let mut tx = self.writes.begin().await.map_err(store_error)?;
        insert_usage::<DB>(&mut *tx, usage).await?;
        for row in spend {
            sqlx::query(sql::ADD_SPEND)
                .bind(row.scope.clone())
                .bind(row.period.clone())
                .bind(stored(row.tokens))
                .bind(stored(row.cost_nano_usd))
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        let mut scopes: Vec<&String> = spend.iter().map(|r| &r.scope).collect();
        scopes.dedup();
        for scope in scopes {
            sqlx::query(sql::PRUNE_MINUTES)
                .bind(scope.clone())
                .bind(prune_before.to_owned())
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)
    }
}
