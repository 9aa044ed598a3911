//! The plugin configuration: parsed once, strictly, in `on_configure`. A bad config is refused
//! with a message that names the field, so Envoy fails at start instead of at request time.

use ptk_wire::{Provider, MIN_CHECK_SECRET_LEN};
use serde::Deserialize;

use crate::guess_throttle::GuessThrottleConfig;
use crate::header_rules::{check_header_name, check_header_value};
pub use crate::header_rules::{MAX_HEADER_VALUE_LEN, MAX_REQUEST_HEADERS};
use crate::models::LimitsConfig;
use crate::open_streams::StreamsConfig;
pub use crate::provider_config::{ConfiguredProvider, ProviderConfig, ProvidersConfig};
use crate::upload_sessions::UploadsConfig;

/// The whole plugin configuration (Envoy `plugin_config.configuration`, a JSON string).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Schema version of this configuration ([`crate::version::CONFIG_SCHEMA`]); optional,
    /// any other value is refused so a config written for a newer filter fails at start.
    #[serde(default)]
    pub version: Option<u32>,
    /// How to reach the token-service's check API.
    #[serde(default)]
    pub token_service: TokenServiceConfig,
    /// Upstream authority per provider.
    #[serde(default)]
    pub providers: ProvidersConfig,
    /// The verdict cache and its companions.
    #[serde(default)]
    pub cache: CacheConfig,
    /// Throttling of token guessing per client address.
    #[serde(default)]
    pub guess_throttle: GuessThrottleConfig,
    /// Revalidation of open streams (revocation reaching SSE and WebSockets).
    #[serde(default)]
    pub streams: StreamsConfig,
    /// Gemini resumable uploads through the proxy (upload URLs, keyless legs).
    #[serde(default)]
    pub uploads: UploadsConfig,
    /// Provider-minted ephemeral credentials (off by default).
    #[serde(default)]
    pub ephemeral: EphemeralConfig,
    /// Token usage metering (on by default).
    #[serde(default)]
    pub metering: MeteringConfig,
    /// Enforcing the limits of `allow_limited` verdicts (the model allow-list).
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// Token usage read from the responses of metered calls (`usage::classify`) and reported with
/// the activity. Off, no response body is read for it and no request body is held.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeteringConfig {
    /// Meter token usage.
    pub enabled: bool,
    /// Largest request body (bytes, by its `content-length`) held to ask a stream for its
    /// usage; a larger one, or one without `content-length`, is forwarded as it comes (its
    /// stream then carries no usage: recorded incomplete). Held bodies count against Envoy's
    /// buffer limit (`per_connection_buffer_limit_bytes`, 1 MiB by default): keep it below.
    pub max_request_body_bytes: u64,
}

/// Smallest and largest `metering.max_request_body_bytes` accepted.
pub const REQUEST_BODY_BOUNDS: (u64, u64) = (1024, 16 * 1024 * 1024);

impl Default for MeteringConfig {
    fn default() -> Self {
        MeteringConfig {
            enabled: true,
            max_request_body_bytes: 512 * 1024,
        }
    }
}

/// Provider-minted short-lived credentials that the filter may relay untouched.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EphemeralConfig {
    /// Relay provider-minted ephemeral credentials untouched, never swapped for the real key:
    /// a Gemini Live handshake whose every credential is a Google ephemeral token
    /// (`auth_tokens/…`), without a check (the proxy cannot tell who minted it), and an OpenAI
    /// Realtime client secret (`ek_…`) only if the proxy saw it minted for a proxy token that is
    /// still valid. Off by default: a secret stays valid at the provider until it expires,
    /// whatever happens to the token it was minted with.
    pub pass_through: bool,
    /// Shared-data slots of the table of OpenAI client secrets minted through the proxy (the
    /// bound on secrets usable at once).
    pub slots: u32,
    /// Longest time (ms) a minted client secret is accepted, whatever its `expires_at` says.
    pub max_ttl_ms: u64,
}

impl Default for EphemeralConfig {
    fn default() -> Self {
        EphemeralConfig {
            pass_through: false,
            slots: 4096,
            max_ttl_ms: 7_200_000,
        }
    }
}

/// Shortest `ephemeral.max_ttl_ms` accepted (one minute, OpenAI's old fixed lifetime).
pub const MIN_SECRET_TTL_MS: u64 = 60_000;
/// Longest `ephemeral.max_ttl_ms` accepted (one day; OpenAI mints secrets for two hours at most).
pub const MAX_SECRET_TTL_MS: u64 = 86_400_000;

