//! PostgreSQL backend, for several token-service replicas serving one fleet of Envoys: the
//! same schema and semantics as SQLite (and the same contract suite), on an async pool.
//!
//! TLS (rustls) is used whenever the URL's `sslmode` asks for it or allows it (`prefer`, the
//! default, `require`), and the server certificate is always verified, against the system's
//! CA roots plus an optional CA file: whoever could impersonate the database could re-enable a
//! disabled token. `sslmode=disable` turns TLS off.
//!
//! Concurrency comes from PostgreSQL's row locks under READ COMMITTED: an `UPDATE` re-reads
//! the row it waited for, so a patch keeps the latest committed value of every field it does
//! not name, and a patch that waited on a `DELETE` finds nothing and creates nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Config, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::migrations::migrate_postgres;
use super::page::rows_to_fetch;
use super::row::RawRow;
use super::{
    Page, PageCursor, SessionStore, StoreError, TokenListing, TokenPatch, TokenRecord, TokenStore,
};

/// Connections per replica; the check path holds one only for a primary-key read.
const POOL_SIZE: usize = 16;
/// How long a request waits for a connection, or a new connection for the server.
const TIMEOUT: Duration = Duration::from_secs(5);
const SELECT_TOKEN: &str = "SELECT t.hash, t.label, t.last4, t.providers, t.status, t.created_at,
    t.expires_at, t.rate_limit, t.rate_window_s, l.at
    FROM tokens t LEFT JOIN last_used l ON l.hash = t.hash";

/// One statement for every patch: each `CASE` keeps the column unless the patch names it,
/// and `RETURNING` hands back the row exactly as this statement wrote it (in the column order
/// of [`SELECT_TOKEN`]; a patch never touches the stamp, so that column is left empty).
const UPDATE_TOKEN: &str = "UPDATE tokens SET
    status        = CASE WHEN $2 THEN $3 ELSE status END,
    expires_at    = CASE WHEN $4 THEN $5 ELSE expires_at END,
    rate_limit    = CASE WHEN $6 THEN $7 ELSE rate_limit END,
    rate_window_s = CASE WHEN $6 THEN $8 ELSE rate_window_s END
    WHERE hash = $1
    RETURNING hash, label, last4, providers, status, created_at, expires_at, rate_limit,
        rate_window_s, NULL::text";

/// An error with its causes ("error performing TLS handshake: invalid peer certificate: ..."):
/// the driver's own message alone often hides what an operator needs.
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn backend(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(with_causes(&e))
}

fn pool_error(e: impl std::error::Error + 'static) -> StoreError {
    StoreError::Pool(with_causes(&e))
}

fn listing(row: &Row) -> Result<TokenListing, StoreError> {
    RawRow {
        hash: row.try_get(0).map_err(backend)?,
        label: row.try_get(1).map_err(backend)?,
        last4: row.try_get(2).map_err(backend)?,
        providers: row.try_get(3).map_err(backend)?,
        status: row.try_get(4).map_err(backend)?,
        created_at: row.try_get(5).map_err(backend)?,
        expires_at: row.try_get(6).map_err(backend)?,
        rate_limit: row.try_get(7).map_err(backend)?,
        rate_window_s: row.try_get(8).map_err(backend)?,
        last_used: row.try_get(9).map_err(backend)?,
    }
    .decode()
}

