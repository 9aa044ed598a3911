//! Creating a token, written once for the CLI (`tokens create`) and the admin API
//! (`POST /admin/api/tokens`): validation of what the operator typed, generation (or the
//! operator's own token), hashing, and storage. Each surface only parses its own syntax (flags,
//! a JSON body) and words its own refusals.

use chrono::{DateTime, Utc};
use ptk_wire::Provider;
use secrecy::SecretString;

use crate::expiry::format_timestamp;
use crate::ratelimit::RateLimit;
use crate::store::{StoreError, TokenRecord, TokenStatus, TokenStore};
use crate::token::{self, TokenInputError};

/// A validated request for a new token. No `Debug`: it may hold a custom token.
pub struct NewToken {
    /// Trimmed, non-empty.
    pub label: String,
    /// Known, de-duplicated, non-empty.
    pub providers: Vec<Provider>,
    /// Normalised RFC 3339 UTC.
    pub expires_at: Option<String>,
    /// The operator's own token (trimmed, 12 to 256 chars of letters, digits and
    /// `-_.~!$'()*:@/`); `None` = generate one.
    pub custom: Option<SecretString>,
    /// The token's own quota.
    pub rate_limit: Option<RateLimit>,
    /// The named provider key pool the token uses (`None`: the default pool).
    pub key_pool: Option<String>,
    /// The model allow-list, already validated (`crate::models`); `None`: any model.
    pub models: Option<Vec<String>>,
}

impl NewToken {
    /// Validates the operator's label, providers and custom token, in that order (the
    /// surfaces parse expiry and quota themselves, after these, in their own syntax).
    pub fn validate<S: AsRef<str>>(
        label: &str,
        providers: &[S],
        custom: Option<&str>,
    ) -> Result<NewToken, TokenInputError> {
        Ok(NewToken {
            label: token::label(label)?,
            providers: token::providers(providers)?,
            custom: custom.map(token::custom_token).transpose()?,
            expires_at: None,
            rate_limit: None,
            key_pool: None,
            models: None,
        })
    }
}

/// A stored new token: its plaintext (shown once, never stored) and its record.
pub struct CreatedToken {
    /// The token the client will use; the store only has its hash.
    pub plaintext: SecretString,
    /// What was stored.
    pub record: TokenRecord,
}

/// Why a token was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// A token with the same hash exists (the operator reused a custom token).
    #[error("token already exists - delete it first")]
    Duplicate,
    /// The OS random source failed.
    #[error(transparent)]
    Random(TokenInputError),
    /// The store failed.
    #[error("cannot store the token: {0}")]
    Store(StoreError),
}

/// Generates the token (unless the operator brought one), hashes it and stores it, active,
/// created `now`.
pub async fn create_token(
    store: &dyn TokenStore,
    new: NewToken,
    now: DateTime<Utc>,
) -> Result<CreatedToken, CreateError> {
    let plaintext = match new.custom {
        Some(custom) => custom,
        None => token::generate_token().map_err(CreateError::Random)?,
    };
    let record = TokenRecord {
        hash: token::hash_token(&plaintext),
        label: new.label,
        last4: token::last4(&plaintext),
        providers: new.providers,
        status: TokenStatus::Active,
        created_at: format_timestamp(now),
        expires_at: new.expires_at,
        rate_limit: new.rate_limit,
        key_pool: new.key_pool,
        models: new.models,
    };
    match store.insert(&record).await {
        Ok(()) => Ok(CreatedToken { plaintext, record }),
        Err(StoreError::Duplicate) => Err(CreateError::Duplicate),
        Err(e) => Err(CreateError::Store(e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::store::SqliteStore;
    use chrono::TimeZone as _;
    use secrecy::ExposeSecret as _;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 7, 8, 12, 0, 0).unwrap()
    }

    #[test]
    fn validation_runs_label_then_providers_then_token() {
        let err = |label, providers: &[&str], custom| {
            NewToken::validate(label, providers, custom).err().unwrap()
        };
        assert_eq!(
            err(" ", &["azure"], Some("short")),
            TokenInputError::EmptyLabel
        );
        assert!(matches!(
            err("a", &["azure"], Some("short")),
            TokenInputError::UnknownProvider(_)
        ));
        assert_eq!(
            err("a", &["openai"], Some("short")),
            TokenInputError::CustomTokenTooShort
        );
        let ok = NewToken::validate(" a ", &["openai"], Some("  my-own-token-1 ")).unwrap();
        assert_eq!(ok.label, "a");
        assert_eq!(ok.custom.unwrap().expose_secret(), "my-own-token-1");
    }

    #[tokio::test]
    async fn creation_stores_the_hash_never_the_plaintext_and_refuses_a_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db.sqlite3")).unwrap();
        let mut new = NewToken::validate("team", &["gemini"], None).unwrap();
        new.rate_limit = Some(RateLimit {
            limit: 3,
            window_s: 60,
        });
        let made = create_token(&store, new, now()).await.unwrap();
        let plaintext = made.plaintext.expose_secret().to_owned();
        assert!(plaintext.starts_with("ptk_"), "generated");
        let stored = store.get(&made.record.hash).await.unwrap().unwrap();
        assert_eq!(stored, made.record);
        assert_eq!(stored.hash, token::hash_token(&made.plaintext));
        assert_eq!(stored.last4, plaintext[plaintext.len() - 4..]);
        assert_eq!(stored.status, TokenStatus::Active);
        assert_eq!(stored.created_at, "2026-07-08T12:00:00.000Z");

        // A generated token cannot be typed in again as a custom one (the access log tells
        // them apart by shape); a custom token typed twice is a duplicate.
        assert!(matches!(
            NewToken::validate("dup", &["openai"], Some(&plaintext)),
            Err(TokenInputError::GeneratedShape)
        ));
        let custom = NewToken::validate("own", &["openai"], Some("my-own-token-123")).unwrap();
        create_token(&store, custom, now()).await.unwrap();
        let again = NewToken::validate("dup", &["openai"], Some("my-own-token-123")).unwrap();
        assert!(matches!(
            create_token(&store, again, now()).await,
            Err(CreateError::Duplicate)
        ));
    }
}
