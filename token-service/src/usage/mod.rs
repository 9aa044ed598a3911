//! Token usage the filter metered from provider responses (not "activity", which is request
//! counts): reports turned into daily rollups per token, provider, model and API, priced with
//! the bundled table ([`crate::pricing`]), and summed per model for the CLI, the admin API and
//! the dashboard.

pub mod rollup;
pub mod view;

pub use rollup::{per_day, per_model, rollup, ModelTotals, UsageCounts, UsageKey, UsageRow};
