-- Token usage the filter metered, rolled up per token, UTC day, provider, model and API (one
-- row each; reports add to it). Counts in the normalised definitions (input includes cached
-- tokens, output includes reasoning); cost in nanodollars priced when the usage arrived;
-- responses of a model without a price in `unpriced_requests`. Rows outlive their token, so
-- fleet totals keep what deleted tokens spent.
CREATE TABLE IF NOT EXISTS token_usage (
    hash TEXT NOT NULL,
    day TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    api TEXT NOT NULL,
    requests BIGINT NOT NULL,
    incomplete BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    cached_input_tokens BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL,
    cost_nano_usd BIGINT NOT NULL,
    unpriced_requests BIGINT NOT NULL,
    PRIMARY KEY (hash, day, provider, model, api)
);
-- Fleet totals and exports read by day.
CREATE INDEX IF NOT EXISTS token_usage_by_day ON token_usage (day);
