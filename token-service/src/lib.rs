//! The ptk token-service: the check API the Envoy filter asks, the admin API and dashboard,
//! the token store, and the operator CLI, in one crate so tests can start the real application.

pub mod admin;
pub mod budget;
pub mod check;
pub mod cli;
pub mod expiry;
pub mod http;
pub mod key_health;
pub mod key_pools;
pub mod key_ring;
pub mod keys;
pub mod last_used;
pub mod metrics;
pub mod models;
pub mod new_token;
pub mod notify;
pub mod pricing;
pub mod providers;
pub mod ratelimit;
pub mod settings;
pub mod signals;
pub mod startup;
pub mod store;
pub mod token;
pub mod token_view;
pub mod usage;

pub use settings::Settings;
pub use startup::Application;
