//! The operator's real provider keys: from a keys file and/or the environment, held as
//! secrets that never print, and never part of an error message.

use std::fmt;
use std::path::Path;

use ptk_wire::Provider;
use secrecy::{ExposeSecret as _, SecretString};

use crate::key_pools::{check_ids, parse_list, union, valid_name, NamedKey};

/// Environment variable (and keys-file name) holding the real key of a provider: from the
/// provider registry's shared facts (`ptk_wire::providers`), or the one a configured
/// provider's registration named (`PTK_PROVIDERS`, [`crate::providers`]).
pub fn key_var(provider: Provider) -> Option<&'static str> {
    provider.key_env()
}

/// Every provider this process knows, with its key variable: the built-in ones, then the
/// configured ones.
pub(crate) fn known() -> Vec<(Provider, &'static str)> {
    let configured = ptk_wire::providers::configured()
        .into_iter()
        .map(|c| c.provider);
    Provider::ALL
        .into_iter()
        .chain(configured)
        .filter_map(|p| Some((p, key_var(p)?)))
        .collect()
}

/// Why the keys file could not be used. Only line numbers and names, never values.
#[derive(Debug, thiserror::Error)]
pub enum KeysFileError {
    /// The file could not be read.
    #[error("cannot read keys file {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// A line that is neither blank, a comment, nor `NAME=value`.
    #[error("keys file line {0}: expected NAME=value")]
    Syntax(usize),
    /// A name other than the three key variables.
    #[error("keys file line {line}: unknown name {} (expected OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY or a key variable PTK_PROVIDERS names, each also as NAMES or NAMES_POOL_<POOL>)", shown_name(.name.as_deref()))]
    UnknownName {
        /// 1-based line number.
        line: usize,
        /// The name found, only when it looks like a variable name (see [`variable_name`]).
        name: Option<String>,
    },
    /// A malformed item of a key list (the key is never quoted).
    #[error("{place}, item {item}: {why}")]
    Item {
        /// Where: "keys file line N" or the variable's name.
        place: String,
        /// 1-based position in the list.
        item: usize,
        /// What is wrong.
        why: String,
    },
    /// Two different keys of one provider under one name (label or last 4 characters).
    #[error("two different {provider} keys are named {id:?}: give one a label ([name]key)")]
    DuplicateName {
        /// The provider.
        provider: String,
        /// The shared name.
        id: String,
    },
}

/// `Some(name)` when `name` looks like an environment variable name (`A-Z`, `0-9`, `_`, at
/// most 64 characters). Anything else before a `=` may be a pasted key (base64 padding ends in
/// `=`), and an error message, unlike a secret, gets printed, logged and pasted into tickets.
fn variable_name(name: &str) -> Option<String> {
    let plausible = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    plausible.then(|| name.to_owned())
}

fn shown_name(name: Option<&str>) -> String {
    name.map_or_else(
        || "(not shown: it does not look like a variable name)".to_owned(),
        |n| format!("{n:?}"),
    )
}

/// One provider's keys in one pool (`name: None`: the default pool).
#[derive(Clone)]
struct KeyPool {
    provider: Provider,
    name: Option<String>,
    keys: Vec<NamedKey>,
}

/// The real keys of each provider, in pools (`key_pools.rs`). `Debug` lists which providers
/// are set, never values.
#[derive(Clone, Default)]
pub struct ProviderKeys {
    pools: Vec<KeyPool>,
}

/// What a variable name in the keys file or environment sets.
fn target(name: &str) -> Option<(Provider, Option<String>, bool)> {
    known().into_iter().find_map(|(provider, var)| {
        if name == var {
            return Some((provider, None, false));
        }
        let rest = name.strip_prefix(var)?.strip_prefix('S')?;
        if rest.is_empty() {
            return Some((provider, None, true));
        }
        let pool = rest.strip_prefix("_POOL_")?.to_ascii_lowercase();
        valid_name(&pool).then_some((provider, Some(pool), true))
    })
}

impl ProviderKeys {
    /// No keys at all.
    pub fn none() -> ProviderKeys {
        ProviderKeys::default()
    }

