//! The `providers` object of the plugin configuration: the upstream of each built-in provider
//! (its authority defaults to the registry's) and the OpenAI-compatible providers the operator
//! configures, each on its own path prefix.
//!
//! ```json
//! "providers": {
//!   "openai": {"request_headers": {"openai-organization": "org-…"}},
//!   "selfhosted": {"path_prefix": "/selfhosted/", "authority": "llm.internal:8000"}
//! }
//! ```
//!
//! A configured provider is reached with `Authorization: Bearer` under its path prefix (which
//! is removed on the way up), gets the key the token-service holds under its name, is scoped
//! like the others, and answers in OpenAI's error shape.

use std::collections::BTreeMap;

use ptk_wire::providers::{ProviderFacts, FACTS};
use ptk_wire::Provider;
use serde::Deserialize;

use crate::geo_fallback::GeoFallbackConfig;
use crate::providers::gemini::OPENAI_PREFIX;

/// The upstream of each provider. Envoy routes on its `:authority` (static clusters in
/// `envoy.yaml`, or Istio `ServiceEntry` hosts).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "BTreeMap<String, RawProvider>")]
pub struct ProvidersConfig {
    /// Each built-in provider's upstream, in the registry's order (walked from `FACTS`, so a
    /// new built-in provider needs no field here).
    pub built_in: Vec<(&'static ProviderFacts, ProviderConfig)>,
    /// OpenAI-compatible providers the operator configured, by name.
    pub configured: Vec<ConfiguredProvider>,
}

/// One provider's upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    /// Host (optionally `host:port`) the request is rewritten to.
    pub authority: String,
    /// Headers the operator sets on every forwarded request of this provider (e.g.
    /// `openai-organization`), replacing any the client sent; sorted by name.
    pub request_headers: Vec<(String, String)>,
    /// Ask its streamed Chat Completions for usage (`stream_options.include_usage`) when the
    /// client did not, and remove the usage-only chunk again (`usage::stream_options`).
    /// Default: the registry's `stream_usage` for a built-in provider, false for a configured
    /// one (older OpenAI-compatible servers answer 400 to the field).
    pub stream_usage: bool,
    /// Where a geo-blocked request is replayed (`geo_fallback`; OpenAI only, off by default).
    pub geo_fallback: Option<GeoFallbackConfig>,
}

/// An OpenAI-compatible provider the operator configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredProvider {
    /// The provider (its name, registered with the wire crate so checks can carry it).
    pub provider: Provider,
    /// Requests with `Authorization: Bearer` under this path prefix are for it (`/name/`
    /// form: starts and ends with `/`); the prefix is removed upstream, keeping its last `/`.
    pub path_prefix: String,
    /// Its upstream.
    pub upstream: ProviderConfig,
}

/// What a configured provider's requests go to when the configuration does not name it (never
/// the case for a request identified with this configuration): no authority, refused.
static NO_UPSTREAM: ProviderConfig = ProviderConfig {
    authority: String::new(),
    request_headers: Vec::new(),
    stream_usage: false,
    geo_fallback: None,
};

impl Default for ProvidersConfig {
    fn default() -> Self {
        let upstream = |facts| (facts, RawProvider::default().or_host(facts));
        ProvidersConfig {
            built_in: FACTS.iter().map(upstream).collect(),
            configured: Vec::new(),
        }
    }
}

impl ProvidersConfig {
    /// The upstream of a provider.
    pub fn upstream(&self, provider: Provider) -> &ProviderConfig {
        if let Provider::Configured(_) = provider {
            let configured = self.configured.iter().find(|c| c.provider == provider);
            return configured.map_or(&NO_UPSTREAM, |c| &c.upstream);
        }
        let built_in = self.built_in.iter().find(|(f, _)| f.provider == provider);
        built_in.map_or(&NO_UPSTREAM, |(_, upstream)| upstream)
    }

    /// The configured provider whose path prefix `path` is under.
    pub fn configured_for(&self, path: &str) -> Option<&ConfiguredProvider> {
        self.configured
            .iter()
            .find(|c| path.starts_with(&c.path_prefix))
    }

    /// The path prefix a provider's requests lose upstream (configured providers only).
    pub fn strip_prefix(&self, provider: Provider) -> Option<&str> {
        self.configured
            .iter()
            .find(|c| c.provider == provider)
            .map(|c| c.path_prefix.as_str())
    }
}

/// One provider as written: every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawProvider {
    authority: Option<String>,
    request_headers: BTreeMap<String, String>,
    path_prefix: Option<String>,
    stream_usage: Option<bool>,
    geo_fallback: Option<GeoFallbackConfig>,
}

