//! Settlement: an activity report's metered usage goes into the usage rollups and the budget
//! ledger in one transaction; only after it commits are the grants' reservations released (so a
//! check never sees a release without the spend it stood for; see [`super::reserve`]).
//!
//! What a budget is charged per usage entry: tokens `input + output + shortfall_tokens` (the
//! shortfall being what the filter estimated for incomplete requests beyond what was seen, so
//! an incomplete request costs max(seen, estimate), never 0); cost the priced cost plus the
//! shortfall at the model's output price, or for a model the price table does not know, every
//! token at the provider's priciest price (an unknown model must not spend a cost budget for
//! free). Spend is counted in the periods of the moment the report arrives.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use ptk_wire::{ActivityReport, BudgetPeriod, UsageEntry};

use super::admission::{group_scope, periods_at, token_scope};
use super::period::period_id;
use super::reserve::Reservations;
use crate::pricing::{Cost, PriceTable};
use crate::store::{BudgetStore, SpendRow, StoreError};
use crate::usage::UsageRow;

/// Tokens and nanodollars an entry charges to budgets.
pub fn charge(entry: &UsageEntry, prices: &PriceTable) -> (u64, u64) {
    let usage = &entry.usage;
    let tokens = usage
        .input
        .saturating_add(usage.output)
        .saturating_add(entry.shortfall_tokens);
    let pico_to_nano = |pico: u64, n: u64| u64::try_from(u128::from(pico) * u128::from(n) / 1000);
    let (provider, model) = (&entry.provider, &entry.model);
    let cost = match prices.lookup(provider, model) {
        Some((_, price)) => {
            let metered = match prices.cost(provider, model, usage, entry.long_context) {
                Cost::Known { nano_usd, .. } => nano_usd,
                Cost::UnknownPrice => 0,
            };
            let shortfall = pico_to_nano(price.output, entry.shortfall_tokens).unwrap_or(u64::MAX);
            metered.saturating_add(shortfall)
        }
        None => {
            let pico = prices
                .priciest(provider)
                .unwrap_or_else(|| prices.priciest_anywhere());
            pico_to_nano(pico, tokens).unwrap_or(u64::MAX)
        }
    };
    (tokens, cost)
}

/// The ledger rows `entries` add at `now`: per token scope (and its group's, from `groups`),
/// in the minute, day, ISO week and month of `now`, merged and sorted.
pub fn spend_rows(
    entries: &[UsageEntry],
    groups: &HashMap<String, Option<String>>,
    prices: &PriceTable,
    now: DateTime<Utc>,
) -> Vec<SpendRow> {
    let periods = periods_at(now);
    let mut sums: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for entry in entries {
        let (tokens, cost) = charge(entry, prices);
        if tokens == 0 && cost == 0 {
            continue;
        }
        let mut scopes = vec![token_scope(&entry.hash)];
        if let Some(Some(group)) = groups.get(&entry.hash) {
            scopes.push(group_scope(group));
        }
        for scope in scopes {
            for period in &periods {
                let sum = sums.entry((scope.clone(), period.clone())).or_default();
                sum.0 = sum.0.saturating_add(tokens);
                sum.1 = sum.1.saturating_add(cost);
            }
        }
    }
    sums.into_iter()
        .map(|((scope, period), (tokens, cost_nano_usd))| SpendRow {
            scope,
            period,
            tokens,
            cost_nano_usd,
        })
        .collect()
}

/// Stores a report's usage rollups and ledger rows (one transaction), then releases its
/// grants. A release failure is logged, not an error: the reservation lapses on its own.
pub async fn settle_report(
    store: &dyn BudgetStore,
    reservations: &dyn Reservations,
    report: &ActivityReport,
    rows: &[UsageRow],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut groups = HashMap::new();
    for entry in &report.token_usage {
        if !groups.contains_key(&entry.hash) {
            groups.insert(entry.hash.clone(), store.group_of(&entry.hash).await?);
        }
    }
    let spend = spend_rows(&report.token_usage, &groups, PriceTable::bundled(), now);
    // Minute rows older than the previous minute are never read again.
    let prune_before = period_id(BudgetPeriod::Minute, now - Duration::minutes(1));
    store.settle(rows, &spend, &prune_before).await?;
    for release in &report.grant_releases {
        if let Err(e) = reservations.release(release.grant, release.tokens).await {
            tracing::warn!(error = %e, "budget grant release failed; it will lapse");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use ptk_wire::{TokenUsage, UsageApi};

    fn entry(model: &str, input: u64, output: u64, shortfall: u64) -> UsageEntry {
        UsageEntry {
            hash: "a".repeat(64),
            provider: "openai".into(),
            api: UsageApi::ChatCompletions,
            model: model.into(),
            status: 200,
            streamed: false,
            long_context: false,
            requests: 1,
            incomplete: u64::from(shortfall > 0),
            usage: TokenUsage {
                input,
                output,
                ..TokenUsage::default()
            },
            shortfall_tokens: shortfall,
        }
    }

    #[test]
    fn incomplete_requests_are_charged_their_estimate_and_unknown_models_the_top_price() {
        let prices = PriceTable::bundled();
        let (_, price) = prices.lookup("openai", "gpt-4o-mini").unwrap();
        let (tokens, cost) = charge(&entry("gpt-4o-mini", 100, 20, 380), prices);
        assert_eq!(tokens, 500);
        let metered = price.nano_usd(
            &TokenUsage {
                input: 100,
                output: 20,
                ..TokenUsage::default()
            },
            false,
        );
        assert_eq!(cost, metered + price.output * 380 / 1000);
        let (tokens, cost) = charge(&entry("made-up-model", 100, 20, 0), prices);
        assert_eq!(tokens, 120);
        assert_eq!(cost, prices.priciest("openai").unwrap() * 120 / 1000);
        assert!(cost > 0);
    }

    #[test]
    fn rows_go_to_the_token_and_its_group_in_every_period() {
        let now = DateTime::parse_from_rfc3339("2026-11-29T10:05:30Z")
            .unwrap()
            .to_utc();
        let hash = "a".repeat(64);
        let groups = HashMap::from([(hash.clone(), Some("team".to_owned()))]);
        let entries = [entry("made-up", 10, 0, 0), entry("made-up", 5, 5, 0)];
        let rows = spend_rows(&entries, &groups, PriceTable::bundled(), now);
        assert_eq!(rows.len(), 8);
        let periods: Vec<&str> = rows.iter().take(4).map(|r| r.period.as_str()).collect();
        assert_eq!(
            periods,
            ["2026-11", "2026-11-29", "2026-11-29T10:05", "2026-W48"]
        );
        assert!(rows.iter().all(|r| r.tokens == 20));
        assert_eq!(rows[0].scope, "group:team");
        assert_eq!(rows[4].scope, format!("token:{hash}"));
    }
}
