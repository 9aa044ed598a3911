//! The request flow as an explicit state machine over plain data:
//! headers -> `Reply | Check(pending)`; check response -> `Forward(plan) | Reply`.
//! The host shim only moves data between Envoy and these functions.

use ptk_wire::{
    CheckRequest, CheckResponse, Lease, Provider, CHECK_PATH, CHECK_SECRET_HEADER, WIRE_VERSION,
    WIRE_VERSION_HEADER,
};
use sha2::{Digest, Sha256};

use crate::client_secrets::PendingSecret;
use crate::config::FilterConfig;
use crate::cors::{decorate, is_preflight, origin_of, preflight_reply};
use crate::dialect::{guess_error_shape, ErrorShape};
use crate::ephemeral::{self, Ephemeral};
use crate::guard;
use crate::key_pool::{self, Chosen};
use crate::models::refusal::ModelRefusal;
use crate::models::{gate, BodyGate, Gate};
use crate::plan::{rewrite_plan_under, RewritePlan};
use crate::refusal::{LocalReply, Refusal};
use crate::request::RequestHead;
use crate::slots::{identify, Identified};
use crate::uploads::{keyless_leg, PendingLeg};
use crate::verdict_cache::{cache_key, CachedVerdict};

/// Lowercase hex SHA-256 of the token's UTF-8 bytes: the only form that leaves Envoy.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// What to do once the request headers are in.
#[derive(Debug)]
pub enum HeadersDecision {
    /// A CORS preflight: answer it, before and without any auth.
    Preflight(LocalReply),
    /// A provider-minted ephemeral credential with pass-through on: route to the provider,
    /// touch no credential. (The final guard has passed: nothing shaped like a generated proxy
    /// token is anywhere in it.)
    Passthrough(RewritePlan),
    /// Answer locally (no token found).
    Reply(Refused),
    /// Ask the token-service, then call [`decide_check_response`].
    Check(PendingCheck),
    /// No token, but a leg of a resumable upload: forward only for a session the proxy
    /// started whose token is still valid (`uploads.rs`).
    UploadLeg(PendingLeg),
    /// An OpenAI Realtime client secret and nothing else (pass-through on): forward it
    /// untouched only if the proxy saw it minted for a token that is still valid
    /// (`client_secrets.rs`).
    ClientSecret(PendingSecret),
}

/// A request waiting on its check callout.
#[derive(Debug, Clone)]
pub struct PendingCheck {
    /// The token, its slot and dialect. Dropped once the request is decided.
    pub identified: Identified,
    /// SHA-256 hex of the token.
    pub hash: String,
    /// Whether the request is a WebSocket handshake (plain-text rejections).
    pub websocket: bool,
    /// The request's `Origin`, for CORS decoration of refusals and responses.
    pub origin: Option<String>,
    /// Where this token's verdict for this provider is cached.
    pub cache_key: String,
    /// Units of an expired lease to hand back on the check.
    pub returned: Option<Lease>,
    /// The unspent rest of the token's grant whose verdict ran out, handed back on the check
    /// (`CheckRequest::releases`).
    pub releases: Vec<ptk_wire::GrantRelease>,
    /// The budget grant id the check in flight proposed (`flow/proposed_grant.rs`).
    pub grant_id: Option<u64>,
}

impl PendingCheck {
    /// The refusal reply in the shape the client expects.
    pub fn refuse(&self, refusal: Refusal) -> Refused {
        refuse(
            refusal,
            self.identified.dialect.error_shape(),
            self.websocket,
            self.origin.as_deref(),
        )
    }

    /// The token's limits applied to this request (fresh check or cached verdict alike):
    /// `Ok(None)` to forward, `Ok(Some(gate))` to forward marked for the hold filter and
    /// decide on the body, or the 403 to answer.
    pub fn gate(
        &self,
        config: &FilterConfig,
        head: &RequestHead,
        limits: Option<&ptk_wire::Limits>,
    ) -> Result<Option<Box<BodyGate>>, Refused> {
        let refuse = |why: ModelRefusal| {
            why.refused(
                self.identified.dialect.error_shape(),
                self.websocket,
                self.origin.as_deref(),
            )
        };
        match gate(limits, config.limits.body_hold, self, head) {
            Gate::Open => Ok(None),
            Gate::Hold(body) => Ok(Some(body)),
            Gate::Refuse(why) => Err(refuse(why)),
        }
    }

    /// The rewrite for an allowed request, with the real key from a check or the cache; or,
    /// when the rewritten request would still carry a proxy token anywhere (the final guard,
    /// [`guard::leaks`]), the 400 refusal to answer instead. Both forward paths (fresh check
    /// and cached verdict) come through here.
    pub fn allow(
        &self,
        config: &FilterConfig,
        head: &RequestHead,
        key: &str,
    ) -> Result<RewritePlan, Refused> {
        let provider = self.identified.provider;
        let upstream = config.upstream(provider);
        if upstream.authority.is_empty() {
            return Err(self.refuse(Refusal::ProviderUnconfigured));
        }
        let strip = config.providers.strip_prefix(provider);
        let plan = rewrite_plan_under(head, &self.identified, key, upstream, strip);
        if guard::leaks(head, &plan, &self.identified.token) {
            return Err(self.refuse(Refusal::TokenInRequest));
        }
        Ok(plan)
    }
}

