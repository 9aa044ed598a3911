//! Typed settings for `serve`: environment variables with command-line overrides (clap reads
//! both), plus the two secrets, which only come from the environment or files so they never
//! appear in a process listing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

use crate::keys::{KeysFileError, ProviderKeys};
use crate::notify::{parse_thresholds, WebhookSettings};
use crate::ratelimit::{LimiterBackend, RateLimit};
use crate::store::StoreLocation;

// The check secret's variable and shortest length are the wire contract's (both sides).
pub use ptk_wire::{CHECK_SECRET_VAR, MIN_CHECK_SECRET_LEN};
/// Environment variable naming a file that holds the check secret.
pub const CHECK_SECRET_FILE_VAR: &str = "PTK_CHECK_SECRET_FILE";
/// Environment variable holding the admin secret (the dashboard / admin API password).
pub const ADMIN_SECRET_VAR: &str = "ADMIN_SECRET";
/// Environment variable naming a file that holds the admin secret (`make run` uses
/// `data/admin-secret`); the dashboard's sign-in page says where to find it.
pub const ADMIN_SECRET_FILE_VAR: &str = "ADMIN_SECRET_FILE";
/// Shortest admin secret accepted.
pub const MIN_ADMIN_SECRET_LEN: usize = 16;
/// How long an admin session cookie is accepted (checked server-side, not only by the browser).
pub const SESSION_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// Default database file (relative to the working directory).
pub const DEFAULT_DB: &str = "data/ptk.sqlite3";

/// `serve` options; each flag also reads the environment variable named in its help.
/// `Debug` shows no secret (the Redis URL is a [`SecretString`]).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PTK_LISTEN", default_value = "127.0.0.1:10080")]
    pub listen: SocketAddr,
    /// Address of the admin listener (dashboard + admin API); only used when ADMIN_SECRET is
    /// set. Separate from --listen so the check API and the admin surface never share a port.
    #[arg(long, env = "PTK_ADMIN_LISTEN", default_value = "127.0.0.1:10081")]
    pub admin_listen: SocketAddr,
    /// Base URL clients use to reach the proxy, shown in the dashboard's snippets
    /// (default: derived from each request's Host).
    #[arg(long, env = "PTK_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// File holding the check secret (instead of PTK_CHECK_SECRET).
    #[arg(long, env = CHECK_SECRET_FILE_VAR, value_name = "PATH")]
    pub check_secret_file: Option<PathBuf>,
    /// File of NAME=value lines with OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY
    /// (non-empty environment variables of the same names win).
    #[arg(long, env = "PTK_KEYS_FILE", value_name = "PATH")]
    pub keys_file: Option<PathBuf>,
    /// Address of the metrics listener (`GET /metrics`, Prometheus/OpenMetrics text); unset
    /// serves no metrics. No secret guards it (metrics hold none): bind it where only the
    /// scraper reaches it.
    #[arg(long, env = "PTK_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Default quota for tokens without their own, as REQUESTS/SECONDS.
    #[arg(
        long,
        env = "PTK_RATE_LIMIT",
        default_value = "100/60",
        value_name = "N/SECONDS"
    )]
    pub rate_limit: RateLimit,
    /// How long (ms) the filter may cache an allow; capped at each token's expiry.
    #[arg(
        long,
        env = "PTK_CACHE_TTL_MS",
        default_value_t = 1000,
        value_name = "MS"
    )]
    pub cache_ttl_ms: u64,
    /// Async worker threads. One is the cheapest per check (each extra thread parks and
    /// wakes around every request); raise it when many Envoys check with the cache off.
    #[arg(
        long,
        env = "PTK_WORKER_THREADS",
        default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=256),
        value_name = "N"
    )]
    pub worker_threads: u16,
    /// Redis for rate-limit counters shared by several replicas (e.g.
    /// `redis://127.0.0.1:6379/0`); unset keeps them in this process. May hold a password
    /// (`redis://:password@host`), so it is a secret: not in `Debug`, not in `--help`.
    #[arg(
        long,
        env = "PTK_REDIS_URL",
        value_name = "URL",
        value_parser = secret_arg,
        hide_env_values = true
    )]
    pub redis_url: Option<SecretString>,
    /// Webhook that budget threshold notifications are POSTed to (`http(s)://…`); unset sends
    /// none. Chat webhooks carry their secret in the URL, so it is one: not in `Debug`, not in
    /// `--help`. Signed with PTK_BUDGET_WEBHOOK_SECRET when that is set.
    #[arg(
        long,
        env = "PTK_BUDGET_WEBHOOK_URL",
        value_name = "URL",
        value_parser = secret_arg,
        hide_env_values = true
    )]
    pub budget_webhook_url: Option<SecretString>,
    /// Thresholds, in percent of a budget's limit, that send a notification when the
    /// settled spend reaches them (once per budget, period and threshold).
    #[arg(
        long,
        env = "PTK_BUDGET_WEBHOOK_THRESHOLDS",
        default_value = "80,100",
        value_name = "PERCENT,…"
    )]
    pub budget_webhook_thresholds: String,
}

