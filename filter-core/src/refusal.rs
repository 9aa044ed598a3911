//! Every way the filter refuses a request, and the local reply each one becomes: the exact
//! statuses and messages of the original Worker (§1.2), written in the provider's own error
//! shape so the client's SDK raises its usual authentication / permission / rate-limit error.

use ptk_wire::DenyReason;
use serde_json::json;

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
}

/// `Retry-After` used when the token-service does not say (the original's static value).
pub const DEFAULT_RETRY_AFTER_S: u64 = 60;

impl Refusal {
    /// Maps a token-service deny to a refusal.
    pub fn from_deny(reason: DenyReason, retry_after_s: Option<u64>) -> Refusal {
        match reason {
            DenyReason::Invalid => Refusal::Invalid,
            DenyReason::Expired => Refusal::Expired,
            DenyReason::ProviderNotAllowed => Refusal::ProviderNotAllowed,
            DenyReason::RateLimited => Refusal::RateLimited {
                retry_after_s: retry_after_s.unwrap_or(DEFAULT_RETRY_AFTER_S).max(1),
            },
            DenyReason::StoreUnavailable => Refusal::TokenServiceUnavailable,
            DenyReason::ProviderUnconfigured => Refusal::ProviderUnconfigured,
        }
    }

    /// HTTP status of the local reply.
    pub fn status(self) -> u16 {
        match self {
            Refusal::TokenInRequest => 400,
            Refusal::MissingToken
            | Refusal::Invalid
            | Refusal::Expired
            | Refusal::UnknownUpload
            | Refusal::UnknownSecret => 401,
            Refusal::ProviderNotAllowed | Refusal::ModelNotAllowed => 403,
            Refusal::RateLimited { .. } | Refusal::Throttled { .. } => 429,
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
        self.with_body(
            "text/plain; charset=utf-8",
            self.message().as_bytes().to_vec(),
        )
    }

    fn with_body(self, content_type: &str, body: Vec<u8>) -> LocalReply {
        let mut headers = vec![("content-type".to_string(), content_type.to_string())];
        if let Refusal::RateLimited { retry_after_s } | Refusal::Throttled { retry_after_s } = self
        {
            headers.push(("retry-after".to_string(), retry_after_s.to_string()));
        }
        LocalReply {
            status: self.status(),
            headers,
            body,
        }
    }
}

fn error_body(refusal: Refusal, shape: ErrorShape) -> serde_json::Value {
    error_json(shape, refusal.status(), refusal.message(), refusal.code())
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
