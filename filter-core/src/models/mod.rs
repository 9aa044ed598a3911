//! The per-token model allow-list (`limits.models` of an `allow_limited` verdict): which model
//! a request names and where it is read ([`routes`]: the path, the WebSocket handshake's
//! query, or the JSON body held by the request-body hold filter), whether the list allows it
//! ([`matcher`]), and the 403 that refuses it in the provider's error shape ([`refusal`]).
//! A limited token's request whose model cannot be read on a route that spends is refused;
//! nothing of a refused request reaches the provider.

pub mod body;
pub mod gate;
pub mod matcher;
pub mod refusal;
pub mod routes;

pub use gate::{gate, BodyGate, Gate, LimitsConfig, HOLD_HEADER};
pub use matcher::{allows, matches};
pub use routes::{model_source, ModelSource};