impl EphemeralConfig {
    /// Checks the bounds; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        use crate::bound_table::{MAX_SLOTS, MIN_SLOTS};
        if !(MIN_SLOTS..=MAX_SLOTS).contains(&self.slots) {
            return Err(format!(
                "ephemeral.slots: must be {MIN_SLOTS}..={MAX_SLOTS}, got {}",
                self.slots
            ));
        }
        if !(MIN_SECRET_TTL_MS..=MAX_SECRET_TTL_MS).contains(&self.max_ttl_ms) {
            return Err(format!(
                "ephemeral.max_ttl_ms: must be {MIN_SECRET_TTL_MS}..={MAX_SECRET_TTL_MS}, got {}",
                self.max_ttl_ms
            ));
        }
        Ok(())
    }
}

/// Caching of verdicts (TTL and leases come from the token-service; this only switches it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Reuse allow-verdicts and spend rate-limit leases from shared data.
    pub enabled: bool,
    /// How long (ms) each worker remembers an invalid/expired/out-of-scope verdict; 0 = never.
    pub deny_ttl_ms: u64,
    /// At most this many remembered refusals per worker (cleared when full).
    pub deny_entries: usize,
    /// How often (ms) each worker sends its batched activity (request counts) to the
    /// token-service; also the tick that revalidates open streams. `usage_flush_ms`, its name
    /// until 0.1, is still read.
    #[serde(alias = "usage_flush_ms")]
    pub activity_flush_ms: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            deny_ttl_ms: 1000,
            deny_entries: 4096,
            activity_flush_ms: 1000,
        }
    }
}

/// The token-service cluster and callout settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenServiceConfig {
    /// Envoy cluster name of the token-service.
    pub cluster: String,
    /// `:authority` sent on the check callout.
    pub authority: String,
    /// Callout timeout in milliseconds; on timeout the request gets 503 and is not forwarded.
    pub timeout_ms: u64,
    /// Name of the VM environment variable holding the check secret (Envoy `vm_config`
    /// `environment_variables`), so the secret stays out of the plugin config.
    pub secret_env: String,
    /// How often a check that got no verdict (no response, timeout, 5xx) is sent again, to
    /// whichever replica the cluster's load balancer picks: 0 or 1 (`retry::MAX_RETRIES`).
    /// A deny, a 4xx or any 200 is never retried.
    pub retries: u8,
}

impl Default for TokenServiceConfig {
    fn default() -> Self {
        TokenServiceConfig {
            cluster: "token_service".to_string(),
            authority: "token-service".to_string(),
            timeout_ms: 1000,
            secret_env: ptk_wire::CHECK_SECRET_VAR.to_string(),
            retries: 1,
        }
    }
}

/// Longest callout timeout accepted; anything longer would hold client requests hostage.
pub const MAX_TIMEOUT_MS: u64 = 60_000;

/// Longest guess-throttle window accepted (one hour).
pub const MAX_THROTTLE_WINDOW_MS: u64 = 3_600_000;

/// Most client addresses a worker may be told to track (about 200 bytes each).
pub const MAX_THROTTLE_ADDRESSES: usize = 1_000_000;

/// Longest time an open stream may go without revalidation (one day).
pub const MAX_STREAM_GRACE_MS: u64 = 86_400_000;

