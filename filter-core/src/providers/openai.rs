//! OpenAI: `Authorization: Bearer`, also the browser Realtime subprotocol entry; its
//! Realtime client secrets (`ek_…`) are the ephemeral credential.

use ptk_wire::providers::OPENAI;

use super::{Claim, DialectSpec, Placement, ProviderSpec, ShapeHints};
use crate::dialect::{Dialect, ErrorShape};
use crate::slots::Slot;

/// Prefix of an OpenAI Realtime client secret.
pub const EPHEMERAL_PREFIX: &str = "ek_";

/// The OpenAI API (and every Bearer no other dialect claims).
pub const DIALECT: DialectSpec = DialectSpec {
    dialect: Dialect::Openai,
    route_name: "openai",
    claims: &[Claim::Slot(Slot::Bearer), Claim::Slot(Slot::Subprotocol)],
    credential: Placement::Bearer,
    error_shape: ErrorShape::Openai,
    // The default shape: nothing needs to point at it.
    hints: ShapeHints {
        headers: &[],
        path_prefixes: &[],
        path_markers: &[],
    },
};

/// OpenAI.
pub const SPEC: ProviderSpec = ProviderSpec {
    facts: &OPENAI,
    dialects: &[DIALECT],
    expose_headers: &[
        // Poll interval for `createAndPoll` / `uploadAndPoll` helpers.
        "openai-poll-after-ms",
        // Rate limits.
        "x-ratelimit-limit-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-requests",
        "x-ratelimit-reset-tokens",
    ],
    ephemeral_prefix: Some(EPHEMERAL_PREFIX),
    stream_usage: true,
};
