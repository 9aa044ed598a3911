//! The shape of a generated proxy token, one definition for both sides: the token-service
//! generates it (and refuses custom tokens of that shape), the filter's guard looks for it
//! anywhere, and the access log names only such a token by a prefix of its hash.

/// Prefix of every generated proxy token.
pub const TOKEN_PREFIX: &str = "ptk_";

/// URL-safe base64 characters after [`TOKEN_PREFIX`] in a generated token (24 random bytes).
pub const TOKEN_BODY_LEN: usize = 32;

/// Whether `token` is exactly [`TOKEN_PREFIX`] then [`TOKEN_BODY_LEN`] base64url characters
/// (letters, digits, `-`, `_`), case-sensitive as generated.
pub fn has_generated_shape(token: &str) -> bool {
    token.strip_prefix(TOKEN_PREFIX).is_some_and(|body| {
        body.len() == TOKEN_BODY_LEN
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_generated_shape_counts() {
        let body = "aB3-_".repeat(6) + "xy";
        assert!(has_generated_shape(&format!("ptk_{body}")));
        for other in [
            format!("PTK_{body}"),
            format!("ptk_{body}z"),
            format!("ptk_{}", &body[1..]),
            format!("ptk_{}=", &body[1..]),
            "team-secret-2024".to_string(),
            String::new(),
        ] {
            assert!(!has_generated_shape(&other), "{other}");
        }
    }
}
