//! `Sec-WebSocket-Protocol` offers: the browser OpenAI Realtime client puts its key in an
//! entry (`openai-insecure-api-key.<key>`), and may add `openai-organization.<id>` and
//! `openai-project.<id>`, which pick whose account the operator's key is used for. Those
//! entries never go upstream; `realtime`, `openai-beta.*` and any other entry keep their order
//! (the provider must echo one of the offered protocols).

/// Entry prefix behind which browser OpenAI Realtime clients put their key.
pub const KEY_PREFIX: &str = "openai-insecure-api-key.";

/// Entry prefixes by which a client picks the OpenAI organization or project.
pub const ACCOUNT_PREFIXES: [&str; 2] = ["openai-organization.", "openai-project."];

/// The non-empty entries of one offer, trimmed, in order.
pub fn entries(offer: &str) -> impl Iterator<Item = &str> {
    offer.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// `entry` without `prefix`, compared case-insensitively (the case of the rest is kept).
fn strip_prefix_ignore_case<'a>(entry: &'a str, prefix: &str) -> Option<&'a str> {
    let (head, rest) = entry.split_at_checked(prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then_some(rest)
}

/// The token inside an offer, if an entry carries one (identification: exact prefix, first
/// key entry; `None` when that entry is empty).
pub fn token(offer: &str) -> Option<&str> {
    entries(offer)
        .find_map(|entry| entry.strip_prefix(KEY_PREFIX))
        .filter(|token| !token.is_empty())
}

/// The value of an entry that carries a key, whatever the case of its prefix (stripping and
/// the final guard are broader than identification).
pub fn key_entry_value(entry: &str) -> Option<&str> {
    strip_prefix_ignore_case(entry, KEY_PREFIX)
}

/// True for an organization or project entry (any case).
pub fn is_account_entry(entry: &str) -> bool {
    ACCOUNT_PREFIXES
        .iter()
        .any(|prefix| strip_prefix_ignore_case(entry, prefix).is_some())
}

/// True for an entry that must not go upstream: a key, an organization or a project.
pub fn is_dropped(entry: &str) -> bool {
    key_entry_value(entry).is_some() || is_account_entry(entry)
}

/// True when an offer names an organization or project.
pub fn names_account(offer: &str) -> bool {
    entries(offer).any(is_account_entry)
}

/// The offer without organization and project entries, key entries kept (a relayed OpenAI
/// client secret rides in one); `None` when nothing remains.
pub fn without_accounts(offer: &str) -> Option<String> {
    let kept: Vec<&str> = entries(offer).filter(|e| !is_account_entry(e)).collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

/// True when an offer holds any entry that must be dropped.
pub fn needs_cleaning(offer: &str) -> bool {
    entries(offer).any(is_dropped)
}

/// The offer without the dropped entries, the rest in order joined by `", "`; `None` when
/// nothing remains (the header is then removed).
pub fn clean(offer: &str) -> Option<String> {
    let kept: Vec<&str> = entries(offer).filter(|e| !is_dropped(e)).collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_needs_the_exact_prefix_and_a_value() {
        assert_eq!(token("a, openai-insecure-api-key.T ,b"), Some("T"));
        assert_eq!(token(",,openai-insecure-api-key.T"), Some("T"));
        assert_eq!(token("Openai-insecure-api-key.T"), None);
        assert_eq!(token("openai-insecure-api-key."), None);
        assert_eq!(token("realtime"), None);
    }

    #[test]
    fn cleaning_drops_keys_orgs_and_projects_in_any_case() {
        let cases = [
            (
                "realtime, openai-insecure-api-key.T, openai-beta.realtime-v1",
                Some("realtime, openai-beta.realtime-v1"),
            ),
            (
                "realtime, openai-organization.org-1, openai-project.proj_2",
                Some("realtime"),
            ),
            (
                "OpenAI-Organization.org, OPENAI-PROJECT.p, Openai-Insecure-Api-Key.T, realtime",
                Some("realtime"),
            ),
            (" , openai-insecure-api-key.x ,", None),
            ("openai-organization.", None),
            (
                "openai-organizations.x, realtime",
                Some("openai-organizations.x, realtime"),
            ),
        ];
        for (offer, want) in cases {
            assert_eq!(clean(offer).as_deref(), want, "{offer}");
        }
        assert!(!needs_cleaning("realtime, openai-beta.realtime-v1"));
        assert!(needs_cleaning("realtime,openai-project.p"));
    }

    #[test]
    fn account_entries_alone_can_be_dropped() {
        let offer =
            "realtime, openai-insecure-api-key.ek_1, OpenAI-Project.p, openai-beta.realtime-v1";
        assert!(names_account(offer));
        assert_eq!(
            without_accounts(offer).as_deref(),
            Some("realtime, openai-insecure-api-key.ek_1, openai-beta.realtime-v1")
        );
        assert!(!names_account("realtime, openai-insecure-api-key.ek_1"));
        assert_eq!(without_accounts("openai-organization.o"), None);
    }
}
