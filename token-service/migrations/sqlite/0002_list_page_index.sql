-- The admin list pages newest first by (created_at DESC, hash): this index serves that order
-- and the keyset condition of every page, so a page costs its own rows, not the table's.
CREATE INDEX IF NOT EXISTS tokens_newest_first ON tokens (created_at DESC, hash);
