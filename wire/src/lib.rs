//! The wire contract between the Envoy filter and the token-service's check API.
//!
//! The filter sends `POST /v1/check` to the token-service cluster with the shared secret in
//! [`CHECK_SECRET_HEADER`] and a JSON [`CheckRequest`]; the token-service answers `200` with a
//! JSON [`CheckResponse`]. Any other status, or a body that does not parse, is a transport
//! failure for the filter (503, never forward).
//!
//! This crate is serde-only so it compiles for `wasm32-wasip1`; both sides round-trip the JSON
//! fixtures under `fixtures/` in their tests, so neither can drift from the other.
//!
//! **Compatibility rule** (rolling upgrades, `docs/wire-protocol.md`): every message ignores
//! fields it does not know, so either side may be upgraded first and an older reader simply
//! drops what a newer writer added. What is closed is the set of *meanings*: an unknown
//! `verdict` or deny `reason` does not parse, so the filter fails closed (503, never forward).
//! A new field may therefore only carry information an older reader can safely ignore; anything
//! that narrows what an allow permits must come as a new verdict, which older filters refuse.

use serde::{Deserialize, Serialize};

mod budget;
mod key_pool;
pub mod providers;
mod revalidate;
mod token_shape;
pub mod usage;
mod version;
pub use budget::{BudgetDenial, BudgetGrant, BudgetKind, BudgetPeriod, BudgetScope, GrantRelease};
pub use key_pool::{KeyEvent, KeyEventKind, PoolKey};
pub use revalidate::{
    RevalidateEntry, RevalidateRequest, RevalidateResponse, Revalidation, MAX_REVALIDATE_ENTRIES,
    REVALIDATE_PATH,
};
pub use token_shape::{has_generated_shape, TOKEN_BODY_LEN, TOKEN_PREFIX};
pub use usage::{TokenUsage, UsageApi, UsageEntry};
pub use version::{
    wire_compatible, wire_major, UNSUPPORTED_WIRE_VERSION, WIRE_MAJOR, WIRE_VERSION,
    WIRE_VERSION_HEADER,
};

/// Path of the check endpoint on the token-service.
pub const CHECK_PATH: &str = "/v1/check";

/// Header carrying the shared secret that authenticates the filter to the check API.
pub const CHECK_SECRET_HEADER: &str = "x-ptk-check-secret";

/// Environment variable holding the check secret: the token-service reads it, and it is the
/// default of the filter's `token_service.secret_env` (the VM environment variable the filter
/// reads the secret from). The only definition; Python tools keep a copy a test pins to it.
pub const CHECK_SECRET_VAR: &str = "PTK_CHECK_SECRET";

/// Shortest check secret either side accepts. The token-service counts characters and the
/// filter bytes (never fewer), so a secret the token-service accepts, the filter accepts.
pub const MIN_CHECK_SECRET_LEN: usize = 16;

/// A provider as the token-service sees it: the "coarse" provider that scopes, real keys and
/// upstream hosts are keyed by (Gemini's OpenAI-compatible endpoint is `Gemini` here).
///
/// On the wire it is its lowercase name. A name parses only when this process knows it: a
/// built-in one, or one the operator configured ([`providers::register`]); anything else is
/// refused, so an unknown provider still fails closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// api.openai.com
    Openai,
    /// api.anthropic.com
    Anthropic,
    /// generativelanguage.googleapis.com (native and OpenAI-compatible endpoints)
    Gemini,
    /// An OpenAI-compatible provider the operator configured, by its registered name.
    Configured(&'static str),
}

impl Serialize for Provider {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Provider {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Provider::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown provider {name:?}")))
    }
}

impl Provider {
    /// Every built-in provider, in a stable order.
    pub const ALL: [Provider; 3] = [Provider::Openai, Provider::Anthropic, Provider::Gemini];

    /// The lowercase name used on the wire, in scopes and in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
            Provider::Configured(name) => name,
        }
    }

    /// Parses the lowercase name of a built-in or registered provider; `None` for anything
    /// else.
    pub fn parse(name: &str) -> Option<Provider> {
        Provider::ALL
            .into_iter()
            .find(|p| p.as_str() == name)
            .or_else(|| providers::registered(name))
    }
}

