//! The token store: one trait, one record type, one error type. SQLite is the default
//! backend; PostgreSQL serves several replicas; both pass the same contract suite
//! (`contract.rs`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use ptk_wire::Provider;
use secrecy::{ExposeSecret as _, SecretString};

use crate::ratelimit::RateLimit;

mod budget;
mod budget_sql;
#[cfg(test)]
pub(crate) mod contract;
#[cfg(test)]
mod contract_pages;
mod metered;
mod migrations;
mod page;
#[cfg(test)]
mod page_speed;
/// The throwaway PostgreSQL server the black-box tests use too.
#[cfg(test)]
#[path = "../../tests/common/pg_server.rs"]
pub(crate) mod pg_server;
mod postgres;
mod row;
mod sessions;
mod sql;
mod sql_store;
mod sqlite;
pub mod sqlite_backup;
mod usage;

pub use budget::{BudgetStore, GroupDelete, GroupRecord, SpendRow, TokenBudgets};
pub use metered::{MeteredSessions, MeteredStore};
pub use page::{Page, PageCursor, MAX_PAGE_LIMIT};
pub use postgres::PostgresStore;
pub use sessions::SessionStore;
pub use sql_store::SqlStore;
pub use sqlite::SqliteStore;
pub use usage::{UsageStore, MAX_USAGE_ROWS};

/// Where the tokens live: an SQLite file (`PTK_DB`) or a PostgreSQL database
/// (`PTK_DATABASE_URL`, which wins when set). `Debug` and `Display` never show a password.
#[derive(Clone)]
pub enum StoreLocation {
    /// An SQLite file, created with its directory if missing.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL, and a PEM CA file trusted for its TLS certificate.
    Postgres {
        /// The connection URL (may hold a password).
        url: SecretString,
        /// Extra CA for the server certificate (`PTK_DATABASE_CA_FILE`).
        ca_file: Option<PathBuf>,
    },
}

impl StoreLocation {
    /// PostgreSQL when a non-empty URL is given, else the SQLite file.
    pub fn pick(
        db: PathBuf,
        database_url: Option<SecretString>,
        ca_file: Option<PathBuf>,
    ) -> StoreLocation {
        match database_url.filter(|u| !u.expose_secret().trim().is_empty()) {
            Some(url) => StoreLocation::Postgres { url, ca_file },
            None => StoreLocation::Sqlite(db),
        }
    }

    /// Opens the token store, bringing its schema to the latest migration.
    pub async fn open(&self) -> Result<Arc<dyn TokenStore>, StoreError> {
        Ok(self.open_stores().await?.tokens)
    }

    /// Opens the database once for both of its stores (one pool, shared).
    pub async fn open_stores(&self) -> Result<Stores, StoreError> {
        match self {
            StoreLocation::Sqlite(path) => {
                let path = path.clone();
                let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                    .await
                    .map_err(|e| StoreError::Task(e.to_string()))??;
                Ok(Stores::both(store))
            }
            StoreLocation::Postgres { url, ca_file } => Ok(Stores::both(
                PostgresStore::connect(url.expose_secret(), ca_file.as_deref()).await?,
            )),
        }
    }
}

/// The stores one database holds: tokens, the admin sessions ended server-side, and the
/// token usage the filter metered.
#[derive(Clone)]
pub struct Stores {
    /// The tokens.
    pub tokens: Arc<dyn TokenStore>,
    /// The ended admin sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Token usage rollups.
    pub usage: Arc<dyn UsageStore>,
    /// Budgets, groups and the settled-spend ledger.
    pub budgets: Arc<dyn BudgetStore>,
}

impl Stores {
    /// Every store from one backend handle (its clones share the pool).
    fn both<B: TokenStore + SessionStore + UsageStore + BudgetStore + Clone>(backend: B) -> Stores {
        Stores {
            tokens: Arc::new(backend.clone()),
            sessions: Arc::new(backend.clone()),
            usage: Arc::new(backend.clone()),
            budgets: Arc::new(backend),
        }
    }
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "{}", path.display()),
            StoreLocation::Postgres { url, .. } => {
                f.write_str(&postgres::redacted(url.expose_secret()))
            }
        }
    }
}

impl std::fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreLocation({self})")
    }
}

/// Stored status of a token. "Expired" is derived from `expires_at`, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStatus {
    /// May be used (subject to expiry, scope and rate limit).
    Active,
    /// Revoked by an operator; may be re-enabled.
    Disabled,
}

impl TokenStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::Active => "active",
            TokenStatus::Disabled => "disabled",
        }
    }

    /// Parses the stored spelling; `None` for anything else.
    pub fn parse(text: &str) -> Option<TokenStatus> {
        match text {
            "active" => Some(TokenStatus::Active),
            "disabled" => Some(TokenStatus::Disabled),
            _ => None,
        }
    }
}

/// One token as stored. The plaintext is never part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// SHA-256 of the token, 64 lowercase hex: the primary key.
    pub hash: String,
    /// Operator's label.
    pub label: String,
    /// Last four characters of the plaintext, for display.
    pub last4: String,
    /// Providers the token may call.
    pub providers: Vec<Provider>,
    /// Stored status.
    pub status: TokenStatus,
    /// Creation time, RFC 3339 UTC with ms.
    pub created_at: String,
    /// Expiry as stored; kept as text because an unparseable value must fail closed at check
    /// time rather than disappear when the record is read.
    pub expires_at: Option<String>,
    /// The token's own quota; `None` means the service default.
    pub rate_limit: Option<RateLimit>,
    /// The named provider key pool the token is bound to (`None`: the default pool).
    pub key_pool: Option<String>,
    /// Model names and `*` patterns the token may call (`crate::models`); `None`: any model.
    pub models: Option<Vec<String>>,
}

