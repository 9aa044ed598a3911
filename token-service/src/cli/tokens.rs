//! `tokens ...`: the operator's commands over the store.
//!
//! Output contract: `create` prints the plaintext token alone on stdout (or one JSON object with
//! `--json`) and its guidance on stderr; other commands print their result on stdout. Errors
//! are returned, and `main` prints them on stderr with a non-zero exit.

use std::io::Write;

use anyhow::{bail, Context as _};
use chrono::Utc;
use secrecy::ExposeSecret as _;
use serde_json::Value;

use super::render::{listing_json, table};
use super::resolve::{resolve, ResolveError};
use super::{CreateArgs, ListArgs, TokensCommand};
use crate::expiry::{expiry_state, parse_expiry_input, ExpiryState};
use crate::new_token::{create_token, CreatedToken, NewToken};
use crate::store::{
    BudgetStore, PageCursor, StoreError, TokenListing, TokenRecord, TokenStatus, TokenStore,
    UsageStore, MAX_PAGE_LIMIT,
};
use crate::token_view::{display_state, Created, TokenList, TokenView};

/// Runs one `tokens` subcommand.
pub async fn run(
    store: &dyn TokenStore,
    usage: &dyn UsageStore,
    budgets: &dyn BudgetStore,
    command: TokensCommand,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    match command {
        TokensCommand::Create(args) => create(store, budgets, args, out, err).await,
        TokensCommand::List(args) => list(store, args, out, err).await,
        TokensCommand::Disable { token } => {
            set_status(store, &token, TokenStatus::Disabled, out).await
        }
        TokensCommand::Enable { token } => {
            set_status(store, &token, TokenStatus::Active, out).await
        }
        TokensCommand::Delete { token } => delete(store, &token, out).await,
        TokensCommand::Update(args) => super::update::update(store, budgets, args, out, err).await,
        TokensCommand::Expire { token, at } => expire(store, &token, &at, out, err).await,
        TokensCommand::Usage(args) => super::usage::usage(store, usage, budgets, args, out).await,
    }
}

async fn create(
    store: &dyn TokenStore,
    budgets: &dyn BudgetStore,
    args: CreateArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let custom = args.token.as_ref().map(|t| t.expose_secret());
    let mut new = NewToken::validate(&args.label, &args.providers, custom)?;
    new.expires_at = match &args.expires {
        Some(text) => parse_expiry_input(text)?,
        None => None,
    };
    new.rate_limit = args.rate_limit;
    new.key_pool = args.key_pool.clone();
    new.models = args.models.map(|m| m.0);
    let mut patch = args.budgets.patch();
    patch.group = args.group.group.clone().map(Some);
    if let Some(group) = &args.group.group {
        if !budgets.groups().await?.iter().any(|g| &g.name == group) {
            bail!("no group named {group:?} (create it with `groups create`)");
        }
    }
    let now = Utc::now();
    let CreatedToken { plaintext, record } = create_token(store, new, now).await?;
    if !patch.is_empty() {
        // The plaintext is printed only once the budgets hold: nobody can use the token
        // without them. If they cannot be stored, the token is removed again.
        if let Err(e) = budgets.patch_token_budgets(&record.hash, &patch).await {
            store.delete(&record.hash).await?;
            return Err(e).context("cannot store the token's budgets; the token was not created");
        }
    }
    if args.json {
        let created = Created {
            token: plaintext.expose_secret().to_owned(),
            view: TokenView::new(&record, None, now),
        };
        writeln!(out, "{}", serde_json::to_string(&created)?)?;
    } else {
        writeln!(out, "{}", plaintext.expose_secret())?;
    }
    writeln!(
        err,
        "created token {:?} (hash {}) for {}; expires {}; rate limit {}; models {}.\n\
         The token above is shown once: only its hash is stored.\n\
         Clients use it as their API key, with their base URL pointed at the Envoy listener.",
        record.label,
        record.hash,
        record
            .providers
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        record.expires_at.as_deref().unwrap_or("never"),
        record
            .rate_limit
            .map_or_else(|| "default".to_owned(), |r| format!("{r}s")),
        super::update::models_text(record.models.as_deref()),
    )?;
    if !patch.is_empty() {
        let own = patch.apply(Default::default());
        let group = args.group.group.as_deref().unwrap_or("none");
        writeln!(err, "budgets: {own}; group {group}")?;
    }
    if display_state(&record, now) == "expired" {
        writeln!(
            err,
            "note: that expiry has already passed; the token is expired"
        )?;
    }
    Ok(())
}

/// Every token, read page by page (the store's largest pages) so no single query holds the
/// whole table.
async fn all_tokens(store: &dyn TokenStore) -> anyhow::Result<Vec<TokenListing>> {
    let mut all = Vec::new();
    let mut after: Option<PageCursor> = None;
    loop {
        let page = store
            .list_page(MAX_PAGE_LIMIT, after.as_ref())
            .await
            .context("cannot list tokens")?;
        all.extend(page.tokens);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(all),
        }
    }
}