/// A refusal and the local reply that carries it to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Why (for counters).
    pub refusal: Refusal,
    /// What the client gets.
    pub reply: LocalReply,
}

/// A refusal's reply in `shape` (plain text on a WebSocket handshake), CORS-decorated.
pub(crate) fn refuse(
    refusal: Refusal,
    shape: ErrorShape,
    websocket: bool,
    origin: Option<&str>,
) -> Refused {
    let reply = if websocket {
        refusal.websocket_reply()
    } else {
        decorate(refusal.reply(shape), origin)
    };
    Refused { refusal, reply }
}

/// Step 0 to 2: answer preflights, pass provider ephemeral credentials (when switched on, and
/// the final guard finds no generated proxy token in the request), find the token and hash it.
pub fn decide_headers(config: &FilterConfig, head: &RequestHead) -> HeadersDecision {
    if is_preflight(head) {
        return HeadersDecision::Preflight(preflight_reply(head));
    }
    match ephemeral::pass_through(&config.ephemeral, head) {
        Some(Ephemeral::GeminiLive) => {
            let authority = &config.upstream(Provider::Gemini).authority;
            let plan = RewritePlan {
                remove: Vec::new(),
                set: vec![(":authority".to_string(), authority.clone())],
            };
            // The Google token goes as sent; a generated proxy token anywhere else may not.
            if guard::leaks_relayed(head, &plan) {
                return HeadersDecision::Reply(refuse(
                    Refusal::TokenInRequest,
                    ErrorShape::Gemini,
                    head.is_websocket_upgrade(),
                    origin_of(head).as_deref(),
                ));
            }
            return HeadersDecision::Passthrough(plan);
        }
        Some(Ephemeral::OpenaiClientSecret(secret)) => {
            return HeadersDecision::ClientSecret(PendingSecret::new(&secret, head));
        }
        None => {}
    }
    let websocket = head.is_websocket_upgrade();
    let origin = origin_of(head);
    match identify(head).map(|i| i.under_configured(&config.providers, head.path())) {
        Some(identified) => {
            let hash = token_hash(&identified.token);
            HeadersDecision::Check(PendingCheck {
                cache_key: cache_key(&hash, identified.provider),
                hash,
                identified,
                websocket,
                origin,
                returned: None,
                releases: Vec::new(),
                grant_id: None,
            })
        }
        None => {
            if let Some(leg) = keyless_leg(config, head) {
                return HeadersDecision::UploadLeg(leg);
            }
            let anthropic_version = head.non_empty("anthropic-version").is_some();
            let shape = guess_error_shape(head.path(), anthropic_version);
            HeadersDecision::Reply(refuse(
                Refusal::MissingToken,
                shape,
                websocket,
                origin.as_deref(),
            ))
        }
    }
}

/// Headers of a JSON `POST` to the token-service at `path`, with the shared secret and the
/// wire version (a token-service that does not speak its major answers 400: a 503 here).
pub fn callout_headers(config: &FilterConfig, secret: &str, path: &str) -> Vec<(String, String)> {
    vec![
        (":method".to_string(), "POST".to_string()),
        (":path".to_string(), path.to_string()),
        (
            ":authority".to_string(),
            config.token_service.authority.clone(),
        ),
        ("content-type".to_string(), "application/json".to_string()),
        (CHECK_SECRET_HEADER.to_string(), secret.to_string()),
        (WIRE_VERSION_HEADER.to_string(), WIRE_VERSION.to_string()),
    ]
}

/// A `budget_want` check (a top-up, a renewal, a session's top-up) for `hash`'s `provider`:
/// a grant of at least `want` tokens, giving back `releases`, under the proposed `grant_id`;
/// headers and JSON body for `dispatch_http_call`.
pub fn budget_call(
    config: &FilterConfig,
    secret: &str,
    (hash, provider): (&str, Provider),
    want: u64,
    (releases, grant_id): (Vec<ptk_wire::GrantRelease>, Option<u64>),
) -> (Vec<(String, String)>, Vec<u8>) {
    let request = CheckRequest {
        hash: hash.to_owned(),
        provider,
        returned: None,
        budget_want: Some(want),
        releases,
        grant_id,
    };
    // Serialising plain fields cannot fail; an empty body would be refused upstream anyway.
    let body = serde_json::to_vec(&request).unwrap_or_default();
    (callout_headers(config, secret, CHECK_PATH), body)
}

/// The check callout: headers and JSON body for `dispatch_http_call`.
pub fn check_call(
    config: &FilterConfig,
    secret: &str,
    pending: &PendingCheck,
) -> (Vec<(String, String)>, Vec<u8>) {
    let headers = callout_headers(config, secret, CHECK_PATH);
    let request = CheckRequest {
        hash: pending.hash.clone(),
        provider: pending.identified.provider,
        returned: pending.returned,
        budget_want: None,
        releases: pending.releases.clone(),
        grant_id: pending.grant_id,
    };
    // Serialising plain fields cannot fail; an empty body would be refused upstream anyway.
    let body = serde_json::to_vec(&request).unwrap_or_default();
    (headers, body)
}