/// The URL without its password or options, for messages (`postgres://user@host:port/db`).
pub fn redacted(url: &str) -> String {
    let Ok(config) = url.parse::<Config>() else {
        return "postgres://(unparseable URL)".to_string();
    };
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

/// The TLS connector: rustls with the system's CA roots and, if given, the PEM CA file's.
fn tls(ca_file: Option<&Path>) -> Result<MakeRustlsConnect, StoreError> {
    let tls_error = |what: String| StoreError::Backend(format!("TLS set-up: {what}"));
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system stores are not fatal: a CA file may be all the trust there is.
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| tls_error(format!("cannot read CA file {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(tls_error(format!("no certificate in {}", path.display())));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| tls_error(format!("bad CA in {}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The PostgreSQL token store.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

impl PostgresStore {
    /// Connects (a `postgres://` URL or key=value string) and brings the schema to the latest
    /// migration (one replica at a time).
    /// `ca_file` adds a PEM CA to the system roots for verifying the server's certificate.
    pub async fn connect(url: &str, ca_file: Option<&Path>) -> Result<PostgresStore, StoreError> {
        let mut config: Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::Backend(e.to_string()))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(TIMEOUT);
        }
        let manager = Manager::from_config(
            config,
            tls(ca_file)?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(TIMEOUT))
            .create_timeout(Some(TIMEOUT))
            .build()
            .map_err(pool_error)?;
        let mut client = pool.get().await.map_err(pool_error)?;
        migrate_postgres(&mut client).await?;
        drop(client);
        Ok(PostgresStore { pool })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }
}

#[async_trait]
impl TokenStore for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        // Touch the tokens table, not just the connection: a missing schema is "not answering".
        let client = self.client().await?;
        client
            .query_opt("SELECT 1 FROM tokens LIMIT 0", &[])
            .await
            .map(|_| ())
            .map_err(backend)
    }

    async fn get(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self.get_listing(hash).await?.map(|l| l.record))
    }

    async fn get_listing(&self, hash: &str) -> Result<Option<TokenListing>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!("{SELECT_TOKEN} WHERE t.hash = $1"))
            .await
            .map_err(backend)?;
        match client.query_opt(&stmt, &[&hash]).await.map_err(backend)? {
            Some(row) => Ok(Some(listing(&row)?)),
            None => Ok(None),
        }
    }

    async fn insert(&self, record: &TokenRecord) -> Result<(), StoreError> {
        let providers = serde_json::to_string(&record.providers)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let client = self.client().await?;
        // ON CONFLICT DO NOTHING + row count: a duplicate is refused atomically, never
        // overwritten (an overwrite could resurrect a disabled token).
        let inserted = client
            .execute(
                "INSERT INTO tokens (hash, label, last4, providers, status, created_at,
                    expires_at, rate_limit, rate_window_s)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (hash) DO NOTHING",
                &[
                    &record.hash,
                    &record.label,
                    &record.last4,
                    &providers,
                    &record.status.as_str(),
                    &record.created_at,
                    &record.expires_at,
                    &record.rate_limit.map(|l| i64::from(l.limit)),
                    &record.rate_limit.map(|l| i64::from(l.window_s)),
                ],
            )
            .await
            .map_err(backend)?;
        if inserted == 0 {
            return Err(StoreError::Duplicate);
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<TokenListing>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("{SELECT_TOKEN} ORDER BY t.created_at DESC, t.hash"),
                &[],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(listing).collect()
    }

    async fn list_page(
        &self,
        limit: usize,
        after: Option<&PageCursor>,
    ) -> Result<Page, StoreError> {
        let rows = rows_to_fetch(limit);
        let client = self.client().await?;
        // `tokens_newest_first` serves the order and, after a cursor, the range
        // `created_at <= $2`; the `OR` only skips the cursor's own timestamp's earlier hashes.
        let found = match after {
            None => {
                let sql = format!("{SELECT_TOKEN} ORDER BY t.created_at DESC, t.hash LIMIT $1");
                client.query(&sql, &[&rows]).await
            }
            Some(cursor) => {
                let sql = format!(
                    "{SELECT_TOKEN} WHERE t.created_at <= $2 AND (t.created_at < $2 OR t.hash > $3)
                     ORDER BY t.created_at DESC, t.hash LIMIT $1"
                );
                client
                    .query(&sql, &[&rows, &cursor.created_at, &cursor.hash])
                    .await
            }
        }
        .map_err(backend)?;
        let tokens = found.iter().map(listing).collect::<Result<_, _>>()?;
        Ok(Page::from_rows(tokens, limit))
    }

    async fn hashes_with_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT hash FROM tokens WHERE hash >= $1 AND hash < $1 || 'g'
                 ORDER BY hash LIMIT $2",
                &[&prefix, &limit],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| r.try_get::<_, String>(0).map_err(backend))
            .collect()
    }

    async fn update(
        &self,
        hash: &str,
        patch: &TokenPatch,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let (limit, window) = match patch.rate_limit {
            Some(Some(rl)) => (Some(i64::from(rl.limit)), Some(i64::from(rl.window_s))),
            _ => (None, None),
        };
        let client = self.client().await?;
        let row = client
            .query_opt(
                UPDATE_TOKEN,
                &[
                    &hash,
                    &patch.status.is_some(),
                    &patch.status.map(|s| s.as_str()),
                    &patch.expires_at.is_some(),
                    &patch.expires_at.clone().flatten(),
                    &patch.rate_limit.is_some(),
                    &limit,
                    &window,
                ],
            )
            .await
            .map_err(backend)?;
        Ok(row.as_ref().map(listing).transpose()?.map(|l| l.record))
    }

    async fn delete(&self, hash: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        // The stamp goes with the token (ON DELETE CASCADE), in the same statement.
        let deleted = client
            .execute("DELETE FROM tokens WHERE hash = $1", &[&hash])
            .await
            .map_err(backend)?;
        Ok(deleted > 0)
    }

    async fn stamp_last_used(&self, hash: &str, at: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        let stamped = client
            .execute(
                "INSERT INTO last_used (hash, at)
                 SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM tokens WHERE hash = $1)
                 ON CONFLICT (hash) DO UPDATE SET at = EXCLUDED.at",
                &[&hash, &at],
            )
            .await;
        match stamped {
            Ok(_) => Ok(()),
            // The token was deleted between the EXISTS and the insert: nothing to stamp.
            Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn revoke_session(&self, id: &str, until: &str, now: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute("DELETE FROM revoked_sessions WHERE until < $1", &[&now])
            .await
            .map_err(backend)?;
        tx.execute(
            "INSERT INTO revoked_sessions (id, until) VALUES ($1, $2)
             ON CONFLICT (id) DO NOTHING",
            &[&id, &until],
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn session_revoked(&self, id: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM revoked_sessions WHERE id = $1)",
                &[&id],
            )
            .await
            .map_err(backend)?
            .try_get(0)
            .map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use std::sync::Arc;

    use super::*;
    use crate::store::contract::{all_cases, sample_record};

    use crate::store::pg_server::PgServer;

    /// The whole store contract against a real PostgreSQL (one server, a fresh database per
    /// case), plus what only this backend has: the schema is created once even when replicas
    /// start together, and the URL never shows its password.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_meets_the_store_contract() {
        let server = PgServer::start();
        let cases = all_cases();
        assert!(cases.len() >= 17);
        for (i, (name, case)) in cases.into_iter().enumerate() {
            let db = format!("case_{i}");
            server.create_db(&db).await;
            let store = PostgresStore::connect(&server.url(&db), None)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            case(Arc::new(store)).await;
        }

        // Four replicas starting at once on one empty database: one schema, all usable.
        server.create_db("replicas").await;
        let url = server.url("replicas");
        let replicas = futures_join(&url).await;
        replicas[0].insert(&sample_record("ab")).await.unwrap();
        for store in &replicas {
            assert!(store
                .get(&sample_record("ab").hash)
                .await
                .unwrap()
                .is_some());
        }
    }

    /// The schema exactly as the pre-migration code created it (version 1).
    const OLD_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokens (
    hash          TEXT COLLATE \"C\" PRIMARY KEY,
    label         TEXT NOT NULL,
    last4         TEXT NOT NULL,
    providers     TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at    TEXT NOT NULL,
    expires_at    TEXT NULL,
    rate_limit    BIGINT NULL,
    rate_window_s BIGINT NULL
);
CREATE TABLE IF NOT EXISTS last_used (
    hash TEXT COLLATE \"C\" PRIMARY KEY REFERENCES tokens (hash) ON DELETE CASCADE,
    at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked_sessions (
    id    TEXT COLLATE \"C\" PRIMARY KEY,
    until TEXT COLLATE \"C\" NOT NULL
);
";

    /// A database written by the code before migrations (its exact schema and rows) upgrades
    /// in place: every token, stamp and revoked session reads back as it was, the upgrade is
    /// recorded once, and new writes work.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_old_schema_database_upgrades_in_place_with_its_tokens_intact() {
        let server = PgServer::start();
        server.create_db("old_schema").await;
        let url = server.url("old_schema");
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(conn);
        let mut active = sample_record("a1");
        active.rate_limit = Some(crate::ratelimit::RateLimit {
            limit: 7,
            window_s: 60,
        });
        let mut disabled = sample_record("d1");
        disabled.status = crate::store::TokenStatus::Disabled;
        disabled.expires_at = Some("2999-01-01T00:00:00.000Z".into());
        client.batch_execute(OLD_SCHEMA).await.unwrap();
        for r in [&active, &disabled] {
            let providers = serde_json::to_string(&r.providers).unwrap();
            client
                .execute(
                    "INSERT INTO tokens VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[
                        &r.hash,
                        &r.label,
                        &r.last4,
                        &providers,
                        &r.status.as_str(),
                        &r.created_at,
                        &r.expires_at,
                        &r.rate_limit.map(|l| i64::from(l.limit)),
                        &r.rate_limit.map(|l| i64::from(l.window_s)),
                    ],
                )
                .await
                .unwrap();
        }
        client
            .batch_execute(&format!(
                "INSERT INTO last_used VALUES ('{}', '2025-02-03T04:05:06.789Z');
                 INSERT INTO revoked_sessions VALUES ('old-session', '2999-01-01T00:00:00.000Z')",
                active.hash
            ))
            .await
            .unwrap();

        for _ in 0..2 {
            let store = PostgresStore::connect(&url, None).await.unwrap();
            assert_eq!(store.get(&active.hash).await.unwrap(), Some(active.clone()));
            assert_eq!(
                store.get(&disabled.hash).await.unwrap(),
                Some(disabled.clone())
            );
            let listing = store.get_listing(&active.hash).await.unwrap().unwrap();
            assert_eq!(
                listing.last_used.as_deref(),
                Some("2025-02-03T04:05:06.789Z")
            );
            assert!(store.session_revoked("old-session").await.unwrap());
        }
        let applied: Vec<i32> = client
            .query("SELECT version FROM refinery_schema_history", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(applied, [1, 2]);
        let store = PostgresStore::connect(&url, None).await.unwrap();
        store.insert(&sample_record("e1")).await.unwrap();
        drop(client);
        let _ = task.await;
    }

    async fn futures_join(url: &str) -> Vec<PostgresStore> {
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let url = url.to_owned();
                tokio::spawn(async move { PostgresStore::connect(&url, None).await.unwrap() })
            })
            .collect();
        let mut stores = Vec::new();
        for task in tasks {
            stores.push(task.await.unwrap());
        }
        stores
    }

    /// TLS is verified against the CA file (and the system roots): with the CA the session is
    /// encrypted; without it, `require` and the default `prefer` both refuse the server;
    /// `sslmode=disable` is the explicit way to plain text.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tls_is_used_and_the_server_certificate_verified() {
        let certs = tempfile::tempdir().unwrap();
        let made = std::process::Command::new(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/dev_cert.sh"),
        )
        .arg(certs.path())
        .status()
        .unwrap();
        assert!(made.success(), "tools/dev_cert.sh failed");
        let ca = certs.path().join("ca.crt");
        let server = PgServer::start_tls(certs.path());
        server.create_db("tls").await;
        let url = server.url("tls");

        let store = PostgresStore::connect(&format!("{url}?sslmode=require"), Some(&ca))
            .await
            .unwrap();
        store.insert(&sample_record("cd")).await.unwrap();
        let client = store.client().await.unwrap();
        let encrypted: bool = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(encrypted, "the session must be TLS");

        for unverified in [format!("{url}?sslmode=require"), url.clone()] {
            let err = PostgresStore::connect(&unverified, None)
                .await
                .err()
                .expect("an unknown CA must be refused");
            assert!(err.to_string().contains("certificate"), "{err}");
        }
        let plain = PostgresStore::connect(&format!("{url}?sslmode=disable"), None)
            .await
            .unwrap();
        assert!(plain
            .get(&sample_record("cd").hash)
            .await
            .unwrap()
            .is_some());
        let err = PostgresStore::connect(&url, Some(&certs.path().join("missing.pem")))
            .await
            .err()
            .expect("a missing CA file is an error");
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }

    #[test]
    fn messages_show_the_url_without_its_password() {
        let shown = redacted("postgres://ptk:s3cret-pass@db.internal:6543/tokens?sslmode=disable");
        assert_eq!(shown, "postgres://ptk@db.internal:6543/tokens");
        assert!(!redacted("not a url ::: s3cret").contains("s3cret"));
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_clear_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("postgres://ptk:pw@127.0.0.1:{port}/x?connect_timeout=2");
        let err = PostgresStore::connect(&url, None)
            .await
            .err()
            .expect("refused");
        assert!(!err.to_string().contains("pw@"), "{err}");
    }
}
