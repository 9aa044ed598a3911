//! The command line: `serve`, `tokens ...`, `backup` and `restore` for operators. All use
//! the same store.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use secrecy::SecretString;

use crate::ratelimit::RateLimit;
use crate::settings::{secret_arg, ServeArgs, Settings, DEFAULT_DB};
use crate::startup::Application;
use crate::store::{sqlite_backup, StoreLocation};

mod budget_args;
mod groups;
mod healthcheck;
mod render;
mod resolve;
mod tokens;
mod update;
mod usage;

pub use budget_args::{BudgetClear, BudgetSet, GroupSet};
pub use groups::GroupsCommand;
pub use healthcheck::HealthcheckArgs;
pub use resolve::{normalize_prefix, pick, ResolveError};

/// Proxy tokens for LLM APIs: the check API for the Envoy filter, and token management.
/// `Debug` shows no secret: the database URL, the Redis URL and custom tokens are
/// [`SecretString`]s.
#[derive(Debug, Parser)]
#[command(name = "token-service", version, about)]
pub struct Cli {
    /// SQLite database file (created with its directory if missing).
    #[arg(long, env = "PTK_DB", default_value = DEFAULT_DB, global = true, value_name = "PATH")]
    pub db: PathBuf,
    /// PostgreSQL URL (`postgres://user:password@host:port/db`); when set, tokens live there
    /// instead of the SQLite file, so several token-service replicas share them.
    #[arg(
        long,
        env = "PTK_DATABASE_URL",
        global = true,
        value_name = "URL",
        value_parser = secret_arg,
        hide_env_values = true
    )]
    pub database_url: Option<SecretString>,
    /// PEM CA file trusted (besides the system roots) for PostgreSQL's TLS certificate.
    #[arg(long, env = "PTK_DATABASE_CA_FILE", global = true, value_name = "PATH")]
    pub database_ca_file: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Where the tokens live, from `--db` / `--database-url` / `--database-ca-file`.
    pub fn store_location(&self) -> StoreLocation {
        StoreLocation::pick(
            self.db.clone(),
            self.database_url.clone(),
            self.database_ca_file.clone(),
        )
    }
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the check API (and /healthz). Needs PTK_CHECK_SECRET (or a secret file).
    Serve(ServeArgs),
    /// Create, list and change tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Create, list and change groups: budgets that several tokens share.
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// Write a consistent copy of the SQLite store to a new FILE; safe while `serve` runs
    /// (copying the database file is not a backup: recent commits live in its -wal file).
    Backup {
        /// The backup file to create (must not exist).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Replace the SQLite store's tokens with a backup's (checked first); works while
    /// `serve` runs, which sees the old tokens or the restored ones, never a mix.
    Restore {
        /// A file written by `backup`.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Exit 0 when this host's check API answers /healthz with 200 (a container healthcheck
    /// for images without a shell or curl).
    Healthcheck(HealthcheckArgs),
}

/// `tokens list` options.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print JSON instead of a table: an array of every token, or with `--limit` the admin
    /// API's page object (`{"tokens": [...], "next": CURSOR|null}`).
    #[arg(long)]
    pub json: bool,
    /// Print one page of at most this many tokens (1 to 1000) and the next page's cursor.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: Option<u16>,
    /// Start the page after this cursor (the `next` of an earlier page); needs `--limit`.
    #[arg(long, requires = "limit")]
    pub after: Option<String>,
}

/// `tokens` subcommands. TOKEN arguments take a full hash or a unique prefix (>= 8 hex chars).
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token; prints the plaintext token alone on stdout (shown once).
    Create(CreateArgs),
    /// List tokens, newest first: all of them, or one page with `--limit`.
    List(ListArgs),
    /// Disable a token (checks deny it as invalid until it is enabled again).
    Disable {
        /// Hash or unique hash prefix (at least 8 hex characters).
        token: String,
    },
    /// Enable a disabled token.
    Enable {
        /// Hash or unique hash prefix (at least 8 hex characters).
        token: String,
    },
    /// Delete a token and its last-used stamp.
    Delete {
        /// Hash or unique hash prefix (at least 8 hex characters).
        token: String,
    },
    /// What a token spent since a day, per model (requests, tokens, cost, incomplete).
    Usage(UsageArgs),
    /// Change a token's settings; only the options given are written.
    Update(UpdateArgs),
    /// Set or clear a token's expiry.
    Expire {
        /// Hash or unique hash prefix (at least 8 hex characters).
        token: String,
        /// New expiry (RFC 3339 with Z or an offset), or `never` to clear it.
        #[arg(long, value_name = "RFC3339|never")]
        at: String,
    },
}

