//! Budget threshold notifications: when a budget's settled spend crosses a threshold (80 % and
//! 100 % by default) the service POSTs one JSON event to the operator's webhook.
//!
//! Never in a request's way: the settlement that notices a crossing hands the event to a
//! bounded queue ([`Notifier::notify`] does not wait) and one task delivers it, retrying with
//! backoff. Sent once per budget, period and threshold across replicas: a delivery first
//! claims its key in the limiter backend (Redis when scaled out), so the replica that wins the
//! claim sends it and the others drop it.

mod claims;
mod event;
mod threshold;
mod webhook;

pub use claims::{Claims, MemoryClaims, RedisClaims};
pub use event::{BudgetEvent, BudgetScope};
pub use threshold::{crossed, parse_thresholds, DEFAULT_THRESHOLDS};
pub use webhook::{Notifier, WebhookSettings, SIGNATURE_HEADER};