    /// Sets a provider's default pool to one key; an empty (or all-whitespace) value leaves
    /// it unconfigured.
    pub fn with(self, provider: Provider, key: &str) -> ProviderKeys {
        let key = key.trim();
        let keys = if key.is_empty() {
            Vec::new()
        } else {
            vec![NamedKey::new(None, key)]
        };
        self.with_pool(provider, None, keys)
    }

    /// Sets a provider's pool `name` (`None`: the default pool) to `keys`.
    pub fn with_pool(
        mut self,
        provider: Provider,
        name: Option<&str>,
        keys: Vec<NamedKey>,
    ) -> ProviderKeys {
        self.pools
            .retain(|p| !(p.provider == provider && p.name.as_deref() == name));
        if !keys.is_empty() {
            self.pools.push(KeyPool {
                provider,
                name: name.map(str::to_owned),
                keys,
            });
        }
        self
    }

    /// The first key of a provider's default pool, if configured.
    pub fn get(&self, provider: Provider) -> Option<&SecretString> {
        self.pool(provider, None).first().map(NamedKey::secret)
    }

    /// A provider's keys in pool `name` (`None`: the default pool); empty if none.
    pub fn pool(&self, provider: Provider, name: Option<&str>) -> &[NamedKey] {
        self.pools
            .iter()
            .find(|p| p.provider == provider && p.name.as_deref() == name)
            .map_or(&[], |p| p.keys.as_slice())
    }

    /// Every key of a provider over all its pools, each once, with the pools it is in.
    pub fn keys_of(&self, provider: Provider) -> Vec<(&NamedKey, Vec<Option<&str>>)> {
        let mut out: Vec<(&NamedKey, Vec<Option<&str>>)> = Vec::new();
        for pool in self.pools.iter().filter(|p| p.provider == provider) {
            for key in &pool.keys {
                match out.iter_mut().find(|(k, _)| k.id == key.id) {
                    Some((_, pools)) => pools.push(pool.name.as_deref()),
                    None => out.push((key, vec![pool.name.as_deref()])),
                }
            }
        }
        out
    }

    /// The names of the named pools (sorted, each once).
    pub fn pool_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .pools
            .iter()
            .filter_map(|p| p.name.as_deref())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// `self` with every pool `overrides` sets replaced by that one (the environment over the
    /// keys file).
    pub fn overridden_by(mut self, overrides: &ProviderKeys) -> ProviderKeys {
        for pool in &overrides.pools {
            self = self.with_pool(pool.provider, pool.name.as_deref(), pool.keys.clone());
        }
        self
    }

    /// Names of the providers with a default pool, for the start-up log line.
    pub fn configured(&self) -> Vec<&'static str> {
        known()
            .into_iter()
            .filter(|(p, _)| self.get(*p).is_some())
            .map(|(p, _)| p.as_str())
            .collect()
    }

    /// Checks every provider's key names are distinct (see [`check_ids`]).
    pub fn validated(self) -> Result<ProviderKeys, KeysFileError> {
        for (provider, _) in known() {
            let all = self.pools.iter().filter(|p| p.provider == provider);
            check_ids(provider.as_str(), all.flat_map(|p| p.keys.iter()))?;
        }
        Ok(self)
    }

    /// Loads keys: first the keys file (if any), then non-empty environment variables, which
    /// win pool by pool (the usual layering: a file for the base, the environment for
    /// overrides). The environment sets default pools (`NAME` and `NAMES`); named pools live
    /// in the keys file, which reloads without a restart.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ProviderKeys, KeysFileError> {
        let keys = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| KeysFileError::Read {
                    path: path.display().to_string(),
                    reason: e.kind().to_string(),
                })?;
                ProviderKeys::parse_file(&text)?
            }
            None => ProviderKeys::none(),
        };
        let mut from_env = ProviderKeys::none();
        for (provider, var) in known() {
            let mut pool = Vec::new();
            for name in [var.to_owned(), format!("{var}S")] {
                if let Some(value) = env(&name).filter(|v| !v.trim().is_empty()) {
                    pool = union(pool, parse_list(&value, &name)?);
                }
            }
            from_env = from_env.with_pool(provider, None, pool);
        }
        keys.overridden_by(&from_env).validated()
    }

    /// Parses `NAME=value` lines; `#` starts a comment line, blank lines are skipped, and a
    /// value may be wrapped in matching single or double quotes (as `.env` files often are).
    /// Lines of one pool add up (`OPENAI_API_KEY` and `OPENAI_API_KEYS` make the default
    /// pool).
    pub fn parse_file(text: &str) -> Result<ProviderKeys, KeysFileError> {
        let mut keys = ProviderKeys::none();
        for (index, line) in text.lines().enumerate() {
            let line_no = index.saturating_add(1);
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, value) = line.split_once('=').ok_or(KeysFileError::Syntax(line_no))?;
            let name = name.trim();
            let (provider, pool, _) = target(name).ok_or_else(|| KeysFileError::UnknownName {
                line: line_no,
                name: variable_name(name),
            })?;
            let place = format!("keys file line {line_no}");
            let parsed = parse_list(unquote(value.trim()), &place)?;
            let have = keys.pool(provider, pool.as_deref()).to_vec();
            keys = keys.with_pool(provider, pool.as_deref(), union(have, parsed));
        }
        keys.validated()
    }
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

