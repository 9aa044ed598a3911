//! The model a JSON request body names, read as the provider reads it: the whole body (held
//! by the request-body hold filter) parsed with serde, so escapes are decoded
//! (`"gpt\u002d5"` is `gpt-5`, `"mod\u0065l"` is `model`) and a key given twice is refused
//! (parsers disagree on which one counts). Every other field is skipped, not kept.

use serde::Deserialize;

use super::routes::BodyModel;

/// A byte order mark: not JSON, but some parsers skip it.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What the body says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyModelRead {
    /// It names this model.
    Model(String),
    /// Not a JSON object, a duplicate key, or a `model` that is not a string: unreadable.
    Unreadable,
    /// A JSON object without a model (the provider's default would apply).
    Absent,
}

/// Other keys are skipped (serde's default), a duplicate `model` refused.
#[derive(Deserialize)]
struct TopLevel {
    #[serde(default)]
    model: Option<String>,
}

#[derive(Deserialize)]
struct Session {
    #[serde(default)]
    session: Option<TopLevel>,
}

/// Reads the model at `at` of a whole request body.
pub fn read_body_model(body: &[u8], at: BodyModel) -> BodyModelRead {
    let json = body.strip_prefix(BOM).unwrap_or(body);
    let model = match at {
        BodyModel::TopLevel => serde_json::from_slice::<TopLevel>(json).map(|t| t.model),
        BodyModel::Session => {
            serde_json::from_slice::<Session>(json).map(|s| s.session.and_then(|t| t.model))
        }
    };
    match model {
        Ok(Some(model)) => BodyModelRead::Model(model),
        Ok(None) => BodyModelRead::Absent,
        Err(_) => BodyModelRead::Unreadable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BodyModelRead::*;

    #[test]
    fn the_model_is_read_as_the_provider_reads_it() {
        let m = |s: &str| Model(s.to_string());
        let cases: [(&[u8], BodyModel, BodyModelRead); 11] = [
            (
                br#"{"model":"gpt-5","messages":[{"model":"x"}]}"#,
                BodyModel::TopLevel,
                m("gpt-5"),
            ),
            (
                br#"{"messages":[],"model":"gpt\u002d5"}"#,
                BodyModel::TopLevel,
                m("gpt-5"),
            ),
            (
                br#"{"mod\u0065l":"gpt-4o"}"#,
                BodyModel::TopLevel,
                m("gpt-4o"),
            ),
            (
                b"\xEF\xBB\xBF{\"model\":\"gpt-5\"}",
                BodyModel::TopLevel,
                m("gpt-5"),
            ),
            (
                br#"{"model":"gpt-5","model":"gpt-4o"}"#,
                BodyModel::TopLevel,
                Unreadable,
            ),
            (
                br#"{"model":"gpt-5","mod\u0065l":"gpt-4o"}"#,
                BodyModel::TopLevel,
                Unreadable,
            ),
            (br#"{"model":42}"#, BodyModel::TopLevel, Unreadable),
            (br#"[{"model":"gpt-5"}]"#, BodyModel::TopLevel, Unreadable),
            (br#"{"input":"hi"}"#, BodyModel::TopLevel, Absent),
            (
                br#"{"session":{"type":"realtime","model":"gpt-realtime"}}"#,
                BodyModel::Session,
                m("gpt-realtime"),
            ),
            (br#"{"model":"gpt-realtime"}"#, BodyModel::Session, Absent),
        ];
        for (body, at, want) in cases {
            assert_eq!(
                read_body_model(body, at),
                want,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
