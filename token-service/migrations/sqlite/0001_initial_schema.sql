-- The schema as it stood before versioned migrations. `IF NOT EXISTS` keeps it right for a
-- database created by that older code: it upgrades in place (this migration finds its tables
-- and only records itself as applied).
--
-- `last_used` is its own table so the hot path never rewrites a token row, and the foreign key
-- (plus the `WHERE EXISTS` in the stamp) means a stamp can never outlive or revive a token.
CREATE TABLE IF NOT EXISTS tokens (
    hash          TEXT PRIMARY KEY NOT NULL,
    label         TEXT NOT NULL,
    last4         TEXT NOT NULL,
    providers     TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at    TEXT NOT NULL,
    expires_at    TEXT NULL,
    rate_limit    INTEGER NULL,
    rate_window_s INTEGER NULL
);
CREATE TABLE IF NOT EXISTS last_used (
    hash TEXT PRIMARY KEY NOT NULL REFERENCES tokens (hash) ON DELETE CASCADE,
    at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked_sessions (
    id    TEXT PRIMARY KEY NOT NULL,
    until TEXT NOT NULL
);
