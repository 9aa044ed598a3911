//! The provider facts both sides read: one entry per provider with its name, how people spell
//! it, the default upstream host, the environment variable (and keys-file name) of its real key,
//! and the client entry points the dashboard's snippets show.
//!
//! The filter's per-provider modules (`ptk-filter-core` `providers/`) add what only the filter
//! needs (slot rules, credential placement, error shapes, path prefixes, browser headers,
//! ephemeral credentials) and embed these facts; the token-service reads only this table.
//! It lives here because this is the one crate both sides depend on; it is plain `const`
//! data, so the crate stays serde-only and compiles for wasm.

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
    /// This provider's entry in [`FACTS`].
    pub fn facts(self) -> &'static ProviderFacts {
        match self {
            Provider::Openai => &OPENAI,
            Provider::Anthropic => &ANTHROPIC,
            Provider::Gemini => &GEMINI,
        }
    }

    /// Environment variable (and keys-file name) of this provider's real key.
    pub fn key_env(self) -> &'static str {
        self.facts().key_env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_provider_once_in_order() {
        let listed: Vec<Provider> = FACTS.iter().map(|f| f.provider).collect();
        assert_eq!(listed, Provider::ALL);
        for p in Provider::ALL {
            assert_eq!(p.facts().provider, p);
            assert!(!p.facts().clients.is_empty(), "{p:?} has no client entry");
        }
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
