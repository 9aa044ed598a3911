//! The provider facts both sides read: one entry per provider with its name, how people spell
//! it, the default upstream host, the environment variable (and keys-file name) of its real key,
//! and the client entry points the dashboard's snippets show.
//!
//! The filter's per-provider modules (`ptk-filter-core` `providers/`) add what only the filter
//! needs (slot rules, credential placement, error shapes, path prefixes, browser headers,
//! ephemeral credentials) and embed these facts; the token-service reads only this table.
//! It lives here because this is the one crate both sides depend on; it is plain `const`
//! data, so the crate stays serde-only and compiles for wasm.

use std::sync::Mutex;

use crate::Provider;

/// What both the filter and the token-service know about a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderFacts {
    /// The provider (its lowercase name is the wire, scope and configuration name).
    pub provider: Provider,
    /// The name people write ("OpenAI"), for the dashboard.
    pub title: &'static str,
    /// Upstream `:authority` when the plugin config names none.
    pub default_authority: &'static str,
    /// Environment variable (and keys-file name) of the operator's real key.
    pub key_env: &'static str,
    /// The client entry points a dashboard snippet shows, one per API dialect.
    pub clients: &'static [ClientEntry],
}

/// One way a client SDK reaches the provider through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientEntry {
    /// Snippet heading ("Gemini via its OpenAI endpoint").
    pub title: &'static str,
    /// The SDK the snippet uses.
    pub sdk: Sdk,
    /// Path appended to the proxy's base URL to form the SDK's `base_url` ("" for none).
    pub base_path: &'static str,
}

/// The official Python SDK a snippet is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sdk {
    /// `openai` (`OpenAI(base_url=…, api_key=…)`).
    Openai,
    /// `anthropic` (`Anthropic(base_url=…, api_key=…)`).
    Anthropic,
    /// `google-genai` (`genai.Client(api_key=…, http_options={"base_url": …})`).
    GoogleGenai,
}

/// OpenAI.
pub const OPENAI: ProviderFacts = ProviderFacts {
    provider: Provider::Openai,
    title: "OpenAI",
    default_authority: "api.openai.com",
    key_env: "OPENAI_API_KEY",
    clients: &[ClientEntry {
        title: "OpenAI",
        sdk: Sdk::Openai,
        base_path: "/v1",
    }],
};

/// Anthropic.
pub const ANTHROPIC: ProviderFacts = ProviderFacts {
    provider: Provider::Anthropic,
    title: "Anthropic",
    default_authority: "api.anthropic.com",
    key_env: "ANTHROPIC_API_KEY",
    clients: &[ClientEntry {
        title: "Anthropic",
        sdk: Sdk::Anthropic,
        base_path: "",
    }],
};

/// Google Gemini (the native API and its OpenAI-compatible endpoint).
pub const GEMINI: ProviderFacts = ProviderFacts {
    provider: Provider::Gemini,
    title: "Gemini",
    default_authority: "generativelanguage.googleapis.com",
    key_env: "GEMINI_API_KEY",
    clients: &[
        ClientEntry {
            title: "Gemini",
            sdk: Sdk::GoogleGenai,
            base_path: "",
        },
        ClientEntry {
            title: "Gemini via its OpenAI endpoint",
            sdk: Sdk::Openai,
            base_path: "/v1beta/openai",
        },
    ],
};

/// Every provider's facts, in [`Provider::ALL`] order.
pub const FACTS: [ProviderFacts; 3] = [OPENAI, ANTHROPIC, GEMINI];

impl Provider {
    /// This provider's entry in [`FACTS`]; `None` for a configured provider.
    pub fn facts(self) -> Option<&'static ProviderFacts> {
        FACTS.iter().find(|f| f.provider == self)
    }

    /// Environment variable (and keys-file name) of this provider's real key: the built-in
    /// one, or the one its registration named (`None` when it named none: the filter's).
    pub fn key_env(self) -> Option<&'static str> {
        match self {
            Provider::Configured(name) => lock()
                .iter()
                .find(|c| c.provider.as_str() == name)
                .and_then(|c| c.key_env),
            builtin => builtin.facts().map(|f| f.key_env),
        }
    }
}

/// A provider the operator configured: an OpenAI-compatible endpoint reached with
/// `Authorization: Bearer` (the filter's plugin config names its path prefix and authority,
/// the token-service's `PTK_PROVIDERS` its key variable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfiguredProvider {
    /// The provider, [`Provider::Configured`].
    pub provider: Provider,
    /// Its key variable (the token-service's registrations name one).
    pub key_env: Option<&'static str>,
}

/// Most providers one process may configure: registered names live as long as the process,
/// so their number is bounded.
pub const MAX_CONFIGURED: usize = 64;