impl FilterConfig {
    /// Parses and validates the configuration bytes; empty bytes give the defaults.
    pub fn parse(bytes: &[u8]) -> Result<FilterConfig, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "configuration is not UTF-8")?;
        let text = if text.trim().is_empty() { "{}" } else { text };
        // The path to the offending field leads the message (`ephemeral.pass_through: …`).
        let mut json = serde_json::Deserializer::from_str(text);
        let config: FilterConfig =
            serde_path_to_error::deserialize(&mut json).map_err(|e| {
                match e.path().to_string() {
                    path if path == "." => format!("configuration: {}", e.inner()),
                    path => format!("configuration: {path}: {}", e.inner()),
                }
            })?;
        json.end().map_err(|e| format!("configuration: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        crate::version::check_config_schema(self.version)?;
        let ts = &self.token_service;
        if ts.timeout_ms == 0 || ts.timeout_ms > MAX_TIMEOUT_MS {
            return Err(format!(
                "token_service.timeout_ms: must be 1..={MAX_TIMEOUT_MS}, got {}",
                ts.timeout_ms
            ));
        }
        if ts.retries > crate::retry::MAX_RETRIES {
            return Err(format!(
                "token_service.retries: must be 0..={}, got {}",
                crate::retry::MAX_RETRIES,
                ts.retries
            ));
        }
        let flush = self.cache.activity_flush_ms;
        if !(100..=60_000).contains(&flush) {
            return Err(format!(
                "cache.activity_flush_ms: must be 100..=60000, got {flush}"
            ));
        }
        if self.cache.deny_ttl_ms > MAX_TIMEOUT_MS {
            return Err(format!(
                "cache.deny_ttl_ms: must be at most {MAX_TIMEOUT_MS}, got {}",
                self.cache.deny_ttl_ms
            ));
        }
        let throttle = &self.guess_throttle;
        if !(1_000..=MAX_THROTTLE_WINDOW_MS).contains(&throttle.window_ms) {
            return Err(format!(
                "guess_throttle.window_ms: must be 1000..={MAX_THROTTLE_WINDOW_MS}, got {}",
                throttle.window_ms
            ));
        }
        if throttle.max_refusals == 0 {
            return Err("guess_throttle.max_refusals: must be at least 1".to_string());
        }
        if throttle.addresses > MAX_THROTTLE_ADDRESSES {
            return Err(format!(
                "guess_throttle.addresses: must be at most {MAX_THROTTLE_ADDRESSES}, got {}",
                throttle.addresses
            ));
        }
        let grace = self.streams.grace_ms;
        if !(1_000..=MAX_STREAM_GRACE_MS).contains(&grace) {
            return Err(format!(
                "streams.grace_ms: must be 1000..={MAX_STREAM_GRACE_MS}, got {grace}"
            ));
        }
        self.uploads.validate()?;
        self.ephemeral.validate()?;
        let (low, high) = REQUEST_BODY_BOUNDS;
        let held = self.metering.max_request_body_bytes;
        if !(low..=high).contains(&held) {
            return Err(format!(
                "metering.max_request_body_bytes: must be {low}..={high}, got {held}"
            ));
        }
        check_name("token_service.cluster", &ts.cluster)?;
        check_name("token_service.authority", &ts.authority)?;
        check_name("token_service.secret_env", &ts.secret_env)?;
        let configured = self.providers.configured.iter().map(|c| c.provider);
        for provider in Provider::ALL.into_iter().chain(configured) {
            let upstream = self.upstream(provider);
            let field = format!("providers.{}.authority", provider.as_str());
            check_name(&field, &upstream.authority)?;
            let field = format!("providers.{}.request_headers", provider.as_str());
            if upstream.request_headers.len() > MAX_REQUEST_HEADERS {
                return Err(format!("{field}: at most {MAX_REQUEST_HEADERS} headers"));
            }
            if let Some(geo) = &upstream.geo_fallback {
                let field = format!("providers.{}.geo_fallback", provider.as_str());
                check_name(&format!("{field}.cluster"), &geo.cluster)?;
                if let Some(authority) = &geo.authority {
                    check_name(&format!("{field}.authority"), authority)?;
                }
                geo.validate(&field)?;
            }
            for (name, value) in &upstream.request_headers {
                let field = format!("{field}[{name:?}]");
                check_header_name(&field, name)?;
                check_header_value(&field, value)?;
            }
        }
        Ok(())
    }

    /// The upstream configuration of a coarse provider (one with an empty authority for a
    /// configured provider this configuration does not name: the pipeline refuses it).
    pub fn upstream(&self, provider: Provider) -> &ProviderConfig {
        self.providers.upstream(provider)
    }
}

fn check_name(field: &str, value: &str) -> Result<(), String> {
    let bad = value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == '?' || c == '#');
    if bad {
        return Err(format!(
            "{field}: must be a non-empty name without spaces, '/', '?' or '#', got {value:?}"
        ));
    }
    Ok(())
}

/// The check secret that authenticates the filter to the token-service. Its `Debug` never
/// prints it (it unlocks real provider keys).
#[derive(Clone, PartialEq, Eq)]
pub struct CheckSecret(String);

impl CheckSecret {
    /// The secret itself, for the one header that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for CheckSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckSecret([redacted])")
    }
}

/// Validates the check secret read from the VM environment.
pub fn validate_secret(env_name: &str, secret: Option<&str>) -> Result<CheckSecret, String> {
    match secret {
        Some(s) if s.len() >= MIN_CHECK_SECRET_LEN => Ok(CheckSecret(s.to_string())),
        Some(_) => Err(format!(
            "{env_name}: the check secret must be at least {MIN_CHECK_SECRET_LEN} characters"
        )),
        None => Err(format!(
            "{env_name}: not set in the VM environment (vm_config.environment_variables)"
        )),
    }
}
