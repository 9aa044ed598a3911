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

use super::render::{listing_json, record_json, state, table};
use super::resolve::{resolve, ResolveError};
use super::{CreateArgs, TokensCommand};
use crate::expiry::{expiry_state, now_timestamp, parse_expiry_input, ExpiryState};
use crate::store::{StoreError, TokenRecord, TokenStatus, TokenStore};
use crate::token;

/// Runs one `tokens` subcommand.
pub async fn run(
    store: &dyn TokenStore,
    command: TokensCommand,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    match command {
        TokensCommand::Create(args) => create(store, args, out, err).await,
        TokensCommand::List { json } => list(store, json, out, err).await,
        TokensCommand::Disable { token } => {
            set_status(store, &token, TokenStatus::Disabled, out).await
        }
        TokensCommand::Enable { token } => {
            set_status(store, &token, TokenStatus::Active, out).await
        }
        TokensCommand::Delete { token } => delete(store, &token, out).await,
        TokensCommand::Expire { token, at } => expire(store, &token, &at, out, err).await,
    }
}

async fn create(
    store: &dyn TokenStore,
    args: CreateArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let label = token::label(&args.label)?;
    let providers = token::providers(&args.providers)?;
    let expires_at = match &args.expires {
        Some(text) => parse_expiry_input(text)?,
        None => None,
    };
    let plaintext = match &args.token {
        Some(custom) => token::custom_token(custom.expose_secret())?,
        None => token::generate_token()?,
    };
    let record = TokenRecord {
        hash: token::hash_token(&plaintext),
        label,
        last4: token::last4(&plaintext),
        providers,
        status: TokenStatus::Active,
        created_at: now_timestamp(),
        expires_at,
        rate_limit: args.rate_limit,
    };
    match store.insert(&record).await {
        Err(StoreError::Duplicate) => bail!("token already exists - delete it first"),
        other => other.context("cannot store the token")?,
    }
    let now = Utc::now();
    if args.json {
        let mut value = record_json(&record, now);
        if let Value::Object(map) = &mut value {
            map.insert("token".into(), Value::from(plaintext.expose_secret()));
        }
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "{}", plaintext.expose_secret())?;
    }
    writeln!(
        err,
        "created token {:?} (hash {}) for {}; expires {}; rate limit {}.\n\
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
    )?;
    if state(&record, now) == "expired" {
        writeln!(
            err,
            "note: that expiry has already passed; the token is expired"
        )?;
    }
    Ok(())
}

async fn list(
    store: &dyn TokenStore,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let listings = store.list().await.context("cannot list tokens")?;
    let now = Utc::now();
    if json {
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
async fn find(store: &dyn TokenStore, input: &str) -> anyhow::Result<TokenRecord> {
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
    let record = find(store, input).await?;
    found(store.delete(&record.hash).await?, &record.hash)?;
    writeln!(out, "deleted token {:.12} ({})", record.hash, record.label)?;
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
