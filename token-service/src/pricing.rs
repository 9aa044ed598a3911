//! What metered token usage cost, from the price table compiled into the service
//! (`token-service/prices/prices.json`, derived from LiteLLM's bundled price JSON under MIT,
//! notice in `prices/NOTICE`; refreshed with `tools/update_prices.py`).
//!
//! Prices are USD per million tokens in the file and held as integer micro-dollars per million
//! tokens (= picodollars per token), so a cost is an exact integer product; costs are reported
//! in nanodollars (USD × 10⁻⁹), rounded half up, which sums exactly in the store.
//!
//! How usage is priced (the normalised definitions of [`TokenUsage`]): uncached input
//! (`input − cached_input − cache_write`) at the input price, cache reads at the cache-read
//! price, cache writes at the cache-write price (each falls back to the input price when the
//! table has none), output minus reasoning at the output price, reasoning at the reasoning
//! price (falls back to output). A response above 200,000 input tokens is priced at the
//! long-context tier where the table has one (Gemini's and Anthropic's rule); reports say which
//! tier each sum belongs to. A model the
//! table does not know has an unknown price, never a guessed one.

use std::collections::HashMap;
use std::sync::OnceLock;

use ptk_wire::TokenUsage;
use serde::Deserialize;

/// One model's prices, micro-dollars per million tokens (= picodollars per token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModelPrice {
    /// Uncached input.
    pub input: u64,
    /// Output (and reasoning when `reasoning` is absent).
    pub output: u64,
    /// Input read from a prompt cache.
    pub cache_read: Option<u64>,
    /// Input written to a prompt cache.
    pub cache_write: Option<u64>,
    /// Reasoning output.
    pub reasoning: Option<u64>,
    /// Input of responses above `ptk_wire::usage::LONG_CONTEXT_TOKENS` input tokens.
    pub input_above_200k: Option<u64>,
    /// Output of such responses.
    pub output_above_200k: Option<u64>,
    /// Cache reads of such responses.
    pub cache_read_above_200k: Option<u64>,
    /// The model's output limit in tokens (budget estimates use it).
    pub max_output_tokens: Option<u64>,
}

/// The cost of some usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cost {
    /// Nanodollars, and the table entry that priced it.
    Known {
        /// USD × 10⁻⁹.
        nano_usd: u64,
        /// The table's model name that matched (may differ from the reported name by a date
        /// suffix or a `models/` prefix).
        priced_as: String,
    },
    /// The table has no price for this provider and model.
    UnknownPrice,
}

/// Prices by provider name and model name.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    providers: HashMap<String, HashMap<String, ModelPrice>>,
    source: String,
}

#[derive(Deserialize)]
struct FileEntry {
    input: f64,
    output: f64,
    cache_read: Option<f64>,
    cache_write: Option<f64>,
    reasoning: Option<f64>,
    input_above_200k: Option<f64>,
    output_above_200k: Option<f64>,
    cache_read_above_200k: Option<f64>,
    max_output_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct File {
    source: String,
    providers: HashMap<String, HashMap<String, FileEntry>>,
}

/// USD per million tokens → micro-dollars per million tokens; `None` for a negative or
/// non-finite figure (the table is data: it must not be able to make a cost negative).
fn micro(usd_per_mtok: f64) -> Option<u64> {
    let scaled = (usd_per_mtok * 1_000_000.0).round();
    // f64 → u64 `as` saturates; the range check makes the intent explicit.
    (scaled.is_finite() && (0.0..=u64::MAX as f64).contains(&scaled)).then_some(scaled as u64)
}

impl PriceTable {
    /// The table compiled into this build.
    pub fn bundled() -> &'static PriceTable {
        static TABLE: OnceLock<PriceTable> = OnceLock::new();
        TABLE.get_or_init(|| {
            // A test parses the same bytes, so a broken file fails `make test`, not a request.
            PriceTable::parse(include_str!("../prices/prices.json")).unwrap_or_default()
        })
    }

    /// Parses a table in the `prices.json` format; an entry with a bad price is an error.
    pub fn parse(json: &str) -> Result<PriceTable, String> {
        let file: File = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let mut providers = HashMap::new();
        for (provider, models) in file.providers {
            let mut prices = HashMap::new();
            for (model, e) in models {
                let bad = || format!("bad price for {provider} {model}");
                let opt = |v: Option<f64>| v.map(|v| micro(v).ok_or_else(bad)).transpose();
                let price = ModelPrice {
                    input: micro(e.input).ok_or_else(bad)?,
                    output: micro(e.output).ok_or_else(bad)?,
                    cache_read: opt(e.cache_read)?,
                    cache_write: opt(e.cache_write)?,
                    reasoning: opt(e.reasoning)?,
                    input_above_200k: opt(e.input_above_200k)?,
                    output_above_200k: opt(e.output_above_200k)?,
                    cache_read_above_200k: opt(e.cache_read_above_200k)?,
                    max_output_tokens: e.max_output_tokens,
                };
                prices.insert(model, price);
            }
            providers.insert(provider, prices);
        }
        Ok(PriceTable {
            providers,
            source: file.source,
        })
    }