/// `tokens update` options: each names one setting; settings not named stay as stored.
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Hash or unique hash prefix (at least 8 hex characters).
    pub token: String,
    /// New expiry (RFC 3339 with Z or an offset), or `never` to clear it.
    #[arg(long, value_name = "RFC3339|never")]
    pub expires: Option<String>,
    /// The token's own quota, REQUESTS/SECONDS.
    #[arg(long, value_name = "N/SECONDS", conflicts_with = "no_rate_limit")]
    pub rate_limit: Option<RateLimit>,
    /// Return the token to the service's default quota (PTK_RATE_LIMIT).
    #[arg(long)]
    pub no_rate_limit: bool,
    /// Bind the token to the named provider key pool (keys file NAMES_POOL_<POOL> lines).
    #[arg(long, value_name = "POOL", conflicts_with = "no_key_pool", value_parser = pool_arg)]
    pub key_pool: Option<String>,
    /// Return the token to the default key pool.
    #[arg(long)]
    pub no_key_pool: bool,
    /// Model allow-list: model names and `*` patterns, comma-separated (`gpt-5*,gpt-4o`).
    #[arg(long, value_name = "MODELS", value_parser = models_arg, conflicts_with = "no_models")]
    pub models: Option<ModelsArg>,
    /// Clear the model allow-list: the token may call any model again.
    #[arg(long)]
    pub no_models: bool,
    /// Budgets to set.
    #[command(flatten)]
    pub budgets: BudgetSet,
    /// Budgets to remove.
    #[command(flatten)]
    pub clear: BudgetClear,
    /// The group to move the token to.
    #[command(flatten)]
    pub group: GroupSet,
    /// Take the token out of its group.
    #[arg(long, conflicts_with = "group")]
    pub no_group: bool,
    /// Print the updated token as one JSON object (as `tokens list --json` shows it).
    #[arg(long)]
    pub json: bool,
}

/// `tokens usage` options.
#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    /// Hash or unique hash prefix (at least 8 hex characters); a deleted token's full hash.
    pub token: String,
    /// First UTC day counted, YYYY-MM-DD (default: the first of this month).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub since: Option<String>,
    /// Print one JSON object with a `models` list instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `tokens create` options.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Label shown in listings (required, trimmed).
    #[arg(long)]
    pub label: String,
    /// Providers the token may call: openai, anthropic, gemini (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', required = true, num_args = 1..)]
    pub providers: Vec<String>,
    /// Expiry, RFC 3339 with Z or an offset (e.g. 2030-01-01T00:00:00Z). Default: never.
    #[arg(long, value_name = "RFC3339")]
    pub expires: Option<String>,
    /// Use this custom token (trimmed, at least 12 characters) instead of a random one.
    #[arg(long, value_name = "CUSTOM", value_parser = secret_arg)]
    pub token: Option<SecretString>,
    /// The token's own quota, REQUESTS/SECONDS (default: the service's PTK_RATE_LIMIT).
    #[arg(long, value_name = "N/SECONDS")]
    pub rate_limit: Option<RateLimit>,
    /// Bind the token to the named provider key pool (default: the default pool).
    #[arg(long, value_name = "POOL", value_parser = pool_arg)]
    pub key_pool: Option<String>,
    /// Model allow-list: model names and `*` patterns, comma-separated (`gpt-5*,gpt-4o`).
    /// Default: any model.
    #[arg(long, value_name = "MODELS", value_parser = models_arg)]
    pub models: Option<ModelsArg>,
    /// Budgets.
    #[command(flatten)]
    pub budgets: BudgetSet,
    /// The group the token joins.
    #[command(flatten)]
    pub group: GroupSet,
    /// Print one JSON object (token, hash, label, ...) instead of the bare token.
    #[arg(long)]
    pub json: bool,
}

/// A validated `--models` list (one argument: clap would read a bare `Vec` as many).
#[derive(Debug, Clone)]
pub struct ModelsArg(pub Vec<String>);

/// `--models`: the whole comma-separated list, validated (`crate::models`).
fn models_arg(text: &str) -> Result<ModelsArg, String> {
    crate::models::parse_models_arg(text).map(ModelsArg)
}

/// A `--key-pool` value: a pool name ([`crate::key_pools::pool_name`]).
fn pool_arg(raw: &str) -> Result<String, String> {
    crate::key_pools::pool_name(raw)
        .ok_or_else(|| "a key pool name is 1 to 32 of A-Z a-z 0-9 . _ -".to_owned())
}

/// The single-threaded runtime the store commands (`tokens`, `groups`) run on.
fn store_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The stores at `location`, or an error naming it.
async fn open_stores(location: &StoreLocation) -> anyhow::Result<crate::store::Stores> {
    location
        .open_stores()
        .await
        .with_context(|| format!("cannot open token store at {location}"))
}

