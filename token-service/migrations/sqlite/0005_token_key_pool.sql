-- A token may be bound to a named provider key pool (PTK keys file, OPENAI_API_KEYS_POOL_<NAME>):
-- it then uses only that pool's keys. NULL: the default pool.
ALTER TABLE tokens ADD COLUMN key_pool TEXT NULL;
