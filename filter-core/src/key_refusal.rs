//! Whether a provider's error says the pool key itself was refused (so it leaves rotation),
//! read from the error's whole body, never from its status alone.
//!
//! A 401 or 403 is often about the request, not the key: OpenAI answers 401 `missing_scope`
//! ("You have insufficient permissions for this operation. Missing scopes: …", `code` null or
//! `missing_scope`) when a restricted key may not use the route the client chose, and 401
//! `invalid_organization` / `mismatched_project` when a client-sent `OpenAI-Organization` or
//! `OpenAI-Project` header does not match; Anthropic answers 403 `permission_error` for a
//! resource the key may not use; Gemini answers 403 `API_KEY_HTTP_REFERRER_BLOCKED` for a
//! client's `Referer` the key is not restricted to. The client chooses all of those, so taking
//! the key out on any of them would let one token holder take a whole pool out (for an hour,
//! on every replica). Only these say the key (or its account) is refused for every request:
//!
//! | provider | status | body |
//! |---|---|---|
//! | OpenAI (and configured OpenAI-style providers) | 401, 403 | `error.code` `invalid_api_key` or `account_deactivated`, or a message starting "Incorrect API key provided" |
//! | Anthropic | 401 | `error.type` `authentication_error` |
//! | Gemini (both routes) | 400, 401, 403 | an `ErrorInfo` reason of [`GOOGLE_KEY_REASONS`], or the message that the key was reported as leaked |
//!
//! Everything else, and any body that is not whole, not JSON or not one of these shapes, keeps
//! the key in rotation: a dead key left in costs the requests that reach it (each answered as
//! a refused credential, counted and logged), a live key taken out costs every request of the
//! pool, and a client can provoke the second.

use ptk_wire::Provider;
use serde_json::Value;

/// Google `ErrorInfo` reasons that refuse the key (or its project) whatever the request says.
/// The referrer and app restrictions (`API_KEY_HTTP_REFERRER_BLOCKED`,
/// `API_KEY_ANDROID_APP_BLOCKED`, `API_KEY_IOS_APP_BLOCKED`) are left out: they depend on
/// headers the client sends. The IP restriction is in: the address is this proxy's egress.
pub const GOOGLE_KEY_REASONS: [&str; 9] = [
    "API_KEY_INVALID",
    "API_KEY_EXPIRED",
    "API_KEY_NOT_FOUND",
    "API_KEY_SERVICE_BLOCKED",
    "API_KEY_IP_ADDRESS_BLOCKED",
    "SERVICE_DISABLED",
    "BILLING_DISABLED",
    "CONSUMER_SUSPENDED",
    "CONSUMER_INVALID",
];

/// OpenAI `error.code`s that refuse the key or its account.
const OPENAI_KEY_CODES: [&str; 2] = ["invalid_api_key", "account_deactivated"];

/// True when the whole error `body` of `status` from `provider` says the key itself was
/// refused (see the module's table).
pub fn key_refused(provider: Provider, status: u16, body: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    match provider {
        Provider::Gemini => matches!(status, 400 | 401 | 403) && google_refused(&value),
        Provider::Anthropic => status == 401 && anthropic_refused(&value),
        _ => matches!(status, 401 | 403) && openai_refused(&value),
    }
}

/// The `error` objects of a body: `{"error": …}`, or Google's streaming array of them.
fn errors(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().filter_map(|i| i.get("error")).collect(),
        other => other.get("error").into_iter().collect(),
    }
}

fn text<'a>(error: &'a Value, field: &str) -> Option<&'a str> {
    error.get(field).and_then(Value::as_str)
}

fn openai_refused(value: &Value) -> bool {
    errors(value).into_iter().any(|error| {
        text(error, "code").is_some_and(|c| OPENAI_KEY_CODES.contains(&c))
            || text(error, "message").is_some_and(|m| m.starts_with("Incorrect API key provided"))
    })
}

fn anthropic_refused(value: &Value) -> bool {
    text(value, "type") == Some("error")
        && errors(value)
            .into_iter()
            .any(|error| text(error, "type") == Some("authentication_error"))
}

fn google_refused(value: &Value) -> bool {
    errors(value).into_iter().any(|error| {
        let reason = error
            .get("details")
            .and_then(Value::as_array)
            .is_some_and(|details| {
                details
                    .iter()
                    .any(|d| text(d, "reason").is_some_and(|r| GOOGLE_KEY_REASONS.contains(&r)))
            });
        // Google's answer for a leaked key carries no reason, only this message.
        reason
            || text(error, "message")
                .is_some_and(|m| m.starts_with("Your API key was reported as leaked"))
    })
}

#[cfg(test)]
#[path = "key_refusal_tests.rs"]
mod tests;
