//! Google Gemini: the native API (`x-goog-api-key`, or `?key=` when no header slot is filled)
//! and its OpenAI-compatible endpoint (Bearer under [`OPENAI_PREFIX`]); Google-minted
//! `auth_tokens/…` are the ephemeral credential of Gemini Live.

use ptk_wire::providers::GEMINI;

use super::{Claim, DialectSpec, Placement, ProviderSpec, ShapeHints};
use crate::dialect::{Dialect, ErrorShape};
use crate::slots::Slot;

/// Path prefix of the OpenAI-compatible endpoint (exact, case-sensitive, trailing slash).
pub const OPENAI_PREFIX: &str = "/v1beta/openai/";

/// Path marker of Gemini Live's WebSocket endpoints (SDKs may prefix it with `//`).
pub const LIVE_PATH_MARKER: &str = "/ws/google.ai.generativelanguage.";

/// Prefix of a Google-minted ephemeral token.
pub const EPHEMERAL_PREFIX: &str = "auth_tokens/";

/// The native Gemini API.
pub const NATIVE: DialectSpec = DialectSpec {
    dialect: Dialect::Gemini,
    route_name: "gemini",
    claims: &[Claim::Slot(Slot::XGoogApiKey), Claim::Slot(Slot::QueryKey)],
    // Header, never `?key=`, HTTP and Live WebSocket alike: a key in a URL ends up in logs.
    credential: Placement::Header("x-goog-api-key"),
    error_shape: ErrorShape::Gemini,
    hints: ShapeHints {
        headers: &[],
        path_prefixes: &["/v1beta/", "/v1alpha/", "/upload/v1beta/"],
        path_markers: &[
            ":generateContent",
            ":streamGenerateContent",
            LIVE_PATH_MARKER,
        ],
    },
};

/// Gemini's OpenAI-compatible endpoint.
pub const OPENAI_COMPATIBLE: DialectSpec = DialectSpec {
    dialect: Dialect::GeminiOpenai,
    route_name: "gemini_openai",
    claims: &[Claim::BearerOnPathPrefix(OPENAI_PREFIX)],
    credential: Placement::Bearer,
    error_shape: ErrorShape::Openai,
    hints: ShapeHints {
        headers: &[],
        path_prefixes: &[OPENAI_PREFIX],
        path_markers: &[],
    },
};

/// Gemini.
pub const SPEC: ProviderSpec = ProviderSpec {
    facts: &GEMINI,
    dialects: &[NATIVE, OPENAI_COMPATIBLE],
    // Resumable uploads (the browser SDK reads the URL and the status).
    expose_headers: &[
        "x-goog-upload-url",
        "x-goog-upload-control-url",
        "x-goog-upload-status",
        "x-goog-upload-chunk-granularity",
        "x-goog-upload-size-received",
    ],
    ephemeral_prefix: Some(EPHEMERAL_PREFIX),
    // Its OpenAI-compatible endpoint sends usage unasked (in the final chunk); asking turns
    // it on in every chunk, which a client that did not ask would then see.
    stream_usage: false,
};
