//! Turning what an operator typed (a hash or a prefix of one) into exactly one stored hash.

use crate::store::{StoreError, TokenStore};

/// Shortest prefix accepted: short prefixes collide too easily to act on safely.
pub const MIN_PREFIX_LEN: usize = 8;
/// How many matches to fetch: two prove ambiguity; a few more make a useful error message.
const SHOW_MATCHES: usize = 5;

/// Why a hash argument did not name exactly one token.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Not hex, too short or too long.
    #[error(
        "{0:?} is not a token hash or prefix (expected {MIN_PREFIX_LEN} to 64 hex characters)"
    )]
    BadInput(String),
    /// No token matches.
    #[error("no token matches {0}")]
    NotFound(String),
    /// More than one token matches.
    #[error("{prefix} is ambiguous: it matches {} (type more characters)", matches.join(", "))]
    Ambiguous {
        /// The prefix typed.
        prefix: String,
        /// Some of the matching hashes (shortened).
        matches: Vec<String>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Trims and lowercases the argument and checks it can be a hash prefix.
pub fn normalize_prefix(input: &str) -> Result<String, ResolveError> {
    let prefix = input.trim().to_ascii_lowercase();
    let hex = prefix.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex || prefix.len() < MIN_PREFIX_LEN || prefix.len() > 64 {
        return Err(ResolveError::BadInput(input.trim().to_owned()));
    }
    Ok(prefix)
}

/// Picks the single match, or explains why there is none.
pub fn pick(prefix: &str, matches: Vec<String>) -> Result<String, ResolveError> {
    match matches.len() {
        0 => Err(ResolveError::NotFound(prefix.to_owned())),
        1 => Ok(matches.into_iter().next().unwrap_or_default()),
        _ => Err(ResolveError::Ambiguous {
            prefix: prefix.to_owned(),
            matches: matches.iter().map(|h| format!("{:.16}…", h)).collect(),
        }),
    }
}

/// Resolves an argument against the store.
pub async fn resolve(store: &dyn TokenStore, input: &str) -> Result<String, ResolveError> {
    let prefix = normalize_prefix(input)?;
    let matches = store.hashes_with_prefix(&prefix, SHOW_MATCHES).await?;
    pick(&prefix, matches)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn prefixes_are_normalised_and_bounded() {
        assert_eq!(normalize_prefix(" ABCDEF12 ").unwrap(), "abcdef12");
        assert_eq!(normalize_prefix(&"a".repeat(64)).unwrap().len(), 64);
        for bad in ["abcdef1", "abcdefgh", "", &"a".repeat(65), "ptk_abcdefgh"] {
            assert!(
                matches!(normalize_prefix(bad), Err(ResolveError::BadInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn exactly_one_match_is_required() {
        assert_eq!(
            pick("abcd1234", vec!["abcd1234ff".into()]).unwrap(),
            "abcd1234ff"
        );
        assert!(matches!(
            pick("abcd1234", vec![]),
            Err(ResolveError::NotFound(_))
        ));
        let err = pick("abcd1234", vec!["abcd1234aa".into(), "abcd1234bb".into()]).unwrap_err();
        assert!(err.to_string().contains("ambiguous"), "{err}");
        assert!(err.to_string().contains("abcd1234aa"), "{err}");
    }
}
