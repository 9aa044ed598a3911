//! The `?key=` slot: finding it and removing every copy of it from a path.
//!
//! Parameters are matched by their *decoded* name, so `%6Bey=` or `k%65y=` count as `key`
//! (a client must not be able to smuggle the token past the strip by encoding it). Every other
//! parameter is kept byte-for-byte, unlike the original Worker, which re-serialised the query.

/// The name of the query parameter Gemini's REST API reads its key from.
pub const KEY_PARAM: &str = "key";

/// Splits a query into raw `a=b` segments (empty segments dropped).
fn segments(query: &str) -> impl Iterator<Item = &str> {
    query.split('&').filter(|s| !s.is_empty())
}

/// Decodes one raw `name=value` segment the way a form decoder would.
fn decode(segment: &str) -> Option<(String, String)> {
    form_urlencoded::parse(segment.as_bytes())
        .next()
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
}

/// The decoded value of the first non-empty `key` parameter, if any.
///
/// The original Worker read the first occurrence; an empty first occurrence counts as absent,
/// matching its "present and non-empty" rule.
pub fn first_key_param(query: Option<&str>) -> Option<String> {
    first_param(query, KEY_PARAM)
}

/// The decoded value of the first parameter with this (decoded) name, if it is non-empty.
pub fn first_param(query: Option<&str>, name: &str) -> Option<String> {
    segments(query?)
        .filter_map(decode)
        .find(|(n, _)| n == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// Removes every parameter named `key` (however it was encoded) from a `path?query`,
/// keeping the other parameters exactly as sent. Drops the `?` when nothing remains.
pub fn strip_key_params(path_and_query: &str) -> String {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return path_and_query.to_string();
    };
    let kept: Vec<&str> = segments(query)
        .filter(|segment| decode(segment).is_none_or(|(name, _)| name != KEY_PARAM))
        .collect();
    if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_key_is_decoded_and_first_wins() {
        assert_eq!(
            first_key_param(Some("alt=sse&key=ptk_a%2Bb&key=second")),
            Some("ptk_a+b".to_string())
        );
        assert_eq!(first_key_param(Some("%6Bey=enc")), Some("enc".to_string()));
        assert_eq!(first_key_param(Some("key=")), None);
        assert_eq!(first_key_param(Some("keys=x&akey=y")), None);
        assert_eq!(first_key_param(None), None);
    }

    #[test]
    fn strip_removes_every_encoding_and_keeps_the_rest_verbatim() {
        let cases = [
            ("/p?key=a", "/p"),
            ("/p?alt=sse&key=a", "/p?alt=sse"),
            ("/p?key=a&alt=sse&key=b", "/p?alt=sse"),
            ("/p?%6Bey=a&k%65y=b&KEY=c", "/p?KEY=c"),
            ("/p?foo=a%20b&key=x&bar=%2F", "/p?foo=a%20b&bar=%2F"),
            ("/p?&&key=x&", "/p"),
            ("/p", "/p"),
            ("/p?", "/p"),
            ("/p?keyx=1&key", "/p?keyx=1"),
        ];
        for (input, want) in cases {
            assert_eq!(strip_key_params(input), want, "input {input}");
        }
    }
}
