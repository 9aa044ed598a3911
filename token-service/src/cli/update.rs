//! `tokens update TOKEN [--expires …] [--rate-limit …|--no-rate-limit] …`: one patch over the
//! settings named on the command line. Every value is validated before the store is touched,
//! so a typo changes nothing; settings not named are never written (the store's patch
//! semantics), so an update cannot undo a concurrent one to another setting.

use std::io::Write;

use anyhow::bail;
use chrono::Utc;

use super::tokens::find;
use super::UpdateArgs;
use crate::expiry::{expiry_state, parse_expiry_input, ExpiryState};
use crate::store::{TokenPatch, TokenStore};
use crate::token_view::TokenView;

/// The patch the arguments ask for; an error when they ask for nothing or a value is invalid.
fn patch_of(args: &UpdateArgs) -> anyhow::Result<TokenPatch> {
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
    if patch.is_empty() {
        bail!("nothing to update: name at least one setting (see `tokens update --help`)");
    }
    Ok(patch)
}

/// A model allow-list as the CLI prints it.
pub(super) fn models_text(models: Option<&[String]>) -> String {
    models.map_or_else(|| "any".to_owned(), |m| m.join(","))
}

/// Applies the update and prints the token as committed.
pub async fn update(
    store: &dyn TokenStore,
    args: UpdateArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let patch = patch_of(&args)?;
    let record = find(store, &args.token).await?;
    let Some(committed) = store.update(&record.hash, &patch).await? else {
        bail!(
            "token {:.12} disappeared (deleted concurrently?)",
            record.hash
        );
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