/// One page: the table (or the admin API's page object with `--json`), and on stderr the
/// command for the next page.
async fn list_one_page(
    store: &dyn TokenStore,
    args: ListArgs,
    limit: u16,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let after = match args.after.as_deref() {
        Some(text) => Some(
            PageCursor::decode(text)
                .context("bad --after: pass the cursor an earlier page printed")?,
        ),
        None => None,
    };
    let page = store
        .list_page(usize::from(limit), after.as_ref())
        .await
        .context("cannot list tokens")?;
    let now = Utc::now();
    let next = page.next.map(|c| c.encode());
    if args.json {
        let tokens = page
            .tokens
            .iter()
            .map(|l| TokenView::of_listing(l, now))
            .collect();
        let list = TokenList { tokens, next };
        writeln!(out, "{}", serde_json::to_string(&list)?)?;
        return Ok(());
    }
    write!(out, "{}", table(&page.tokens, now))?;
    match next {
        Some(next) => writeln!(
            err,
            "more: token-service tokens list --limit {limit} --after {next}"
        )?,
        None => writeln!(err, "(last page)")?,
    }
    Ok(())
}

async fn list(
    store: &dyn TokenStore,
    args: ListArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    if let Some(limit) = args.limit {
        return list_one_page(store, args, limit, out, err).await;
    }
    let listings = all_tokens(store).await?;
    let now = Utc::now();
    if args.json {
        let all: Vec<Value> = listings.iter().map(|l| listing_json(l, now)).collect();
        writeln!(out, "{}", Value::Array(all))?;
    } else if listings.is_empty() {
        writeln!(
            err,
            "no tokens yet; create one with `token-service tokens create`"
        )?;
    } else {
        write!(out, "{}", table(&listings, now))?;
    }
    Ok(())
}

/// Resolves the argument and reads the record (for messages), failing on "not found".
pub(super) async fn find(store: &dyn TokenStore, input: &str) -> anyhow::Result<TokenRecord> {
    let hash = resolve(store, input).await?;
    store
        .get(&hash)
        .await?
        .ok_or_else(|| ResolveError::NotFound(input.trim().to_owned()).into())
}

/// Turns a mutation's "was it there?" into an error when a concurrent delete won.
fn found(updated: bool, hash: &str) -> anyhow::Result<()> {
    if !updated {
        bail!("token {hash:.12} disappeared (deleted concurrently?)");
    }
    Ok(())
}

async fn set_status(
    store: &dyn TokenStore,
    input: &str,
    status: TokenStatus,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let record = find(store, input).await?;
    found(store.set_status(&record.hash, status).await?, &record.hash)?;
    let verb = match status {
        TokenStatus::Active => "enabled",
        TokenStatus::Disabled => "disabled",
    };
    writeln!(out, "{verb} token {:.12} ({})", record.hash, record.label)?;
    if status == TokenStatus::Active {
        let expired = matches!(
            expiry_state(record.expires_at.as_deref(), Utc::now()),
            ExpiryState::Expired | ExpiryState::Unparseable
        );
        if expired {
            writeln!(
                out,
                "note: its expiry ({}) still denies it; change it with `tokens expire`",
                record.expires_at.as_deref().unwrap_or_default()
            )?;
        }
    }
    Ok(())
}

async fn delete(store: &dyn TokenStore, input: &str, out: &mut dyn Write) -> anyhow::Result<()> {
    let hash = resolve(store, input).await?;
    // A row this service cannot read (e.g. a scope naming a provider PTK_PROVIDERS no longer
    // lists) can still go: deleting grants nothing, and it is the operator's way out.
    let label = match store.get(&hash).await {
        Ok(Some(record)) => record.label,
        Ok(None) => return Err(ResolveError::NotFound(input.trim().to_owned()).into()),
        Err(StoreError::Corrupt(_)) => "unreadable record".to_owned(),
        Err(e) => return Err(e.into()),
    };
    found(store.delete(&hash).await?, &hash)?;
    writeln!(out, "deleted token {hash:.12} ({label})")?;
    Ok(())
}

async fn expire(
    store: &dyn TokenStore,
    input: &str,
    at: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    // Validate the new value before touching the store, so a typo changes nothing.
    let expires_at = parse_expiry_input(at)?;
    let record = find(store, input).await?;
    found(
        store
            .set_expiry(&record.hash, expires_at.as_deref())
            .await?,
        &record.hash,
    )?;
    match &expires_at {
        Some(at) => writeln!(
            out,
            "token {:.12} ({}) expires {at}",
            record.hash, record.label
        )?,
        None => writeln!(
            out,
            "token {:.12} ({}) never expires",
            record.hash, record.label
        )?,
    }
    if matches!(
        expiry_state(expires_at.as_deref(), Utc::now()),
        ExpiryState::Expired
    ) {
        writeln!(
            err,
            "note: that time has already passed; the token is expired"
        )?;
    }
    Ok(())
}
