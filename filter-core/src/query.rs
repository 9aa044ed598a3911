//! Query parameters: the `?key=` slot, and removing every parameter that carries a credential
//! or picks whose account pays, however its name is spelled.
//!
//! Identification stays narrow (the first `key` parameter, DESIGN.md step 1). Stripping is
//! broad: a parameter is dropped when its name, once decoded and normalised, *clearly means*
//! one of those parameters to some server: `KEY=`, `key[]=`, `;key=`, `key%00=`, `$key=`
//! (Google's system-parameter spelling), `%6Bey=`, `%256Bey=` (decoded twice). Every other
//! parameter is kept byte-for-byte, unlike the original Worker, which re-serialised the query.

use std::borrow::Cow;

/// The name of the query parameter Gemini's REST API reads its key from.
pub const KEY_PARAM: &str = "key";

/// Normalised names of parameters that carry a credential: Gemini's `key`, Google's OAuth
/// `access_token` (and its legacy `oauth_token`), and the `api-key` family of other gateways.
pub const CREDENTIAL_PARAMS: [&str; 6] = [
    "key",
    "access_token",
    "oauth_token",
    "api-key",
    "api_key",
    "apikey",
];

/// Normalised names of Google system parameters by which a client picks whose project is
/// billed (`userProject`) or whose quota is charged (`quotaUser`) under the operator's key.
pub const ACCOUNT_PARAMS: [&str; 2] = ["userproject", "quotauser"];

/// Normalised names of Google system parameters that cut a response down to the fields a
/// client names (`fields`, also spelled `$fields`): asking for `candidates` only drops
/// `usageMetadata`, and the call would go unmetered. Never forwarded (the client gets the
/// whole response, which JSON readers take as well).
pub const RESPONSE_MASK_PARAMS: [&str; 1] = ["fields"];

/// Google's `alt` system parameter (also `$alt`) picks the response's encoding: `proto`
/// answers in protobuf, which the meter cannot read, so that call would go unmetered. Never
/// forwarded with that value (the client gets JSON); `json`, `sse` and `media` pass.
const ALT_PARAM: &str = "alt";
const ALT_PROTO: &str = "proto";

/// True for a `name=value` part that asks for a protobuf response (`alt=proto`, the value
/// decoded once, as a server reads it, and compared without case).
fn asks_for_proto(normalized: &str, raw_value: &str) -> bool {
    normalized == ALT_PARAM
        && decode_value(raw_value)
            .trim()
            .eq_ignore_ascii_case(ALT_PROTO)
}

/// How many times a name is percent-decoded at most: a server decodes once, but a second
/// layer costs nothing to see through and some frameworks decode twice.
const DECODE_ROUNDS: usize = 3;

/// Splits a query into its raw `name=value` parts on `&` and `;` (some servers split on
/// both), each with the separator that preceded it (`None` for the first). Empty parts kept.
fn parts(query: &str) -> impl Iterator<Item = (Option<char>, &str)> {
    let mut rest = Some(query);
    let mut sep = None;
    std::iter::from_fn(move || {
        let text = rest?;
        let this_sep = sep;
        // Both separators are one byte, so `at` and `at + 1` are character boundaries.
        match text
            .find(['&', ';'])
            .and_then(|at| text.split_at_checked(at))
        {
            Some((part, tail)) => {
                sep = tail.chars().next();
                rest = tail.get(1..);
                Some((this_sep, part))
            }
            None => {
                rest = None;
                Some((this_sep, text))
            }
        }
    })
}

/// Percent- and `+`-decodes once, as a form decoder would (invalid escapes kept as is).
fn form_decode(text: &str) -> Cow<'_, str> {
    if !text.contains(['%', '+']) {
        return Cow::Borrowed(text);
    }
    let plus_free = text.replace('+', " ");
    let decoded = percent_encoding::percent_decode_str(&plus_free).decode_utf8_lossy();
    Cow::Owned(decoded.into_owned())
}