/// Path of the activity endpoint: batched request counts (and so last-used stamps) from the
/// filter. "Activity", not "usage" (the providers' token counts, which metering adds), except
/// in this path: `/v1/usage` is its wire-1.0 spelling, frozen like `"reason":"scope"` (an
/// older token-service knows only it, and mesh policies list it).
pub const ACTIVITY_PATH: &str = "/v1/usage";

/// What the filter asks: may the token with this hash call this provider now?
///
/// Unknown fields are ignored (a newer filter may send more than this service knows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRequest {
    /// Lowercase hex SHA-256 of the full token string (64 chars). The plaintext never travels.
    pub hash: String,
    /// The coarse provider the request is for.
    pub provider: Provider,
    /// Units of an earlier lease for this hash that expired unspent, handed back so a token
    /// with sparse traffic is not charged for requests it never made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returned: Option<Lease>,
    /// Tokens the request at hand is estimated to need, when the filter asks for a budget
    /// grant after reading the body (its cached grant ran short): the grant is at least this,
    /// or the answer is `budget_exhausted`. Absent at the headers, where nothing is estimated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_want: Option<u64>,
    /// Unspent tokens of grants the filter held for this token and gives back before this
    /// check is decided (wire 1.2, optional): the rest of a grant whose verdict ran out (the
    /// check's own grant replaces it). Released before admission, so a token's own grant that
    /// nothing will spend never counts against its next one. Never sent again on a retry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub releases: Vec<GrantRelease>,
    /// The id the filter proposes for the budget grant this check may reserve (wire 1.2,
    /// random in 1..2^52): the token-service reserves under it, or answers `store_unavailable`
    /// when a live grant has it. Knowing the id before the answer, the filter can release a
    /// grant whose answer never reached a request (reset, callout failure, retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<u64>,
}

/// A slice of a token's rate-limit window budget that the filter may spend locally, without
/// asking again, while the verdict it came with is cached. The token-service counts leased
/// units as used when it grants them, so the limit holds however the units are spread over
/// Envoy workers and Envoys. Unknown fields are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Requests that may be allowed locally.
    pub units: u32,
    /// The rate-limit window the units belong to (returned units only count in it).
    pub window: u64,
}

/// The token-service's answer. Its `Debug` never prints the real key.
///
/// Unknown fields are ignored, so a newer token-service never turns an older filter's allow
/// into a 503; an unknown `verdict` (or deny `reason`) still fails to parse, and the filter
/// fails closed.
///
/// An allow that carries [`Limits`] travels as `"verdict":"allow_limited"` (wire 1.1): limits
/// narrow what the allow permits, so a filter that cannot enforce them must not read them as a
/// plain allow. A 1.0 filter does not know that verdict and fails closed (503); a newer one
/// refuses limits it does not know (`Limits` is a closed set). Without limits the answer stays
/// `"verdict":"allow"`, which every filter reads.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "WireResponse", into = "WireResponse")]
pub enum CheckResponse {
    /// Forward the request with this real key.
    Allow {
        /// The real provider key to put upstream. Never logged by either side.
        key: String,
        /// How long (ms) the filter may reuse this verdict for the same hash and provider.
        /// Never past the token's expiry; 0 means "do not cache".
        cache_ttl_ms: u64,
        /// Extra requests the filter may allow locally while the verdict is cached.
        lease: Option<Lease>,
        /// What the allow is narrowed to (`None`: nothing beyond the token's scopes and rate
        /// limit). Sent as `allow_limited`.
        limits: Option<Limits>,
        /// The provider key pool the filter rotates over (wire 1.2; empty: use `key` alone).
        /// `key` is its first healthy key, so a filter that ignores the pool still works.
        pool: Vec<PoolKey>,
    },
    /// Refuse the request locally.
    Deny {
        /// Why; the filter maps it to the status and message the client sees.
        reason: DenyReason,
        /// For `rate_limited`: seconds until the client may retry.
        retry_after_s: Option<u64>,
        /// For `budget_exhausted`: which budget, and when it resets.
        budget: Option<BudgetDenial>,
    },
}

