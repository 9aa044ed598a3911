//! Shared helpers for the black-box tests: a real app on port 0 over a fresh temp database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ptk_wire::{CheckRequest, CheckResponse, Provider, CHECK_PATH, CHECK_SECRET_HEADER};
use secrecy::SecretString;
use token_service::keys::ProviderKeys;
use token_service::ratelimit::RateLimit;
use token_service::ratelimit::{InMemoryRateLimiter, LimiterBackend, RateLimiter};
use token_service::settings::{AdminSettings, SESSION_MAX_AGE};
use token_service::store::{SqliteStore, StoreLocation, TokenRecord, TokenStatus, TokenStore};
use token_service::token::{hash_token, last4};
use token_service::{Application, Settings};

pub mod admin;
pub mod redis_server;

pub const SECRET: &str = "test-check-secret-0123456789";
pub const OPENAI_KEY: &str = "sk-test-openai-real-key";
pub const ANTHROPIC_KEY: &str = "sk-ant-test-real-key";
pub const ADMIN_SECRET: &str = "test-admin-secret-0123456789";

/// Knobs for one test app.
pub struct Options {
    pub keys: ProviderKeys,
    pub default_rate_limit: RateLimit,
    pub cache_ttl_ms: u64,
    pub limiter: Arc<dyn RateLimiter>,
    /// `None` runs without the admin listener.
    pub admin_secret: Option<&'static str>,
    pub session_max_age: Duration,
    pub public_url: Option<String>,
    /// Reloads read this keys file (`None`: the environment only).
    pub keys_file: Option<PathBuf>,
    /// Serve the metrics listener (on a free port).
    pub metrics: bool,
    /// Where the admin secret "came from" (`ADMIN_SECRET_FILE`), shown on the sign-in page.
    pub admin_secret_file: Option<String>,
    /// Budget threshold notifications (`None`: none sent).
    pub budget_webhook: Option<token_service::notify::WebhookSettings>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            // Gemini deliberately has no key: the provider_unconfigured branch.
            keys: ProviderKeys::none()
                .with(Provider::Openai, OPENAI_KEY)
                .with(Provider::Anthropic, ANTHROPIC_KEY),
            default_rate_limit: RateLimit {
                limit: 100,
                window_s: 60,
            },
            cache_ttl_ms: 1000,
            limiter: Arc::new(InMemoryRateLimiter::new()),
            admin_secret: Some(ADMIN_SECRET),
            session_max_age: SESSION_MAX_AGE,
            public_url: None,
            keys_file: None,
            metrics: false,
            admin_secret_file: None,
            budget_webhook: None,
        }
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// The admin listener (`None` when the options had no admin secret).
    pub admin_addr: Option<SocketAddr>,
    /// The metrics listener (`None` unless the options asked for it).
    pub metrics_addr: Option<SocketAddr>,
    pub client: reqwest::Client,
    /// A second handle on the same database, for seeding and inspecting.
    pub store: SqliteStore,
    pub db_path: PathBuf,
    _dir: tempfile::TempDir,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    spawn_app_in(tempfile::tempdir().unwrap(), options).await
}

/// Like [`spawn_app_with`] on the database `dir/data/ptk.sqlite3`, which may already exist.
pub async fn spawn_app_in(dir: tempfile::TempDir, options: Options) -> TestApp {
    let db_path = dir.path().join("data/ptk.sqlite3");
    // As in the real service, a reload (a SIGHUP to this test process reaches every app in
    // it) must rebuild the start-up keys: without a keys file they stand for the environment.
    let env_keys = match options.keys_file {
        Some(_) => ProviderKeys::none(),
        None => options.keys.clone(),
    };
    let settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: StoreLocation::Sqlite(db_path.clone()),
        check_secret: SecretString::from(SECRET),
        keys: options.keys,
        keys_file: options.keys_file,
        env_keys,
        metrics_listen: options.metrics.then(|| "127.0.0.1:0".parse().unwrap()),
        default_rate_limit: options.default_rate_limit,
        // Unused: the app is built with `options.limiter`.
        limiter: LimiterBackend::Memory,
        cache_ttl_ms: options.cache_ttl_ms,
        admin: options.admin_secret.map(|secret| AdminSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            secret: SecretString::from(secret),
            session_max_age: options.session_max_age,
            public_url: options.public_url,
            secret_file: options.admin_secret_file,
        }),
        budget_webhook: options.budget_webhook,
    };
    let app = Application::build_with_limiter(settings, options.limiter)
        .await
        .unwrap();
    let addr = app.local_addr();
    let admin_addr = app.admin_addr();
    let metrics_addr = app.metrics_addr();
    assert_ne!(addr.port(), 0);
    tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        addr,
        admin_addr,
        metrics_addr,
        client: reqwest::Client::new(),
        store: SqliteStore::open(&db_path).unwrap(),
        db_path,
        _dir: dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stores a token for `plaintext`, after `tweak` adjusts the record; returns its hash.
    pub async fn add_token(
        &self,
        plaintext: &str,
        providers: &[Provider],
        tweak: impl FnOnce(&mut TokenRecord),
    ) -> String {
        let secret = SecretString::from(plaintext);
        let mut record = TokenRecord {
            hash: hash_token(&secret),
            label: "test".into(),
            last4: last4(&secret),
            providers: providers.to_vec(),
            status: TokenStatus::Active,
            created_at: token_service::expiry::now_timestamp(),
            expires_at: None,
            rate_limit: None,
            key_pool: None,
            models: None,
        };
        tweak(&mut record);
        self.store.insert(&record).await.unwrap();
        record.hash
    }

    /// Runs SQL directly against the database file, bypassing the service.
    pub fn sql(&self, statements: &str) {
        let conn = rusqlite::Connection::open(&self.db_path).unwrap();
        conn.execute_batch(statements).unwrap();
    }

    pub async fn post_check(
        &self,
        body: impl Into<reqwest::Body>,
        secret: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url(CHECK_PATH))
            .header("content-type", "application/json")
            .body(body);
        if let Some(secret) = secret {
            req = req.header(CHECK_SECRET_HEADER, secret);
        }
        req.send().await.unwrap()
    }

    /// A well-formed, authenticated check; asserts 200 and parses the verdict.
    pub async fn check(&self, hash: &str, provider: Provider) -> CheckResponse {
        let body = serde_json::to_string(&CheckRequest {
            hash: hash.to_owned(),
            provider,
            returned: None,
            budget_want: None,
            releases: Vec::new(),
            grant_id: None,
        })
        .unwrap();
        let response = self.post_check(body, Some(SECRET)).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

/// Shorthand for a deny without retry-after.
pub fn deny(reason: ptk_wire::DenyReason) -> CheckResponse {
    CheckResponse::Deny {
        reason,
        retry_after_s: None,
        budget: None,
    }
}
