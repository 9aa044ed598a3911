//! The budget statements (migration 6), written once for both backends like [`super::sql`].

/// A token's budgets and its group's (`$1` the hash), in [`super::budget`]'s column order.
pub(super) const BUDGETS_OF: &str = "SELECT b.token_budget, b.token_period,
        b.cost_budget_nano_usd, b.cost_period, b.tpm, b.group_name,
        g.token_budget, g.token_period, g.cost_budget_nano_usd, g.cost_period, g.tpm
    FROM token_budgets b LEFT JOIN budget_groups g ON g.name = b.group_name
    WHERE b.hash = $1";

/// Creates or patches a token's budget row, only for a token that exists. Each `CASE` keeps
/// the column unless the patch names it (`$2`, `$4`, `$7`, `$10`), as `UPDATE_TOKEN` does; a
/// new row takes the patch's values (NULL for what it does not name).
pub(super) const PATCH_TOKEN_BUDGETS: &str = "INSERT INTO token_budgets (hash, group_name,
        token_budget, token_period, cost_budget_nano_usd, cost_period, tpm)
    SELECT $1, $3, $5, $6, $8, $9, $11 WHERE EXISTS (SELECT 1 FROM tokens WHERE hash = $1)
    ON CONFLICT (hash) DO UPDATE SET
        group_name = CASE WHEN $2 THEN $3 ELSE token_budgets.group_name END,
        token_budget = CASE WHEN $4 THEN $5 ELSE token_budgets.token_budget END,
        token_period = CASE WHEN $4 THEN $6 ELSE token_budgets.token_period END,
        cost_budget_nano_usd = CASE WHEN $7 THEN $8 ELSE token_budgets.cost_budget_nano_usd END,
        cost_period = CASE WHEN $7 THEN $9 ELSE token_budgets.cost_period END,
        tpm = CASE WHEN $10 THEN $11 ELSE token_budgets.tpm END
    RETURNING hash";

/// A new group; no row comes back when the name is taken.
pub(super) const CREATE_GROUP: &str = "INSERT INTO budget_groups (name, token_budget,
        token_period, cost_budget_nano_usd, cost_period, tpm, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (name) DO NOTHING RETURNING name";

/// Patches a group: each `CASE` keeps the column unless the patch names it (`$2`, `$5`, `$8`).
pub(super) const UPDATE_GROUP: &str = "UPDATE budget_groups SET
        token_budget = CASE WHEN $2 THEN $3 ELSE token_budget END,
        token_period = CASE WHEN $2 THEN $4 ELSE token_period END,
        cost_budget_nano_usd = CASE WHEN $5 THEN $6 ELSE cost_budget_nano_usd END,
        cost_period = CASE WHEN $5 THEN $7 ELSE cost_period END,
        tpm = CASE WHEN $8 THEN $9 ELSE tpm END
    WHERE name = $1
    RETURNING name";

/// Every group with its member count, by name.
pub(super) const LIST_GROUPS: &str = "SELECT g.name, g.token_budget, g.token_period,
        g.cost_budget_nano_usd, g.cost_period, g.tpm, g.created_at,
        (SELECT COUNT(*) FROM token_budgets b WHERE b.group_name = g.name)
    FROM budget_groups g ORDER BY g.name";

/// Deletes a group that has no members.
pub(super) const DELETE_GROUP: &str = "DELETE FROM budget_groups
    WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM token_budgets WHERE group_name = $1)
    RETURNING name";

/// Settled spend of up to two scopes (`$1`, `$2`) in up to four periods (`$3`–`$6`).
pub(super) const SPEND_OF: &str = "SELECT scope, period, tokens, cost_nano_usd
    FROM budget_spend WHERE scope IN ($1, $2) AND period IN ($3, $4, $5, $6)";

/// Adds to one ledger row (saturating, like the usage rollups).
pub(super) const ADD_SPEND: &str = "INSERT INTO budget_spend (scope, period, tokens,
        cost_nano_usd) VALUES ($1, $2, $3, $4)
    ON CONFLICT (scope, period) DO UPDATE SET
        tokens = CASE WHEN budget_spend.tokens > 9223372036854775807 - excluded.tokens
            THEN 9223372036854775807 ELSE budget_spend.tokens + excluded.tokens END,
        cost_nano_usd = CASE
            WHEN budget_spend.cost_nano_usd > 9223372036854775807 - excluded.cost_nano_usd
            THEN 9223372036854775807 ELSE budget_spend.cost_nano_usd + excluded.cost_nano_usd END";

/// Drops a scope's minute rows (16-character ids) older than `$2`.
pub(super) const PRUNE_MINUTES: &str =
    "DELETE FROM budget_spend WHERE scope = $1 AND length(period) = 16 AND period < $2";

/// The group of a token (no row: no budget row).
pub(super) const GROUP_OF: &str = "SELECT group_name FROM token_budgets WHERE hash = $1";
