//! Reports → rows. One row per token hash, UTC day, provider, model and API holds the summed
//! counts and cost of that day's responses; a report's entries that share a row are merged
//! before the store sees them (one upsert per row, not per entry).
//!
//! Cost is computed once, when usage arrives, with the prices of that day: a later price change
//! does not rewrite history, and budgets (next) compare against the same figure the operator
//! sees. Usage of a model the table does not price adds no cost and is counted in
//! `unpriced_requests`, so "unknown price" shows instead of a silent $0.

use std::collections::BTreeMap;

use ptk_wire::{TokenUsage, UsageEntry};
use serde::Serialize;

use crate::pricing::{Cost, PriceTable};

/// What a row is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct UsageKey {
    /// Token hash (64 hex).
    pub hash: String,
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Provider name.
    pub provider: String,
    /// Model the provider named (`""` when none).
    pub model: String,
    /// API (`chat_completions`, `responses`, …; see `ptk_wire::UsageApi`).
    pub api: String,
}

/// Summed counts and cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UsageCounts {
    /// Responses.
    pub requests: u64,
    /// Of those, ended without their final usage (counts are what was seen).
    pub incomplete: u64,
    /// Token counts (normalised definitions: input includes cached, output includes reasoning).
    pub usage: TokenUsage,
    /// Cost in nanodollars (USD × 10⁻⁹) of the priced responses.
    pub cost_nano_usd: u64,
    /// Responses of a model the price table does not know (no cost added for them).
    pub unpriced_requests: u64,
}

impl UsageCounts {
    /// Adds `other` (saturating: never wraps).
    pub fn add(&mut self, other: &UsageCounts) {
        self.requests = self.requests.saturating_add(other.requests);
        self.incomplete = self.incomplete.saturating_add(other.incomplete);
        self.usage.add(&other.usage);
        self.cost_nano_usd = self.cost_nano_usd.saturating_add(other.cost_nano_usd);
        self.unpriced_requests = self
            .unpriced_requests
            .saturating_add(other.unpriced_requests);
    }
}

/// One stored row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    /// Its key.
    pub key: UsageKey,
    /// Its counts.
    pub counts: UsageCounts,
}

/// The rows a report adds on `day` (UTC `YYYY-MM-DD`), priced with `prices`, merged by key and
/// sorted.
pub fn rollup(entries: &[UsageEntry], day: &str, prices: &PriceTable) -> Vec<UsageRow> {
    let mut rows: BTreeMap<UsageKey, UsageCounts> = BTreeMap::new();
    for entry in entries {
        let key = UsageKey {
            hash: entry.hash.clone(),
            day: day.to_owned(),
            provider: entry.provider.clone(),
            model: stored_model(entry, prices),
            api: entry.api.as_str().to_owned(),
        };
        let mut counts = UsageCounts {
            requests: entry.requests,
            incomplete: entry.incomplete,
            usage: entry.usage,
            ..UsageCounts::default()
        };
        // Responses that used no tokens (a provider's error, say) cost nothing, priced or not.
        if !entry.usage.is_zero() {
            let (provider, model) = (&entry.provider, &entry.model);
            match prices.cost(provider, model, &entry.usage, entry.long_context) {
                Cost::Known { nano_usd, .. } => counts.cost_nano_usd = nano_usd,
                Cost::UnknownPrice => counts.unpriced_requests = entry.requests,
            }
        }
        rows.entry(key).or_default().add(&counts);
    }
    rows.into_iter()
        .map(|(key, counts)| UsageRow { key, counts })
        .collect()
}

/// The model a row is stored under. A response that used no tokens (an error, a stream cut
/// before its first event) names the model its request did, which is the client's text: it
/// is kept only when the price table knows it, so that made-up names cannot add a row each
/// (to the store, the dashboard, and the CSV export up to its row bound). `""` otherwise.
fn stored_model(entry: &UsageEntry, prices: &PriceTable) -> String {
    let known = || prices.lookup(&entry.provider, &entry.model).is_some();
    if entry.usage.is_zero() && !known() {
        String::new()
    } else {
        entry.model.clone()
    }
}

/// Totals of one provider's model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelTotals {
    /// Provider name.
    pub provider: String,
    /// Model name (`""` when the provider named none).
    pub model: String,
    /// Summed over every row of it.
    #[serde(flatten)]
    pub counts: UsageCounts,
}

/// Rows summed per provider and model (APIs and days together), ordered by cost, then name.
pub fn per_model(rows: &[UsageRow]) -> Vec<ModelTotals> {
    let mut sums: BTreeMap<(String, String), UsageCounts> = BTreeMap::new();
    for row in rows {
        let key = (row.key.provider.clone(), row.key.model.clone());
        sums.entry(key).or_default().add(&row.counts);
    }
    let mut totals: Vec<ModelTotals> = sums
        .into_iter()
        .map(|((provider, model), counts)| ModelTotals {
            provider,
            model,
            counts,
        })
        .collect();
    totals.sort_by_key(|t| std::cmp::Reverse(t.counts.cost_nano_usd));
    totals
}

/// Rows summed per UTC day (providers, models and APIs together), newest day first.
pub fn per_day(rows: &[UsageRow]) -> Vec<(String, UsageCounts)> {
    let mut sums: BTreeMap<String, UsageCounts> = BTreeMap::new();
    for row in rows {
        sums.entry(row.key.day.clone())
            .or_default()
            .add(&row.counts);
    }
    sums.into_iter().rev().collect()
}