impl RawProvider {
    /// The provider's config, its authority defaulting to the registry's.
    fn or_host(self, facts: &ProviderFacts) -> ProviderConfig {
        let host = facts.default_authority;
        let registry = crate::providers::spec(facts.provider).is_some_and(|s| s.stream_usage);
        ProviderConfig {
            authority: self.authority.unwrap_or_else(|| host.to_string()),
            request_headers: self.request_headers.into_iter().collect(),
            stream_usage: self.stream_usage.unwrap_or(registry),
            geo_fallback: self.geo_fallback,
        }
    }

    fn configured(self, name: &str) -> Result<ConfiguredProvider, String> {
        let prefix = self.path_prefix.ok_or_else(|| {
            format!("{name}: not a built-in provider, so it needs a path_prefix (and an authority)")
        })?;
        check_prefix(name, &prefix)?;
        if self.geo_fallback.is_some() {
            return Err(format!("{name}.geo_fallback: only openai has one"));
        }
        let authority = self
            .authority
            .ok_or_else(|| format!("{name}: a configured provider needs an authority"))?;
        Ok(ConfiguredProvider {
            provider: ptk_wire::providers::register(name, None)?,
            path_prefix: prefix,
            upstream: ProviderConfig {
                authority,
                request_headers: self.request_headers.into_iter().collect(),
                stream_usage: self.stream_usage.unwrap_or(false),
                geo_fallback: None,
            },
        })
    }
}

/// A prefix starts and ends with `/`, has a segment in between, holds nothing a path
/// normaliser or a query could play with, and does not take a built-in dialect's prefix.
fn check_prefix(name: &str, prefix: &str) -> Result<(), String> {
    let plain = prefix.len() >= 3
        && prefix.len() <= 64
        && prefix.starts_with('/')
        && prefix.ends_with('/')
        && !prefix.contains("//")
        && !prefix.contains("/./")
        && !prefix.contains("/../")
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b));
    if !plain {
        return Err(format!(
            "{name}.path_prefix: must look like \"/name/\" (letters, digits, '-', '_', '.', \
             '~' between slashes), got {prefix:?}"
        ));
    }
    if prefix.starts_with(OPENAI_PREFIX) || OPENAI_PREFIX.starts_with(prefix) {
        return Err(format!(
            "{name}.path_prefix: {prefix:?} overlaps Gemini's {OPENAI_PREFIX:?}"
        ));
    }
    Ok(())
}

/// A configured provider's authority is none of the built-in providers' hosts (as configured
/// or by default; host compared without case or port, as routes match it): its real key would
/// go to that provider, and an operator's copy-paste slip should not cost a key.
fn check_own_host(
    name: &str,
    authority: &str,
    built_in: &[(&ProviderFacts, ProviderConfig)],
) -> Result<(), String> {
    let host = |a: &str| -> String {
        let port = a.rsplit_once(':').filter(|(h, p)| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (!h.contains(':') || h.ends_with(']'))
        });
        port.map_or(a, |(h, _)| h).to_ascii_lowercase()
    };
    let own = host(authority);
    for (facts, config) in built_in {
        let theirs = [facts.default_authority, config.authority.as_str()];
        if theirs.iter().any(|a| host(a) == own) {
            let other = facts.provider.as_str();
            return Err(format!(
                "providers.{name}.authority: {authority:?} is {other}'s host; a configured \
                 provider needs its own"
            ));
        }
    }
    Ok(())
}

impl TryFrom<BTreeMap<String, RawProvider>> for ProvidersConfig {
    type Error = String;

    fn try_from(mut raw: BTreeMap<String, RawProvider>) -> Result<Self, String> {
        let mut take = |facts: &ProviderFacts| -> Result<ProviderConfig, String> {
            let entry = raw.remove(facts.provider.as_str()).unwrap_or_default();
            if entry.geo_fallback.is_some() && facts.provider != Provider::Openai {
                let name = facts.provider.as_str();
                return Err(format!("{name}.geo_fallback: only openai has one"));
            }
            if entry.path_prefix.is_some() {
                let name = facts.provider.as_str();
                return Err(format!(
                    "{name}.path_prefix: only configured providers have one"
                ));
            }
            Ok(entry.or_host(facts))
        };
        let built_in = FACTS
            .iter()
            .map(|facts| Ok((facts, take(facts)?)))
            .collect::<Result<Vec<_>, String>>()?;
        let mut configured: Vec<ConfiguredProvider> = Vec::new();
        for (name, entry) in raw {
            let next = entry.configured(&name)?;
            check_own_host(&name, &next.upstream.authority, &built_in)?;
            let nested = configured.iter().find(|c| {
                c.path_prefix.starts_with(&next.path_prefix)
                    || next.path_prefix.starts_with(&c.path_prefix)
            });
            if let Some(other) = nested {
                let other = other.provider.as_str();
                return Err(format!("{name}.path_prefix: overlaps {other}'s"));
            }
            configured.push(next);
        }
        Ok(ProvidersConfig {
            built_in,
            configured,
        })
    }
}