/// The name a lenient server would read from a raw parameter name: decoded (up to three
/// times), cut at the first control character (`key%00`), trimmed, without
/// one leading `$` (Google's system-parameter prefix) or a `[...]` suffix (`key[]`, `key[0]`),
/// lowercased.
pub fn normalize_name(raw: &str) -> Cow<'_, str> {
    let plain = raw
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if plain {
        return Cow::Borrowed(raw);
    }
    let mut name = Cow::Borrowed(raw);
    for _ in 0..DECODE_ROUNDS {
        let next = form_decode(&name).into_owned();
        if next == name {
            break;
        }
        name = Cow::Owned(next);
    }
    let text = name
        .split(char::is_control)
        .next()
        .unwrap_or_default()
        .trim();
    let text = text.strip_prefix('$').unwrap_or(text);
    let text = text.split('[').next().unwrap_or_default();
    Cow::Owned(text.trim().to_ascii_lowercase())
}

/// True for a normalised name that carries a credential.
pub fn is_credential_param(normalized: &str) -> bool {
    CREDENTIAL_PARAMS.contains(&normalized)
}

/// True for a normalised name that must never reach a provider: a credential, an account
/// choice or a response mask.
pub fn is_stripped_param(normalized: &str) -> bool {
    is_credential_param(normalized)
        || ACCOUNT_PARAMS.contains(&normalized)
        || RESPONSE_MASK_PARAMS.contains(&normalized)
}

fn split_part(part: &str) -> (&str, &str) {
    part.split_once('=').unwrap_or((part, ""))
}

/// Every parameter of a query as (normalised name, raw value), on `&` and `;` alike. Decode
/// a value with [`decode_value`] when it matters: most never need it.
pub fn params(query: &str) -> impl Iterator<Item = (Cow<'_, str>, &str)> {
    parts(query)
        .filter(|(_, part)| !part.is_empty())
        .map(|(_, part)| {
            let (name, value) = split_part(part);
            (normalize_name(name), value)
        })
}

/// A raw parameter value as a server reads it (percent- and `+`-decoded once).
pub fn decode_value(raw: &str) -> Cow<'_, str> {
    form_decode(raw)
}

/// The decoded value of the first non-empty `key` parameter, if any.
///
/// The original Worker read the first occurrence; an empty first occurrence counts as absent,
/// matching its "present and non-empty" rule.
pub fn first_key_param(query: Option<&str>) -> Option<String> {
    first_param(query, KEY_PARAM)
}

/// The decoded value of the first `&`-separated parameter with exactly this decoded name, if
/// it is non-empty (the identification rule; stripping uses [`strip_params`]).
pub fn first_param(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter(|s| !s.is_empty())
        .filter_map(|segment| form_urlencoded::parse(segment.as_bytes()).next())
        .find(|(n, _)| n == name)
        .map(|(_, value)| value.into_owned())
        .filter(|value| !value.is_empty())
}

/// The `path?query` without any credential, account or response-mask parameter (however
/// spelled) or `alt=proto`, the other parts kept exactly as sent with their separators; `None`
/// when there is nothing to remove. The `?` goes too when nothing remains.
///
/// Parameters are split on `&` and `;` alike (a lenient server reads `;key=`), but a stripped
/// parameter takes the rest of its `&`-separated segment with it: a server that splits on `&`
/// only (as the identification does, [`first_param`]) reads `key=tok;en` as one value, so a
/// `;`-part kept after it would be a piece of the credential.
pub fn strip_params(path_and_query: &str) -> Option<String> {
    let (path, query) = path_and_query.split_once('?')?;
    let dropped = |part: &str| {
        let (name, value) = split_part(part);
        let name = normalize_name(name);
        !part.is_empty() && (is_stripped_param(&name) || asks_for_proto(&name, value))
    };
    if !query.split(['&', ';']).any(dropped) {
        return None;
    }
    let mut out = String::with_capacity(path_and_query.len());
    out.push_str(path);
    let mut first = true;
    for segment in query.split('&') {
        let mut in_segment = false;
        for part in segment.split(';') {
            if dropped(part) {
                break;
            }
            if part.is_empty() {
                continue;
            }
            out.push(match (first, in_segment) {
                (true, _) => '?',
                (false, true) => ';',
                (false, false) => '&',
            });
            out.push_str(part);
            first = false;
            in_segment = true;
        }
    }
    Some(out)
}

