//! OpenAI Realtime client secrets (`ek_…`) that the proxy saw minted for one of its tokens,
//! and the requests that use one.
//!
//! A browser's backend mints a secret through the proxy with a proxy token (an ordinary
//! request); the minting response is read as it passes ([`crate::mint_watch`]) and the secret
//! bound to that token in a fixed table of shared-data slots ([`crate::bound_table`], keys
//! `ptk/v1/ek/0000` …, digest only), until the secret's `expires_at` (capped by
//! `ephemeral.max_ttl_ms`). A request whose every credential value is one such secret
//! ([`crate::ephemeral`]) is forwarded to OpenAI untouched, never with the real key, only
//! while the secret is bound and the minting token is still valid ([`crate::bound_check`]);
//! a secret the proxy never saw minted (or expired, or evicted) gets 401 and nothing is
//! forwarded. The request is then an open request of the minting token: revoking the token
//! closes it.

use ptk_wire::Provider;

use crate::bound_table::{digest, Binding, Recorded, Table};
use crate::config::{EphemeralConfig, ProviderConfig};
use crate::cors::origin_of;
use crate::credentials::ACCOUNT_HEADERS;
use crate::dialect::ErrorShape;
use crate::guard;
use crate::pipeline::{refuse, Refused};
use crate::plan::{set_path_and_authority, RewritePlan};
use crate::refusal::Refusal;
use crate::request::RequestHead;
use crate::shared_data::{CasAnchor, SharedData};
use crate::subprotocol;

/// Shared-data key prefix of the client-secret table.
pub const PREFIX: &str = "ptk/v1/ek/";

fn table(config: &EphemeralConfig) -> Table {
    Table {
        prefix: PREFIX,
        slots: config.slots,
    }
}

/// A request that carries an OpenAI client secret and nothing else in any credential slot.
#[derive(Clone)]
pub struct PendingSecret {
    /// SHA-256 of the secret: the only form of it kept past the headers.
    pub digest: [u8; 32],
    /// A WebSocket handshake (refusals in plain text).
    pub websocket: bool,
    /// The request's `Origin`, for CORS (not on a handshake).
    pub origin: Option<String>,
}

impl std::fmt::Debug for PendingSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSecret")
            .field("websocket", &self.websocket)
            .field("origin", &self.origin)
            .finish()
    }
}

impl PendingSecret {
    /// The pending use of `secret` in `head`.
    pub fn new(secret: &str, head: &RequestHead) -> PendingSecret {
        let websocket = head.is_websocket_upgrade();
        PendingSecret {
            digest: digest(secret),
            websocket,
            origin: origin_of(head).filter(|_| !websocket),
        }
    }

    /// The refusal in OpenAI's shape (plain text on a handshake), CORS-decorated.
    pub fn refuse(&self, refusal: Refusal) -> Refused {
        refuse(
            refusal,
            ErrorShape::Openai,
            self.websocket,
            self.origin.as_deref(),
        )
    }

    /// The rewrite of this use ([`secret_plan`]); or, when the request would still carry
    /// something shaped like a generated proxy token anywhere (the final guard,
    /// [`crate::guard::leaks_relayed`]), the 400 refusal to answer instead.
    pub fn allow(
        &self,
        head: &RequestHead,
        upstream: &ProviderConfig,
    ) -> Result<RewritePlan, Refused> {
        let plan = secret_plan(head, upstream);
        if guard::leaks_relayed(head, &plan) {
            return Err(self.refuse(Refusal::TokenInRequest));
        }
        Ok(plan)
    }

    /// The secret's binding, if the proxy saw it minted and it has not expired.
    pub fn lookup(
        &self,
        shared: &impl SharedData,
        config: &EphemeralConfig,
        now_ms: u64,
    ) -> Option<Binding> {
        table(config)
            .lookup(shared, &self.digest, now_ms)
            .filter(|b| b.provider == Provider::Openai)
    }
}

