//! Wiring: open the store, assemble the checker, bind the listener, serve.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

use crate::check::Checker;
use crate::http::{router, secret_digest, AppState};
use crate::last_used::{LastUsedStamper, STAMP_INTERVAL};
use crate::ratelimit::{InMemoryRateLimiter, RateLimiter};
use crate::settings::Settings;
use crate::store::{SqliteStore, StoreError, TokenStore};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The store could not be opened.
    #[error("cannot open token store at {path}: {source}")]
    Store {
        /// The database path.
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

/// A bound, ready-to-run token-service.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    router: Router,
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
        let path = settings.db_path.clone();
        let store_error = |source| StartupError::Store {
            path: path.display().to_string(),
            source,
        };
        let opened = tokio::task::spawn_blocking({
            let path = path.clone();
            move || SqliteStore::open(&path)
        })
        .await
        .map_err(|e| store_error(StoreError::Task(e.to_string())))?;
        let store: Arc<dyn TokenStore> = Arc::new(opened.map_err(store_error)?);

        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| StartupError::Bind {
                    addr: settings.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: settings.listen,
            source,
        })?;

        let last_used = Arc::new(LastUsedStamper::new(store.clone(), STAMP_INTERVAL));
        let checker = Checker::new(
            store.clone(),
            limiter,
            settings.keys.clone(),
            settings.default_rate_limit,
            settings.cache_ttl_ms,
            last_used,
        );
        let state = AppState {
            checker: Arc::new(checker),
            store,
            check_secret: Arc::new(secret_digest(&settings.check_secret)),
        };
        let providers = settings.keys.configured();
        // The one start-up line: where we listen and which providers have keys (names only).
        tracing::info!(
            db = %settings.db_path.display(),
            "token-service listening on {addr}; providers with keys: {}",
            if providers.is_empty() { "none".to_owned() } else { providers.join(", ") }
        );
        Ok(Application {
            listener,
            addr,
            router: router(state),
        })
    }

    /// The bound address (the real port when the settings asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
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
