//! OpenAI's geo-403 egress fallback (the original Worker's §6), as pure decisions.
//!
//! OpenAI refuses some egress regions with `403` and a body holding
//! `unsupported_country_region_territory`. With `providers.openai.geo_fallback` configured, an
//! OpenAI HTTP request whose response is exactly that is sent once more, with the same swapped
//! headers (the real key) and the same body, through an operator-configured cluster (an egress
//! in another jurisdiction: a cluster reached through an HTTP CONNECT proxy, another gateway),
//! and the client gets that answer. Envoy's router retries on response headers only, so the
//! marker is only visible here; the flow (`flow/geo.rs`) keeps a bounded copy of the request
//! body as it streams upstream (never holding it) and replays it with a callout.
//!
//! Never retried: any other status, a `403` without the marker (`invalid_api_key`, …), any
//! other provider (Anthropic, Gemini and its OpenAI-compatible route, configured providers),
//! a request whose body passed [`GeoFallbackConfig::max_request_body_bytes`] or had not ended
//! when the 403 came. WebSocket handshakes cannot be replayed (a callout carries no upgrade):
//! once a geo-block was seen, OpenAI handshakes for the next [`GeoFallbackConfig::learn_ms`]
//! carry [`EGRESS_HEADER`], which an Envoy route matches to send them through the egress
//! cluster from the start.

use ptk_wire::Provider;
use serde::Deserialize;

use crate::activity::Call;
use crate::key_fragments;
use crate::plan::RewritePlan;
use crate::refusal::{error_json, LocalReply};
use crate::request::RequestHead;
use crate::ErrorShape;

/// The marker of OpenAI's geo-block, anywhere in a `403` body.
pub const GEO_MARKER: &[u8] = b"unsupported_country_region_territory";

/// Most bytes of a `403` body held back to look for the marker; a longer one is no geo-block.
pub const MAX_403_BODY: usize = 64 * 1024;

/// Bounds of `max_request_body_bytes` (0 replays only bodyless requests).
pub const REQUEST_BODY_BOUNDS: (u64, u64) = (0, 16 * 1024 * 1024);

/// The request header the filter sets on an OpenAI WebSocket handshake after a geo-block was
/// seen: an Envoy route on it picks the egress cluster (and removes it). Only the filter sets
/// it: a client's is removed.
pub const EGRESS_HEADER: &str = "x-ptk-egress";

/// [`EGRESS_HEADER`]'s value.
pub const EGRESS_VALUE: &str = "geo-fallback";

/// The request header the hold filter (Lua, in front of ptk) sets on every request to say it is
/// there: without it a 403's headers would reach the client before the filter could answer in
/// their place, so the filter replays nothing (the 403 passes as it came) and warns. The filter
/// removes it, so it never goes upstream.
pub const HOLD_HEADER: &str = "x-ptk-geo-hold";

/// Shared-data key of the time (ms since the epoch, decimal) until which handshakes take the
/// egress route: one for every worker of the VM.
pub const LEARNED_KEY: &str = "ptk/v1/geo-blocked-until";

/// Longest `learn_ms` accepted (one day).
pub const MAX_LEARN_MS: u64 = 86_400_000;

/// Longest replay timeout accepted (ten minutes: the replay is a whole LLM call).
pub const MAX_TIMEOUT_MS: u64 = 600_000;

/// `providers.openai.geo_fallback`: where and how a geo-blocked request is replayed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoFallbackConfig {
    /// The Envoy cluster of the alternative egress.
    pub cluster: String,
    /// `:authority` of the replay; default: `providers.openai.authority`.
    #[serde(default)]
    pub authority: Option<String>,
    /// Largest request body copied for a replay; a longer one is forwarded as usual, and its
    /// geo-403 passes through (counted in `geo_fallback.unreplayable`).
    #[serde(default = "default_max_body")]
    pub max_request_body_bytes: u64,
    /// How long the replay may take (its response is buffered whole).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// After a geo-block, how long OpenAI WebSocket handshakes go through the egress route
    /// (`EGRESS_HEADER`); 0: never.
    #[serde(default = "default_learn")]
    pub learn_ms: u64,
}

fn default_learn() -> u64 {
    600_000
}

fn default_max_body() -> u64 {
    256 * 1024
}

fn default_timeout() -> u64 {
    300_000
}

impl GeoFallbackConfig {
    /// Checks the bounds; the message names the field.
    pub fn validate(&self, field: &str) -> Result<(), String> {
        let (low, high) = REQUEST_BODY_BOUNDS;
        let bytes = self.max_request_body_bytes;
        if !(low..=high).contains(&bytes) {
            return Err(format!(
                "{field}.max_request_body_bytes: must be {low}..={high}, got {bytes}"
            ));
        }
        if self.learn_ms > MAX_LEARN_MS {
            return Err(format!(
                "{field}.learn_ms: must be 0..={MAX_LEARN_MS}, got {}",
                self.learn_ms
            ));
        }
        if self.timeout_ms == 0 || self.timeout_ms > MAX_TIMEOUT_MS {
            return Err(format!(
                "{field}.timeout_ms: must be 1..={MAX_TIMEOUT_MS}, got {}",
                self.timeout_ms
            ));
        }
        Ok(())
    }
}

/// Whether a forwarded request may be replayed at all: OpenAI over HTTP only.
pub fn qualifies(provider: Provider, websocket: bool) -> bool {
    provider == Provider::Openai && !websocket
}

