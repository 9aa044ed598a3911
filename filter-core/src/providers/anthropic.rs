//! Anthropic: `x-api-key`, or `Authorization: Bearer` with `anthropic-version` (current SDKs);
//! the real key goes back in the slot the client used.

use ptk_wire::providers::ANTHROPIC;

use super::{Claim, DialectSpec, Placement, ProviderSpec, ShapeHints};
use crate::dialect::{Dialect, ErrorShape};
use crate::slots::Slot;

/// The header every Anthropic SDK sends.
pub const VERSION_HEADER: &str = "anthropic-version";

/// The Anthropic API.
pub const DIALECT: DialectSpec = DialectSpec {
    dialect: Dialect::Anthropic,
    route_name: "anthropic",
    claims: &[
        Claim::Slot(Slot::XApiKey),
        Claim::BearerWithHeader(VERSION_HEADER),
    ],
    credential: Placement::ClientSlot("x-api-key"),
    error_shape: ErrorShape::Anthropic,
    hints: ShapeHints {
        headers: &[VERSION_HEADER],
        path_prefixes: &["/v1/messages"],
        path_markers: &[],
    },
};

/// Anthropic.
pub const SPEC: ProviderSpec = ProviderSpec {
    facts: &ANTHROPIC,
    dialects: &[DIALECT],
    // Rate limits (Anthropic itself sends `*`, which is kept as it is).
    expose_headers: &[
        "anthropic-ratelimit-requests-limit",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
        "anthropic-ratelimit-tokens-limit",
        "anthropic-ratelimit-tokens-remaining",
        "anthropic-ratelimit-tokens-reset",
        "anthropic-ratelimit-input-tokens-limit",
        "anthropic-ratelimit-input-tokens-remaining",
        "anthropic-ratelimit-input-tokens-reset",
        "anthropic-ratelimit-output-tokens-limit",
        "anthropic-ratelimit-output-tokens-remaining",
        "anthropic-ratelimit-output-tokens-reset",
    ],
    ephemeral_prefix: None,
    // Anthropic streams always carry usage (`message_start`, `message_delta`).
    stream_usage: false,
};
