//! The provider registry: one module per provider declares everything the filter knows about
//! it (its shared [`ProviderFacts`], the API dialects it speaks with the slots that mean each
//! one, where the real key goes, the error shape its SDKs parse, its path prefixes, the
//! response headers its browser SDK reads, its ephemeral credentials), and [`TABLE`] lists
//! them. Logic elsewhere asks the table; it never matches on a provider by name.
//!
//! Slot *precedence* stays explicit in [`crate::slots::identify`]; which dialect a slot means
//! is answered here ([`slot_owner`], [`bearer_dialect`]).

use ptk_wire::providers::ProviderFacts;
use ptk_wire::Provider;

use crate::dialect::{Dialect, ErrorShape};
use crate::request::RequestHead;
use crate::slots::Slot;

pub mod anthropic;
pub mod gemini;
pub mod openai;

/// One provider as the filter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderSpec {
    /// Name, default authority, key variable and client entry points (shared with the
    /// token-service through the wire crate).
    pub facts: &'static ProviderFacts,
    /// The API dialects this provider speaks.
    pub dialects: &'static [DialectSpec],
    /// Response headers its browser SDK reads beyond the common ones ([`crate::expose`]).
    pub expose_headers: &'static [&'static str],
    /// Prefix of the provider-minted ephemeral credential the filter can relay
    /// ([`crate::ephemeral`]), if any.
    pub ephemeral_prefix: Option<&'static str>,
    /// Whether its streamed Chat Completions accept `stream_options.include_usage` (so the
    /// filter may ask for usage the client did not; `providers.<name>.stream_usage` overrides).
    pub stream_usage: bool,
}

/// One API dialect: how a request in it is recognised and answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialectSpec {
    /// The dialect.
    pub dialect: Dialect,
    /// Its name in Envoy's route table (`envoy.yaml`), where it picks the error shape of
    /// Envoy's own replies.
    pub route_name: &'static str,
    /// The inbound slots (and Bearer conditions) that mean this dialect.
    pub claims: &'static [Claim],
    /// Where the real key goes upstream.
    pub credential: Placement,
    /// The error body family its SDK parses.
    pub error_shape: ErrorShape,
    /// What marks a request in this dialect when it carries no token (only to pick the error
    /// shape of "missing token").
    pub hints: ShapeHints,
}

/// What makes an inbound slot mean a dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The slot itself (for [`Slot::Bearer`]: a Bearer no other claim takes).
    Slot(Slot),
    /// `Authorization: Bearer` on a request that carries this (non-empty) header.
    BearerWithHeader(&'static str),
    /// `Authorization: Bearer` on a path starting with this prefix (exact, case-sensitive).
    BearerOnPathPrefix(&'static str),
}

/// Where the real key goes upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// This header, whatever slot the client used (never the `?key=` query: a key in a URL
    /// ends up in access logs).
    Header(&'static str),
    /// The client's own slot: Bearer stays Bearer, anything else becomes this header.
    ClientSlot(&'static str),
}

/// Signs of a dialect on a request without a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapeHints {
    /// A (non-empty) header only this dialect's SDKs send.
    pub headers: &'static [&'static str],
    /// Path prefixes of its API.
    pub path_prefixes: &'static [&'static str],
    /// Substrings of its paths (method suffixes, WebSocket endpoints).
    pub path_markers: &'static [&'static str],
}

impl ShapeHints {
    /// True when the request shows one of the signs.
    pub fn matches(&self, path: &str, has_header: impl Fn(&str) -> bool) -> bool {
        self.headers.iter().any(|h| has_header(h))
            || self.path_prefixes.iter().any(|p| path.starts_with(p))
            || self.path_markers.iter().any(|m| path.contains(m))
    }
}

/// Every provider, in [`Provider::ALL`] order.
pub const TABLE: [&ProviderSpec; 3] = [&openai::SPEC, &anthropic::SPEC, &gemini::SPEC];

/// The spec of a built-in provider; `None` for a configured one (it speaks the OpenAI
/// dialect, `crate::config::ConfiguredProvider`).
pub fn spec(provider: Provider) -> Option<&'static ProviderSpec> {
    TABLE.into_iter().find(|p| p.facts.provider == provider)
}

/// Every dialect of every provider.
pub fn dialects() -> impl Iterator<Item = &'static DialectSpec> {
    TABLE.into_iter().flat_map(|p| p.dialects.iter())
}

/// The dialect a slot means on its own (`x-api-key`, `x-goog-api-key`, `?key=`, the
/// subprotocol entry, and a Bearer no conditional claim takes).
pub fn slot_owner(slot: Slot) -> Option<Dialect> {
    dialects()
        .find(|d| d.claims.contains(&Claim::Slot(slot)))
        .map(|d| d.dialect)
}

/// The dialect of a Bearer request: a header claim first (current Anthropic SDKs send Bearer
/// with `anthropic-version`), then a path-prefix claim, then the plain Bearer owner.
pub fn bearer_dialect(head: &RequestHead) -> Option<Dialect> {
    let claimed = |wanted: &dyn Fn(&Claim) -> bool| {
        dialects()
            .find(|d| d.claims.iter().any(wanted))
            .map(|d| d.dialect)
    };
    claimed(&|c| matches!(c, Claim::BearerWithHeader(h) if head.non_empty(h).is_some()))
        .or_else(|| {
            claimed(&|c| matches!(c, Claim::BearerOnPathPrefix(p) if head.path().starts_with(p)))
        })
        .or_else(|| slot_owner(Slot::Bearer))
}
