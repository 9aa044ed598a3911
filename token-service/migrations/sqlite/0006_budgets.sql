-- Budgets (issue 14). Kept out of the tokens table so the hot path's token read is unchanged:
-- a token's budgets and group are one row here (absent: none); a group's budgets are a row of
-- budget_groups. Limits: tokens (input + output) and nanodollars per calendar period (day,
-- week, month), tokens per minute. A NULL limit is no limit.
CREATE TABLE IF NOT EXISTS budget_groups (
    name                 TEXT PRIMARY KEY,
    token_budget         BIGINT NULL,
    token_period         TEXT NULL CHECK (token_period IN ('day', 'week', 'month')),
    cost_budget_nano_usd BIGINT NULL,
    cost_period          TEXT NULL CHECK (cost_period IN ('day', 'week', 'month')),
    tpm                  BIGINT NULL,
    created_at           TEXT NOT NULL
);
-- A group with members cannot be deleted (the foreign key refuses it): deleting it would
-- silently lift the budget its tokens are held to.
CREATE TABLE IF NOT EXISTS token_budgets (
    hash                 TEXT PRIMARY KEY REFERENCES tokens (hash) ON DELETE CASCADE,
    group_name           TEXT NULL REFERENCES budget_groups (name),
    token_budget         BIGINT NULL,
    token_period         TEXT NULL CHECK (token_period IN ('day', 'week', 'month')),
    cost_budget_nano_usd BIGINT NULL,
    cost_period          TEXT NULL CHECK (cost_period IN ('day', 'week', 'month')),
    tpm                  BIGINT NULL
);
CREATE INDEX IF NOT EXISTS token_budgets_by_group ON token_budgets (group_name);
-- The settled-spend ledger: per scope ('token:<hash>', 'group:<name>') and period id
-- ('2026-11-29', '2026-W48', '2026-11', '2026-11-29T10:05'), tokens and nanodollars, added to in
-- the same transaction as the usage rollups (a report counts in both or neither). Minute rows
-- are pruned as they age; the others are kept (they are the budgets' history).
CREATE TABLE IF NOT EXISTS budget_spend (
    scope         TEXT NOT NULL,
    period        TEXT NOT NULL,
    tokens        BIGINT NOT NULL,
    cost_nano_usd BIGINT NOT NULL,
    PRIMARY KEY (scope, period)
);
