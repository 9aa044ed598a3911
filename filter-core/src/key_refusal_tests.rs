#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use proptest::prelude::*;

use super::*;

const OPENAI_BAD_KEY: &str = r#"{"error":{"message":"Incorrect API key provided: sk-proj-****INEL. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
// OpenAI's real missing-scope answer has `code: null`; the e2e mock names it.
const OPENAI_SCOPE_NULL: &str = r#"{"error":{"message":"You have insufficient permissions for this operation. Missing scopes: api.responses.write. Check that you have the correct role in your organization (Reader, Writer, Owner) and project (Member, Owner), and if you're using a restricted API key, that it has the necessary scopes.","type":"invalid_request_error","param":null,"code":null}}"#;
const OPENAI_SCOPE_CODE: &str = r#"{"error":{"message":"You have insufficient permissions for this operation. Missing scopes: api.model.read.","type":"invalid_request_error","param":null,"code":"missing_scope"}}"#;
const OPENAI_ORG: &str = r#"{"error":{"message":"OpenAI-Organization header should match organization for API key","type":"invalid_request_error","param":null,"code":"invalid_organization"}}"#;
const OPENAI_PROJECT: &str = r#"{"error":{"message":"OpenAI-Project header should match project for API key","type":"invalid_request_error","param":null,"code":"mismatched_project"}}"#;
const OPENAI_DEACTIVATED: &str = r#"{"error":{"message":"The OpenAI account associated with this API key has been deactivated.","type":"invalid_request_error","param":null,"code":"account_deactivated"}}"#;
const OPENAI_NO_CODE_BAD_KEY: &str = r#"{"error":{"message":"Incorrect API key provided: sk-****abcd.","type":"invalid_request_error"}}"#;
const OPENAI_GEO: &str = r#"{"error":{"code":"unsupported_country_region_territory","message":"Country, region, or territory not supported","param":null,"type":"request_forbidden"}}"#;
const OPENAI_MODEL_403: &str = r#"{"error":{"message":"Project proj_x does not have access to model gpt-5","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#;

const ANTHROPIC_BAD_KEY: &str = r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},"request_id":"req_1"}"#;
const ANTHROPIC_PERMISSION: &str = r#"{"type":"error","error":{"type":"permission_error","message":"Your API key does not have permission to use the specified resource."}}"#;