fn init_logging(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // Logs go to stderr so stdout stays clean for `TOKEN=$(token-service tokens create ...)`.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Runs a parsed command line to completion.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let location = cli.store_location();
    match cli.command {
        Command::Serve(args) => {
            init_logging("info");
            let settings = Settings::from_args(&args, &location, |name| std::env::var(name).ok())?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(usize::from(args.worker_threads))
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(async {
                let app = Application::build(settings).await?;
                app.run_until_stopped().await.context("server failed")
            })
        }
        Command::Backup { to } => {
            let db = sqlite_only(&location)?;
            let count = sqlite_backup::backup(&db, &to)
                .with_context(|| format!("backup of {} failed", db.display()))?;
            eprintln!(
                "backed up {count} tokens from {} to {}",
                db.display(),
                to.display()
            );
            Ok(())
        }
        Command::Restore { from } => {
            let db = sqlite_only(&location)?;
            let count = sqlite_backup::restore(&from, &db)
                .with_context(|| format!("restore from {} failed", from.display()))?;
            eprintln!(
                "restored {count} tokens from {} into {}",
                from.display(),
                db.display()
            );
            Ok(())
        }
        Command::Tokens(command) => {
            init_logging("warn");
            store_runtime()?.block_on(async {
                let stores = open_stores(&location).await?;
                let mut out = std::io::stdout().lock();
                let mut err = std::io::stderr().lock();
                let (tokens, usage) = (stores.tokens.as_ref(), stores.usage.as_ref());
                let budgets = stores.budgets.as_ref();
                tokens::run(tokens, usage, budgets, command, &mut out, &mut err).await
            })
        }
        Command::Groups(command) => {
            init_logging("warn");
            store_runtime()?.block_on(async {
                let stores = open_stores(&location).await?;
                let mut out = std::io::stdout().lock();
                groups::run(stores.budgets.as_ref(), command, &mut out).await
            })
        }
        Command::Healthcheck(args) => healthcheck::run(&args),
    }
}

/// The SQLite file of `location`; PostgreSQL has its own tools.
fn sqlite_only(location: &StoreLocation) -> anyhow::Result<PathBuf> {
    match location {
        StoreLocation::Sqlite(path) => Ok(path.clone()),
        StoreLocation::Postgres { .. } => anyhow::bail!(
            "backup and restore are for the SQLite store; for PostgreSQL use pg_dump and \
             pg_restore (README: Day two)"
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use secrecy::ExposeSecret as _;

    const DB_PASSWORD: &str = "pg-Pa55word-never-shown";
    const REDIS_PASSWORD: &str = "redis-Pa55word-never-shown";
    const CUSTOM_TOKEN: &str = "ptk_custom-Plaintext-never-shown";

    fn parse(args: &[&str]) -> Cli {
        let mut argv = vec!["token-service"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap()
    }

    fn assert_hidden(shown: &str, secrets: &[&str]) {
        for secret in secrets {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn debug_of_the_parsed_command_line_shows_no_secret() {
        let db_url = format!("postgres://ptk:{DB_PASSWORD}@db.internal:5432/ptk");
        let create = parse(&[
            "--database-url",
            &db_url,
            "tokens",
            "create",
            "--label",
            "alice",
            "--providers",
            "openai",
            "--token",
            CUSTOM_TOKEN,
        ]);
        assert_hidden(&format!("{create:?}"), &[DB_PASSWORD, CUSTOM_TOKEN]);
        assert_hidden(&format!("{:?}", create.store_location()), &[DB_PASSWORD]);
        let Command::Tokens(TokensCommand::Create(args)) = &create.command else {
            panic!("not a create: {create:?}");
        };
        assert_eq!(args.token.as_ref().unwrap().expose_secret(), CUSTOM_TOKEN);

        let redis_url = format!("redis://:{REDIS_PASSWORD}@cache.internal:6379/0");
        let serve = parse(&[
            "serve",
            "--redis-url",
            &redis_url,
            "--database-url",
            &db_url,
        ]);
        assert_hidden(&format!("{serve:?}"), &[DB_PASSWORD, REDIS_PASSWORD]);
        let Command::Serve(args) = &serve.command else {
            panic!("not serve: {serve:?}");
        };
        assert_eq!(args.redis_url.as_ref().unwrap().expose_secret(), redis_url);
        assert!(matches!(
            serve.store_location(),
            StoreLocation::Postgres { .. }
        ));
    }

    #[test]
    fn a_blank_database_url_keeps_sqlite() {
        let cli = parse(&["--database-url", "  ", "tokens", "list"]);
        assert!(matches!(cli.store_location(), StoreLocation::Sqlite(_)));
    }
}
