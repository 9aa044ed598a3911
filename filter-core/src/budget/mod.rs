//! Budget grants (wire 1.2, `docs/wire-protocol.md` "Budgets"): what a request of a budgeted
//! token is estimated to spend ([`estimate`]: its body read strictly by [`strict`], the input
//! it references without carrying found by [`referenced`]), the grant's remaining tokens in
//! shared data, spent by compare-and-swap across workers ([`grants`]), and a WebSocket
//! session's reservation kept ahead of its turns ([`session`], reading the client's asks with
//! [`asks`]).

pub mod asks;
pub mod context;
pub mod estimate;
pub mod grants;
pub mod referenced;
pub mod session;
pub mod strict;
