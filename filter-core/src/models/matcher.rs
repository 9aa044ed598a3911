//! Matching a model name against an allow-list: exact names and `*` patterns (`gpt-5*`,
//! `claude-sonnet-4*`, `gemini-2.5-*`), ASCII case-insensitive (providers treat model ids
//! case-insensitively or not at all; refusing `GPT-5` while allowing `gpt-5` would only
//! confuse), `*` matching any run of characters, including none. Linear in the name for each
//! pattern: the parts between stars are found leftmost-first, which is exact for `*`-only
//! patterns.

/// Whether `pattern` matches all of `model`.
pub fn matches(pattern: &str, model: &str) -> bool {
    let model = model.as_bytes();
    let mut parts = pattern.as_bytes().split(|b| *b == b'*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = strip_prefix(model, first) else {
        return false;
    };
    let parts: Vec<&[u8]> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No star: the whole name, nothing more.
        return rest.is_empty();
    };
    for part in middle {
        match find(rest, part) {
            Some(after) => rest = after,
            None => return false,
        }
    }
    ends_with(rest, last)
}

/// Whether any entry of `models` matches `model`.
pub fn allows(models: &[String], model: &str) -> bool {
    models.iter().any(|pattern| matches(pattern, model))
}

fn strip_prefix<'a>(text: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}

fn ends_with(text: &[u8], suffix: &[u8]) -> bool {
    text.len()
        .checked_sub(suffix.len())
        .and_then(|start| text.get(start..))
        .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
}

/// What follows the leftmost occurrence of `part` in `text`.
fn find<'a>(text: &'a [u8], part: &[u8]) -> Option<&'a [u8]> {
    if part.is_empty() {
        return Some(text);
    }
    let at = text
        .windows(part.len())
        .position(|w| w.eq_ignore_ascii_case(part))?;
    text.get(at.checked_add(part.len())?..)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn patterns_match_as_documented() {
        let cases = [
            ("gpt-5*", "gpt-5", true),
            ("gpt-5*", "gpt-5-mini", true),
            ("gpt-5*", "GPT-5-MINI", true),
            ("gpt-5*", "gpt-4o", false),
            ("gpt-5*", "xgpt-5", false),
            ("*-mini", "gpt-5-mini", true),
            ("*-mini", "gpt-5-mini-2025", false),
            ("claude-*-4*", "claude-sonnet-4-5", true),
            ("claude-*-4*", "claude-3-haiku", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "acb", false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("**", "", true),
            ("*", "anything/at:all", true),
            ("gpt-4o", "gpt-4o", true),
            ("gpt-4o", "gpt-4o-mini", false),
            ("gpt-4o", "gpt-4", false),
            ("", "", true),
            ("", "x", false),
        ];
        for (pattern, model, want) in cases {
            assert_eq!(matches(pattern, model), want, "{pattern} vs {model}");
        }
        let list = vec!["gpt-5*".to_string(), "claude-sonnet-4*".to_string()];
        assert!(allows(&list, "claude-sonnet-4-5"));
        assert!(!allows(&list, "claude-opus-4-1"));
        assert!(!allows(&[], "gpt-5"));
    }

    /// Names as providers spell them, plus the odd byte a client may send.
    fn name() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9._:/@+-]{0,24}|.{0,8}"
    }

    proptest! {
        #[test]
        fn every_name_matches_itself_in_any_case_and_the_star(model in name()) {
            prop_assert!(matches(&model, &model));
            prop_assert!(matches(&model.to_ascii_uppercase(), &model));
            prop_assert!(matches("*", &model));
        }

        #[test]
        fn a_pattern_without_a_star_matches_only_itself_modulo_case(
            pattern in "[a-zA-Z0-9._-]{0,12}",
            model in name(),
        ) {
            prop_assert_eq!(matches(&pattern, &model), pattern.eq_ignore_ascii_case(&model));
        }

        #[test]
        fn a_prefix_pattern_matches_exactly_the_names_that_start_with_it(
            prefix in "[a-z0-9.-]{0,8}",
            model in name(),
        ) {
            let starts = model.to_ascii_lowercase().starts_with(&prefix);
            prop_assert_eq!(matches(&format!("{prefix}*"), &model), starts);
        }

        #[test]
        fn cutting_a_name_around_a_star_still_matches(model in "[a-z0-9-]{0,16}", a in 0usize..17, b in 0usize..17) {
            let (a, b) = (a.min(model.len()), b.min(model.len()));
            let (lo, hi) = (a.min(b), a.max(b));
            let pattern = format!("{}*{}", &model[..lo], &model[hi..]);
            prop_assert!(matches(&pattern, &model));
        }
    }
}
