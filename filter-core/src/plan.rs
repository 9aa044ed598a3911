//! The auth swap: strip every slot a token could hide in and every header by which a client
//! picks whose account pays, then set exactly one real key in the slot the provider expects,
//! the operator's own headers, and point the request at the provider's host.

use crate::config::ProviderConfig;
use crate::dialect::Dialect;
use crate::providers::Placement;
use crate::query::strip_params;
use crate::request::RequestHead;
use crate::slots::{Identified, Slot};
use crate::subprotocol;

pub use crate::credentials::{ACCOUNT_HEADERS, CREDENTIAL_HEADERS, RESPONSE_MASK_HEADERS};

/// The `Sec-WebSocket-Protocol` offer without key, organization and project entries; `None`
/// when nothing remains (see [`subprotocol::clean`]).
pub use crate::subprotocol::clean as clean_subprotocols;

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

/// Where the real key goes for a dialect and inbound slot (the registry's [`Placement`]).
fn credential(dialect: Dialect, slot: Slot, key: &str) -> (String, String) {
    let bearer = || ("authorization".to_string(), format!("Bearer {key}"));
    match dialect.spec().credential {
        Placement::Bearer => bearer(),
        // Anthropic accepts both; keep the client's own slot (DESIGN.md step 4).
        Placement::ClientSlot(_) if slot == Slot::Bearer => bearer(),
        Placement::ClientSlot(header) | Placement::Header(header) => {
            (header.to_string(), key.to_string())
        }
    }
}

/// What every forwarding plan sets on the way out: the path without any credential or account
/// parameter (when it had one), and the provider's `authority` (when the request names
/// another host: one host call fewer otherwise, e.g. behind an egress gateway or a DNS
/// override).
pub(crate) fn set_path_and_authority(
    head: &RequestHead,
    authority: &str,
    set: &mut Vec<(String, String)>,
) {
    set_path_and_authority_under(head, authority, None, set);
}

/// [`set_path_and_authority`] for a provider reached under a path prefix (a configured one),
/// which the upstream path loses: `/selfhosted/v1/models` goes up as `/v1/models`.
fn set_path_and_authority_under(
    head: &RequestHead,
    authority: &str,
    strip: Option<&str>,
    set: &mut Vec<(String, String)>,
) {
    let sent = head.path_and_query();
    let unprefixed = strip
        .and_then(|prefix| sent.strip_prefix(prefix))
        .map(|rest| format!("/{rest}"));
    let path = unprefixed.as_deref().unwrap_or(sent);
    if let Some(path) = strip_params(path).or(unprefixed.clone()) {
        set.push((":path".to_string(), path));
    }
    if head.header(":authority") != Some(authority) {
        set.push((":authority".to_string(), authority.to_string()));
    }
}

/// Builds the rewrite for an allowed request.
///
/// `upstream` is the provider's config: its authority (Envoy re-picks the route on it; set
/// only when the request names another host) and the operator's `request_headers`.
pub fn rewrite_plan(
    head: &RequestHead,
    identified: &Identified,
    real_key: &str,
    upstream: &ProviderConfig,
) -> RewritePlan {
    rewrite_plan_under(head, identified, real_key, upstream, None)
}

/// [`rewrite_plan`] for a provider reached under a path prefix that the upstream path loses
/// (`strip`: a configured provider's).
pub fn rewrite_plan_under(
    head: &RequestHead,
    identified: &Identified,
    real_key: &str,
    upstream: &ProviderConfig,
    strip: Option<&str>,
) -> RewritePlan {
    let credential = credential(identified.dialect, identified.slot, real_key);
    let operator = &upstream.request_headers;
    let is_set = |name: &str| name == credential.0 || operator.iter().any(|(n, _)| n == name);
    // Only headers the request carries need removing, and one being set is replaced (all of
    // its values) by the set itself: every host call saved is on the hot path.
    let mut remove: Vec<String> = CREDENTIAL_HEADERS
        .iter()
        .chain(ACCOUNT_HEADERS.iter())
        .chain(RESPONSE_MASK_HEADERS.iter())
        .filter(|name| !is_set(name) && head.header(name).is_some())
        .map(|name| name.to_string())
        .collect();
    let mut set = Vec::new();
    let offers: Vec<&str> = head.all("sec-websocket-protocol").collect();
    if offers.iter().any(|o| subprotocol::needs_cleaning(o)) {
        match subprotocol::clean(&offers.join(",")) {
            Some(cleaned) => set.push(("sec-websocket-protocol".to_string(), cleaned)),
            None => remove.push("sec-websocket-protocol".to_string()),
        }
    }

    set_path_and_authority_under(head, &upstream.authority, strip, &mut set);
    set.extend(operator.iter().cloned());
    set.push(credential);
    RewritePlan { remove, set }
}
