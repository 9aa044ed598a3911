//! Every way the filter refuses a request, and the local reply each one becomes: the exact
//! statuses and messages of the original Worker (§1.2), written in the provider's own error
//! shape so the client's SDK raises its usual authentication / permission / rate-limit error.

use std::borrow::Cow;

use ptk_wire::{BudgetDenial, DenyReason};
use serde_json::json;

use crate::budget_refusal::{budget_message, RETRY_AFTER_WITHIN_S};
use crate::dialect::ErrorShape;

/// Why a request is answered locally instead of forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token in any known slot.
    MissingToken,
    /// Unknown, disabled, or unparseable-expiry token.
    Invalid,
    /// The token's expiry has passed.
    Expired,
    /// The provider is not in the token's scopes (`provider_not_allowed`).
    ProviderNotAllowed,
    /// Over the token's rate limit; retry after this many seconds.
    RateLimited {
        /// Seconds for the `Retry-After` header.
        retry_after_s: u64,
    },
    /// Too many refused tokens from this client address: answered without a check.
    Throttled {
        /// Seconds until the address's window ends, for `Retry-After`.
        retry_after_s: u64,
    },
    /// The token-service could not answer: unreachable, timed out, answered garbage or a
    /// non-200, or said its store failed. The client-facing code and message keep their
    /// original words (`token_store_unavailable`, "token store unavailable").
    TokenServiceUnavailable,
    /// The operator has no real key configured for the provider.
    ProviderUnconfigured,
    /// A keyless upload leg names no session the proxy started (unknown, forged, expired or
    /// evicted upload id).
    UnknownUpload,
    /// An OpenAI client secret the proxy never saw minted for one of its tokens (unknown,
    /// forged, expired or evicted).
    UnknownSecret,
    /// The token was allowed, but after the rewrite a proxy token (it, or another credential
    /// value the client sent) would still go upstream: in another header, the path or the query.
    TokenInRequest,
    /// The token's model allow-list refused the request's model, or it could not be read
    /// (`models::refusal` words the message, naming the model).
    ModelNotAllowed,
    /// A budget of the token or its group has no room (429 naming the budget and its reset;
    /// `Retry-After` when the reset is within a day).
    BudgetExhausted {
        /// Which budget and when it resets (`None` when the token-service did not say).
        budget: Option<BudgetDenial>,
        /// Seconds until the reset.
        retry_after_s: u64,
    },
    /// A budgeted token's request on a route that spends but is not metered (images, audio,
    /// batches, WebSocket sessions …), or whose body size cannot be bounded: what it spends
    /// could not be settled against the budget (403).
    BudgetUnmetered,
    /// A budgeted token's request whose body the filter cannot read as the provider would (a
    /// key given twice, invalid UTF-8, not a JSON object): its output cap or the input it
    /// references could not be estimated (400, before anything was forwarded).
    BudgetBodyUnreadable,
}

/// `Retry-After` used when the token-service does not say (the original's static value).
pub const DEFAULT_RETRY_AFTER_S: u64 = 60;

impl Refusal {
    /// Maps a token-service deny to a refusal.
    pub fn from_deny(
        reason: DenyReason,
        retry_after_s: Option<u64>,
        budget: Option<BudgetDenial>,
    ) -> Refusal {
        match reason {
            DenyReason::Invalid => Refusal::Invalid,
            DenyReason::Expired => Refusal::Expired,
            DenyReason::ProviderNotAllowed => Refusal::ProviderNotAllowed,
            DenyReason::RateLimited => Refusal::RateLimited {
                retry_after_s: retry_after_s.unwrap_or(DEFAULT_RETRY_AFTER_S).max(1),
            },
            DenyReason::StoreUnavailable => Refusal::TokenServiceUnavailable,
            DenyReason::ProviderUnconfigured => Refusal::ProviderUnconfigured,
            DenyReason::BudgetExhausted => Refusal::BudgetExhausted {
                budget,
                retry_after_s: retry_after_s.unwrap_or(DEFAULT_RETRY_AFTER_S).max(1),
            },
        }
    }

