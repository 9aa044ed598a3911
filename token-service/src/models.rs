//! A token's model allow-list as operators write it (CLI `--models a,b`, the admin API's
//! `models` array) and as it is stored: exact model names and `*` patterns (`gpt-5*`), checked
//! once here so the filter only ever meets lists it can match. Matching itself is the
//! filter's (`filter-core/src/model_allow.rs`: ASCII case-insensitive, `*` any run).

/// Most entries one allow-list may hold.
pub const MAX_MODELS: usize = 64;

/// Longest entry, in characters.
pub const MAX_MODEL_LEN: usize = 128;

/// Whether `c` may appear in an entry: the characters providers' model names use (letters,
/// digits, `-._:/@+`: `models/gemini-2.5-pro`, `ft:gpt-4o:org:x:id`,
/// `claude-sonnet-4@20250514`), plus `*`.
fn allowed_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._:/@+*".contains(c)
}

/// Validates an allow-list: not empty, at most [`MAX_MODELS`] entries of 1 to
/// [`MAX_MODEL_LEN`] characters each, from a sane charset (`*` anywhere). Surrounding blanks
/// are trimmed; duplicates (ASCII case-insensitive, as the filter matches) are dropped,
/// keeping the first spelling. The error names the offending entry.
pub fn validate_models<I, S>(entries: I) -> Result<Vec<String>, String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut models: Vec<String> = Vec::new();
    for entry in entries {
        let model = entry.as_ref().trim();
        if model.is_empty() {
            return Err("a model name is empty".to_owned());
        }
        if model.chars().count() > MAX_MODEL_LEN {
            return Err(format!(
                "model name {:.40}... is longer than {MAX_MODEL_LEN} characters",
                model
            ));
        }
        if let Some(bad) = model.chars().find(|c| !allowed_char(*c)) {
            return Err(format!(
                "model name {model:?} has {bad:?}: use letters, digits, - . _ : / @ + and *"
            ));
        }
        if !models.iter().any(|m| m.eq_ignore_ascii_case(model)) {
            models.push(model.to_owned());
        }
    }
    if models.is_empty() {
        return Err("the model list is empty (to allow any model, clear it instead)".to_owned());
    }
    if models.len() > MAX_MODELS {
        return Err(format!("at most {MAX_MODELS} models per token"));
    }
    Ok(models)
}

/// Parses the CLI's comma-separated list (`gpt-5*,claude-sonnet-4*`).
pub fn parse_models_arg(text: &str) -> Result<Vec<String>, String> {
    validate_models(text.split(','))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn valid_lists_are_trimmed_and_deduplicated_case_insensitively() {
        assert_eq!(
            parse_models_arg(" gpt-5* ,claude-sonnet-4*,GPT-5*,models/gemini-2.5-pro").unwrap(),
            vec!["gpt-5*", "claude-sonnet-4*", "models/gemini-2.5-pro"]
        );
        assert_eq!(validate_models(["*"]).unwrap(), vec!["*"]);
        let longest = "a".repeat(MAX_MODEL_LEN);
        assert_eq!(validate_models([&longest]).unwrap(), vec![longest.clone()]);
        let most: Vec<String> = (0..MAX_MODELS).map(|n| format!("m{n}")).collect();
        assert_eq!(validate_models(&most).unwrap().len(), MAX_MODELS);
    }

    #[test]
    fn invalid_lists_are_refused_naming_why() {
        let cases: [(&[&str], &str); 5] = [
            (&[], "empty"),
            (&["gpt-5", " "], "empty"),
            (&["gpt 5"], "' '"),
            (&["gpt-5\"}"], "'\"'"),
            (&["gpt-é"], "'é'"),
        ];
        for (entries, why) in cases {
            let err = validate_models(entries.iter()).unwrap_err();
            assert!(err.contains(why), "{entries:?}: {err}");
        }
        let long = "a".repeat(MAX_MODEL_LEN + 1);
        assert!(validate_models([long]).unwrap_err().contains("longer"));
        let too_many: Vec<String> = (0..=MAX_MODELS).map(|n| format!("m{n}")).collect();
        assert!(validate_models(too_many).unwrap_err().contains("at most"));
        assert!(parse_models_arg("").is_err());
    }
}