impl fmt::Debug for ProviderKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderKeys")
            .field("configured", &self.configured())
            .finish()
    }
}

/// Exposes a key for the one place that must send it (the allow response).
pub(crate) fn expose(key: &SecretString) -> String {
    key.expose_secret().to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn file_lines_comments_quotes_and_blanks() {
        let keys = ProviderKeys::parse_file(
            "# real keys\n\nOPENAI_API_KEY=sk-file-1\n  GEMINI_API_KEY = \"g-key\" \nANTHROPIC_API_KEY=\n",
        )
        .unwrap();
        assert_eq!(expose(keys.get(Provider::Openai).unwrap()), "sk-file-1");
        assert_eq!(expose(keys.get(Provider::Gemini).unwrap()), "g-key");
        assert!(
            keys.get(Provider::Anthropic).is_none(),
            "empty = unconfigured"
        );
        assert_eq!(keys.configured(), vec!["openai", "gemini"]);
    }

    #[test]
    fn file_errors_name_the_line_not_the_value() {
        let err = ProviderKeys::parse_file("OPENAI_API_KEY=x\nsk-secret-value\n").unwrap_err();
        assert_eq!(err.to_string(), "keys file line 2: expected NAME=value");
        let err = ProviderKeys::parse_file("AZURE_KEY=sk-secret-value").unwrap_err();
        assert!(err.to_string().contains("AZURE_KEY"));
        assert!(!err.to_string().contains("sk-secret-value"));
    }

    #[test]
    fn a_pasted_key_in_the_name_position_is_never_echoed() {
        // A bare key whose base64 padding supplies the `=`, and keys before a stray `=`:
        // neither the message nor `Debug` may carry them.
        for (text, secret) in [
            (
                "OPENAI_API_KEY=ok\nAIzaSyFAKEfakeFAKEfake0123456789abcdef==\n",
                "AIzaSyFAKEfakeFAKEfake0123456789abcdef",
            ),
            (
                "sk-proj-FAKEsecretvalue = old key",
                "sk-proj-FAKEsecretvalue",
            ),
            ("export OPENAI_API_KEY=sk-live-abc", "sk-live-abc"),
        ] {
            let err = ProviderKeys::parse_file(text).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(secret), "{shown}");
            assert!(shown.contains("line "), "{shown}");
        }
    }

    #[test]
    fn environment_overrides_the_file_and_blank_env_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.env");
        std::fs::write(&path, "OPENAI_API_KEY=from-file\nGEMINI_API_KEY=g-file\n").unwrap();
        let keys = ProviderKeys::load(Some(&path), |name| match name {
            "OPENAI_API_KEY" => Some("from-env".into()),
            "GEMINI_API_KEY" => Some("  ".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(expose(keys.get(Provider::Openai).unwrap()), "from-env");
        assert_eq!(expose(keys.get(Provider::Gemini).unwrap()), "g-file");
        assert!(keys.get(Provider::Anthropic).is_none());
        let missing = ProviderKeys::load(Some(&dir.path().join("nope")), |_| None).unwrap_err();
        assert!(missing.to_string().contains("nope"));
    }

    #[test]
    fn debug_never_prints_a_key() {
        let keys = ProviderKeys::none().with(Provider::Anthropic, "sk-ant-very-secret");
        let shown = format!("{keys:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("anthropic"));
    }
}