/// A partial update of one token. Only the fields that are `Some` are written; the others are
/// left exactly as they are in the database at commit time (never rewritten from a stale
/// read), so an expiry edit can never undo a concurrent disable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenPatch {
    /// New status.
    pub status: Option<TokenStatus>,
    /// New expiry (`Some(None)` clears it); already normalised.
    pub expires_at: Option<Option<String>>,
    /// New own quota (`Some(None)` returns the token to the service default).
    pub rate_limit: Option<Option<RateLimit>>,
    /// New key pool binding (`Some(None)` returns the token to the default pool).
    pub key_pool: Option<Option<String>>,
    /// New model allow-list, already validated (`Some(None)` lets the token call any model).
    pub models: Option<Option<Vec<String>>>,
}

impl TokenPatch {
    /// True when the patch names no field.
    pub fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.expires_at.is_none()
            && self.rate_limit.is_none()
            && self.key_pool.is_none()
            && self.models.is_none()
    }
}

/// A record plus its last-used stamp, as listings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenListing {
    /// The token record.
    pub record: TokenRecord,
    /// Last time the check API allowed it (throttled), RFC 3339.
    pub last_used: Option<String>,
}

/// Store failures. Messages carry no token or key material.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Insert of a hash that already exists.
    #[error("token already exists - delete it first")]
    Duplicate,
    /// The backend failed (I/O, missing schema, locked database, ...).
    #[error("store backend failed: {0}")]
    Backend(String),
    /// Could not get a connection from the pool.
    #[error("store connection unavailable: {0}")]
    Pool(String),
    /// A stored row that cannot be read back as a record.
    #[error("corrupt token record: {0}")]
    Corrupt(String),
    /// The blocking task running the query died.
    #[error("store task failed: {0}")]
    Task(String),
}

impl StoreError {
    /// A short, stable name for the failure class, for logs and counters.
    pub fn class(&self) -> &'static str {
        match self {
            StoreError::Duplicate => "duplicate",
            StoreError::Backend(_) => "backend",
            StoreError::Pool(_) => "pool",
            StoreError::Corrupt(_) => "corrupt_record",
            StoreError::Task(_) => "task",
        }
    }
}

/// Persistent token storage shared by the check API and the CLI.
///
/// Mutations report whether a token was found (`false` = no such hash) so callers can tell
/// "not found" from success without a racy read first.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// Cheap round trip that proves the store (and its schema) answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Reads one token by hash.
    async fn get(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// Inserts a new token; [`StoreError::Duplicate`] if the hash exists (never overwrites).
    async fn insert(&self, record: &TokenRecord) -> Result<(), StoreError>;
    /// Every token with its last-used stamp, newest first (`created_at` descending, then
    /// `hash` ascending).
    async fn list(&self) -> Result<Vec<TokenListing>, StoreError>;
    /// One page of [`TokenStore::list`]'s order: at most `limit` tokens (clamped to
    /// `1..=`[`MAX_PAGE_LIMIT`]) after `after` (from the start when `None`), and the cursor of
    /// the next page. Keyset, not offset: an index range whatever the table's size.
    async fn list_page(&self, limit: usize, after: Option<&PageCursor>)
        -> Result<Page, StoreError>;
    /// Hashes starting with `prefix` (lowercase hex), at most `limit` of them.
    async fn hashes_with_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;
    /// One token with its last-used stamp.
    async fn get_listing(&self, hash: &str) -> Result<Option<TokenListing>, StoreError>;
    /// Applies `patch` atomically (one write transaction: the conditional update and the
    /// read-back of the committed record) and returns the record as committed, or `None` when
    /// no such token exists (nothing is created). Concurrent patches serialise; for each field
    /// the last committed write wins, and fields a patch does not name are never written.
    async fn update(
        &self,
        hash: &str,
        patch: &TokenPatch,
    ) -> Result<Option<TokenRecord>, StoreError>;
    /// Sets the status; `false` when there is no such token.
    async fn set_status(&self, hash: &str, status: TokenStatus) -> Result<bool, StoreError> {
        let patch = TokenPatch {
            status: Some(status),
            ..TokenPatch::default()
        };
        Ok(self.update(hash, &patch).await?.is_some())
    }
    /// Sets (`Some`, already normalised) or clears (`None`) the expiry; `false` when there is
    /// no such token.
    async fn set_expiry(&self, hash: &str, expires_at: Option<&str>) -> Result<bool, StoreError> {
        let patch = TokenPatch {
            expires_at: Some(expires_at.map(str::to_owned)),
            ..TokenPatch::default()
        };
        Ok(self.update(hash, &patch).await?.is_some())
    }
    /// The labels of those of `hashes` that name a token (a deleted one is simply absent), in
    /// a few reads however many there are (admin views list thousands).
    async fn labels(&self, hashes: &[String]) -> Result<HashMap<String, String>, StoreError> {
        let mut out = HashMap::new();
        for hash in hashes {
            if let Some(record) = self.get(hash).await? {
                out.insert(record.hash, record.label);
            }
        }
        Ok(out)
    }
    /// Deletes the token and its last-used stamp.
    async fn delete(&self, hash: &str) -> Result<bool, StoreError>;
    /// Records a use. Must never create or modify a token record: stamping a hash that does not
    /// exist (e.g. deleted a moment ago) is a silent no-op.
    async fn stamp_last_used(&self, hash: &str, at: &str) -> Result<(), StoreError>;
}
