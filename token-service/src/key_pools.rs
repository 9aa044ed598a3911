//! Provider key pools: several real keys per provider, optionally labelled, optionally in
//! named pools that tokens are bound to.
//!
//! Syntax (keys file and environment): `OPENAI_API_KEY=k` (one key) and
//! `OPENAI_API_KEYS=k1,k2,…` (a list) together make the default pool; in the keys file,
//! `OPENAI_API_KEYS_POOL_TEAM_A=…` makes the pool `team_a`. A key may carry a label in front,
//! in square brackets: `[primary]sk-…`. No provider's key contains `[`, `]` or `,` (OpenAI,
//! Anthropic and Gemini keys are `A-Z a-z 0-9 - _`), so neither can be mistaken for a key.
//!
//! A key is named by its label, else by `...` and its last 4 characters, never more: that
//! name (its *id*) is all that logs, metrics, the dashboard and errors ever show.

use secrecy::{ExposeSecret as _, SecretString};

use crate::keys::KeysFileError;

/// Longest label or pool name.
const MAX_NAME: usize = 32;

/// Shortest unlabelled key named by its last 4 characters: a shorter one (never a real
/// provider key) would be half shown, so it needs a label.
const MIN_UNLABELLED: usize = 8;

/// One real key and its name.
#[derive(Clone)]
pub struct NamedKey {
    /// Its label, or `...` and its last 4 characters.
    pub id: String,
    secret: SecretString,
}

impl NamedKey {
    /// A key named by `label`, else by its last 4 characters.
    pub fn new(label: Option<&str>, key: &str) -> NamedKey {
        NamedKey {
            id: label.map_or_else(|| last4(key), str::to_owned),
            secret: SecretString::from(key),
        }
    }

    /// The key itself, for the one place that must send it (the allow).
    pub fn secret(&self) -> &SecretString {
        &self.secret
    }

    fn same_key(&self, other: &NamedKey) -> bool {
        self.secret.expose_secret() == other.secret.expose_secret()
    }
}

impl std::fmt::Debug for NamedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("NamedKey").field(&self.id).finish()
    }
}

/// `...` and the last 4 characters of `key`, or `...?` for a key too short to show any of.
fn last4(key: &str) -> String {
    let count = key.chars().count();
    if count < MIN_UNLABELLED {
        return "...?".to_owned();
    }
    let tail: String = key.chars().skip(count.saturating_sub(4)).collect();
    format!("...{tail}")
}

/// Whether `name` is a usable label or pool name (`A-Z a-z 0-9 . _ -`, 1 to 32).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A pool name as a token is bound to it (`--key-pool`, the admin API's `key_pool`):
/// lowercased (environment-style names, `TEAM_A`, name the pool `team_a`), then
/// [`valid_name`]; `None` if it is not one.
pub fn pool_name(raw: &str) -> Option<String> {
    let name = raw.trim().to_ascii_lowercase();
    valid_name(&name).then_some(name)
}

/// Parses one variable's value: keys separated by commas, each optionally `[label]`-prefixed;
/// empty items are skipped. `place` names where the value came from in an error ("keys file
/// line 3", "OPENAI_API_KEYS"); errors never quote the value.
pub fn parse_list(value: &str, place: &str) -> Result<Vec<NamedKey>, KeysFileError> {
    let mut keys = Vec::new();
    for (index, item) in value.split(',').enumerate() {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let bad = |why: &str| KeysFileError::Item {
            place: place.to_owned(),
            item: index.saturating_add(1),
            why: why.to_owned(),
        };
        let (label, key) = match item.strip_prefix('[') {
            Some(rest) => {
                let (label, key) = rest
                    .split_once(']')
                    .ok_or_else(|| bad("no ']' after '['"))?;
                if !valid_name(label) {
                    return Err(bad("a label is 1 to 32 of A-Z a-z 0-9 . _ -"));
                }
                (Some(label), key.trim())
            }
            None => (None, item),
        };
        if key.is_empty() {
            return Err(bad("a label without a key"));
        }
        if key
            .chars()
            .any(|c| c.is_whitespace() || c == '[' || c == ']')
        {
            return Err(bad(
                "a key has no spaces or brackets (separate keys with ',')",
            ));
        }
        let named = NamedKey::new(label, key);
        if !keys.iter().any(|k: &NamedKey| k.same_key(&named)) {
            keys.push(named);
        }
    }
    Ok(keys)
}

