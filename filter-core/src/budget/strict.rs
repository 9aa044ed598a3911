//! A budgeted request's body read strictly, so that what the estimate reads is what every
//! provider reads: a JSON document (a leading byte order mark skipped, as some parsers do)
//! with **no key given twice in any object**. Parsers disagree on duplicates (first wins, last
//! wins, refused): a body with `"max_tokens":1,"max_tokens":90000` or two
//! `previous_response_id`s would be estimated on one and run on the other. Invalid UTF-8,
//! lone surrogates, numbers out of range and nesting past serde_json's limit are unreadable
//! too. Such a body is refused under a budget (`Refusal::BudgetBodyUnreadable`), never
//! guessed at.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A byte order mark: not JSON, but some parsers skip it.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The body as a JSON value, `None` if it is not JSON or an object repeats a key.
pub fn parse_strict(body: &[u8]) -> Option<Value> {
    let json = body.strip_prefix(BOM).unwrap_or(body);
    let mut de = serde_json::Deserializer::from_slice(json);
    let value = Strict.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(value)
}

/// Builds a [`Value`] like serde_json's own, refusing a repeated key.
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value without repeated keys")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("not a finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Strict)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(A::Error::custom(format!("the key {key:?} is repeated")));
            }
            let value = map.next_value_seed(Strict)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_document_is_read_as_serde_json_reads_it() {
        let body = br#"{"a":[1,-2,1.5,"x\u0041",null,true,{"b":{}}],"c":"d"}"#;
        assert_eq!(
            parse_strict(body),
            Some(json!({"a":[1,-2,1.5,"xA",null,true,{"b":{}}],"c":"d"}))
        );
        assert_eq!(parse_strict(b"\xEF\xBB\xBF{}"), Some(json!({})));
        assert_eq!(parse_strict(b" [1] "), Some(json!([1])));
    }

    #[test]
    fn what_parsers_disagree_on_is_unreadable() {
        let unreadable: [&[u8]; 9] = [
            br#"{"max_tokens":1,"max_tokens":90000}"#,
            // Escapes are decoded before keys are compared.
            br#"{"max_tokens":1,"max\u005ftokens":90000}"#,
            br#"{"input":[{"type":"x","file_id":"a","file_id":"b"}]}"#,
            b"{\"a\":\"\xff\"}",
            br#"{"a":"\ud800"}"#,
            br#"{"a":1e400}"#,
            br#"{"a":1} {"b":2}"#,
            b"",
            b"not json",
        ];
        for body in unreadable {
            assert_eq!(
                parse_strict(body),
                None,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(parse_strict(deep.as_bytes()), None);
    }
}
