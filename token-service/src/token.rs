//! Proxy tokens: generation, hashing and the validation rules for what an operator types.
//!
//! The plaintext token exists only here and on the operator's screen; everything stored or
//! sent between filter and token-service is its SHA-256 hash.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ptk_wire::Provider;
use rand::rngs::OsRng;
use rand::TryRngCore as _;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};

use crate::ratelimit::MAX_WINDOW_S;

/// Prefix of every generated token, and its length after it: one definition with the filter's
/// (`ptk_wire`), whose guard looks for that shape and whose access log names only such tokens.
pub use ptk_wire::{has_generated_shape, TOKEN_BODY_LEN, TOKEN_PREFIX};
/// Random bytes behind a generated token (24 bytes -> 32 base64url characters).
const TOKEN_RANDOM_BYTES: usize = 24;
/// Shortest custom token accepted, after trimming.
pub const MIN_CUSTOM_TOKEN_LEN: usize = 12;
/// Longest custom token accepted, after trimming: the filter refuses credential values over
/// 2 KiB unsearched (its final guard's bound), and this keeps any custom token, 4 bytes a
/// character and an auth scheme before it, well under that.
pub const MAX_CUSTOM_TOKEN_LEN: usize = 256;

/// Why operator input for a token was refused. The messages are shown to the operator as-is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenInputError {
    /// Label missing or blank.
    #[error("label is required")]
    EmptyLabel,
    /// No provider given.
    #[error("pick at least one provider ({})", crate::providers::known_names())]
    NoProviders,
    /// A provider name outside the known set.
    #[error("unknown provider {0:?} (expected one of {known})", known = crate::providers::known_names())]
    UnknownProvider(String),
    /// A custom token shorter than [`MIN_CUSTOM_TOKEN_LEN`].
    #[error("custom token too short (min {MIN_CUSTOM_TOKEN_LEN} chars)")]
    CustomTokenTooShort,
    /// A custom token longer than [`MAX_CUSTOM_TOKEN_LEN`].
    #[error("custom token too long (max {MAX_CUSTOM_TOKEN_LEN} chars)")]
    CustomTokenTooLong,
    /// A custom token holding a character outside [`CUSTOM_TOKEN_PUNCTUATION`], ASCII letters
    /// and digits.
    #[error("custom token may hold only ASCII letters, digits and {CUSTOM_TOKEN_PUNCTUATION} (found {0:?}): every other character is read differently by some credential slot (a space splits off an auth scheme, % and + are decoded in a query, , ; & = # ? split lists and queries)")]
    CustomTokenCharacter(char),
    /// A custom token that starts like a credential a provider mints itself.
    #[error("custom token must not start with {0:?} (providers mint credentials that look like that; the proxy relays them instead of checking them when ephemeral pass-through is on)")]
    ReservedPrefix(&'static str),
    /// A custom token of exactly a generated token's shape: the access log would print a
    /// prefix of its hash, which confirms a guess of a weak one offline.
    #[error("custom token must not look like a generated one ({TOKEN_PREFIX} and {TOKEN_BODY_LEN} letters, digits, '-' or '_'): the access log names such a token by a prefix of its hash, which would confirm a guess of a chosen one; leave the field empty to generate one")]
    GeneratedShape,
    /// A rate limit not of the form `N/SECONDS` with both at least 1.
    #[error("invalid rate limit {0:?} (expected N/SECONDS with both at least 1 and SECONDS at most {MAX_WINDOW_S}, about 12 days; e.g. 100/60)")]
    BadRateLimit(String),
    /// The operating system's random source failed.
    #[error("could not read the OS random source: {0}")]
    Random(String),
}

/// Creates a fresh random token: `ptk_` + base64url (no padding) of 24 bytes from the OS RNG.
pub fn generate_token() -> Result<SecretString, TokenInputError> {
    let mut bytes = [0u8; TOKEN_RANDOM_BYTES];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| TokenInputError::Random(e.to_string()))?;
    Ok(SecretString::from(format!(
        "{TOKEN_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(bytes)
    )))
}

/// Prefixes of credentials the providers mint for browsers (Google's `auth_tokens/…`, OpenAI's
/// `ek_…` client secrets). The filter can relay those untouched (`ephemeral.pass_through`), so a
/// proxy token must never look like one.
pub const RESERVED_PREFIXES: [&str; 2] = ["auth_tokens/", "ek_"];