/// clap value parser for arguments that may hold a secret (database URLs with a password,
/// custom tokens): the value goes straight into a [`SecretString`], so `Debug` of the parsed
/// arguments (clap's structs derive it) shows `[REDACTED]` instead.
pub fn secret_arg(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value))
}

/// Why the service refuses to start. Messages name the variable or file to fix.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// No check secret configured.
    #[error("{CHECK_SECRET_VAR} is required (or set {CHECK_SECRET_FILE_VAR} / --check-secret-file): the filter authenticates to the check API with it")]
    MissingCheckSecret,
    /// Both the variable and a file were given.
    #[error(
        "set only one of {CHECK_SECRET_VAR} and {CHECK_SECRET_FILE_VAR} / --check-secret-file"
    )]
    AmbiguousCheckSecret,
    /// The secret is too short to resist guessing.
    #[error("{0} must be at least {MIN_CHECK_SECRET_LEN} characters")]
    ShortCheckSecret(String),
    /// The secret file could not be read.
    #[error("cannot read check secret file {path}: {reason}")]
    CheckSecretFile {
        /// The file.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The admin secret is too short to resist guessing.
    #[error("{ADMIN_SECRET_VAR} must be at least {MIN_ADMIN_SECRET_LEN} characters")]
    ShortAdminSecret,
    /// The admin secret file could not be read.
    #[error("cannot read admin secret file {path} ({ADMIN_SECRET_FILE_VAR}): {reason}")]
    AdminSecretFile {
        /// The file.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The public URL is not an http(s) base URL.
    #[error("PTK_PUBLIC_URL / --public-url must look like http(s)://host[:port], got {0:?}")]
    BadPublicUrl(String),
    /// The budget webhook's URL or thresholds are unusable.
    #[error("{0}")]
    BudgetWebhook(String),
    /// The keys file is unreadable or malformed.
    #[error(transparent)]
    Keys(#[from] KeysFileError),
}

/// Everything `serve` needs, validated. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to bind (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Where the tokens live (SQLite file or PostgreSQL).
    pub store: StoreLocation,
    /// The shared secret the filter sends in `x-ptk-check-secret`.
    pub check_secret: SecretString,
    /// Real provider keys, as loaded at start-up.
    pub keys: ProviderKeys,
    /// The keys file, re-read on `SIGHUP` and `POST /admin/api/keys/reload`.
    pub keys_file: Option<PathBuf>,
    /// The keys the environment gave at start-up; they win over the file on every reload.
    pub env_keys: ProviderKeys,
    /// The metrics listener; `None` serves no metrics.
    pub metrics_listen: Option<SocketAddr>,
    /// Quota for tokens without their own.
    pub default_rate_limit: RateLimit,
    /// Where the rate-limit windows live (`PTK_REDIS_URL` picks Redis).
    pub limiter: LimiterBackend,
    /// Cache TTL handed out on allow (before capping at expiry).
    pub cache_ttl_ms: u64,
    /// The admin surface; `None` (no ADMIN_SECRET) serves the check API only.
    pub admin: Option<AdminSettings>,
    /// Budget threshold notifications; `None` (no PTK_BUDGET_WEBHOOK_URL) sends none.
    pub budget_webhook: Option<WebhookSettings>,
}

/// Settings of the admin listener. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// Address to bind (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The admin password; also keys the session and CSRF MACs.
    pub secret: SecretString,
    /// Session cookie lifetime, enforced server-side.
    pub session_max_age: Duration,
    /// Base URL for client snippets; `None` derives it from the request.
    pub public_url: Option<String>,
    /// The file the secret was read from (`ADMIN_SECRET_FILE`), shown on the sign-in page;
    /// `None` when it came from `ADMIN_SECRET`.
    pub secret_file: Option<String>,
}

