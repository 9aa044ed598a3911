//! The operator's configured providers: `PTK_PROVIDERS` lists OpenAI-compatible providers as
//! `name=KEY_VARIABLE` pairs (comma-separated), read once at start by every command (`serve`
//! and the token CLI alike), so their names are valid scopes and their keys are read from
//! that variable, in the environment or the keys file, like the built-in providers'.
//!
//! The filter's plugin config names the same provider with its path prefix and authority
//! (`filter-core` `provider_config.rs`); a check for a name this service does not know is
//! refused as malformed, so the filter fails closed.

/// The environment variable listing configured providers.
pub const PROVIDERS_VAR: &str = "PTK_PROVIDERS";

/// Variables this service reads for itself: never a provider's key, which goes upstream to
/// whoever runs that endpoint (the check secret would trade token hashes for every real key).
/// Its whole `PTK_` namespace is reserved, so a setting added later is covered too.
fn is_own_variable(var: &str) -> bool {
    var.starts_with("PTK_") || var.starts_with(crate::settings::ADMIN_SECRET_VAR)
}

/// Registers every provider `value` lists (`name=KEY_VARIABLE`, comma-separated, blanks
/// ignored); the message names the entry at fault. The list is checked whole first (a name
/// listed twice, a key variable of this service's own), so such a list registers nothing.
pub fn register(value: &str) -> Result<(), String> {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, var) = entry
            .split_once('=')
            .ok_or_else(|| format!("{PROVIDERS_VAR}: {entry:?} is not name=KEY_VARIABLE"))?;
        let (name, var) = (name.trim(), var.trim());
        if pairs.iter().any(|(n, _)| *n == name) {
            return Err(format!("{PROVIDERS_VAR}: {name:?} is listed twice"));
        }
        if is_own_variable(var) {
            return Err(format!(
                "{PROVIDERS_VAR}: {name:?} may not take its key from {var}, a variable of the \
                 token-service's own (PTK_*, ADMIN_SECRET*)"
            ));
        }
        pairs.push((name, var));
    }
    for (name, var) in pairs {
        ptk_wire::providers::register(name, Some(var))
            .map_err(|e| format!("{PROVIDERS_VAR}: {e}"))?;
    }
    Ok(())
}

/// Registers what `PTK_PROVIDERS` lists in this process's environment.
pub fn register_from_env() -> Result<(), String> {
    std::env::var(PROVIDERS_VAR).map_or(Ok(()), |v| register(&v))
}

/// The names of every provider a scope may name, for messages.
pub fn known_names() -> String {
    let configured = ptk_wire::providers::configured();
    let names: Vec<&str> = ptk_wire::Provider::ALL
        .into_iter()
        .chain(configured.iter().map(|c| c.provider))
        .map(|p| p.as_str())
        .collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::keys::ProviderKeys;
    use ptk_wire::Provider;

    #[test]
    fn listed_providers_become_scopes_with_keys_from_their_variable() {
        register(" ts-test-llm = TS_TEST_LLM_KEY , ").unwrap();
        let provider = Provider::parse("ts-test-llm").unwrap();
        let env = |name: &str| (name == "TS_TEST_LLM_KEY").then(|| "sk-local".to_owned());
        let keys = ProviderKeys::load(None, env).unwrap();
        assert!(keys.get(provider).is_some());
        assert!(keys.configured().contains(&"ts-test-llm"));
        let file = ProviderKeys::parse_file("TS_TEST_LLM_KEY=sk-file\n").unwrap();
        assert!(file.get(provider).is_some());
        assert!(known_names().contains("ts-test-llm"));
        assert_eq!(
            crate::token::providers(&["ts-test-llm"]).unwrap(),
            vec![provider]
        );
    }

    #[test]
    fn the_services_own_secrets_are_never_a_providers_key() {
        // Such a "key" would go upstream to whoever runs the configured endpoint: the check
        // secret trades token hashes for every real key, the admin secret opens the dashboard.
        for (i, var) in [
            "PTK_CHECK_SECRET",
            "PTK_CHECK_SECRET_FILE",
            "ADMIN_SECRET",
            "ADMIN_SECRET_FILE",
            "PTK_DATABASE_URL",
            "PTK_REDIS_URL",
            "PTK_KEYS_FILE",
        ]
        .into_iter()
        .enumerate()
        {
            let name = format!("own-secret-{i}");
            let err = register(&format!("{name}={var}")).unwrap_err();
            assert!(err.contains(var), "{err}");
            assert_eq!(Provider::parse(&name), None, "{name} registered anyway");
        }
    }

    #[test]
    fn a_name_listed_twice_is_refused_not_silently_first_wins() {
        let err = register("twice-llm=TWICE_LLM_A,twice-llm=TWICE_LLM_B").unwrap_err();
        assert!(err.contains("twice-llm"), "{err}");
        assert_eq!(Provider::parse("twice-llm"), None);
    }

    #[test]
    fn bad_lists_are_refused_by_entry() {
        assert!(register("no-equals").unwrap_err().contains("\"no-equals\""));
        assert!(register("openai=X_KEY").unwrap_err().contains("built-in"));
        assert!(register("ok=OPENAI_API_KEY").is_err());
        assert!(register("").is_ok());
    }
}