/// What an `allow_limited` verdict narrows the allow to. A closed set: a field this build does
/// not know fails the whole verdict (fail closed), because ignoring a limit would widen the
/// allow. Every field is optional; an absent one does not limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Model names the token may call: exact names, or patterns with `*` matching any run of
    /// characters (`gpt-5*`). Compared with the model the request names (body `model`, the
    /// Gemini path, a WebSocket handshake's `?model=`); a request naming another model, or
    /// none where one is required, is refused with 403 before anything is forwarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// The token has a budget (its own or its group's): requests may only be forwarded while
    /// their estimates fit in this grant (wire 1.2; see [`BudgetGrant`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetGrant>,
}

/// [`CheckResponse`] as it is spelled on the wire.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
enum WireResponse {
    Allow {
        key: String,
        cache_ttl_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lease: Option<Lease>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pool: Vec<PoolKey>,
    },
    AllowLimited {
        key: String,
        cache_ttl_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lease: Option<Lease>,
        limits: Limits,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pool: Vec<PoolKey>,
    },
    Deny {
        reason: DenyReason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_s: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        budget: Option<BudgetDenial>,
    },
}

impl From<WireResponse> for CheckResponse {
    fn from(wire: WireResponse) -> Self {
        match wire {
            WireResponse::Allow {
                key,
                cache_ttl_ms,
                lease,
                pool,
            } => CheckResponse::Allow {
                key,
                cache_ttl_ms,
                lease,
                limits: None,
                pool,
            },
            WireResponse::AllowLimited {
                key,
                cache_ttl_ms,
                lease,
                limits,
                pool,
            } => CheckResponse::Allow {
                key,
                cache_ttl_ms,
                lease,
                limits: Some(limits),
                pool,
            },
            WireResponse::Deny {
                reason,
                retry_after_s,
                budget,
            } => CheckResponse::Deny {
                reason,
                retry_after_s,
                budget,
            },
        }
    }
}

impl From<CheckResponse> for WireResponse {
    fn from(response: CheckResponse) -> Self {
        match response {
            CheckResponse::Allow {
                key,
                cache_ttl_ms,
                lease,
                limits: None,
                pool,
            } => WireResponse::Allow {
                key,
                cache_ttl_ms,
                lease,
                pool,
            },
            CheckResponse::Allow {
                key,
                cache_ttl_ms,
                lease,
                limits: Some(limits),
                pool,
            } => WireResponse::AllowLimited {
                key,
                cache_ttl_ms,
                lease,
                limits,
                pool,
            },
            CheckResponse::Deny {
                reason,
                retry_after_s,
                budget,
            } => WireResponse::Deny {
                reason,
                retry_after_s,
                budget,
            },
        }
    }
}

impl std::fmt::Debug for CheckResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckResponse::Allow {
                cache_ttl_ms,
                lease,
                limits,
                pool,
                ..
            } => f
                .debug_struct("Allow")
                .field("key", &"[redacted]")
                .field("cache_ttl_ms", cache_ttl_ms)
                .field("lease", lease)
                .field("limits", limits)
                .field("pool", pool)
                .finish(),
            CheckResponse::Deny {
                reason,
                retry_after_s,
                budget,
            } => f
                .debug_struct("Deny")
                .field("reason", reason)
                .field("retry_after_s", retry_after_s)
                .field("budget", budget)
                .finish(),
        }
    }
}

/// Batched activity from one Envoy worker: requests it allowed from cached verdicts, which the
/// token-service never saw, so `lastUsed` and request counts stay true. Unknown fields are
/// ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityReport {
    /// One entry per token hash.
    pub entries: Vec<ActivityEntry>,
    /// Token usage metered from responses since the last report (absent from a filter that
    /// does not meter; an older token-service ignores it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_usage: Vec<usage::UsageEntry>,
    /// What providers said of pool keys since the last report (wire 1.2; an older
    /// token-service ignores it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_events: Vec<KeyEvent>,
    /// Budget grant tokens released since the last report (wire 1.2; see [`GrantRelease`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_releases: Vec<GrantRelease>,
}