/// `keys` with `more` added (a key already there is not added twice).
pub fn union(mut keys: Vec<NamedKey>, more: Vec<NamedKey>) -> Vec<NamedKey> {
    for key in more {
        match keys.iter_mut().find(|k| k.same_key(&key)) {
            // A label given anywhere names the key.
            Some(known) if known.id.starts_with("...") => known.id = key.id,
            Some(_) => {}
            None => keys.push(key),
        }
    }
    keys
}

/// Checks that one provider's keys (over all its pools) have distinct names: two different
/// keys under one name would share one cooldown and one refusal. The error names the
/// provider and the name (a label or last 4 characters), never a key.
pub fn check_ids<'a>(
    provider: &str,
    keys: impl IntoIterator<Item = &'a NamedKey>,
) -> Result<(), KeysFileError> {
    let mut seen: Vec<&NamedKey> = Vec::new();
    for key in keys {
        if seen.iter().any(|k| k.id == key.id && !k.same_key(key)) {
            return Err(KeysFileError::DuplicateName {
                provider: provider.to_owned(),
                id: key.id.clone(),
            });
        }
        seen.push(key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn ids(keys: &[NamedKey]) -> Vec<&str> {
        keys.iter().map(|k| k.id.as_str()).collect()
    }

    #[test]
    fn lists_labels_blanks_and_duplicates() {
        let keys = parse_list(
            " sk-proj-aaaa1111 , [backup]sk-proj-bbbb2222,,sk-proj-aaaa1111,",
            "OPENAI_API_KEYS",
        )
        .unwrap();
        assert_eq!(ids(&keys), ["...1111", "backup"]);
        assert_eq!(keys[1].secret().expose_secret(), "sk-proj-bbbb2222");
        // Gemini keys carry `_` and `-`; base64-ish keys may end in `=`.
        let keys = parse_list("AIzaSy-F_k3y0123456789,[b64]dGVzdA==", "GEMINI_API_KEYS").unwrap();
        assert_eq!(ids(&keys), ["...6789", "b64"]);
        assert_eq!(keys[1].secret().expose_secret(), "dGVzdA==");
        assert_eq!(ids(&parse_list("short", "X").unwrap()), ["...?"]);
    }

    #[test]
    fn a_malformed_item_names_its_place_never_the_key() {
        for (value, why) in [
            ("sk-good-0000,[primary sk-secret-value", "no ']'"),
            ("[bad label]sk-secret-value", "a label is"),
            ("[primary]", "a label without a key"),
            ("sk-secret-value sk-other-secret", "no spaces"),
        ] {
            let err = parse_list(value, "keys file line 4").unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(shown.contains("keys file line 4"), "{shown}");
            assert!(shown.contains(why), "{shown}");
            assert!(!shown.contains("secret-value"), "{shown}");
        }
    }

    #[test]
    fn the_union_keeps_one_copy_and_takes_a_label() {
        let single = parse_list("sk-proj-aaaa1111", "OPENAI_API_KEY").unwrap();
        let list = parse_list("[main]sk-proj-aaaa1111,sk-proj-cccc3333", "OPENAI_API_KEYS");
        let keys = union(single, list.unwrap());
        assert_eq!(ids(&keys), ["main", "...3333"]);
    }

    #[test]
    fn two_keys_under_one_name_are_refused() {
        let keys = parse_list("sk-one-xx1234,sk-two-yy1234", "OPENAI_API_KEYS").unwrap();
        let err = check_ids("openai", &keys).unwrap_err().to_string();
        assert!(err.contains("openai") && err.contains("...1234"), "{err}");
        assert!(!err.contains("sk-one"), "{err}");
        let labelled = parse_list("[a]sk-one-xx1234,sk-two-yy1234", "K").unwrap();
        assert!(check_ids("openai", &labelled).is_ok());
        // The same key in two pools is one key: fine.
        let twice = [labelled[0].clone(), labelled[0].clone()];
        assert!(check_ids("openai", &twice).is_ok());
    }
}