/// What to do with the token-service's answer.
#[derive(Debug)]
pub enum CheckDecision {
    /// Rewrite the request with this plan and let Envoy forward it.
    Forward {
        /// The header edits.
        plan: RewritePlan,
        /// The verdict and lease to merge into the cache (`None`: not cacheable).
        cache: Option<CachedVerdict>,
        /// The name of the pool key the request goes with (`None`: a plain key).
        key_id: Option<String>,
        /// The token's model allow-list needs the body: mark the request for the hold
        /// filter and decide on the body.
        hold: Option<Box<BodyGate>>,
        /// The allow's budget grant (`flow/budget.rs` spends it), with the time it counts
        /// from (when the check was sent).
        grant: Option<crate::budget::grants::GrantEntry>,
        /// [`crate::open_streams::limits_tag`] of the allow's limits, cached or not: an open
        /// request is compared with what a revalidation says.
        limits_tag: u64,
    },
    /// The token is allowed, but the request itself is refused (the final guard found a proxy
    /// token that would still go upstream). The verdict and lease are the token's: cache them
    /// as for a forward, but do not remember the refusal for the token.
    Refuse {
        /// The refusal and its reply.
        refused: Refused,
        /// The verdict and lease to merge into the cache (`None`: not cacheable).
        cache: Option<CachedVerdict>,
    },
    /// Answer locally.
    Reply {
        /// The refusal and its reply.
        refused: Refused,
        /// True when the callout itself failed (no answer, non-200, garbage), as opposed to
        /// a deny the token-service gave.
        callout_failed: bool,
    },
}

/// Step 3 and 4: map the callout result to forward-or-reply. `status` is `None` when the
/// callout failed (reset, timeout, no such cluster): 503, never forward. `sent_ms` is the host
/// time the check was sent: the cache entry's TTL runs from there, so a slow answer cannot
/// make a verdict outlive a revocation by more than the TTL. `choose` picks the key from the
/// allow's key or pool (`key_pool::encode`); its refusal (every pool key cooling or refused)
/// answers this request, while the verdict is still cached.
pub fn decide_check_response(
    config: &FilterConfig,
    head: &RequestHead,
    pending: &PendingCheck,
    status: Option<u16>,
    body: Option<&[u8]>,
    sent_ms: u64,
    choose: impl FnOnce(&str) -> Result<Chosen, Refusal>,
) -> CheckDecision {
    let parsed = match (status, body) {
        (Some(200), Some(bytes)) => serde_json::from_slice::<CheckResponse>(bytes).ok(),
        _ => None,
    };
    match parsed {
        Some(CheckResponse::Allow {
            key,
            cache_ttl_ms,
            lease,
            // Every limit `Limits` can hold is enforced here (`Limits` refuses the others): the
            // model allow-list by the gate, a budget grant by the flow (`flow/budget.rs`).
            limits,
            pool,
        }) if !key.is_empty() => {
            let stored = key_pool::encode(&key, &pool);
            let grant = limits
                .as_ref()
                .and_then(|l| l.budget)
                .map(|g| crate::budget::grants::GrantEntry::new(&g, sent_ms));
            let cache = (cache_ttl_ms > 0).then(|| CachedVerdict {
                valid_until_ms: sent_ms.saturating_add(cache_ttl_ms),
                units: lease.map_or(0, |l| l.units),
                window: lease.map_or(0, |l| l.window),
                key: stored.clone(),
                limits: limits.clone(),
            });
            let hold = match pending.gate(config, head, limits.as_ref()) {
                Ok(hold) => hold,
                Err(refused) => return CheckDecision::Refuse { refused, cache },
            };
            let chosen = match choose(&stored) {
                Ok(chosen) => chosen,
                Err(refusal) => {
                    let refused = pending.refuse(refusal);
                    return CheckDecision::Refuse { refused, cache };
                }
            };
            match pending.allow(config, head, &chosen.key) {
                Ok(plan) => CheckDecision::Forward {
                    plan,
                    cache,
                    key_id: chosen.id,
                    hold,
                    grant,
                    limits_tag: crate::open_streams::limits_tag(limits.as_ref()),
                },
                Err(refused) => CheckDecision::Refuse { refused, cache },
            }
        }
        Some(CheckResponse::Deny {
            reason,
            retry_after_s,
            budget,
        }) => CheckDecision::Reply {
            refused: pending.refuse(Refusal::from_deny(reason, retry_after_s, budget)),
            callout_failed: false,
        },
        // Transport failure, non-200, garbage (limits this filter does not know included), or
        // an allow without a key: fail closed.
        _ => CheckDecision::Reply {
            refused: pending.refuse(Refusal::TokenServiceUnavailable),
            callout_failed: true,
        },
    }
}
