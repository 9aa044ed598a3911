//! `tokens usage HASH_OR_PREFIX [--since DATE] [--json]`: what a token spent, per model.
//!
//! The table has one row per provider and model (its APIs and days summed) with requests,
//! tokens, cost and how many responses ended without their final usage; a model the price
//! table does not know shows `unknown price` (with what the known part cost, if any), never a
//! guessed figure. `--json` prints one object: `{"token", "since", "models": [...]}`.

use std::io::Write;

use anyhow::bail;
use comfy_table::{presets, CellAlignment, Table};
use serde_json::json;

use super::resolve::{resolve, ResolveError};
use super::UsageArgs;
use crate::budget::admission::budget_status;
use crate::budget::MemoryReservations;
use crate::pricing::format_usd;
use crate::store::{BudgetStore, TokenStore, UsageStore};
use crate::usage::view::{model_json, since_day};
use crate::usage::{per_model, ModelTotals, UsageCounts};

/// Runs `tokens usage`.
pub async fn usage(
    tokens: &dyn TokenStore,
    store: &dyn UsageStore,
    budgets: &dyn BudgetStore,
    args: UsageArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let since = since_day(args.since.as_deref()).map_err(|e| anyhow::anyhow!("--{e}"))?;
    let hash = match resolve(tokens, &args.token).await {
        Ok(hash) => hash,
        // A deleted token's usage is kept: its full hash still reads it.
        Err(e) if args.token.trim().len() == 64 => {
            let hash = args.token.trim().to_ascii_lowercase();
            if !crate::token::is_token_hash(&hash) {
                bail!(e);
            }
            hash
        }
        Err(e @ ResolveError::NotFound(_)) => {
            bail!("{e} (a deleted token's usage is kept: give its full 64-character hash)")
        }
        Err(e) => bail!(e),
    };
    let rows = store.usage_of(&hash, &since).await?;
    let models = per_model(&rows);
    let budgets = status_of(tokens, budgets, &hash).await?;
    if args.json {
        let models: Vec<_> = models.iter().map(model_json).collect();
        let value = json!({"token": hash, "since": since, "models": models, "budgets": budgets});
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    for line in super::budget_args::status_lines(&budgets) {
        writeln!(out, "{line}")?;
    }
    if models.is_empty() {
        writeln!(out, "no metered usage since {since}")?;
        return Ok(());
    }
    writeln!(out, "{}", table(&models))?;
    Ok(())
}

/// The token's budgets against the settled ledger. The CLI runs outside the service, so it
/// does not see the reservations of outstanding grants (the admin API does).
async fn status_of(
    tokens: &dyn TokenStore,
    budgets: &dyn BudgetStore,
    hash: &str,
) -> anyhow::Result<Vec<crate::budget::BudgetStatus>> {
    let providers = tokens
        .get(hash)
        .await?
        .map(|r| r.providers)
        .unwrap_or_default();
    let none = MemoryReservations::new();
    Ok(budget_status(budgets, &none, hash, &providers, chrono::Utc::now()).await?)
}

/// What the cost column says.
fn cost(c: &UsageCounts) -> String {
    match (c.unpriced_requests, c.cost_nano_usd) {
        (0, nano) => format_usd(nano),
        (n, 0) if n == c.requests => "unknown price".to_owned(),
        (n, nano) => format!("{} + {n} unpriced", format_usd(nano)),
    }
}

fn table(models: &[ModelTotals]) -> String {
    let mut table = Table::new();
    table.load_style(presets::NOTHING).set_header([
        "PROVIDER",
        "MODEL",
        "REQUESTS",
        "INPUT",
        "CACHED",
        "OUTPUT",
        "REASONING",
        "COST USD",
        "INCOMPLETE",
    ]);
    for m in models {
        let c = &m.counts;
        // A model name is the provider's text: no control character reaches the terminal.
        let model: String = match m.model.as_str() {
            "" => "-".to_owned(),
            name => name
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect(),
        };
        table.add_row([
            m.provider.clone(),
            model,
            c.requests.to_string(),
            c.usage.input.to_string(),
            c.usage.cached_input.to_string(),
            c.usage.output.to_string(),
            c.usage.reasoning.to_string(),
            cost(c),
            c.incomplete.to_string(),
        ]);
    }
    for (i, column) in table.column_iter_mut().enumerate() {
        if i >= 2 {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table.to_string()
}
