//! Wiring: open the store, assemble the checker, bind the check listener, (with an admin
//! secret) the admin listener and (with `PTK_METRICS_LISTEN`) the metrics listener, serve them
//! until shutdown, reloading the provider keys on `SIGHUP`.

use std::future::{Future, IntoFuture as _};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::{self, AdminState};
use crate::check::Checker;
use crate::http::{metrics_router, router, secret_digest, AppState};
use crate::key_ring::KeyRing;
use crate::last_used::{LastUsedStamper, STAMP_INTERVAL};
use crate::metrics::Metrics;
use crate::ratelimit::metered::MeteredLimiter;
use crate::ratelimit::{LimiterBackend, RateLimitError, RateLimiter};
use crate::settings::Settings;
use crate::signals::{reload_keys_on_hangup, shutdown_signal};
use crate::store::{MeteredSessions, MeteredStore, SessionStore, StoreError, TokenStore};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The store could not be opened.
    #[error("cannot open token store at {path}: {source}")]
    Store {
        /// The SQLite path or the PostgreSQL URL without its password.
        path: String,
        /// What failed.
        source: StoreError,
    },
    /// The rate limiter's backend (Redis) could not be reached.
    #[error("cannot connect to PTK_REDIS_URL: {0}")]
    Limiter(#[source] RateLimitError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A bound listener and what it serves.
struct Bound {
    listener: TcpListener,
    addr: SocketAddr,
    router: Router,
}

async fn bind(addr: SocketAddr, router: Router) -> Result<Bound, StartupError> {
    let bind_error = |source| StartupError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    Ok(Bound {
        listener,
        addr,
        router,
    })
}

/// A bound, ready-to-run token-service: the check API, and the admin surface on its own
/// listener when an admin secret is configured.
pub struct Application {
    check: Bound,
    admin: Option<Bound>,
    metrics: Option<Bound>,
    key_ring: Arc<KeyRing>,
    registry: Arc<Metrics>,
}

impl Application {
    /// Opens the store and the rate limiter the settings name, and binds.
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        let limiter = settings
            .limiter
            .open()
            .await
            .map_err(StartupError::Limiter)?;
        Application::build_with_limiter(settings, limiter).await
    }

    /// Like [`Application::build`] with a caller-chosen rate limiter instead of the one
    /// `settings.limiter` names (tests use failing fakes).
    pub async fn build_with_limiter(
        settings: Settings,
        limiter: Arc<dyn RateLimiter>,
    ) -> Result<Application, StartupError> {
        let opened = settings
            .store
            .open_stores()
            .await
            .map_err(|source| StartupError::Store {
                path: settings.store.to_string(),
                source,
            })?;
        // Every store and limiter failure, whoever meets it, is counted once, here.
        let metrics = Arc::new(Metrics::new());
        let store: Arc<dyn TokenStore> =
            Arc::new(MeteredStore::new(opened.tokens, metrics.clone()));
        let sessions: Arc<dyn SessionStore> =
            Arc::new(MeteredSessions::new(opened.sessions, metrics.clone()));
        let limiter: Arc<dyn RateLimiter> = Arc::new(MeteredLimiter::new(limiter, metrics.clone()));
        let key_ring = Arc::new(KeyRing::new(
            settings.keys.clone(),
            settings.keys_file.clone(),
            settings.env_keys.clone(),
        ));

        let reservations = crate::budget::open_reservations(&settings.limiter)
            .await
            .map_err(StartupError::Limiter)?;
        let budgets = Arc::new(crate::budget::Admission::new(
            opened.budgets.clone(),
            reservations,
            crate::budget::BudgetSettings::default(),
        ));
        let notifier = budget_notifier(&settings, metrics.clone()).await?;
        let last_used = Arc::new(LastUsedStamper::new(store.clone(), STAMP_INTERVAL));
        let checker = Checker::new(
            store.clone(),
            limiter.clone(),
            key_ring.clone(),
            settings.default_rate_limit,
            settings.cache_ttl_ms,
            last_used,
        )
        .with_metrics(metrics.clone())
        .with_budgets(budgets.clone());
        let key_health = checker.key_health();
        let check_secret = Arc::new(secret_digest(&settings.check_secret));
        let state = AppState {
            checker: Arc::new(checker),
            store: store.clone(),
            check_secret: check_secret.clone(),
            limiter: limiter.clone(),
            metrics: metrics.clone(),
            usage: opened.usage.clone(),
            budgets: budgets.clone(),
            notifier,
        };
        let check = bind(settings.listen, router(state)).await?;
        let admin = match &settings.admin {
            Some(admin_settings) => {
                let about = admin::ProxyInfo {
                    default_rate_limit: settings.default_rate_limit,
                    secret_file: admin_settings.secret_file.clone(),
                };
                let state = AdminState::new(
                    store,
                    sessions,
                    opened.usage.clone(),
                    admin_settings,
                    limiter,
                    check_secret,
                    about,
                )
                .with_operations(key_ring.clone(), metrics.clone())
                .with_key_health(key_health)
                .with_budgets(budgets.clone());
                Some(bind(admin_settings.listen, admin::router(state)).await?)
            }
            None => None,
        };
        let registry = metrics;
        let metrics = match settings.metrics_listen {
            Some(addr) => Some(bind(addr, metrics_router(registry.clone())).await?),
            None => None,
        };
        let providers = settings.keys.configured();
        // The start-up lines: where we listen and which providers have keys (names only).
        tracing::info!(
            store = %settings.store,
            "token-service listening on {}; providers with keys: {}",
            check.addr,
            if providers.is_empty() { "none".to_owned() } else { providers.join(", ") }
        );
        match &admin {
            Some(bound) => tracing::info!("admin dashboard and API on http://{}/admin", bound.addr),
            None => tracing::info!(
                "admin surface off: set ADMIN_SECRET (16+ characters) to serve the dashboard"
            ),
        }
        if let Some(bound) = &metrics {
            tracing::info!("metrics on http://{}/metrics", bound.addr);
        }
        Ok(Application {
            check,
            admin,
            metrics,
            key_ring,
            registry,
        })
    }

    /// The bound address (the real port when the settings asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.check.addr
    }

    /// The admin listener's address, when the admin surface is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|b| b.addr)
    }

    /// The metrics listener's address, when metrics are on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|b| b.addr)
    }

    /// The live provider keys (reloaded by `SIGHUP` while [`Application::run_until`] runs).
    pub fn key_ring(&self) -> Arc<KeyRing> {
        self.key_ring.clone()
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests on both listeners.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // First, so a SIGHUP from here on reloads instead of ending the process.
        let hangups = reload_keys_on_hangup(self.key_ring, self.registry);
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let until = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stopped| *stopped).await;
        };
        let stopped_metrics = stopped.clone();
        let check = axum::serve(self.check.listener, self.check.router)
            .with_graceful_shutdown(until(stopped.clone()));
        let admin = async {
            match self.admin {
                // The admin surface needs the TCP peer (login throttle per client IP).
                Some(bound) => {
                    let service = bound
                        .router
                        .into_make_service_with_connect_info::<SocketAddr>();
                    axum::serve(bound.listener, service)
                        .with_graceful_shutdown(until(stopped))
                        .await
                }
                None => Ok(()),
            }
        };
        let metrics = async {
            match self.metrics {
                Some(bound) => {
                    axum::serve(bound.listener, bound.router)
                        .with_graceful_shutdown(until(stopped_metrics))
                        .await
                }
                None => Ok(()),
            }
        };
        let served = tokio::try_join!(check.into_future(), admin, metrics).map(|_| ());
        hangups.abort();
        served
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

/// The budget notifier the settings ask for: claims in the limiter's Redis when replicas share
/// one, else in this process; a disabled notifier without a webhook.
async fn budget_notifier(
    settings: &Settings,
    metrics: Arc<Metrics>,
) -> Result<crate::notify::Notifier, StartupError> {
    use crate::notify::{Claims, MemoryClaims, Notifier, RedisClaims};
    use secrecy::ExposeSecret as _;
    let Some(webhook) = settings.budget_webhook.clone() else {
        return Ok(Notifier::disabled(metrics));
    };
    let claims: Arc<dyn Claims> = match &settings.limiter {
        LimiterBackend::Memory => Arc::new(MemoryClaims::default()),
        LimiterBackend::Redis(url) => Arc::new(
            RedisClaims::connect(url.expose_secret())
                .await
                .map_err(|e| StartupError::Limiter(RateLimitError(format!("redis: {e}"))))?,
        ),
    };
    tracing::info!(
        thresholds = ?webhook.thresholds,
        "budget threshold notifications on (webhook URL not shown)"
    );
    Notifier::start(webhook, claims, metrics)
        .map_err(|e| StartupError::Limiter(RateLimitError(format!("webhook client: {e}"))))
}
