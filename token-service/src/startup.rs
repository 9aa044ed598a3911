//! Wiring: open the store, assemble the checker, bind the check listener and (with an admin
//! secret) the admin listener, serve both until shutdown.

use std::future::{Future, IntoFuture as _};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::{self, AdminState};
use crate::check::Checker;
use crate::http::{router, secret_digest, AppState};
use crate::last_used::{LastUsedStamper, STAMP_INTERVAL};
use crate::ratelimit::{InMemoryRateLimiter, RateLimiter};
use crate::settings::Settings;
use crate::store::StoreError;

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
}

impl Application {
    /// Opens the store and binds with the in-memory rate limiter.
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        Application::build_with_limiter(settings, Arc::new(InMemoryRateLimiter::new())).await
    }

    /// Like [`Application::build`] with a caller-chosen rate limiter (tests use failing fakes).
    pub async fn build_with_limiter(
        settings: Settings,
        limiter: Arc<dyn RateLimiter>,
    ) -> Result<Application, StartupError> {
        let store = settings
            .store
            .open()
            .await
            .map_err(|source| StartupError::Store {
                path: settings.store.to_string(),
                source,
            })?;

        let last_used = Arc::new(LastUsedStamper::new(store.clone(), STAMP_INTERVAL));
        let checker = Checker::new(
            store.clone(),
            limiter.clone(),
            settings.keys.clone(),
            settings.default_rate_limit,
            settings.cache_ttl_ms,
            last_used,
        );
        let check_secret = Arc::new(secret_digest(&settings.check_secret));
        let state = AppState {
            checker: Arc::new(checker),
            store: store.clone(),
            check_secret: check_secret.clone(),
        };
        let check = bind(settings.listen, router(state)).await?;
        let admin = match &settings.admin {
            Some(admin_settings) => {
                let about = admin::ProxyInfo {
                    providers_with_keys: settings.keys.configured(),
                    default_rate_limit: settings.default_rate_limit,
                    secret_file: admin_settings.secret_file.clone(),
                };
                let state = AdminState::new(store, admin_settings, limiter, check_secret, about);
                Some(bind(admin_settings.listen, admin::router(state)).await?)
            }
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
        Ok(Application { check, admin })
    }

    /// The bound address (the real port when the settings asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.check.addr
    }

    /// The bound port of the check API.
    pub fn port(&self) -> u16 {
        self.check.addr.port()
    }

    /// The admin listener's address, when the admin surface is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|b| b.addr)
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests on both listeners.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let until = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stopped| *stopped).await;
        };
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
        tokio::try_join!(check.into_future(), admin).map(|_| ())
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
