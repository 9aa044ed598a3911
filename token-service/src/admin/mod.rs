//! The admin surface (control plane): login, the JSON token API and the dashboard, served on
//! its own listener so the check API and the admin API never share a port.
//!
//! Every route is declared once in [`route_table`]; the router is built from it, and a test
//! holds `docs/admin-openapi.yaml` to the same table.

use std::sync::Arc;

use axum::handler::Handler;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::http::SecretDigest;
use crate::key_health::KeyHealth;
use crate::key_ring::KeyRing;
use crate::keys::ProviderKeys;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::settings::AdminSettings;
use crate::store::{SessionStore, TokenStore, UsageStore};
use throttle::LoginThrottle;

mod about;
mod api;
mod assets;
mod budgets;
pub mod error;
pub mod guard;
mod input;
mod keys;
mod login;
mod pages;
mod paging;
pub mod request_info;
mod rows;
pub mod session;
pub mod throttle;
mod usage;

pub use about::ProxyInfo;
pub use error::AdminError;
pub use session::SessionKeys;

/// Shared state of the admin handlers.
#[derive(Clone)]
pub struct AdminState {
    /// The token store (the same one the check API and the CLI use).
    pub store: Arc<dyn TokenStore>,
    /// The admin sessions ended server-side (logout), shared by every replica.
    pub sessions: Arc<dyn SessionStore>,
    /// Metered token usage (read-only here).
    pub usage: Arc<dyn UsageStore>,
    /// Session, CSRF and password keys.
    pub keys: Arc<SessionKeys>,
    /// Login attempts per client IP (in the service's rate limiter, under their own keys).
    pub login_throttle: Arc<LoginThrottle>,
    /// Base URL for client snippets; `None` derives it from the request.
    pub public_url: Option<Arc<str>>,
    /// Digest of the check secret: a request carrying it came through Envoy, so its
    /// forwarding headers are trusted (see [`request_info`]).
    pub check_secret: Arc<SecretDigest>,
    /// The live provider keys, reloaded by `POST /admin/api/keys/reload`.
    pub key_ring: Arc<KeyRing>,
    /// Counts admin actions.
    pub metrics: Arc<Metrics>,
    /// What the dashboard says about this proxy (providers with keys, default quota, where
    /// the admin secret is).
    pub about: Arc<ProxyInfo>,
    /// Which provider keys are refused or cooling (the keys view).
    pub key_health: Arc<KeyHealth>,
    /// Budgets (the service's admission, for live reservations); `None` answers 500.
    pub budgets: Option<Arc<crate::budget::Admission>>,
}

impl AdminState {
    /// State for `settings` over `store` and `sessions`, counting login attempts in
    /// `limiter`, recognising Envoy by `check_secret`, describing the proxy with `about`.
    pub fn new(
        store: Arc<dyn TokenStore>,
        sessions: Arc<dyn SessionStore>,
        usage: Arc<dyn UsageStore>,
        settings: &AdminSettings,
        limiter: Arc<dyn RateLimiter>,
        check_secret: Arc<SecretDigest>,
        about: ProxyInfo,
    ) -> AdminState {
        AdminState {
            store,
            sessions,
            usage,
            keys: Arc::new(SessionKeys::new(&settings.secret, settings.session_max_age)),
            key_health: Arc::new(KeyHealth::new(limiter.clone())),
            login_throttle: Arc::new(LoginThrottle::new(limiter)),
            public_url: settings.public_url.as_deref().map(Arc::from),
            check_secret,
            about: Arc::new(about),
            key_ring: Arc::new(KeyRing::fixed(ProviderKeys::none())),
            metrics: Arc::new(Metrics::new()),
            budgets: None,
        }
    }

    /// The service's budgets (token budgets, groups, live reservations).
    pub fn with_budgets(mut self, budgets: Arc<crate::budget::Admission>) -> AdminState {
        self.budgets = Some(budgets);
        self
    }

    /// The service's live key ring and metrics (by default a state has an empty fixed ring
    /// and metrics of its own).
    pub fn with_operations(mut self, key_ring: Arc<KeyRing>, metrics: Arc<Metrics>) -> AdminState {
        self.key_ring = key_ring;
        self.metrics = metrics;
        self
    }