/// Whether a learned geo-block (the value under [`LEARNED_KEY`]) still holds at `now_ms`.
pub fn still_blocked(stored: Option<&[u8]>, now_ms: u64) -> bool {
    let until = stored
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<u64>().ok());
    until.is_some_and(|until| until > now_ms)
}

/// The value to store under [`LEARNED_KEY`] when a geo-block is seen at `now_ms`.
pub fn blocked_until(now_ms: u64, learn_ms: u64) -> Vec<u8> {
    now_ms.saturating_add(learn_ms).to_string().into_bytes()
}

/// OpenAI's geo-block: status exactly `403` and the marker anywhere in the body.
pub fn is_geo_block(status: u16, body: &[u8]) -> bool {
    status == 403 && body.windows(GEO_MARKER.len()).any(|w| w == GEO_MARKER)
}

/// A bounded copy of a request body as it streams upstream. Envoy hands the filter the bytes
/// it holds since the last chunk let through: [`ReplayBody::chunk`] replaces what it copied
/// since then, [`ReplayBody::passed`] marks the chunk as let through.
#[derive(Debug, Default)]
pub struct ReplayBody {
    bytes: Vec<u8>,
    base: usize,
    limit: usize,
    overflowed: bool,
    ended: bool,
}

impl ReplayBody {
    /// An empty copy of at most `limit` bytes.
    pub fn new(limit: u64) -> ReplayBody {
        ReplayBody {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            ..ReplayBody::default()
        }
    }

    /// Whether `held` more bytes (what Envoy holds since the last chunk let through) fit; past
    /// the bound the copy is dropped for good.
    pub fn fits(&mut self, held: usize) -> bool {
        if self.overflowed || self.base.saturating_add(held) > self.limit {
            self.overflowed = true;
            self.bytes = Vec::new();
            return false;
        }
        true
    }

    /// The bytes Envoy holds since the last chunk let through (`end`: the body's last).
    pub fn chunk(&mut self, held: &[u8], end: bool) {
        if !self.fits(held.len()) {
            return;
        }
        self.bytes.truncate(self.base);
        self.bytes.extend_from_slice(held);
        self.ended = end;
    }

    /// The chunk just copied was let through: the next one starts after it.
    pub fn passed(&mut self) {
        self.base = self.bytes.len();
    }

    /// The whole body, if it ended within the bound. `bodyless`: the request had no body
    /// (no body callback ever came).
    pub fn replayable(&self, bodyless: bool) -> Option<&[u8]> {
        let whole = self.ended || (bodyless && self.bytes.is_empty());
        (!self.overflowed && whole).then_some(self.bytes.as_slice())
    }

    /// Whether the bound was passed.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }
}

/// Hop-by-hop and framing headers: Envoy sets its own on a callout and on a local reply.
fn hop_by_hop(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "upgrade"
            | "expect"
            | "content-length"
            | ":status"
            | "x-envoy-upstream-service-time"
    ) || name.starts_with("x-envoy-")
        || name == EGRESS_HEADER
        || name == HOLD_HEADER
}

/// The request headers as they go upstream: the client's with the rewrite applied (Envoy no
/// longer lends a filter the request headers once it let them through, so they are kept).
pub fn swapped_headers(head: &RequestHead, plan: &RewritePlan) -> Vec<(String, String)> {
    let replaced = |name: &str| {
        plan.remove.iter().any(|r| r.eq_ignore_ascii_case(name))
            || plan.set.iter().any(|(s, _)| s.eq_ignore_ascii_case(name))
    };
    head.iter()
        .filter(|(name, _)| !replaced(name))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .chain(plan.set.iter().cloned())
        .collect()
}

/// The replay: the request headers as they went upstream (real key included), `:authority`
/// set to `authority`, framing recomputed for `body`.
pub fn replay_call(headers: &[(String, String)], authority: &str, body: &[u8]) -> Call {
    let mut out: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| !hop_by_hop(n) && !n.eq_ignore_ascii_case(":authority"))
        .cloned()
        .collect();
    out.push((":authority".to_string(), authority.to_string()));
    if !body.is_empty() {
        out.push(("content-length".to_string(), body.len().to_string()));
    }
    (out, body.to_vec())
}

/// The client's answer from the egress's response: its status, headers (framing left to
/// Envoy) and body, with any fragment of the real key masked in an error.
pub fn replayed_reply(
    status: u16,
    headers: &[(String, String)],
    mut body: Vec<u8>,
    key: &str,
) -> LocalReply {
    if status >= 400 {
        key_fragments::mask(&mut body, key);
    }
    let headers = headers
        .iter()
        .filter(|(n, _)| !hop_by_hop(n) && !n.starts_with(':'))
        .cloned()
        .collect();
    LocalReply {
        status,
        headers,
        body,
    }
}

/// The egress could not be reached or gave no answer: 502 in OpenAI's shape.
pub fn failed_reply() -> LocalReply {
    let message = "the upstream refused this region and the configured fallback egress failed";
    let body = error_json(ErrorShape::Openai, 502, message, "geo_fallback_failed");
    LocalReply {
        status: 502,
        headers: vec![("content-type".to_string(), "application/json".to_string())],
        body: body.to_string().into_bytes(),
    }
}

#[cfg(test)]
#[path = "geo_fallback_tests.rs"]
mod tests;