    /// Where the prices come from (release and file), for `--version`-style output.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// How many models the table prices.
    pub fn len(&self) -> usize {
        self.providers.values().map(HashMap::len).sum()
    }

    /// Whether the table prices nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The price of `model` at `provider`: the exact name, else without a `models/` prefix,
    /// else without a date suffix (`-2024-08-06`, `-20250929`), each case-insensitively.
    pub fn lookup(&self, provider: &str, model: &str) -> Option<(&str, &ModelPrice)> {
        let models = self.providers.get(provider)?;
        let lower = model.trim().to_ascii_lowercase();
        let bare = lower.strip_prefix("models/").unwrap_or(&lower);
        let found = [lower.as_str(), bare, without_date(bare)]
            .into_iter()
            .find_map(|name| models.get_key_value(name));
        found.map(|(name, price)| (name.as_str(), price))
    }

    /// The highest price per token (picodollars) any of `provider`'s models charges for
    /// anything, any tier: what a cost budget converts tokens at so a grant is never worth more
    /// than the budget allows. `None` when the table prices nothing of that provider.
    pub fn priciest(&self, provider: &str) -> Option<u64> {
        let models = self.providers.get(provider)?;
        models
            .values()
            .flat_map(|p| {
                [
                    Some(p.input),
                    Some(p.output),
                    p.cache_read,
                    p.cache_write,
                    p.reasoning,
                    p.input_above_200k,
                    p.output_above_200k,
                    p.cache_read_above_200k,
                ]
            })
            .flatten()
            .max()
    }

    /// The highest per-token price in the whole table (picodollars), for providers it does not
    /// price (an operator-configured one).
    pub fn priciest_anywhere(&self) -> u64 {
        self.providers
            .keys()
            .filter_map(|p| self.priciest(p))
            .max()
            .unwrap_or(0)
    }

    /// What `usage` of `model` at `provider` cost; `long_context` when its responses were each
    /// above the long-context threshold (the filter keeps the two tiers apart in its reports;
    /// for one response, pass `usage.input > LONG_CONTEXT_TOKENS`).
    pub fn cost(
        &self,
        provider: &str,
        model: &str,
        usage: &TokenUsage,
        long_context: bool,
    ) -> Cost {
        match self.lookup(provider, model) {
            Some((name, price)) => Cost::Known {
                nano_usd: price.nano_usd(usage, long_context),
                priced_as: name.to_owned(),
            },
            None => Cost::UnknownPrice,
        }
    }
}

impl ModelPrice {
    /// The cost of `usage` at these prices, nanodollars (saturating: never wraps), at the
    /// long-context tier if `long_context` (a sum of responses is never re-tiered by its size).
    pub fn nano_usd(&self, usage: &TokenUsage, long_context: bool) -> u64 {
        let long = long_context;
        let tier = |base: u64, above: Option<u64>| if long { above.unwrap_or(base) } else { base };
        let input = tier(self.input, self.input_above_200k);
        let output = tier(self.output, self.output_above_200k);
        let cache_read = tier(
            self.cache_read.unwrap_or(self.input),
            self.cache_read_above_200k,
        );
        let uncached = usage
            .input
            .saturating_sub(usage.cached_input)
            .saturating_sub(usage.cache_write);
        let answer = usage.output.saturating_sub(usage.reasoning);
        let pico: u128 = [
            (uncached, input),
            (usage.cached_input, cache_read),
            (usage.cache_write, self.cache_write.unwrap_or(input)),
            (answer, output),
            (usage.reasoning, self.reasoning.unwrap_or(output)),
        ]
        .iter()
        .map(|&(tokens, price)| u128::from(tokens).saturating_mul(u128::from(price)))
        .fold(0u128, u128::saturating_add);
        u64::try_from(pico.saturating_add(500) / 1000).unwrap_or(u64::MAX)
    }
}

/// `name` without a trailing release date (`-2024-08-06` or `-20250929`).
fn without_date(name: &str) -> &str {
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if let Some((head, tail)) = name.rsplit_once('-') {
        if tail.len() == 8 && digits(tail) {
            return head;
        }
    }
    let parts: Vec<&str> = name.rsplitn(4, '-').collect();
    if let [day, month, year, head] = parts.as_slice() {
        if year.len() == 4
            && month.len() == 2
            && day.len() == 2
            && digits(year)
            && digits(month)
            && digits(day)
        {
            return head;
        }
    }
    name
}

/// Formats nanodollars as USD with six decimals (`0.012345`), for the CLI and CSV.
pub fn format_usd(nano_usd: u64) -> String {
    let micros = nano_usd.saturating_add(500) / 1000;
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}