    /// The checker's key states (by default a state reads the limiter's refusals and knows
    /// of no cooling).
    pub fn with_key_health(mut self, key_health: Arc<KeyHealth>) -> AdminState {
        self.key_health = key_health;
        self
    }
}

/// One route: path (axum / OpenAPI `{param}` syntax), method, handler.
pub struct RouteEntry {
    /// The path.
    pub path: &'static str,
    /// The method.
    pub method: Method,
    handler: MethodRouter<AdminState>,
}

fn entry<H, T>(path: &'static str, method: Method, handler: H) -> Option<RouteEntry>
where
    H: Handler<T, AdminState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).ok()?;
    Some(RouteEntry {
        path,
        method,
        handler: on(filter, handler),
    })
}

/// Every admin route. The method and the handler come from one call, so they cannot drift.
pub fn route_table() -> Vec<RouteEntry> {
    const TOKENS: &str = "/admin/api/tokens";
    const TOKEN: &str = "/admin/api/tokens/{hash}";
    [
        entry("/admin", Method::GET, pages::dashboard),
        entry("/admin/login", Method::POST, login::login),
        entry("/admin/logout", Method::POST, login::logout),
        entry("/admin/static/admin.js", Method::GET, assets::script),
        entry("/admin/static/usage.js", Method::GET, assets::usage_script),
        entry("/admin/static/admin.css", Method::GET, assets::stylesheet),
        entry("/favicon.ico", Method::GET, assets::favicon),
        entry("/admin/favicon.ico", Method::GET, assets::favicon),
        entry("/admin/fragments/tokens", Method::GET, rows::fragment),
        entry(TOKENS, Method::GET, api::list),
        entry(TOKENS, Method::POST, api::create),
        entry(TOKEN, Method::GET, api::get_one),
        entry(TOKEN, Method::PATCH, api::patch),
        entry(TOKEN, Method::DELETE, api::delete),
        entry("/admin/api/keys", Method::GET, keys::list),
        entry("/admin/api/keys/reload", Method::POST, keys::reload),
        entry(
            "/admin/api/tokens/{hash}/usage",
            Method::GET,
            usage::of_token,
        ),
        entry("/admin/api/usage", Method::GET, usage::fleet),
        entry(
            "/admin/api/tokens/{hash}/budgets",
            Method::GET,
            budgets::of_token,
        ),
        entry(
            "/admin/api/tokens/{hash}/budgets",
            Method::PATCH,
            budgets::patch_token,
        ),
        entry("/admin/api/groups", Method::GET, budgets::list_groups),
        entry("/admin/api/groups", Method::POST, budgets::create_group),
        entry(
            "/admin/api/groups/{name}",
            Method::PATCH,
            budgets::patch_group,
        ),
        entry(
            "/admin/api/groups/{name}",
            Method::DELETE,
            budgets::delete_group,
        ),
        entry("/admin/api/usage.csv", Method::GET, usage::csv),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Content-Security-Policy of every admin response: scripts and styles only from our own
/// `/admin/static/`, no inline code, no framing, forms and fetches only to ourselves.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

/// The security headers of every admin response (errors and 404s included), set over whatever
/// a handler wrote.
fn security_headers() -> [(HeaderName, &'static str); 5] {
    [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ]
}

async fn no_route() -> AdminError {
    AdminError::NoRoute
}

/// Builds the admin router. Every request first passes [`request_info::recognise_envoy`],
/// which takes the check-secret header off it, so no handler can log or echo that header.
pub fn router(state: AdminState) -> Router {
    let mut router = Router::new();
    for route in route_table() {
        router = router.route(route.path, route.handler);
    }
    let recognise = axum::middleware::from_fn_with_state(
        state.check_secret.clone(),
        request_info::recognise_envoy,
    );
    router = router.fallback(no_route);
    for (name, value) in security_headers() {
        router = router.layer(SetResponseHeaderLayer::overriding(
            name,
            HeaderValue::from_static(value),
        ));
    }
    router
        // A created token's plaintext is in a response body: nothing may keep a copy (unless
        // a handler chose its own caching, as the static assets do).
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(recognise)
        .with_state(state)
}
