//! `tokens update TOKEN [--expires …] [--rate-limit …|--no-rate-limit] [--token-budget …|
//! --no-token-budget] [--cost-budget …|--no-cost-budget] [--tpm …|--no-tpm] [--group …|
//! --no-group] …`: one patch over the settings named on the command line. Every value is
//! validated before the store is touched, so a typo changes nothing; settings not named are
//! never written (the store's patch semantics), so an update cannot undo a concurrent one to
//! another setting. Token settings and budgets are two writes (two tables): the token's first.

use std::io::Write;

use anyhow::bail;
use chrono::Utc;

use super::tokens::find;
use super::UpdateArgs;
use crate::budget::BudgetPatch;
use crate::expiry::{expiry_state, parse_expiry_input, ExpiryState};
use crate::store::{BudgetStore, TokenPatch, TokenStore};
use crate::token_view::TokenView;

/// The patches the arguments ask for; an error when they ask for nothing or a value is invalid.
fn patch_of(args: &UpdateArgs) -> anyhow::Result<(TokenPatch, BudgetPatch)> {
    let mut patch = TokenPatch::default();
    if let Some(text) = &args.expires {
        patch.expires_at = Some(parse_expiry_input(text)?);
    }
    if args.no_rate_limit {
        patch.rate_limit = Some(None);
    } else if let Some(limit) = args.rate_limit {
        patch.rate_limit = Some(Some(limit));
    }
    if args.no_key_pool {
        patch.key_pool = Some(None);
    } else if let Some(pool) = &args.key_pool {
        patch.key_pool = Some(Some(pool.clone()));
    }
    if args.no_models {
        patch.models = Some(None);
    } else if let Some(models) = &args.models {
        patch.models = Some(Some(models.0.clone()));
    }
    let mut budgets = args.budgets.patch_with(&args.clear);
    if args.no_group {
        budgets.group = Some(None);
    } else if let Some(group) = &args.group.group {
        budgets.group = Some(Some(group.clone()));
    }
    if patch.is_empty() && budgets.is_empty() {
        bail!("nothing to update: name at least one setting (see `tokens update --help`)");
    }
    Ok((patch, budgets))
}

/// A model allow-list as the CLI prints it.
pub(super) fn models_text(models: Option<&[String]>) -> String {
    models.map_or_else(|| "any".to_owned(), |m| m.join(","))
}

/// Applies the update and prints the token as committed.
pub async fn update(
    store: &dyn TokenStore,
    budget_store: &dyn BudgetStore,
    args: UpdateArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let (patch, budget_patch) = patch_of(&args)?;
    let record = find(store, &args.token).await?;
    let committed = if patch.is_empty() {
        Some(record)
    } else {
        store.update(&record.hash, &patch).await?
    };
    let Some(committed) = committed else {
        bail!(
            "token {:.12} disappeared (deleted concurrently?)",
            args.token
        );
    };
    let budgets = if budget_patch.is_empty() {
        None
    } else {
        match budget_store
            .patch_token_budgets(&committed.hash, &budget_patch)
            .await?
        {
            Some(budgets) => Some(budgets),
            None => bail!(
                "token {:.12} disappeared (deleted concurrently?)",
                committed.hash
            ),
        }
    };
    let now = Utc::now();
    if args.json {
        let view = TokenView::new(&committed, None, now);
        writeln!(out, "{}", serde_json::to_string(&view)?)?;
    } else {
        writeln!(
            out,
            "updated token {:.12} ({}): expires {}; rate limit {}; key pool {}; models {}",
            committed.hash,
            committed.label,
            committed.expires_at.as_deref().unwrap_or("never"),
            committed
                .rate_limit
                .map_or_else(|| "default".to_owned(), |r| format!("{r}s")),
            committed.key_pool.as_deref().unwrap_or("default"),
            models_text(committed.models.as_deref()),
        )?;
        if let Some(b) = budgets {
            let group = match &b.group {
                Some((name, g)) => format!("group {name} ({g})"),
                None => "no group".to_owned(),
            };
            writeln!(out, "budgets: {}; {group}", b.own)?;
        }
    }
    if matches!(
        expiry_state(committed.expires_at.as_deref(), now),
        ExpiryState::Expired
    ) {
        writeln!(
            err,
            "note: that expiry has already passed; the token is expired"
        )?;
    }
    Ok(())
}