/// Longest configured provider name.
pub const MAX_NAME_LEN: usize = 32;

static CONFIGURED: Mutex<Vec<ConfiguredProvider>> = Mutex::new(Vec::new());

fn lock() -> std::sync::MutexGuard<'static, Vec<ConfiguredProvider>> {
    // The list is only ever appended to whole entries: a poisoned lock still holds a valid one.
    CONFIGURED.lock().unwrap_or_else(|e| e.into_inner())
}

/// The registered provider of this name.
pub(crate) fn registered(name: &str) -> Option<Provider> {
    lock()
        .iter()
        .find(|c| c.provider.as_str() == name)
        .map(|c| c.provider)
}

/// Every provider registered in this process, in registration order.
pub fn configured() -> Vec<ConfiguredProvider> {
    lock().clone()
}

/// Makes a configured provider known to this process (a name is registered once; registering
/// it again returns the same provider and keeps its first key variable). The name is 1 to
/// [`MAX_NAME_LEN`] characters of `a-z`, `0-9`, `_`, `-`, starting with a letter, and not a
/// built-in name; the key variable, when given, is an upper-case variable name other than a
/// built-in provider's.
pub fn register(name: &str, key_env: Option<&str>) -> Result<Provider, String> {
    let valid_name = (1..=MAX_NAME_LEN).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid_name {
        return Err(format!(
            "provider name {name:?}: 1 to {MAX_NAME_LEN} characters of a-z, 0-9, '_', '-', \
             starting with a letter"
        ));
    }
    if Provider::ALL.iter().any(|p| p.as_str() == name) {
        return Err(format!("provider name {name:?}: a built-in provider"));
    }
    if let Some(var) = key_env {
        let valid_var = !var.is_empty()
            && var.len() <= 64
            && var
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !valid_var || FACTS.iter().any(|f| f.key_env == var) {
            return Err(format!(
                "provider {name:?}: key variable {var:?} must be an upper-case variable name \
                 other than a built-in provider's"
            ));
        }
    }
    let mut list = lock();
    if let Some(known) = list.iter().find(|c| c.provider.as_str() == name) {
        return Ok(known.provider);
    }
    if list.len() >= MAX_CONFIGURED {
        return Err(format!("at most {MAX_CONFIGURED} configured providers"));
    }
    // Leaked once per distinct name (bounded above), so a provider stays `Copy` and its name
    // `&'static`, like the built-in ones.
    let leak = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
    let entry = ConfiguredProvider {
        provider: Provider::Configured(leak(name)),
        key_env: key_env.map(leak),
    };
    list.push(entry);
    Ok(entry.provider)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_table_lists_every_provider_once_in_order() {
        let listed: Vec<Provider> = FACTS.iter().map(|f| f.provider).collect();
        assert_eq!(listed, Provider::ALL);
        for p in Provider::ALL {
            assert_eq!(p.facts().unwrap().provider, p);
            assert!(
                !p.facts().unwrap().clients.is_empty(),
                "{p:?} has no client entry"
            );
        }
    }

    #[test]
    fn a_registered_provider_parses_round_trips_and_an_unknown_one_does_not() {
        assert_eq!(Provider::parse("wire-test-llm"), None);
        assert!(serde_json::from_str::<Provider>(r#""wire-test-llm""#).is_err());
        let p = register("wire-test-llm", Some("WIRE_TEST_LLM_KEY")).unwrap();
        assert_eq!(register("wire-test-llm", None).unwrap(), p);
        assert_eq!(Provider::parse("wire-test-llm"), Some(p));
        assert_eq!(p.key_env(), Some("WIRE_TEST_LLM_KEY"));
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#""wire-test-llm""#);
        assert_eq!(serde_json::from_str::<Provider>(&json).unwrap(), p);
        assert!(configured().iter().any(|c| c.provider == p));
    }

    #[test]
    fn bad_registrations_are_refused() {
        for (name, var) in [
            ("", None),
            ("Upper", None),
            ("9lives", None),
            ("has space", None),
            ("openai", None),
            ("gemini", None),
            ("ok-name", Some("lower_var")),
            ("ok-name", Some("OPENAI_API_KEY")),
        ] {
            assert!(register(name, var).is_err(), "{name:?} {var:?}");
        }
        assert!(register(&"a".repeat(MAX_NAME_LEN + 1), None).is_err());
    }

    #[test]
    fn key_env_names_are_distinct_variable_names() {
        let mut names: Vec<&str> = FACTS.iter().map(|f| f.key_env).collect();
        assert!(names
            .iter()
            .all(|n| n.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FACTS.len());
    }
}