fn google(status: u16, state: &str, reason: Option<&str>, message: &str) -> String {
    let details = reason.map_or(String::new(), |r| {
        format!(
            r#","details":[{{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"{r}","domain":"googleapis.com"}}]"#
        )
    });
    format!(r#"{{"error":{{"code":{status},"message":"{message}","status":"{state}"{details}}}}}"#)
}

/// Every shape we know of each provider's 401/403 (and Gemini's 400), and the decision.
#[test]
fn each_providers_refusals_and_non_refusals() {
    let gem = |status, state, reason, message| google(status, state, reason, message);
    let rows: Vec<(Provider, u16, String, bool, &str)> = vec![
        (
            Provider::Openai,
            401,
            OPENAI_BAD_KEY.into(),
            true,
            "invalid_api_key",
        ),
        (
            Provider::Openai,
            403,
            OPENAI_BAD_KEY.into(),
            true,
            "invalid_api_key on a 403",
        ),
        (
            Provider::Openai,
            401,
            OPENAI_DEACTIVATED.into(),
            true,
            "account deactivated",
        ),
        (
            Provider::Openai,
            401,
            OPENAI_NO_CODE_BAD_KEY.into(),
            true,
            "incorrect key, no code",
        ),
        (
            Provider::Openai,
            401,
            OPENAI_SCOPE_NULL.into(),
            false,
            "missing scope, code null",
        ),
        (
            Provider::Openai,
            401,
            OPENAI_SCOPE_CODE.into(),
            false,
            "missing_scope",
        ),
        (
            Provider::Openai,
            401,
            OPENAI_ORG.into(),
            false,
            "client's organization header",
        ),
        (
            Provider::Openai,
            401,
            OPENAI_PROJECT.into(),
            false,
            "client's project header",
        ),
        (Provider::Openai, 403, OPENAI_GEO.into(), false, "geo-block"),
        (
            Provider::Openai,
            403,
            OPENAI_MODEL_403.into(),
            false,
            "a model the key may not use",
        ),
        (
            Provider::Openai,
            429,
            OPENAI_BAD_KEY.into(),
            false,
            "not a 401/403",
        ),
        (Provider::Openai, 401, "".into(), false, "empty body"),
        (
            Provider::Openai,
            401,
            "<html>401</html>".into(),
            false,
            "not JSON",
        ),
        (
            Provider::Openai,
            401,
            OPENAI_BAD_KEY[..40].into(),
            false,
            "cut short",
        ),
        (
            Provider::Anthropic,
            401,
            ANTHROPIC_BAD_KEY.into(),
            true,
            "authentication_error",
        ),
        (
            Provider::Anthropic,
            403,
            ANTHROPIC_PERMISSION.into(),
            false,
            "permission_error",
        ),
        (
            Provider::Anthropic,
            403,
            ANTHROPIC_BAD_KEY.into(),
            false,
            "auth error on a 403",
        ),
        (
            Provider::Anthropic,
            401,
            OPENAI_BAD_KEY.into(),
            false,
            "another provider's shape",
        ),
        (
            Provider::Gemini,
            400,
            gem(
                400,
                "INVALID_ARGUMENT",
                Some("API_KEY_INVALID"),
                "API key not valid. Please pass a valid API key.",
            ),
            true,
            "API_KEY_INVALID",
        ),
        (
            Provider::Gemini,
            403,
            gem(
                403,
                "PERMISSION_DENIED",
                Some("API_KEY_SERVICE_BLOCKED"),
                "Requests to this API are blocked.",
            ),
            true,
            "service blocked",
        ),
        (
            Provider::Gemini,
            403,
            gem(
                403,
                "PERMISSION_DENIED",
                Some("API_KEY_IP_ADDRESS_BLOCKED"),
                "blocked",
            ),
            true,
            "egress IP blocked",
        ),
        (
            Provider::Gemini,
            403,
            gem(
                403,
                "PERMISSION_DENIED",
                Some("SERVICE_DISABLED"),
                "API not enabled",
            ),
            true,
            "API disabled",
        ),
        (
            Provider::Gemini,
            403,
            gem(
                403,
                "PERMISSION_DENIED",
                Some("CONSUMER_SUSPENDED"),
                "Permission denied: Consumer has been suspended.",
            ),
            true,
            "suspended",
        ),
        (
            Provider::Gemini,
            403,
            gem(
                403,
                "PERMISSION_DENIED",
                None,
                "Your API key was reported as leaked. Please use another API key.",
            ),
            true,
            "leaked",
        ),
        (
            Provider::Gemini,
            403,
            gem(
                403,
                "PERMISSION_DENIED",
                Some("API_KEY_HTTP_REFERRER_BLOCKED"),
                "Requests from referer x are blocked.",
            ),
            false,
            "client's referer",
        ),
        (
            Provider::Gemini,
            403,
            gem(
                403,
                "PERMISSION_DENIED",
                Some("API_KEY_ANDROID_APP_BLOCKED"),
                "blocked",
            ),
            false,
            "client's app header",
        ),
        (
            Provider::Gemini,
            403,
            gem(
                403,
                "PERMISSION_DENIED",
                None,
                "You do not have permission to access tuned model x",
            ),
            false,
            "a resource",
        ),
        (
            Provider::Gemini,
            401,
            gem(
                401,
                "UNAUTHENTICATED",
                Some("CREDENTIALS_MISSING"),
                "API keys are not supported by this API.",
            ),
            false,
            "a route wanting OAuth",
        ),
        (
            Provider::Gemini,
            404,
            gem(404, "NOT_FOUND", Some("API_KEY_INVALID"), "x"),
            false,
            "not a 400/401/403",
        ),
        (
            Provider::Gemini,
            400,
            format!(
                "[{}]",
                gem(400, "INVALID_ARGUMENT", Some("API_KEY_INVALID"), "x")
            ),
            true,
            "streaming array",
        ),
    ];
    for (provider, status, body, want, why) in rows {
        assert_eq!(
            key_refused(provider, status, body.as_bytes()),
            want,
            "{why}: {provider:?} {status} {body}"
        );
    }
}

#[test]
fn a_configured_provider_is_read_as_openai() {
    let selfhosted = Provider::parse("selfhosted").unwrap_or(Provider::Openai);
    assert!(key_refused(selfhosted, 401, OPENAI_BAD_KEY.as_bytes()));
    assert!(!key_refused(selfhosted, 401, OPENAI_SCOPE_CODE.as_bytes()));
}

proptest! {
    /// No body, however malformed or deep, makes the decision panic; and nothing that is not
    /// JSON is ever taken for a refusal.
    #[test]
    fn no_body_panics(body in proptest::collection::vec(any::<u8>(), 0..2048), status in 0u16..600) {
        for provider in Provider::ALL {
            let refused = key_refused(provider, status, &body);
            if serde_json::from_slice::<Value>(&body).is_err() {
                prop_assert!(!refused);
            }
        }
    }

    /// JSON-looking bodies built from the fields that matter, nested and typed at random.
    #[test]
    fn no_json_shape_panics(
        code in prop::option::of(prop_oneof![Just("\"invalid_api_key\"".to_owned()), Just("null".to_owned()), Just("7".to_owned()), Just("[]".to_owned())]),
        kind in prop_oneof![Just("\"authentication_error\""), Just("{}"), Just("1")],
        details in prop_oneof![Just("[{\"reason\":\"API_KEY_INVALID\"}]"), Just("{}"), Just("[1,null]"), Just("\"x\"")],
        wrap in 0usize..3,
        status in prop_oneof![Just(400u16), Just(401), Just(403)],
    ) {
        let code = code.map_or(String::new(), |c| format!(",\"code\":{c}"));
        let error = format!("{{\"type\":{kind},\"details\":{details}{code}}}");
        let body = match wrap {
            0 => format!("{{\"type\":\"error\",\"error\":{error}}}"),
            1 => format!("[{{\"error\":{error}}},2]"),
            _ => error,
        };
        for provider in Provider::ALL {
            let _ = key_refused(provider, status, body.as_bytes());
        }
    }
}

#[test]
fn a_deeply_nested_body_does_not_overflow() {
    let deep = "[".repeat(100_000);
    for provider in Provider::ALL {
        assert!(!key_refused(provider, 401, deep.as_bytes()));
    }
}
