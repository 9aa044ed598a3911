//! PostgreSQL backend, for several token-service replicas serving one fleet of Envoys: the
//! same statements and semantics as SQLite (and the same contract suite), on one async pool
//! that serves reads and writes alike.
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
use std::str::FromStr as _;
use std::time::Duration;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{Connection as _, PgConnection, Postgres};

use super::migrations::migrate_postgres;
use super::sql_store::{store_error, with_causes, SqlStore};
use super::StoreError;

/// The PostgreSQL token store.
pub type PostgresStore = SqlStore<Postgres>;

/// Connections per replica; the check path holds one only for a primary-key read.
const POOL_SIZE: u32 = 16;
/// How long a request waits for a connection, including opening a new one.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The URL without its password or options, for messages (`postgres://user@host:port/db`).
pub fn redacted(url: &str) -> String {
    let Ok(options) = PgConnectOptions::from_str(url) else {
        return "postgres://(unparseable URL)".to_string();
    };
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("")
    )
}

/// Checks the PEM CA file up front, so a missing or empty one is named in the error rather
/// than surfacing as a handshake failure.
fn check_ca_file(path: &Path) -> Result<(), StoreError> {
    let tls_error = |what: String| StoreError::Backend(format!("TLS set-up: {what}"));
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_error(format!("cannot read CA file {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(tls_error(format!("no certificate in {}", path.display())));
    }
    Ok(())
}

/// The URL's options with TLS always verified. sqlx verifies the certificate only in the
/// `verify-*` modes, so `require` becomes `verify-full`, and `prefer` (or `allow`) becomes
/// `verify-full` when the server offers TLS and `disable` when it does not (asked once, at
/// start: a server that turns TLS on later is used in plain text until the service restarts).
async fn verified(url: &str, ca_file: Option<&Path>) -> Result<PgConnectOptions, StoreError> {
    let mut options = PgConnectOptions::from_str(url).map_err(store_error)?;
    if let Some(path) = ca_file {
        check_ca_file(path)?;
        options = options.ssl_root_cert(path);
    }
    let mode = options.get_ssl_mode();
    if matches!(mode, PgSslMode::Disable) {
        return Ok(options);
    }
    let options = options.ssl_mode(PgSslMode::VerifyFull);
    if !matches!(mode, PgSslMode::Prefer | PgSslMode::Allow) {
        return Ok(options);
    }
    let probe = tokio::time::timeout(TIMEOUT, PgConnection::connect_with(&options))
        .await
        .map_err(|_| StoreError::Pool(format!("no connection within {TIMEOUT:?}")))?;
    match probe {
        Ok(conn) => {
            let _ = conn.close().await;
            Ok(options)
        }
        Err(sqlx::Error::Tls(e)) if e.to_string() == "server does not support TLS" => {
            Ok(options.ssl_mode(PgSslMode::Disable))
        }
        Err(e) => Err(store_error(e)),
    }
}

impl SqlStore<Postgres> {
    /// Connects (a `postgres://` URL) and brings the schema to the latest migration (one
    /// replica at a time). `ca_file` adds a PEM CA to the system roots for verifying the
    /// server's certificate.
    pub async fn connect(url: &str, ca_file: Option<&Path>) -> Result<PostgresStore, StoreError> {
        let options = verified(url, ca_file).await?;
        // Connections are not pinged before each use (a dead one fails its statement once and
        // is dropped), and idle ones are kept: the check path pays for its query only.
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(TIMEOUT)
            .test_before_acquire(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Pool(with_causes(&e)))?;
        migrate_postgres(&pool).await?;
        Ok(SqlStore {
            reads: pool.clone(),
            writes: pool,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use std::sync::Arc;

    use super::*;
    use crate::store::contract::{all_cases, sample_record};
    use crate::store::{SessionStore as _, TokenStore as _};

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
        let applied: Vec<i64> = client
            .query("SELECT version FROM _sqlx_migrations ORDER BY version", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(applied, [1, 2, 3, 6]);
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
        let encrypted: bool =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(&store.reads)
                .await
                .unwrap();
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

    /// The one set of statements prepares here too, with the same `$n` binding as SQLite.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_statement_prepares_on_postgres_and_binds_by_number() {
        let server = PgServer::start();
        server.create_db("statements").await;
        let store = PostgresStore::connect(&server.url("statements"), None)
            .await
            .unwrap();
        crate::store::sql::tests::statements_prepare_and_bind_by_number(&store.reads).await;
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
