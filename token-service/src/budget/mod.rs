//! Budgets (issue 14): token and cost budgets per calendar UTC period and a tokens-per-minute
//! limit, per token and per group, enforced at admission with reservations.
//!
//! - [`spec`]: what a budget is, as typed and stored.
//! - [`period`]: calendar periods (ids, ends).
//! - [`reserve`] / [`reserve_redis`]: outstanding grants, in memory or Redis.
//! - [`admission`]: `settled + reserved + grant <= limit` for every budget that applies.
//! - [`settle`]: reports into the ledger (with the usage rollups), then releases.
//!
//! The ledger (`budget_spend`, migration 6) is durable: a restart keeps every settled report.
//! Reservations are not: a restart of a single in-memory replica forgets outstanding grants,
//! which the filters keep spending until they expire (bounded by one grant per worker).

pub mod admission;
pub mod period;
pub mod reserve;
pub mod reserve_redis;
pub mod settle;
pub mod spec;

use std::sync::Arc;

use crate::ratelimit::{LimiterBackend, RateLimitError};

/// Opens the reservation backend next to the rate limiter's: process memory, or the same Redis.
pub async fn open_reservations(
    backend: &LimiterBackend,
) -> Result<Arc<dyn Reservations>, RateLimitError> {
    use secrecy::ExposeSecret as _;
    Ok(match backend {
        LimiterBackend::Memory => Arc::new(MemoryReservations::new()),
        LimiterBackend::Redis(url) => {
            Arc::new(RedisReservations::connect(url.expose_secret()).await?)
        }
    })
}

mod crossings;
pub use admission::{Admission, Admitted, BudgetError, BudgetSettings, BudgetStatus};
pub use crossings::threshold_events;
pub use reserve::{MemoryReservations, Reservations};
pub use reserve_redis::RedisReservations;
pub use spec::{
    parse_cost_budget, parse_group, parse_token_budget, parse_tpm, usd_text, BudgetInputError,
    BudgetPatch, Budgets, PeriodLimit,
};