/// Characters a custom token may hold besides ASCII letters and digits. Every credential
/// slot reads a token made of these exactly as typed: no whitespace (an `Authorization` value
/// is split at its auth scheme, so `Token auth_tokens/…` would read as a Google token), no `%`
/// or `+` (query values are form-decoded, so `auth%5Ftokens/…` would too), no `,` `;` `&` `=`
/// `#` `?` (subprotocol lists and queries split on them, and a piece of the token could stay
/// behind when its slot is stripped), nothing outside ASCII (SDKs refuse it in headers).
pub const CUSTOM_TOKEN_PUNCTUATION: &str = "-_.~!$'()*:@/";

/// Trims a custom token and enforces the length bounds, the character set
/// ([`CUSTOM_TOKEN_PUNCTUATION`]) and the reserved prefixes.
pub fn custom_token(raw: &str) -> Result<SecretString, TokenInputError> {
    let trimmed = raw.trim();
    let chars = trimmed.chars().count();
    if chars < MIN_CUSTOM_TOKEN_LEN {
        return Err(TokenInputError::CustomTokenTooShort);
    }
    if chars > MAX_CUSTOM_TOKEN_LEN {
        return Err(TokenInputError::CustomTokenTooLong);
    }
    if let Some(c) = trimmed
        .chars()
        .find(|c| !c.is_ascii_alphanumeric() && !CUSTOM_TOKEN_PUNCTUATION.contains(*c))
    {
        return Err(TokenInputError::CustomTokenCharacter(c));
    }
    if let Some(prefix) = RESERVED_PREFIXES
        .iter()
        .find(|p| trimmed.to_ascii_lowercase().starts_with(*p))
    {
        return Err(TokenInputError::ReservedPrefix(prefix));
    }
    if has_generated_shape(trimmed) {
        return Err(TokenInputError::GeneratedShape);
    }
    Ok(SecretString::from(trimmed))
}

/// SHA-256 of the token's UTF-8 bytes as 64 lowercase hex characters (the filter does the same).
pub fn hash_token(token: &SecretString) -> String {
    hex::encode(Sha256::digest(token.expose_secret().as_bytes()))
}

/// The last four characters of the token, kept for display so operators can tell tokens apart.
pub fn last4(token: &SecretString) -> String {
    let chars: Vec<char> = token.expose_secret().chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

/// True for exactly 64 lowercase hex characters, the only shape a token hash can have.
pub fn is_token_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Trims a label and refuses a blank one.
pub fn label(raw: &str) -> Result<String, TokenInputError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(TokenInputError::EmptyLabel);
    }
    Ok(trimmed.to_owned())
}

