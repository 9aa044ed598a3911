-- A token's model allow-list: a JSON array of model names and `*` patterns the token may
-- call; NULL lets it call any model (every token before this version).
ALTER TABLE tokens ADD COLUMN IF NOT EXISTS models TEXT NULL;
