//! API dialects: the provider API a request speaks, which decides how its credential is
//! placed and which error shape its SDK parses. Named apart from Envoy's routes, which the
//! filter also relies on (it rewrites `:authority` so Envoy re-picks the route).

use ptk_wire::Provider;

use crate::providers::{self, DialectSpec};

/// The four dialects a request can speak. Scopes, real keys and upstream hosts use the coarse
/// [`Provider`]; only credential placement and error shapes need the dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// OpenAI's API (`Authorization: Bearer`).
    Openai,
    /// Anthropic's API (`x-api-key`, or `Authorization: Bearer` from current SDKs).
    Anthropic,
    /// Gemini's native API (`x-goog-api-key`).
    Gemini,
    /// Gemini's OpenAI-compatible endpoint under `/v1beta/openai/` (`Authorization: Bearer`).
    GeminiOpenai,
}

impl Dialect {
    /// Its entry in the provider registry.
    pub fn spec(self) -> &'static DialectSpec {
        match self {
            Dialect::Openai => &providers::openai::DIALECT,
            Dialect::Anthropic => &providers::anthropic::DIALECT,
            Dialect::Gemini => &providers::gemini::NATIVE,
            Dialect::GeminiOpenai => &providers::gemini::OPENAI_COMPATIBLE,
        }
    }

    /// The coarse provider for scopes, keys and hosts: the registry entry that lists it.
    pub fn provider(self) -> Provider {
        providers::TABLE
            .into_iter()
            .find(|p| p.dialects.iter().any(|d| d.dialect == self))
            .map_or(Provider::Openai, |p| p.facts.provider)
    }

    /// Which error shape the client's SDK expects in this dialect.
    pub fn error_shape(self) -> ErrorShape {
        self.spec().error_shape
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
pub use crate::providers::gemini::OPENAI_PREFIX as GEMINI_OPENAI_PREFIX;

/// The order in which [`guess_error_shape`] tries the dialects' hints: the most specific
/// first (`/v1beta/openai/` is also under Gemini's `/v1beta/`); OpenAI's shape is the default.
const GUESS_ORDER: [Dialect; 3] = [Dialect::GeminiOpenai, Dialect::Anthropic, Dialect::Gemini];

/// Best guess of the error shape for a request whose token slot is empty, from its path and
/// headers, so that even "missing token" reads naturally in the client's SDK.
pub fn guess_error_shape(path: &str, has_anthropic_version: bool) -> ErrorShape {
    let has_header = |name: &str| has_anthropic_version && name == "anthropic-version";
    GUESS_ORDER
        .into_iter()
        .find(|d| d.spec().hints.matches(path, has_header))
        .map_or(ErrorShape::Openai, Dialect::error_shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_provider_collapses_gemini_openai() {
        assert_eq!(Dialect::GeminiOpenai.provider(), Provider::Gemini);
        assert_eq!(Dialect::Gemini.provider(), Provider::Gemini);
        assert_eq!(Dialect::Openai.provider(), Provider::Openai);
        assert_eq!(Dialect::Anthropic.provider(), Provider::Anthropic);
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
