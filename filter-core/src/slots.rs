//! Finding the proxy token in whichever auth slot the client's SDK filled, and the route
//! that slot implies. Precedence is strict, first match wins (original Worker §2.1, plus the
//! Bearer + `anthropic-version` rule that current Anthropic SDKs need, DESIGN.md step 1).

use crate::query::first_key_param;
use crate::request::RequestHead;
use crate::route::{Route, GEMINI_OPENAI_PREFIX};

/// Subprotocol prefix that browser OpenAI Realtime clients put their key behind.
pub use crate::subprotocol::KEY_PREFIX as SUBPROTOCOL_KEY_PREFIX;

/// The token inside a `Sec-WebSocket-Protocol` offer, if an entry carries one.
pub use crate::subprotocol::token as subprotocol_token;

/// The inbound slot a token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// `x-api-key` header.
    XApiKey,
    /// `x-goog-api-key` header.
    XGoogApiKey,
    /// `Authorization: Bearer …`.
    Bearer,
    /// `?key=` query parameter.
    QueryKey,
    /// `Sec-WebSocket-Protocol` entry `openai-insecure-api-key.<token>` (upgrades only).
    Subprotocol,
}

/// A token found in a slot, and where the request should go.
#[derive(Clone, PartialEq, Eq)]
pub struct Identified {
    /// The token exactly as extracted (Bearer values trimmed, other slots verbatim).
    pub token: String,
    /// The route the slot (and path/headers) imply.
    pub route: Route,
    /// Where the token was found; decides where an Anthropic real key goes.
    pub slot: Slot,
}

impl std::fmt::Debug for Identified {
    // Never print the token, even in a test failure or a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identified")
            .field("token", &"[redacted]")
            .field("route", &self.route)
            .field("slot", &self.slot)
            .finish()
    }
}

/// The token of an `Authorization: Bearer <token>` value: case-insensitive scheme, at least
/// one whitespace, then the rest trimmed. `None` for other schemes or an empty token.
pub fn bearer_token(value: &str) -> Option<&str> {
    let scheme = value.get(..6)?;
    let rest = value.get(6..)?;
    if !scheme.eq_ignore_ascii_case("bearer") || !rest.starts_with(char::is_whitespace) {
        return None;
    }
    Some(rest.trim()).filter(|t| !t.is_empty())
}

fn found(token: &str, route: Route, slot: Slot) -> Option<Identified> {
    Some(Identified {
        token: token.to_string(),
        route,
        slot,
    })
}

/// Finds the token and its route, or `None` when no known slot holds one (401 missing token).
pub fn identify(head: &RequestHead) -> Option<Identified> {
    if let Some(token) = head.non_empty("x-api-key") {
        return found(token, Route::Anthropic, Slot::XApiKey);
    }
    if let Some(token) = head.non_empty("x-goog-api-key") {
        return found(token, Route::Gemini, Slot::XGoogApiKey);
    }
    if let Some(token) = head.header("authorization").and_then(bearer_token) {
        let route = if head.non_empty("anthropic-version").is_some() {
            Route::Anthropic
        } else if head.path().starts_with(GEMINI_OPENAI_PREFIX) {
            Route::GeminiOpenai
        } else {
            Route::Openai
        };
        return found(token, route, Slot::Bearer);
    }
    if let Some(token) = first_key_param(head.query()) {
        return found(&token, Route::Gemini, Slot::QueryKey);
    }
    if head.is_websocket_upgrade() {
        if let Some(token) = head
            .all("sec-websocket-protocol")
            .find_map(subprotocol_token)
        {
            return found(token, Route::Openai, Slot::Subprotocol);
        }
    }
    None
}