/// Binds a secret minted for the token with hash `token_hash` until `expires_ms`.
pub fn record(
    shared: &impl SharedData,
    anchor: CasAnchor,
    config: &EphemeralConfig,
    minted: (&[u8; 32], &str),
    expires_ms: u64,
    now_ms: u64,
) -> Recorded {
    let (secret_digest, token_hash) = minted;
    let owner = (token_hash, Provider::Openai);
    table(config).record(shared, anchor, secret_digest, owner, expires_ms, now_ms)
}

/// The rewrite of a request that uses a client secret: the secret stays where the client put
/// it (never swapped for the real key, no key added); account choices go as on every OpenAI
/// request (the `OpenAI-Organization` / `-Project` headers and subprotocol entries, replaced by
/// the operator's `request_headers`); routed to OpenAI.
pub fn secret_plan(head: &RequestHead, upstream: &ProviderConfig) -> RewritePlan {
    let operator = &upstream.request_headers;
    let mut remove: Vec<String> = ACCOUNT_HEADERS
        .iter()
        .filter(|name| !operator.iter().any(|(n, _)| n == *name) && head.header(name).is_some())
        .map(|name| name.to_string())
        .collect();
    let mut set = Vec::new();
    let offers: Vec<&str> = head.all("sec-websocket-protocol").collect();
    if offers.iter().any(|o| subprotocol::names_account(o)) {
        match subprotocol::without_accounts(&offers.join(",")) {
            Some(kept) => set.push(("sec-websocket-protocol".to_string(), kept)),
            None => remove.push("sec-websocket-protocol".to_string()),
        }
    }
    set_path_and_authority(head, &upstream.authority, &mut set);
    set.extend(operator.iter().cloned());
    RewritePlan { remove, set }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::head;
    use crate::shared_data_double::SharedDataDouble;

    const HASH: &str = "ab00000000000000000000000000000000000000000000000000000000000001";
    const SECRET: &str = "ek_68af296e8e408191a1120ab6383263c2";

    fn on() -> EphemeralConfig {
        EphemeralConfig {
            pass_through: true,
            slots: 16,
            ..EphemeralConfig::default()
        }
    }

    fn upgrade(protocols: &str) -> RequestHead {
        head(&[
            (":method", "GET"),
            (":path", "/v1/realtime?model=gpt-realtime"),
            (":authority", "127.0.0.1:10000"),
            ("upgrade", "websocket"),
            ("origin", "https://app.example"),
            ("sec-websocket-protocol", protocols),
        ])
    }

    #[test]
    fn a_minted_secret_is_found_until_it_expires_and_nothing_else_is() {
        let shared = SharedDataDouble::default();
        let c = on();
        let anchor = CasAnchor::refresh(&shared);
        let pending = PendingSecret::new(SECRET, &upgrade("realtime"));
        assert_eq!(pending.lookup(&shared, &c, 0), None, "never minted");
        let minted = (&digest(SECRET), HASH);
        assert_eq!(
            record(&shared, anchor, &c, minted, 5_000, 0),
            Recorded::Stored
        );
        let found = pending.lookup(&shared, &c, 4_999).unwrap();
        assert_eq!(
            (found.token_hash.as_str(), found.provider),
            (HASH, Provider::Openai)
        );
        assert_eq!(pending.lookup(&shared, &c, 5_000), None, "expired");
        let other = PendingSecret::new("ek_68af296e8e408191a1120ab6383263c3", &upgrade("x"));
        assert_eq!(other.lookup(&shared, &c, 1), None);
        // Only the digest is kept: nowhere in shared data, nor in the pending request's Debug.
        for key in shared.keys() {
            let value = shared.value(&key).unwrap();
            assert!(!String::from_utf8_lossy(&value).contains(SECRET));
        }
        assert!(!format!("{pending:?}").contains(SECRET));
    }

    #[test]
    fn an_upload_session_with_the_same_digest_is_not_a_secret() {
        // Each table has its own keys: a binding in another table never answers here.
        let shared = SharedDataDouble::default();
        let anchor = CasAnchor::refresh(&shared);
        let uploads = Table {
            prefix: crate::upload_sessions::PREFIX,
            slots: 16,
        };
        let d = digest(SECRET);
        uploads.record(&shared, anchor, &d, (HASH, Provider::Openai), 5_000, 0);
        let pending = PendingSecret::new(SECRET, &upgrade("realtime"));
        assert_eq!(pending.lookup(&shared, &on(), 1), None);
    }

    #[test]
    fn the_table_stays_within_its_slots() {
        let shared = SharedDataDouble::default();
        let c = on();
        let anchor = CasAnchor::refresh(&shared);
        for n in 0..5_000u64 {
            let d = digest(&format!("ek_flood{n}"));
            record(&shared, anchor, &c, (&d, HASH), 10_000 + n, n);
        }
        let keys = shared
            .keys()
            .iter()
            .filter(|k| k.starts_with(PREFIX))
            .count();
        assert_eq!(keys, 16);
    }

    #[test]
    fn refusals_are_in_openais_shape_and_plain_text_on_a_handshake() {
        let ws = PendingSecret::new(SECRET, &upgrade("realtime"));
        assert_eq!(ws.origin, None, "a handshake gets no CORS headers");
        let r = ws.refuse(Refusal::UnknownSecret);
        assert_eq!(r.reply.status, 401);
        assert_eq!(r.reply.body, b"unknown or expired client secret");
        let post = head(&[
            (":method", "POST"),
            (":path", "/v1/realtime/calls"),
            ("origin", "https://app.example"),
        ]);
        let http = PendingSecret::new(SECRET, &post).refuse(Refusal::UnknownSecret);
        let body: serde_json::Value = serde_json::from_slice(&http.reply.body).unwrap();
        assert_eq!(body["error"]["message"], "unknown or expired client secret");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["code"], "unknown_client_secret");
        assert!(http.reply.headers.contains(&(
            "access-control-allow-origin".into(),
            "https://app.example".into()
        )));
    }

    #[test]
    fn the_plan_keeps_the_secret_and_drops_account_choices() {
        let upstream = ProviderConfig {
            authority: "api.openai.com".into(),
            request_headers: Vec::new(),
            stream_usage: true,
            geo_fallback: None,
        };
        let offer = format!(
            "realtime, openai-insecure-api-key.{SECRET}, openai-organization.org-x, openai-beta.realtime-v1"
        );
        let mut h = upgrade(&offer);
        h = RequestHead::new(
            h.iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .chain([("openai-project".to_string(), "proj_x".to_string())])
                .collect(),
        );
        let plan = secret_plan(&h, &upstream);
        assert_eq!(plan.remove, vec!["openai-project"]);
        assert_eq!(
            plan.set_value("sec-websocket-protocol"),
            Some(
                format!("realtime, openai-insecure-api-key.{SECRET}, openai-beta.realtime-v1")
                    .as_str()
            )
        );
        assert_eq!(plan.set_value(":authority"), Some("api.openai.com"));
        assert_eq!(plan.set_value(":path"), None, "the path goes as sent");
        assert!(plan.set_value("authorization").is_none(), "no key added");
        // The operator's own account headers are set instead of the client's.
        let operator = ProviderConfig {
            authority: "api.openai.com".into(),
            request_headers: vec![("openai-project".into(), "proj_op".into())],
            stream_usage: true,
            geo_fallback: None,
        };
        let plan = secret_plan(&h, &operator);
        assert!(plan.remove.is_empty());
        assert_eq!(plan.set_value("openai-project"), Some("proj_op"));
        // A Bearer use with nothing else to change only gets its host.
        let bare = head(&[
            (":method", "POST"),
            (":path", "/v1/realtime/calls"),
            (":authority", "127.0.0.1:10000"),
            ("authorization", &format!("Bearer {SECRET}")),
        ]);
        let plan = secret_plan(&bare, &upstream);
        assert!(plan.remove.is_empty());
        assert_eq!(
            plan.set,
            vec![(":authority".into(), "api.openai.com".into())]
        );
    }
}
