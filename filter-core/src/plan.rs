//! The auth swap: strip every slot a token could hide in, then set exactly one real key in the
//! slot the provider expects, and point the request at the provider's host.

use crate::query::strip_key_params;
use crate::request::RequestHead;
use crate::route::Route;
use crate::slots::{Identified, Slot, SUBPROTOCOL_KEY_PREFIX};

/// Every header that can carry a credential inbound; all are removed before the one real key
/// is set.
pub const CREDENTIAL_HEADERS: [&str; 3] = ["x-api-key", "x-goog-api-key", "authorization"];

/// Header edits that turn the client's request into the upstream request. A `set` replaces
/// every value the header had (Envoy's `replaceHeaderMapValue`), so a header that is set is
/// never also listed in `remove`.
#[derive(Clone, PartialEq, Eq)]
pub struct RewritePlan {
    /// Headers to delete (all values).
    pub remove: Vec<String>,
    /// Headers (and pseudo-headers) to set, replacing any existing value.
    pub set: Vec<(String, String)>,
}

impl std::fmt::Debug for RewritePlan {
    // The plan holds the real key; print header names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.set.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("RewritePlan")
            .field("remove", &self.remove)
            .field("set", &names)
            .finish()
    }
}

impl RewritePlan {
    /// The value the plan sets for a header, if any.
    pub fn set_value(&self, name: &str) -> Option<&str> {
        self.set
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Where the real key goes for a route and inbound slot.
fn credential(route: Route, slot: Slot, key: &str) -> (String, String) {
    let bearer = || ("authorization".to_string(), format!("Bearer {key}"));
    match route {
        Route::Openai | Route::GeminiOpenai => bearer(),
        // The Anthropic API accepts both; keep the client's own slot (DESIGN.md step 4).
        Route::Anthropic if slot == Slot::Bearer => bearer(),
        Route::Anthropic => ("x-api-key".to_string(), key.to_string()),
        // Header, never `?key=`: a key in a URL ends up in access logs.
        Route::Gemini => ("x-goog-api-key".to_string(), key.to_string()),
    }
}

/// The `Sec-WebSocket-Protocol` offer without any key-bearing entry; `None` when nothing
/// remains. Other entries keep their order (`realtime`, `openai-beta.*`, org/project ids).
pub fn clean_subprotocols(offer: &str) -> Option<String> {
    let kept: Vec<&str> = offer
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty() && !entry.starts_with(SUBPROTOCOL_KEY_PREFIX))
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

/// Builds the rewrite for an allowed request.
///
/// `authority` is the provider host from the plugin config; Envoy re-picks the route on it.
/// It is set only when the request names another host.
pub fn rewrite_plan(
    head: &RequestHead,
    identified: &Identified,
    real_key: &str,
    authority: &str,
) -> RewritePlan {
    let credential = credential(identified.route, identified.slot, real_key);
    // Only headers the request carries need removing, and the one being set is replaced (all
    // of its values) by the set itself: every host call saved is on the hot path.
    let mut remove: Vec<String> = CREDENTIAL_HEADERS
        .iter()
        .filter(|name| **name != credential.0 && head.header(name).is_some())
        .map(|name| name.to_string())
        .collect();
    let mut set = Vec::new();

    let original_path = head.path_and_query();
    let path = strip_key_params(original_path);
    if path != original_path {
        set.push((":path".to_string(), path));
    }

    let offers: Vec<&str> = head.all("sec-websocket-protocol").collect();
    if offers.iter().any(|o| o.contains(SUBPROTOCOL_KEY_PREFIX)) {
        match clean_subprotocols(&offers.join(",")) {
            Some(cleaned) => set.push(("sec-websocket-protocol".to_string(), cleaned)),
            None => remove.push("sec-websocket-protocol".to_string()),
        }
    }

    // A client that already names the provider's host (an egress gateway, a DNS override)
    // needs no rewrite: one host call fewer.
    if head.header(":authority") != Some(authority) {
        set.push((":authority".to_string(), authority.to_string()));
    }
    set.push(credential);
    RewritePlan { remove, set }
}