/// Parses provider names (already split), trims them, drops duplicates keeping first-seen
/// order, and refuses unknown names or an empty result (no silent default scope).
pub fn providers<S: AsRef<str>>(names: &[S]) -> Result<Vec<Provider>, TokenInputError> {
    let mut out = Vec::new();
    for name in names
        .iter()
        .map(|n| n.as_ref().trim())
        .filter(|n| !n.is_empty())
    {
        let provider = Provider::parse(name)
            .ok_or_else(|| TokenInputError::UnknownProvider(name.to_owned()))?;
        if !out.contains(&provider) {
            out.push(provider);
        }
    }
    if out.is_empty() {
        return Err(TokenInputError::NoProviders);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn generated_tokens_have_the_documented_shape() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        let text = a.expose_secret();
        assert_eq!(text.len(), 36);
        assert!(text.starts_with("ptk_"));
        assert!(text[4..]
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(text, b.expose_secret());
        assert!(has_generated_shape(text));
    }

    #[test]
    fn hash_is_lowercase_sha256_hex() {
        // sha256("test"), the hash in wire/fixtures/check_request.json.
        let hash = hash_token(&SecretString::from("test"));
        assert_eq!(
            hash,
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert!(is_token_hash(&hash));
        assert!(!is_token_hash(&hash.to_uppercase()));
        assert!(!is_token_hash(&hash[..63]));
        assert!(!is_token_hash(&format!("{}g", &hash[..63])));
    }

    #[test]
    fn last4_takes_the_tail() {
        assert_eq!(last4(&SecretString::from("ptk_abcdWXYZ")), "WXYZ");
        assert_eq!(last4(&SecretString::from("ab")), "ab");
    }

    /// Attack round 2: characters some slot reads differently (`Token auth_tokens/…` relayed as
    /// a Google token after the scheme split, `auth%5Ftokens/…` after decoding, a `;` leaving a
    /// tail behind when `?key=` is stripped) are refused; the rest is accepted.
    #[test]
    fn custom_tokens_hold_only_characters_every_slot_reads_as_typed() {
        for bad in [
            "Token auth_tokens/team-alpha-2024",
            "auth%5Ftokens/team-alpha-2024",
            "acme-team-A;Zq7-secret-tail",
            "acme-team-A,second-entry",
            "acme&team=A#frag?x",
            "acme+team+A+plus",
            "acme\"quoted\"token",
            "acme-team-é-accent",
            "acme-team-A\ttab",
        ] {
            assert!(
                matches!(
                    custom_token(bad),
                    Err(TokenInputError::CustomTokenCharacter(_))
                ),
                "{bad}"
            );
        }
        for good in ["Summer2026!!", "team.alpha_2024-x", "a/b:c@d~e$f'(g)*h"] {
            assert!(custom_token(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn custom_tokens_are_trimmed_and_need_twelve_chars() {
        assert_eq!(
            custom_token("  my-custom-token-1  ")
                .unwrap()
                .expose_secret(),
            "my-custom-token-1"
        );
        // Eleven characters once trimmed: the padding does not count.
        assert!(custom_token("   short-token   ").is_err());
        assert!(matches!(
            custom_token("  elevenchars "),
            Err(TokenInputError::CustomTokenTooShort)
        ));
        assert!(custom_token("twelve-chars").is_ok());
        // At most 256 characters.
        assert!(custom_token(&"x".repeat(MAX_CUSTOM_TOKEN_LEN)).is_ok());
        assert!(matches!(
            custom_token(&"x".repeat(MAX_CUSTOM_TOKEN_LEN + 1)),
            Err(TokenInputError::CustomTokenTooLong)
        ));
    }

    #[test]
    fn custom_tokens_never_look_like_provider_ephemeral_credentials() {
        for raw in [
            "auth_tokens/abcdefghijkl",
            "ek_abcdefghijklmnop",
            "  EK_ABCDEFGHIJKLMNOP ",
        ] {
            assert!(
                matches!(custom_token(raw), Err(TokenInputError::ReservedPrefix(_))),
                "{raw}"
            );
        }
        assert!(custom_token("my-ek_-token-1").is_ok());
    }

    /// Attack (issue 13 access log): a custom token shaped like a generated one would log as
    /// a 12-hex prefix of its unsalted hash, enough to confirm a guess of a weak one offline.
    #[test]
    fn custom_tokens_never_look_like_generated_ones() {
        let generated = generate_token().unwrap();
        let weak = format!("ptk_{}", "companyname2024-".repeat(2));
        for raw in [
            generated.expose_secret(),
            weak.as_str(),
            &format!(" {weak} "),
        ] {
            assert!(
                matches!(custom_token(raw), Err(TokenInputError::GeneratedShape)),
                "{raw}"
            );
        }
        for other in [
            format!("{weak}x"),
            weak[..weak.len() - 1].to_string(),
            format!("PTK_{}", &weak[4..]),
            format!("ptk_{}.", &weak[4..weak.len() - 1]),
        ] {
            assert!(custom_token(&other).is_ok(), "{other}");
        }
    }

    #[test]
    fn labels_are_trimmed_and_required() {
        assert_eq!(label("  team a ").unwrap(), "team a");
        assert_eq!(label("   "), Err(TokenInputError::EmptyLabel));
    }

    #[test]
    fn providers_are_validated_and_deduplicated() {
        assert_eq!(
            providers(&["gemini", " openai", "gemini"]).unwrap(),
            vec![Provider::Gemini, Provider::Openai]
        );
        assert_eq!(
            providers(&["openai", "azure"]),
            Err(TokenInputError::UnknownProvider("azure".into()))
        );
        assert_eq!(
            providers(&["OpenAI"]),
            Err(TokenInputError::UnknownProvider("OpenAI".into()))
        );
        assert_eq!(providers::<&str>(&[]), Err(TokenInputError::NoProviders));
        assert_eq!(providers(&["", " "]), Err(TokenInputError::NoProviders));
    }
}
