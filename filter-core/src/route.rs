//! Fine-grained provider routes: where a request goes and how its credential is shaped.

use ptk_wire::Provider;

/// The four routes a request can take. Scopes, real keys and upstream hosts use the coarse
/// [`Provider`]; only credential placement and error shapes need the fine route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// OpenAI's API (`Authorization: Bearer`).
    Openai,
    /// Anthropic's API (`x-api-key`, or `Authorization: Bearer` from current SDKs).
    Anthropic,
    /// Gemini's native API (`x-goog-api-key`).
    Gemini,
    /// Gemini's OpenAI-compatible endpoint under `/v1beta/openai/` (`Authorization: Bearer`).
    GeminiOpenai,
}

impl Route {
    /// The coarse provider for scopes, keys and hosts.
    pub fn provider(self) -> Provider {
        match self {
            Route::Openai => Provider::Openai,
            Route::Anthropic => Provider::Anthropic,
            Route::Gemini | Route::GeminiOpenai => Provider::Gemini,
        }
    }

    /// Which error shape the client's SDK expects on this route.
    pub fn error_shape(self) -> ErrorShape {
        match self {
            Route::Openai | Route::GeminiOpenai => ErrorShape::Openai,
            Route::Anthropic => ErrorShape::Anthropic,
            Route::Gemini => ErrorShape::Gemini,
        }
    }
}

/// The JSON error body family a client's SDK parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// `{"error":{"message","type","code"}}`
    Openai,
    /// `{"type":"error","error":{"type","message"}}`
    Anthropic,
    /// `{"error":{"code","message","status"}}`
    Gemini,
}

/// Path prefix of Gemini's OpenAI-compatible endpoint (exact, case-sensitive, trailing slash).
pub const GEMINI_OPENAI_PREFIX: &str = "/v1beta/openai/";

/// Best guess of the error shape for a request whose token slot is empty, from its path and
/// headers, so that even "missing token" reads naturally in the client's SDK.
pub fn guess_error_shape(path: &str, has_anthropic_version: bool) -> ErrorShape {
    if path.starts_with(GEMINI_OPENAI_PREFIX) {
        ErrorShape::Openai
    } else if has_anthropic_version || path.starts_with("/v1/messages") {
        ErrorShape::Anthropic
    } else if path.contains(":generateContent")
        || path.contains(":streamGenerateContent")
        || path.contains("/ws/google.ai.generativelanguage.")
        || ["/v1beta/", "/v1alpha/", "/upload/v1beta/"]
            .iter()
            .any(|prefix| path.starts_with(prefix))
    {
        ErrorShape::Gemini
    } else {
        ErrorShape::Openai
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_provider_collapses_gemini_openai() {
        assert_eq!(Route::GeminiOpenai.provider(), Provider::Gemini);
        assert_eq!(Route::Gemini.provider(), Provider::Gemini);
        assert_eq!(Route::Openai.provider(), Provider::Openai);
        assert_eq!(Route::Anthropic.provider(), Provider::Anthropic);
    }

    #[test]
    fn guessed_shapes() {
        let cases = [
            ("/v1/chat/completions", false, ErrorShape::Openai),
            ("/v1/messages", false, ErrorShape::Anthropic),
            ("/v1/models", true, ErrorShape::Anthropic),
            (
                "/v1beta/models/g:generateContent",
                false,
                ErrorShape::Gemini,
            ),
            (
                "/v1/models/g:streamGenerateContent",
                false,
                ErrorShape::Gemini,
            ),
            ("/v1beta/openai/chat/completions", false, ErrorShape::Openai),
            ("/anything", false, ErrorShape::Openai),
        ];
        for (path, av, want) in cases {
            assert_eq!(guess_error_shape(path, av), want, "{path}");
        }
    }
}
