//! Finding the proxy token in whichever auth slot the client's SDK filled, and the dialect
//! that slot implies. Precedence is strict, first match wins (original Worker §2.1, plus the
//! Bearer + `anthropic-version` rule that current Anthropic SDKs need, DESIGN.md step 1); which
//! dialect a slot means comes from the provider registry ([`crate::providers`]).

use ptk_wire::Provider;

use crate::dialect::Dialect;
use crate::provider_config::ProvidersConfig;
use crate::providers::{bearer_dialect, slot_owner};
use crate::query::first_key_param;
use crate::request::RequestHead;

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

/// A token found in a slot, and the API dialect it speaks.
#[derive(Clone, PartialEq, Eq)]
pub struct Identified {
    /// The token exactly as extracted (Bearer values trimmed, other slots verbatim).
    pub token: String,
    /// The dialect the slot (and path/headers) imply.
    pub dialect: Dialect,
    /// The provider whose scope, key and upstream apply: the dialect's, or a configured
    /// OpenAI-compatible provider's ([`Identified::under_configured`]).
    pub provider: Provider,
    /// Where the token was found; decides where an Anthropic real key goes.
    pub slot: Slot,
}

impl std::fmt::Debug for Identified {
    // Never print the token, even in a test failure or a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identified")
            .field("token", &"[redacted]")
            .field("dialect", &self.dialect)
            .field("provider", &self.provider)
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

fn found(token: &str, dialect: Option<Dialect>, slot: Slot) -> Option<Identified> {
    let dialect = dialect?;
    Some(Identified {
        token: token.to_string(),
        dialect,
        provider: dialect.provider(),
        slot,
    })
}

impl Identified {
    /// A plain OpenAI Bearer (no other dialect claimed it) under a configured provider's path
    /// prefix is for that provider: it speaks OpenAI's dialect, with its own scope, key and
    /// upstream. Every other identification stands, so the built-in precedence is unchanged.
    pub fn under_configured(mut self, providers: &ProvidersConfig, path: &str) -> Identified {
        if self.slot == Slot::Bearer && self.dialect == Dialect::Openai {
            if let Some(configured) = providers.configured_for(path) {
                self.provider = configured.provider;
            }
        }
        self
    }
}

/// Finds the token and its dialect, or `None` when no known slot holds one (401 missing
/// token). The order of the slots is the precedence; the registry says what each one means.
pub fn identify(head: &RequestHead) -> Option<Identified> {
    if let Some(token) = head.non_empty("x-api-key") {
        return found(token, slot_owner(Slot::XApiKey), Slot::XApiKey);
    }
    if let Some(token) = head.non_empty("x-goog-api-key") {
        return found(token, slot_owner(Slot::XGoogApiKey), Slot::XGoogApiKey);
    }
    if let Some(token) = head.header("authorization").and_then(bearer_token) {
        return found(token, bearer_dialect(head), Slot::Bearer);
    }
    if let Some(token) = first_key_param(head.query()) {
        return found(&token, slot_owner(Slot::QueryKey), Slot::QueryKey);
    }
    if head.is_websocket_upgrade() {
        if let Some(token) = head
            .all("sec-websocket-protocol")
            .find_map(subprotocol_token)
        {
            return found(token, slot_owner(Slot::Subprotocol), Slot::Subprotocol);
        }
    }
    None
}
