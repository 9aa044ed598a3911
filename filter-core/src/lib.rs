//! Pure decision logic of the ptk Envoy filter.
//!
//! Nothing here talks to Envoy: slot extraction, provider identification, the auth rewrite,
//! verdict mapping and error shapes are plain functions over plain data, unit-tested on the
//! native target. The `ptk-filter` crate is the thin proxy-wasm shim around them.

// Unit tests may index and count freely: the library itself is linted without `cfg(test)`.
#![cfg_attr(test, allow(clippy::indexing_slicing, clippy::arithmetic_side_effects))]

pub mod abi_codec;
pub mod access_log;
pub mod activity;
pub mod bound_check;
pub mod bound_table;
pub mod budget;
pub mod budget_refusal;
pub mod client_secrets;
pub mod config;
pub mod cors;
pub mod credentials;
pub mod deny_cache;
pub mod dialect;
pub mod ephemeral;
pub mod expose;
pub mod flow;
pub mod geo_fallback;
pub mod guard;
pub mod guess_throttle;
mod header_rules;
pub mod key_fragments;
pub mod key_pool;
pub mod key_refusal;
pub mod key_state;
pub mod local_pool;
pub mod log_path;
pub mod mint_watch;
pub mod models;
pub mod open_streams;
pub mod pipeline;
pub mod plan;
pub mod provider_config;
pub mod providers;
pub mod query;
pub mod refusal;
pub mod request;
pub mod retry;
pub mod shared_data;
#[cfg(test)]
mod shared_data_double;
pub mod slots;
pub mod subprotocol;
pub mod upload_sessions;
pub mod upload_url;
pub mod uploads;
pub mod upstream_errors;
pub mod usage;
pub mod verdict_cache;
pub mod verdict_store;
pub mod version;
pub mod ws_frames;

pub use config::FilterConfig;
pub use dialect::{Dialect, ErrorShape};
pub use pipeline::{
    check_call, decide_check_response, decide_headers, token_hash, CheckDecision, HeadersDecision,
    PendingCheck, Refused,
};
pub use plan::RewritePlan;
pub use refusal::{LocalReply, Refusal};
pub use request::RequestHead;
pub use slots::{identify, Identified, Slot};
