-- The schema as it stood before versioned migrations. `IF NOT EXISTS` keeps it right for a
-- database created by that older code: it upgrades in place (this migration finds its tables
-- and only records itself as applied).
--
-- `hash` uses the "C" collation so `[prefix, prefix || 'g')` is an index range over the
-- lowercase-hex hashes whatever the database's locale. `last_used` is its own table so the hot
-- path never rewrites a token row; the foreign key means a stamp never outlives a token.
CREATE TABLE IF NOT EXISTS tokens (
    hash          TEXT COLLATE "C" PRIMARY KEY,
    label         TEXT NOT NULL,
    last4         TEXT NOT NULL,
    providers     TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at    TEXT NOT NULL,
    expires_at    TEXT NULL,
    rate_limit    BIGINT NULL,
    rate_window_s BIGINT NULL
);
CREATE TABLE IF NOT EXISTS last_used (
    hash TEXT COLLATE "C" PRIMARY KEY REFERENCES tokens (hash) ON DELETE CASCADE,
    at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked_sessions (
    id    TEXT COLLATE "C" PRIMARY KEY,
    until TEXT COLLATE "C" NOT NULL
);
