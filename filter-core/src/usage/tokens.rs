//! The normalised token counts ([`TokenUsage`]) live in the wire crate, which both sides read:
//! the filter's meters produce them and the token-service stores and prices them.

pub use ptk_wire::usage::TokenUsage;