/// Requests one token made through one worker since its last report. Unknown fields are
/// ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityEntry {
    /// Token hash.
    pub hash: String,
    /// Requests allowed from the cache.
    pub count: u64,
}

/// Why a request is refused. The filter owns the status codes and messages (one table, in
/// `ptk-filter-core`), so the client-facing text cannot drift between services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyReason {
    /// Unknown hash, disabled token, or an unparseable expiry (fails closed): 401.
    Invalid,
    /// The token's expiry is at or before now: 401 with a distinct message.
    Expired,
    /// The provider is not in the token's scopes: 403 `provider_not_allowed`. Spelled
    /// `scope` on the wire (wire 1.0; an older filter refuses any other spelling).
    #[serde(rename = "scope")]
    ProviderNotAllowed,
    /// The token is over its rate limit: 429 with `Retry-After`.
    RateLimited,
    /// The token store could not be read: 503.
    StoreUnavailable,
    /// The operator has not configured a real key for this provider: 503.
    ProviderUnconfigured,
    /// A budget of the token or its group has no room for the request (wire 1.2): 429 in the
    /// provider's shape naming the budget and its reset, `Retry-After` when it is within a
    /// day. Older filters do not know this reason and fail closed (503).
    BudgetExhausted,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn fixtures_round_trip() {
        for name in [
            "check_request.json",
            "check_request_returning.json",
            "allow.json",
            "allow_lease.json",
            "allow_limited.json",
            "allow_pool.json",
            "deny_invalid.json",
            "deny_rate_limited.json",
            "usage.json",
            "usage_with_token_usage.json",
            "usage_with_key_events.json",
            "deny_budget_exhausted.json",
            "allow_budgeted.json",
            "check_request_budget_want.json",
            "check_request_grant_id.json",
            "usage_with_grant_releases.json",
        ] {
            let text = fixture(name);
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            let back = if name.starts_with("usage") {
                let parsed: ActivityReport = serde_json::from_str(&text).unwrap();
                serde_json::to_value(parsed).unwrap()
            } else if name.starts_with("check_request") {
                let parsed: CheckRequest = serde_json::from_str(&text).unwrap();
                serde_json::to_value(parsed).unwrap()
            } else {
                let parsed: CheckResponse = serde_json::from_str(&text).unwrap();
                serde_json::to_value(parsed).unwrap()
            };
            assert_eq!(value, back, "{name} does not round-trip");
        }
    }

    #[test]
    fn revalidation_fixtures_round_trip() {
        let request = fixture("revalidate_request.json");
        let parsed: RevalidateRequest = serde_json::from_str(&request).unwrap();
        let value: serde_json::Value = serde_json::from_str(&request).unwrap();
        assert_eq!(serde_json::to_value(parsed).unwrap(), value);
        let response = fixture("revalidate_response.json");
        let parsed: RevalidateResponse = serde_json::from_str(&response).unwrap();
        let value: serde_json::Value = serde_json::from_str(&response).unwrap();
        assert_eq!(serde_json::to_value(parsed).unwrap(), value);
    }

    /// Parses `newer` (a fixture with fields this version does not know) and `base` (the same
    /// message without them) as `T`: they must be the same value.
    fn same_as<T: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(
        newer: &str,
        base: &str,
    ) {
        let newer_value: T = serde_json::from_str(&fixture(newer))
            .unwrap_or_else(|e| panic!("{newer} does not parse: {e}"));
        let base_value: T = serde_json::from_str(&fixture(base)).unwrap();
        assert_eq!(newer_value, base_value, "{newer}");
    }

    #[test]
    fn unknown_fields_are_ignored_in_both_directions() {
        // A newer token-service's answers (extra fields at the top and inside the lease).
        same_as::<CheckResponse>("newer_allow_lease.json", "allow_lease.json");
        same_as::<CheckResponse>("newer_deny_invalid.json", "deny_invalid.json");
        // A newer filter's messages (extra fields at the top, in `returned`, in entries).
        same_as::<CheckRequest>(
            "newer_check_request_returning.json",
            "check_request_returning.json",
        );
        same_as::<ActivityReport>("newer_usage.json", "usage.json");
        let extra = r#"{"verdict":"allow","key":"k","cache_ttl_ms":1,"admin":true}"#;
        assert!(matches!(
            serde_json::from_str::<CheckResponse>(extra),
            Ok(CheckResponse::Allow { .. })
        ));
    }

    #[test]
    fn an_unknown_usage_api_reads_as_other_and_keeps_the_report() {
        let text = fixture("usage_with_token_usage.json").replace("chat_completions", "batch");
        let report: ActivityReport = serde_json::from_str(&text).unwrap();
        assert_eq!(report.token_usage[0].api, UsageApi::Other);
        assert_eq!(report.entries.len(), 1);
    }

    #[test]
    fn unknown_verdicts_and_reasons_are_still_refused() {
        // The set of meanings is closed: the filter must fail closed on what it cannot read.
        for odd in [
            r#"{"verdict":"maybe"}"#,
            r#"{"verdict":"maybe","key":"k","cache_ttl_ms":1}"#,
            r#"{"verdict":"Allow","key":"k","cache_ttl_ms":1}"#,
            r#"{"key":"k","cache_ttl_ms":1}"#,
            r#"{"verdict":"deny","reason":"because"}"#,
            r#"{"verdict":"deny"}"#,
            r#"{"verdict":"allow","cache_ttl_ms":1}"#,
        ] {
            assert!(
                serde_json::from_str::<CheckResponse>(odd).is_err(),
                "{odd} parsed"
            );
        }
    }

    #[test]
    fn limits_travel_only_as_allow_limited_and_are_a_closed_set() {
        let limited: CheckResponse = serde_json::from_str(&fixture("allow_limited.json")).unwrap();
        let CheckResponse::Allow { limits, .. } = &limited else {
            panic!("{limited:?}")
        };
        assert_eq!(
            limits.as_ref().and_then(|l| l.models.clone()),
            Some(vec!["gpt-5*".to_owned(), "gpt-4o-mini".to_owned()])
        );
        // An allow never carries limits, even if a field of that name turns up in one.
        let plain = r#"{"verdict":"allow","key":"k","cache_ttl_ms":1,"limits":{"models":["x"]}}"#;
        assert!(matches!(
            serde_json::from_str::<CheckResponse>(plain),
            Ok(CheckResponse::Allow { limits: None, .. })
        ));
        // A limit this build does not know widens nothing: the verdict does not parse.
        let unknown = r#"{"verdict":"allow_limited","key":"k","cache_ttl_ms":1,"limits":{"models":["x"],"spend_cap":1}}"#;
        assert!(serde_json::from_str::<CheckResponse>(unknown).is_err());
        let missing = r#"{"verdict":"allow_limited","key":"k","cache_ttl_ms":1}"#;
        assert!(serde_json::from_str::<CheckResponse>(missing).is_err());
        // Unknown fields outside `limits` are still tolerated.
        let extra = r#"{"verdict":"allow_limited","key":"k","cache_ttl_ms":1,"limits":{},"x":1}"#;
        assert!(serde_json::from_str::<CheckResponse>(extra).is_ok());
    }

    #[test]
    fn a_pool_is_information_an_older_filter_may_drop() {
        let pooled: CheckResponse = serde_json::from_str(&fixture("allow_pool.json")).unwrap();
        let CheckResponse::Allow { key, pool, .. } = &pooled else {
            panic!("{pooled:?}")
        };
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.first().map(|k| &k.key), Some(key));
        // Without the pool it is the same allow with the first key (an older filter's view).
        let plain: CheckResponse = serde_json::from_str(
            r#"{"verdict":"allow","key":"sk-real-fixture-key-a1b2","cache_ttl_ms":1000,"lease":{"units":24,"window":1764326400123}}"#,
        )
        .unwrap();
        let CheckResponse::Allow { pool, .. } = plain else {
            panic!()
        };
        assert!(pool.is_empty());
        let odd = fixture("usage_with_key_events.json").replace("rate_limited", "melted");
        let report: ActivityReport = serde_json::from_str(&odd).unwrap();
        assert_eq!(report.key_events[1].event, KeyEventKind::Other);
        assert_eq!(report.key_events[1].cooling_ms, Some(2000));
        assert_eq!(
            report.key_events[0].cooling_ms, None,
            "absent: an older filter"
        );
    }

    #[test]
    fn budget_fixtures_carry_the_grant_the_denial_and_the_settlement() {
        let allow: CheckResponse = serde_json::from_str(&fixture("allow_budgeted.json")).unwrap();
        let CheckResponse::Allow { limits, .. } = &allow else {
            panic!("{allow:?}")
        };
        let grant = limits.as_ref().and_then(|l| l.budget).unwrap();
        assert_eq!(
            (grant.id, grant.tokens, grant.expires_in_ms),
            (77, 25_000, 1000)
        );
        let deny: CheckResponse =
            serde_json::from_str(&fixture("deny_budget_exhausted.json")).unwrap();
        let CheckResponse::Deny {
            reason: DenyReason::BudgetExhausted,
            retry_after_s: Some(3600),
            budget: Some(budget),
        } = deny
        else {
            panic!("{deny:?}")
        };
        assert_eq!(
            (budget.scope, budget.kind, budget.period),
            (BudgetScope::Group, BudgetKind::Cost, BudgetPeriod::Day)
        );
        let report: ActivityReport =
            serde_json::from_str(&fixture("usage_with_grant_releases.json")).unwrap();
        assert_eq!(report.token_usage[0].shortfall_tokens, 700);
        assert_eq!(
            report.grant_releases,
            vec![GrantRelease {
                grant: 77,
                tokens: 2500
            }]
        );
        // A 1.1 filter's report (no shortfall, no releases) still reads.
        let old: ActivityReport =
            serde_json::from_str(&fixture("usage_with_token_usage.json")).unwrap();
        assert!(old.grant_releases.is_empty() && old.token_usage[0].shortfall_tokens == 0);
    }

    #[test]
    fn debug_never_prints_the_key() {
        let allow = CheckResponse::Allow {
            key: "sk-secret-value".into(),
            cache_ttl_ms: 5,
            lease: None,
            limits: None,
            pool: vec![PoolKey {
                id: "primary".into(),
                key: "sk-pool-secret".into(),
            }],
        };
        let shown = format!("{allow:?}");
        assert!(!shown.contains("sk-secret-value"), "{shown}");
        assert!(!shown.contains("sk-pool-secret"), "{shown}");
        assert!(shown.contains("primary"), "{shown}");
    }

    /// The copies outside Rust: the deploy tests' minimum length, the README's settings row.
    #[test]
    fn check_secret_copies_match_the_definition() {
        let repo = format!("{}/..", env!("CARGO_MANIFEST_DIR"));
        let read = |path: &str| {
            std::fs::read_to_string(format!("{repo}/{path}"))
                .unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        let python = read("tests/deploy/test_istio_manifests.py");
        let copies: Vec<&str> = python
            .lines()
            .filter_map(|l| l.strip_prefix("MIN_SECRET_LEN = "))
            .collect();
        assert_eq!(copies, [MIN_CHECK_SECRET_LEN.to_string()]);
        let readme = read("README.md");
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{CHECK_SECRET_VAR}` |")))
            .expect("the README's settings table has a row for the check secret");
        assert!(
            row.contains(&format!("{MIN_CHECK_SECRET_LEN}+ chars")),
            "{row}"
        );
    }

    #[test]
    fn provider_names_parse_and_print() {
        for p in Provider::ALL {
            assert_eq!(Provider::parse(p.as_str()), Some(p));
        }
        assert_eq!(Provider::parse("OpenAI"), None);
        assert_eq!(Provider::parse("gemini-openai"), None);
    }
}
