//! Budget grants (wire 1.2, `docs/wire-protocol.md` "Budgets"): what a request of a budgeted
//! token is estimated to spend ([`estimate`]), and the grant's remaining tokens in shared data,
//! spent by compare-and-swap across workers ([`grants`]), and a WebSocket session's reservation
//! kept ahead of its turns ([`session`], reading the client's asks with [`asks`]).

pub mod asks;
pub mod estimate;
pub mod grants;
pub mod session;