/// Every credential parameter's value as a server that splits on `&` only reads it, when that
/// differs from [`params`]' reading (the value holds a `;`): (normalised name, raw value).
pub fn whole_credential_values(query: &str) -> impl Iterator<Item = (Cow<'_, str>, &str)> {
    query.split('&').filter_map(|segment| {
        let (name, value) = split_part(segment);
        // Most values hold no `;`: their name is never normalised.
        if !value.contains(';') {
            return None;
        }
        let name = normalize_name(name);
        is_credential_param(&name).then_some((name, value))
    })
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
            ("/p?%6Bey=a&k%65y=b&KEY=c", "/p"),
            ("/p?foo=a%20b&key=x&bar=%2F", "/p?foo=a%20b&bar=%2F"),
            ("/p?&&key=x&", "/p"),
            ("/p", "/p"),
            ("/p?", "/p?"),
            ("/p?keyx=1&key", "/p?keyx=1"),
            ("/p?a=1;key=x&b=2", "/p?a=1&b=2"),
            // The rest of the `&`-segment is the key's value to a server that splits on `&`.
            ("/p?key=x;a=1&b=2", "/p?b=2"),
            ("/p?key=custom-tok;en-tail&b=2", "/p?b=2"),
            ("/p?a=1;b=2;access_token=x;c=3&d=4", "/p?a=1;b=2&d=4"),
            ("/p?a=1&c;key=x", "/p?a=1&c"),
            ("/p?a=1;b=2", "/p?a=1;b=2"),
            // Response masks hide a call's usage from the meter.
            ("/p?alt=sse&fields=candidates", "/p?alt=sse"),
            ("/p?%24fields=candidates&%24FIELDS=x&$fields=y", "/p"),
            ("/p?fieldsx=1&myfields=2", "/p?fieldsx=1&myfields=2"),
            // So does a protobuf answer; the other encodings pass.
            ("/p?alt=proto", "/p"),
            ("/p?%24alt=PROTO&a=1", "/p?a=1"),
            ("/p?alt=%70roto;b=2&c=3", "/p?c=3"),
            (
                "/p?alt=sse&alt=json&alt=media",
                "/p?alt=sse&alt=json&alt=media",
            ),
            ("/p?alt=protobuf", "/p?alt=protobuf"),
        ];
        for (input, want) in cases {
            let got = strip_params(input).unwrap_or_else(|| input.to_string());
            assert_eq!(got, want, "input {input}");
        }
    }

    #[test]
    fn nothing_to_strip_is_none() {
        for input in ["/p", "/p?alt=sse", "/p?keys=1&monkey=2&akey=3", "/p?&&"] {
            assert_eq!(strip_params(input), None, "{input}");
        }
    }

    #[test]
    fn names_normalise_the_way_lenient_servers_read_them() {
        let cases = [
            ("key", "key"),
            ("KEY", "key"),
            ("Key", "key"),
            ("key[]", "key"),
            ("key%5B%5D", "key"),
            ("key[0]", "key"),
            ("key%00", "key"),
            ("key%00junk", "key"),
            ("$key", "key"),
            ("%24key", "key"),
            ("%6Bey", "key"),
            ("%256Bey", "key"),
            ("+key+", "key"),
            ("%20key", "key"),
            ("Access_Token", "access_token"),
            ("userProject", "userproject"),
            ("$quotaUser", "quotauser"),
            ("alt", "alt"),
            ("monkey", "monkey"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_name(raw), want, "{raw}");
        }
    }

    #[test]
    fn params_split_on_both_separators_and_decode() {
        let got: Vec<(String, String)> = params("a=1;KEY=x%2By&&b")
            .map(|(n, v)| (n.into_owned(), decode_value(v).into_owned()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".to_string(), "1".to_string()),
                ("key".to_string(), "x+y".to_string()),
                ("b".to_string(), String::new()),
            ]
        );
    }
}
