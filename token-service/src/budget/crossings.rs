//! After a report settles: which budgets of the tokens it touched have reached a notification
//! threshold. Every threshold reached in the current period is returned each time (the
//! notifier sends each crossing once: a replica-local set, then a claim shared by replicas),
//! so a crossing is never missed because two reports settled at once on two replicas.
//! Tokens-per-minute limits are left out: a minute is too short to be told about.

use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat, Utc};
use ptk_wire::{BudgetKind, BudgetPeriod};

use super::admission::{group_scope, token_scope};
use super::period::{period_end, period_id};
use super::spec::Budgets;
use crate::notify::{crossed, BudgetEvent, BudgetScope};
use crate::store::{BudgetStore, StoreError, TokenStore};

/// One budget of one scope, with the scope as a notification names it.
struct Watched {
    scope: BudgetScope,
    scope_key: String,
    kind: BudgetKind,
    period: BudgetPeriod,
    limit: u64,
}

fn watched(scope: &BudgetScope, scope_key: &str, budgets: &Budgets, out: &mut Vec<Watched>) {
    let limits = [
        (BudgetKind::Tokens, budgets.tokens),
        (BudgetKind::Cost, budgets.cost),
    ];
    for (kind, limit) in limits {
        if let Some(l) = limit {
            out.push(Watched {
                scope: scope.clone(),
                scope_key: scope_key.to_owned(),
                kind,
                period: l.period,
                limit: l.limit,
            });
        }
    }
}

/// The events for every threshold (percent of the limit) the settled spend of the budgets of
/// `hashes` (and their groups) has reached at `now`.
pub async fn threshold_events(
    budgets: &dyn BudgetStore,
    tokens: &dyn TokenStore,
    hashes: &BTreeSet<String>,
    thresholds: &[u8],
    now: DateTime<Utc>,
) -> Result<Vec<BudgetEvent>, StoreError> {
    if thresholds.is_empty() {
        return Ok(Vec::new());
    }
    let mut all = Vec::new();
    let mut groups = BTreeSet::new();
    let hash_list: Vec<String> = hashes.iter().cloned().collect();
    let labels = tokens.labels(&hash_list).await?;
    for hash in hashes {
        let of = budgets.budgets_of(hash).await?;
        let token = BudgetScope::Token {
            token: hash.chars().take(12).collect(),
            label: labels.get(hash).cloned().unwrap_or_default(),
        };
        watched(&token, &token_scope(hash), &of.own, &mut all);
        if let Some((name, group)) = of.group {
            if groups.insert(name.clone()) {
                let scope = BudgetScope::Group {
                    group: name.clone(),
                };
                watched(&scope, &group_scope(&name), &group, &mut all);
            }
        }
    }
    let mut events = Vec::new();
    for w in all {
        let period = period_id(w.period, now);
        let spent = budgets
            .spend(
                std::slice::from_ref(&w.scope_key),
                std::slice::from_ref(&period),
            )
            .await?
            .iter()
            .find(|r| r.scope == w.scope_key && r.period == period)
            .map_or(0, |r| match w.kind {
                BudgetKind::Cost => r.cost_nano_usd,
                BudgetKind::Tokens | BudgetKind::Tpm => r.tokens,
            });
        for threshold in crossed(thresholds, w.limit, 0, spent) {
            events.push(BudgetEvent {
                scope: w.scope.clone(),
                budget: w.kind,
                period: w.period,
                period_id: period.clone(),
                threshold_percent: threshold,
                limit: w.limit,
                spent,
                resets_at: period_end(w.period, now).to_rfc3339_opts(SecondsFormat::Secs, true),
            });
        }
    }
    Ok(events)
}