impl Settings {
    /// Builds settings from parsed arguments and an environment lookup (the real one is
    /// `|name| std::env::var(name).ok()`; tests pass their own).
    pub fn from_args(
        args: &ServeArgs,
        store: &StoreLocation,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, SettingsError> {
        Ok(Settings {
            listen: args.listen,
            store: store.clone(),
            check_secret: check_secret(args.check_secret_file.as_deref(), &env)?,
            keys: ProviderKeys::load(args.keys_file.as_deref(), &env)?,
            keys_file: args.keys_file.clone(),
            env_keys: ProviderKeys::load(None, &env)?,
            metrics_listen: args.metrics_listen,
            default_rate_limit: args.rate_limit,
            limiter: LimiterBackend::pick(args.redis_url.as_ref()),
            cache_ttl_ms: args.cache_ttl_ms,
            admin: admin_settings(args, &env)?,
            budget_webhook: budget_webhook(args, &env)?,
        })
    }
}

/// Environment variable of the budget webhook's signing secret (environment only: a secret
/// has no business on a command line).
pub const BUDGET_WEBHOOK_SECRET_VAR: &str = "PTK_BUDGET_WEBHOOK_SECRET";

/// The webhook settings, when a URL is set: an absolute http(s) URL and valid thresholds.
fn budget_webhook(
    args: &ServeArgs,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<WebhookSettings>, SettingsError> {
    let Some(url) = &args.budget_webhook_url else {
        return Ok(None);
    };
    let text = url.expose_secret().trim();
    let parsed = url::Url::parse(text);
    // The URL may hold the webhook's secret: the error never repeats it.
    if !parsed.is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some()) {
        return Err(SettingsError::BudgetWebhook(
            "PTK_BUDGET_WEBHOOK_URL / --budget-webhook-url must be an absolute http(s) URL \
             (value not shown: it may hold a secret)"
                .to_owned(),
        ));
    }
    let thresholds =
        parse_thresholds(&args.budget_webhook_thresholds).map_err(SettingsError::BudgetWebhook)?;
    Ok(Some(WebhookSettings {
        url: SecretString::from(text.to_owned()),
        secret: env(BUDGET_WEBHOOK_SECRET_VAR)
            .filter(|s| !s.is_empty())
            .map(SecretString::from),
        thresholds,
        attempts: 6,
        first_backoff: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
    }))
}

/// The admin surface runs only with an explicit secret; a short one is refused outright.
fn admin_settings(
    args: &ServeArgs,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<AdminSettings>, SettingsError> {
    // ADMIN_SECRET wins over ADMIN_SECRET_FILE (an explicit value overrides a kept one).
    let (secret, secret_file) = match env(ADMIN_SECRET_VAR).filter(|v| !v.is_empty()) {
        Some(secret) => (secret, None),
        None => match env(ADMIN_SECRET_FILE_VAR).filter(|v| !v.is_empty()) {
            Some(path) => {
                let text =
                    std::fs::read_to_string(&path).map_err(|e| SettingsError::AdminSecretFile {
                        path: path.clone(),
                        reason: e.kind().to_string(),
                    })?;
                // Files usually end with a newline that is not part of the secret.
                (text.trim_end_matches(['\r', '\n']).to_owned(), Some(path))
            }
            None => return Ok(None),
        },
    };
    if secret.chars().count() < MIN_ADMIN_SECRET_LEN {
        return Err(SettingsError::ShortAdminSecret);
    }
    let public_url = match args.public_url.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(url) => Some(public_url(url)?),
    };
    Ok(Some(AdminSettings {
        listen: args.admin_listen,
        secret: SecretString::from(secret),
        session_max_age: SESSION_MAX_AGE,
        public_url,
        secret_file,
    }))
}

/// Checks a public base URL (http or https, host, optional port; no credentials, path, query
/// or fragment) and drops a trailing `/`; the text is kept as typed otherwise.
fn public_url(url: &str) -> Result<String, SettingsError> {
    let trimmed = url.trim_end_matches('/');
    let base_only = url::Url::parse(trimmed).is_ok_and(|parsed| {
        matches!(parsed.scheme(), "http" | "https")
            && parsed.host_str().is_some_and(|h| !h.is_empty())
            && parsed.username().is_empty()
            && parsed.password().is_none()
            && parsed.path() == "/"
            && parsed.query().is_none()
            && parsed.fragment().is_none()
    });
    if !base_only {
        return Err(SettingsError::BadPublicUrl(url.to_owned()));
    }
    Ok(trimmed.to_owned())
}

fn check_secret(
    file: Option<&Path>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<SecretString, SettingsError> {
    let from_env = env(CHECK_SECRET_VAR).filter(|v| !v.is_empty());
    let (secret, source) = match (from_env, file) {
        (Some(_), Some(_)) => return Err(SettingsError::AmbiguousCheckSecret),
        (None, None) => return Err(SettingsError::MissingCheckSecret),
        (Some(value), None) => (SecretString::from(value), CHECK_SECRET_VAR.to_owned()),
        (None, Some(path)) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| SettingsError::CheckSecretFile {
                    path: path.display().to_string(),
                    reason: e.kind().to_string(),
                })?;
            // Files usually end with a newline that is not part of the secret.
            let trimmed = text.trim_end_matches(['\r', '\n']);
            (
                SecretString::from(trimmed),
                format!("the check secret in {}", path.display()),
            )
        }
    };
    if secret.expose_secret().chars().count() < MIN_CHECK_SECRET_LEN {
        return Err(SettingsError::ShortCheckSecret(source));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use clap::Parser;
    use ptk_wire::Provider;

    #[derive(Parser)]
    struct Probe {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn args(extra: &[&str]) -> ServeArgs {
        let mut argv = vec!["probe"];
        argv.extend_from_slice(extra);
        Probe::try_parse_from(argv).unwrap().serve
    }

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn defaults_and_required_secret() {
        let a = args(&[]);
        assert_eq!(a.listen.to_string(), "127.0.0.1:10080");
        assert_eq!(a.rate_limit.to_string(), "100/60");
        assert_eq!(a.cache_ttl_ms, 1000);
        assert_eq!(a.worker_threads, 1);
        let err =
            Settings::from_args(&a, &StoreLocation::Sqlite("x".into()), env_of(&[])).unwrap_err();
        assert!(
            err.to_string().contains("PTK_CHECK_SECRET is required"),
            "{err}"
        );
    }

    #[test]
    fn short_secret_is_refused_by_name() {
        let err = Settings::from_args(
            &args(&[]),
            &StoreLocation::Sqlite("x".into()),
            env_of(&[("PTK_CHECK_SECRET", "fifteen-chars!!")]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "PTK_CHECK_SECRET must be at least 16 characters"
        );
    }

    #[test]
    fn secret_from_file_and_keys_from_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "0123456789abcdef\n").unwrap();
        let a = args(&[
            "--check-secret-file",
            path.to_str().unwrap(),
            "--rate-limit",
            "5/10",
        ]);
        let s = Settings::from_args(
            &a,
            &StoreLocation::Sqlite("db".into()),
            env_of(&[("GEMINI_API_KEY", "g-secret")]),
        )
        .unwrap();
        assert_eq!(s.check_secret.expose_secret(), "0123456789abcdef");
        assert_eq!(s.default_rate_limit.to_string(), "5/10");
        assert!(s.keys.get(Provider::Gemini).is_some());
        let shown = format!("{s:?}");
        assert!(!shown.contains("0123456789abcdef") && !shown.contains("g-secret"));
        // Both sources at once is a configuration mistake, not a silent choice.
        let err = Settings::from_args(
            &a,
            &StoreLocation::Sqlite("db".into()),
            env_of(&[("PTK_CHECK_SECRET", "another-long-secret")]),
        )
        .unwrap_err();
        assert!(matches!(err, SettingsError::AmbiguousCheckSecret));
    }

    #[test]
    fn admin_secret_from_a_file_keeps_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin-secret");
        std::fs::write(&file, "file-admin-secret-0123456789\n").unwrap();
        let path = file.display().to_string();
        let with = |pairs: Vec<(&'static str, String)>| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone())
            }
        };
        let check = ("PTK_CHECK_SECRET", "0123456789abcdef".to_owned());
        let store = StoreLocation::Sqlite("x".into());
        let env = with(vec![check.clone(), ("ADMIN_SECRET_FILE", path.clone())]);
        let admin = Settings::from_args(&args(&[]), &store, env)
            .unwrap()
            .admin
            .unwrap();
        assert_eq!(admin.secret.expose_secret(), "file-admin-secret-0123456789");
        assert_eq!(admin.secret_file.as_deref(), Some(path.as_str()));
        // ADMIN_SECRET wins, and then no file is named.
        let env = with(vec![
            check.clone(),
            ("ADMIN_SECRET", "env-admin-secret-0123456789".to_owned()),
            ("ADMIN_SECRET_FILE", path.clone()),
        ]);
        let s = Settings::from_args(&args(&[]), &store, env).unwrap();
        assert_eq!(s.admin.unwrap().secret_file, None);
        let env = with(vec![
            check,
            ("ADMIN_SECRET_FILE", "/nonexistent/admin-secret".to_owned()),
        ]);
        let err = Settings::from_args(&args(&[]), &store, env).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/admin-secret"),
            "{err}"
        );
    }

    #[test]
    fn admin_surface_needs_an_explicit_long_secret() {
        let s = Settings::from_args(
            &args(&[]),
            &StoreLocation::Sqlite("x".into()),
            env_of(&[("PTK_CHECK_SECRET", "0123456789abcdef")]),
        )
        .unwrap();
        assert!(s.admin.is_none(), "no ADMIN_SECRET, no admin listener");
        let err = Settings::from_args(
            &args(&[]),
            &StoreLocation::Sqlite("x".into()),
            env_of(&[
                ("PTK_CHECK_SECRET", "0123456789abcdef"),
                ("ADMIN_SECRET", "short"),
            ]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ADMIN_SECRET must be at least 16 characters"
        );
        let s = Settings::from_args(
            &args(&["--public-url", "http://127.0.0.1:10000/"]),
            &StoreLocation::Sqlite("x".into()),
            env_of(&[
                ("PTK_CHECK_SECRET", "0123456789abcdef"),
                ("ADMIN_SECRET", "admin-secret-0123456789"),
            ]),
        )
        .unwrap();
        let admin = s.admin.unwrap();
        assert_eq!(admin.listen.to_string(), "127.0.0.1:10081");
        assert_eq!(admin.public_url.as_deref(), Some("http://127.0.0.1:10000"));
        assert_eq!(admin.session_max_age, SESSION_MAX_AGE);
        assert!(!format!("{admin:?}").contains("admin-secret-0123456789"));
    }

    #[test]
    fn debug_of_settings_shows_no_secret() {
        // Every secret the settings hold, from every source: check and admin secrets from the
        // environment, keys from a keys file and the environment, the PostgreSQL password.
        let dir = tempfile::tempdir().unwrap();
        let keys_file = dir.path().join("keys.env");
        std::fs::write(
            &keys_file,
            "OPENAI_API_KEY=sk-file-key-never-shown\nGEMINI_API_KEY='g-file-key-never-shown'\n",
        )
        .unwrap();
        let a = args(&[
            "--keys-file",
            keys_file.to_str().unwrap(),
            "--public-url",
            "http://127.0.0.1:10000",
        ]);
        let store = StoreLocation::pick(
            "unused".into(),
            Some(SecretString::from(
                "postgres://ptk:pg-password-never-shown@db:5432/ptk?sslmode=require",
            )),
            None,
        );
        let s = Settings::from_args(
            &a,
            &store,
            env_of(&[
                ("PTK_CHECK_SECRET", "check-secret-never-shown"),
                ("ADMIN_SECRET", "admin-secret-never-shown"),
                ("ANTHROPIC_API_KEY", "sk-ant-env-key-never-shown"),
            ]),
        )
        .unwrap();
        assert_eq!(s.keys.configured(), vec!["openai", "anthropic", "gemini"]);
        let shown = format!("{s:?} {:#?} {a:?}", s.admin);
        assert!(!shown.contains("never-shown"), "{shown}");
        assert!(shown.contains("postgres://ptk@db:5432/ptk"), "{shown}");
    }

    #[test]
    fn public_urls_are_base_urls_only() {
        for good in [
            "http://proxy:10000",
            "https://llm.example.com",
            "http://[::1]:8080/",
        ] {
            assert!(public_url(good).is_ok(), "{good}");
        }
        for bad in [
            "proxy:10000",
            "ftp://x",
            "http://",
            "http://x/v1",
            "http://a b",
        ] {
            assert!(public_url(bad).is_err(), "{bad}");
        }
    }

    /// What the url crate parses but a base URL must not hold.
    #[test]
    fn public_urls_hold_no_credentials_query_or_fragment() {
        for bad in [
            "http://user:pw@proxy",
            "http://proxy?x=1",
            "http://proxy#top",
        ] {
            assert!(public_url(bad).is_err(), "{bad}");
        }
        assert_eq!(
            public_url("HTTPS://Proxy:10000/").unwrap(),
            "HTTPS://Proxy:10000"
        );
    }

    #[test]
    fn the_budget_webhook_is_checked_and_its_secrets_never_shown() {
        let store = StoreLocation::Sqlite("unused".into());
        let env = env_of(&[
            ("PTK_CHECK_SECRET", "check-secret-never-shown"),
            ("PTK_BUDGET_WEBHOOK_SECRET", "whsec-never-shown"),
        ]);
        let none = Settings::from_args(&args(&[]), &store, &env).unwrap();
        assert!(none.budget_webhook.is_none());
        let url = "https://hooks.example.com/services/T0/B0/url-secret-never-shown";
        let s = Settings::from_args(
            &args(&[
                "--budget-webhook-url",
                url,
                "--budget-webhook-thresholds",
                "90, 50",
            ]),
            &store,
            &env,
        )
        .unwrap();
        let hook = s.budget_webhook.as_ref().unwrap();
        assert_eq!(hook.thresholds, vec![50, 90]);
        assert!(hook.secret.is_some());
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("url-secret-never-shown") && !shown.contains("whsec"),
            "{shown}"
        );
        for bad in [
            "ftp://x/never-shown",
            "hooks.example.com/never-shown",
            "https://",
        ] {
            let err = Settings::from_args(&args(&["--budget-webhook-url", bad]), &store, &env)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("absolute http(s) URL") && !err.contains("never-shown"),
                "{err}"
            );
        }
        let err = Settings::from_args(
            &args(&[
                "--budget-webhook-url",
                url,
                "--budget-webhook-thresholds",
                "80,120",
            ]),
            &store,
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("\"120\""), "{err}");
    }

    /// The limiter backend is chosen here, from `PTK_REDIS_URL` / `--redis-url`, and its URL
    /// (which may hold a password) never shows in `Debug`.
    #[test]
    fn the_redis_url_picks_the_limiter_backend() {
        let store = StoreLocation::Sqlite("x".into());
        let env = env_of(&[("PTK_CHECK_SECRET", "0123456789abcdef")]);
        let s = Settings::from_args(&args(&[]), &store, &env).unwrap();
        assert!(matches!(s.limiter, LimiterBackend::Memory));
        let url = "redis://:redis-pw-never-shown@cache:6379/0";
        let s = Settings::from_args(&args(&["--redis-url", url]), &store, &env).unwrap();
        let LimiterBackend::Redis(picked) = &s.limiter else {
            panic!("not redis: {s:?}");
        };
        assert_eq!(picked.expose_secret(), url);
        assert!(!format!("{s:?}").contains("redis-pw-never-shown"));
    }

    #[test]
    fn bad_rate_limit_is_a_clap_error() {
        let err = Probe::try_parse_from(["probe", "--rate-limit", "100"])
            .err()
            .unwrap();
        assert!(err.to_string().contains("N/SECONDS"), "{err}");
    }
}
