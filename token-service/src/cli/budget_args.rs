//! The budget options shared by `tokens create|update` and `groups create|update`, and how a
//! token's or group's budgets are shown.

use crate::budget::{
    parse_cost_budget, parse_group, parse_token_budget, parse_tpm, BudgetPatch, BudgetStatus,
    PeriodLimit,
};
use crate::pricing::format_usd;
use ptk_wire::{BudgetKind, BudgetScope};

/// Budgets to set.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BudgetSet {
    /// Input + output tokens per calendar UTC period: TOKENS/day, /week (ISO, from Monday) or
    /// /month.
    #[arg(long, value_name = "N/PERIOD", value_parser = parse_token_budget)]
    pub token_budget: Option<PeriodLimit>,
    /// Cost per calendar UTC period: USD/day, /week or /month (e.g. 25.50/month).
    #[arg(long, value_name = "USD/PERIOD", value_parser = parse_cost_budget)]
    pub cost_budget: Option<PeriodLimit>,
    /// Tokens per calendar minute.
    #[arg(long, value_name = "N", value_parser = parse_tpm)]
    pub tpm: Option<u64>,
}

/// Budgets to clear.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BudgetClear {
    /// Remove the token budget.
    #[arg(long, conflicts_with = "token_budget")]
    pub no_token_budget: bool,
    /// Remove the cost budget.
    #[arg(long, conflicts_with = "cost_budget")]
    pub no_cost_budget: bool,
    /// Remove the tokens-per-minute limit.
    #[arg(long, conflicts_with = "tpm")]
    pub no_tpm: bool,
}

/// The group a token joins.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GroupSet {
    /// The group (team, project) whose budgets the token also counts against (one at most).
    #[arg(long, value_name = "NAME", value_parser = parse_group)]
    pub group: Option<String>,
}

impl BudgetSet {
    /// The patch that sets what was given.
    pub fn patch(&self) -> BudgetPatch {
        BudgetPatch {
            tokens: self.token_budget.map(Some),
            cost: self.cost_budget.map(Some),
            tpm: self.tpm.map(Some),
            group: None,
        }
    }

    /// `patch` plus what `clear` removes.
    pub fn patch_with(&self, clear: &BudgetClear) -> BudgetPatch {
        let mut patch = self.patch();
        if clear.no_token_budget {
            patch.tokens = Some(None);
        }
        if clear.no_cost_budget {
            patch.cost = Some(None);
        }
        if clear.no_tpm {
            patch.tpm = Some(None);
        }
        patch
    }
}

/// One line per budget: what it is, spent, remaining and reset (`reserved` is what the
/// service's outstanding grants hold; the CLI, outside the service, sees the ledger only).
pub fn status_lines(all: &[BudgetStatus]) -> Vec<String> {
    all.iter()
        .map(|b| {
            let whose = match (&b.scope, &b.group) {
                (BudgetScope::Group, Some(name)) => format!("group {name}"),
                _ => "token".to_owned(),
            };
            let amount = |n: u64| match b.kind {
                BudgetKind::Cost => format!("${}", format_usd(n)),
                BudgetKind::Tokens | BudgetKind::Tpm => format!("{n} tokens"),
            };
            let what = match b.kind {
                BudgetKind::Tpm => "tokens per minute".to_owned(),
                BudgetKind::Tokens => format!("tokens per {}", b.period.as_str()),
                BudgetKind::Cost => format!("cost per {}", b.period.as_str()),
            };
            format!(
                "{whose} {what}: {} of {} spent, {} remaining; resets {}",
                amount(b.spent),
                amount(b.limit),
                amount(b.remaining),
                b.resets_at
            )
        })
        .collect()
}