    /// HTTP status of the local reply.
    pub fn status(self) -> u16 {
        match self {
            Refusal::TokenInRequest | Refusal::BudgetBodyUnreadable => 400,
            Refusal::MissingToken
            | Refusal::Invalid
            | Refusal::Expired
            | Refusal::UnknownUpload
            | Refusal::UnknownSecret => 401,
            Refusal::ProviderNotAllowed | Refusal::ModelNotAllowed | Refusal::BudgetUnmetered => {
                403
            }
            Refusal::RateLimited { .. }
            | Refusal::Throttled { .. }
            | Refusal::BudgetExhausted { .. } => 429,
            Refusal::TokenServiceUnavailable | Refusal::ProviderUnconfigured => 503,
        }
    }

    /// The human message (byte-exact with the original Worker where it had one).
    pub fn message(self) -> &'static str {
        match self {
            Refusal::MissingToken => "missing token",
            Refusal::Invalid => "invalid or revoked token",
            Refusal::Expired => "token expired",
            Refusal::ProviderNotAllowed => "token not allowed for provider",
            Refusal::RateLimited { .. } => "rate limit exceeded",
            Refusal::Throttled { .. } => "too many invalid tokens from this address",
            Refusal::TokenServiceUnavailable => "token store unavailable",
            Refusal::ProviderUnconfigured => "provider not configured on this proxy",
            Refusal::UnknownUpload => "unknown or expired upload session",
            Refusal::UnknownSecret => "unknown or expired client secret",
            Refusal::TokenInRequest => {
                "proxy token found outside its auth slot (another header, the path or the \
                 query); send it only as the API key"
            }
            Refusal::ModelNotAllowed => "model not allowed for this token",
            Refusal::BudgetExhausted { .. } => "budget exhausted",
            Refusal::BudgetUnmetered => {
                "this request is not metered, so it is not allowed under a budget"
            }
            Refusal::BudgetBodyUnreadable => {
                "this token has a budget, and the request body cannot be estimated: send one \
                 JSON object with no key given twice (valid UTF-8)"
            }
        }
    }

    /// The message the client reads: [`Refusal::message`], or for a budget the one naming it
    /// and its reset time.
    pub fn text(self) -> Cow<'static, str> {
        match self {
            Refusal::BudgetExhausted { budget, .. } => budget_message(budget).into(),
            other => other.message().into(),
        }
    }

    /// A stable machine-readable code (OpenAI's `code` field, and the filter's counters).
    pub fn code(self) -> &'static str {
        match self {
            Refusal::MissingToken => "missing_token",
            Refusal::Invalid => "invalid_api_key",
            Refusal::Expired => "token_expired",
            Refusal::ProviderNotAllowed => "provider_not_allowed",
            Refusal::RateLimited { .. } => "rate_limit_exceeded",
            Refusal::Throttled { .. } => "too_many_invalid_tokens",
            Refusal::TokenServiceUnavailable => "token_store_unavailable",
            Refusal::ProviderUnconfigured => "provider_not_configured",
            Refusal::UnknownUpload => "upload_session_not_found",
            Refusal::UnknownSecret => "unknown_client_secret",
            Refusal::TokenInRequest => "proxy_token_in_request",
            Refusal::ModelNotAllowed => "model_not_allowed",
            Refusal::BudgetExhausted { .. } => "budget_exhausted",
            Refusal::BudgetUnmetered => "not_metered_under_budget",
            Refusal::BudgetBodyUnreadable => "budget_body_unreadable",
        }
    }

    /// The local reply for an HTTP request, in the given provider's error shape.
    pub fn reply(self, shape: ErrorShape) -> LocalReply {
        let body = error_body(self, shape).to_string().into_bytes();
        self.with_body("application/json", body)
    }

    /// The local reply for a WebSocket handshake: the bare message as plain text, as the
    /// original Worker did (no client parses a JSON body out of a failed handshake).
    pub fn websocket_reply(self) -> LocalReply {
        self.with_body("text/plain; charset=utf-8", self.text().as_bytes().to_vec())
    }

    fn with_body(self, content_type: &str, body: Vec<u8>) -> LocalReply {
        let mut headers = vec![("content-type".to_string(), content_type.to_string())];
        if let Refusal::RateLimited { retry_after_s } | Refusal::Throttled { retry_after_s } = self
        {
            headers.push(("retry-after".to_string(), retry_after_s.to_string()));
        }
        if let Refusal::BudgetExhausted { retry_after_s, .. } = self {
            if retry_after_s <= RETRY_AFTER_WITHIN_S {
                headers.push(("retry-after".to_string(), retry_after_s.to_string()));
            }
        }
        LocalReply {
            status: self.status(),
            headers,
            body,
        }
    }
}

