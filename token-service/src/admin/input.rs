//! Request bodies of the token API and their validation. Every refusal is a 400 with a
//! message naming the field; nothing reaches the store unvalidated.

use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::error::AdminError;
use crate::expiry::parse_expiry_input;
use crate::models::validate_models;
use crate::new_token::NewToken;
use crate::ratelimit::{RateLimit, MAX_WINDOW_S};
use crate::store::{TokenPatch, TokenStatus};
use crate::token;

/// `{"count": N, "window_s": S}`: at most N requests per S seconds.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitBody {
    count: u32,
    window_s: u32,
}

/// Body of `POST /admin/api/tokens`. No `Debug`: it may hold a custom token.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    label: Option<String>,
    providers: Option<Vec<String>>,
    expires_at: Option<String>,
    token: Option<String>,
    rate_limit: Option<RateLimitBody>,
    key_pool: Option<String>,
    models: Option<Vec<String>>,
}

/// Body of `PATCH /admin/api/tokens/{hash}`: absent = unchanged, `null` = clear.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    #[serde(default, deserialize_with = "present")]
    status: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    expires_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    rate_limit: Option<Option<RateLimitBody>>,
    #[serde(default, deserialize_with = "present")]
    models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    key_pool: Option<Option<String>>,
}

/// A key pool name, or the 400 that says what one is; blank means the default pool.
fn key_pool(raw: &str) -> Result<Option<String>, AdminError> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    crate::key_pools::pool_name(raw)
        .map(Some)
        .ok_or_else(|| bad("key_pool must be 1 to 32 of A-Z a-z 0-9 . _ -"))
}

/// Marks a field that was in the JSON (even as `null`) as `Some`.
pub(super) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

fn bad(message: impl Into<String>) -> AdminError {
    AdminError::BadRequest(message.into())
}

/// Parses a JSON body, insisting on `content-type: application/json` (which also keeps
/// cross-site HTML forms out: they cannot send it without a CORS preflight).
pub(super) fn json_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, AdminError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(bad("content-type must be application/json"));
    }
    serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))
}

fn expiry(raw: &str) -> Result<String, AdminError> {
    let refuse = || {
        bad(format!(
            "invalid expires_at {raw:?}: expected RFC 3339 with Z or an offset \
             (e.g. 2030-01-01T00:00:00Z), or null for no expiry"
        ))
    };
    match parse_expiry_input(raw) {
        Ok(Some(at)) => Ok(at),
        // Blank and `never` are CLI conveniences; the API says "no expiry" with null.
        Ok(None) | Err(_) => Err(refuse()),
    }
}

fn rate_limit(body: RateLimitBody) -> Result<RateLimit, AdminError> {
    if body.count == 0 || body.window_s == 0 {
        return Err(bad(
            "rate_limit.count and rate_limit.window_s must be at least 1",
        ));
    }
    if body.window_s > MAX_WINDOW_S {
        return Err(bad(format!(
            "rate_limit.window_s must be at most {} (about 12 days)",
            MAX_WINDOW_S
        )));
    }
    Ok(RateLimit {
        limit: body.count,
        window_s: body.window_s,
    })
}

/// A model allow-list (`crate::models`); `null` (any model) is handled by the caller.
fn models(list: Vec<String>) -> Result<Vec<String>, AdminError> {
    validate_models(list).map_err(|e| bad(format!("models: {e}")))
}

/// Validates a create body, in the order label, providers, token, expiry, rate limit (the
/// first three by [`NewToken::validate`], shared with the CLI).
pub fn parse_create(headers: &HeaderMap, body: &[u8]) -> Result<NewToken, AdminError> {
    let body: CreateBody = json_body(headers, body)?;
    // A blank custom token means "generate one" (the dashboard sends its empty field).
    let custom = body.token.as_deref().filter(|t| !t.trim().is_empty());
    let mut new = NewToken::validate(
        body.label.as_deref().unwrap_or_default(),
        &body.providers.unwrap_or_default(),
        custom,
    )
    .map_err(|e| bad(e.to_string()))?;
    new.expires_at = body.expires_at.as_deref().map(expiry).transpose()?;
    new.rate_limit = body.rate_limit.map(rate_limit).transpose()?;
    new.key_pool = body
        .key_pool
        .as_deref()
        .map(key_pool)
        .transpose()?
        .flatten();
    new.models = body.models.map(models).transpose()?;
    Ok(new)
}

/// Validates a patch body. A status is never defaulted: only `active` or `disabled` pass.
pub fn parse_patch(headers: &HeaderMap, body: &[u8]) -> Result<TokenPatch, AdminError> {
    let body: PatchBody = json_body(headers, body)?;
    let status = match body.status {
        None => None,
        Some(text) => Some(
            text.as_deref()
                .and_then(TokenStatus::parse)
                .ok_or_else(|| bad("status must be \"active\" or \"disabled\""))?,
        ),
    };
    let expires_at = match body.expires_at {
        None => None,
        Some(None) => Some(None),
        Some(Some(text)) => Some(Some(expiry(&text)?)),
    };
    let rate_limit = match body.rate_limit {
        None => None,
        Some(None) => Some(None),
        Some(Some(rl)) => Some(Some(rate_limit(rl)?)),
    };
    let key_pool = match body.key_pool {
        None => None,
        Some(None) => Some(None),
        Some(Some(text)) => Some(key_pool(&text)?),
    };
    let models = match body.models {
        None => None,
        Some(None) => Some(None),
        Some(Some(list)) => Some(Some(models(list)?)),
    };
    let patch = TokenPatch {
        status,
        expires_at,
        rate_limit,
        key_pool,
        models,
    };
    if patch.is_empty() {
        return Err(bad(
            "nothing to update: send status, expires_at, rate_limit, key_pool and/or models",
        ));
    }
    Ok(patch)
}

/// Checks a `{hash}` path segment: 64 lowercase hex characters.
pub fn parse_hash(hash: &str) -> Result<&str, AdminError> {
    if token::is_token_hash(hash) {
        Ok(hash)
    } else {
        Err(bad(
            "bad token id: expected a 64-character lowercase hex SHA-256 hash",
        ))
    }
}