fn error_body(refusal: Refusal, shape: ErrorShape) -> serde_json::Value {
    error_json(shape, refusal.status(), &refusal.text(), refusal.code())
}

/// An error body in a provider's own shape, for any error the filter answers (its refusals, a
/// provider's refusal of the operator's key): OpenAI `{"error":{"message","type","param",
/// "code"}}`, Anthropic `{"type":"error","error":{"type","message"}}`, Gemini
/// `{"error":{"code","message","status"}}`, each with the type its SDK maps `status` to.
/// `code` is OpenAI's machine-readable code (the other shapes have no such field).
pub fn error_json(shape: ErrorShape, status: u16, message: &str, code: &str) -> serde_json::Value {
    match shape {
        ErrorShape::Openai => {
            let kind = match status {
                400 | 401 => "invalid_request_error",
                403 => "permission_error",
                429 => "requests",
                _ => "server_error",
            };
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
        }
        ErrorShape::Anthropic => {
            let kind = match status {
                400 => "invalid_request_error",
                401 => "authentication_error",
                403 => "permission_error",
                429 => "rate_limit_error",
                _ => "api_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
        ErrorShape::Gemini => {
            let kind = match status {
                400 => "INVALID_ARGUMENT",
                401 => "UNAUTHENTICATED",
                403 => "PERMISSION_DENIED",
                429 => "RESOURCE_EXHAUSTED",
                _ => "UNAVAILABLE",
            };
            json!({"error": {"code": status, "message": message, "status": kind}})
        }
    }
}

/// A response the filter sends itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Vec<u8>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use ptk_wire::{BudgetKind, BudgetPeriod, BudgetScope};

    fn exhausted(retry_after_s: u64) -> Refusal {
        let budget = BudgetDenial {
            scope: BudgetScope::Token,
            kind: BudgetKind::Tokens,
            period: BudgetPeriod::Day,
            resets_at_s: 1_795_996_800,
        };
        Refusal::from_deny(
            DenyReason::BudgetExhausted,
            Some(retry_after_s),
            Some(budget),
        )
    }

    fn retry_after(reply: &LocalReply) -> Option<&str> {
        reply
            .headers
            .iter()
            .find(|(name, _)| name == "retry-after")
            .map(|(_, value)| value.as_str())
    }

    const WORDS: &str =
        "the token's daily token budget is exhausted; it resets at 2026-11-30T00:00:00Z (UTC)";

    #[test]
    fn a_budget_deny_is_a_429_in_each_providers_shape_naming_the_budget() {
        let refusal = exhausted(3600);
        for (shape, message_at, kind_at, kind) in [
            (
                ErrorShape::Openai,
                "/error/message",
                "/error/code",
                "budget_exhausted",
            ),
            (
                ErrorShape::Anthropic,
                "/error/message",
                "/error/type",
                "rate_limit_error",
            ),
            (
                ErrorShape::Gemini,
                "/error/message",
                "/error/status",
                "RESOURCE_EXHAUSTED",
            ),
        ] {
            let reply = refusal.reply(shape);
            assert_eq!(reply.status, 429, "{shape:?}");
            let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
            assert_eq!(body.pointer(message_at).unwrap(), WORDS, "{shape:?}");
            assert_eq!(body.pointer(kind_at).unwrap(), kind, "{shape:?}");
            assert_eq!(retry_after(&reply), Some("3600"), "{shape:?}");
        }
        let ws = refusal.websocket_reply();
        assert_eq!((ws.status, ws.body.as_slice()), (429, WORDS.as_bytes()));
    }

    #[test]
    fn retry_after_only_when_the_reset_is_within_a_day() {
        assert_eq!(
            retry_after(&exhausted(86_400).reply(ErrorShape::Openai)),
            Some("86400")
        );
        assert_eq!(
            retry_after(&exhausted(86_401).reply(ErrorShape::Openai)),
            None
        );
        // A deny without details is still a 429, with a generic message.
        let bare = Refusal::from_deny(DenyReason::BudgetExhausted, None, None);
        let reply = bare.reply(ErrorShape::Anthropic);
        assert_eq!(reply.status, 429);
        assert_eq!(retry_after(&reply), Some("60"));
        assert_eq!(bare.text(), "budget exhausted");
    }
}
