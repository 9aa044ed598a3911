//! How tokens look to an operator: a table for people, JSON for scripts.

use chrono::{DateTime, Utc};
use comfy_table::{presets, Table};
use serde_json::Value;

use crate::expiry::display_time;
use crate::store::{TokenListing, TokenRecord};
use crate::token_view::{display_state, TokenView};

/// Characters of the hash shown in the table (enough to pass back as a prefix).
const HASH_SHOWN: usize = 12;

fn providers(record: &TokenRecord) -> Vec<&'static str> {
    record.providers.iter().map(|p| p.as_str()).collect()
}

/// A listing row as JSON, the shape the admin API answers with ([`TokenView`]): the record
/// plus `last_used`. Never includes the plaintext (the store does not have it).
pub fn listing_json(listing: &TokenListing, now: DateTime<Utc>) -> Value {
    // Serializing plain strings and numbers cannot fail; Null would show it did.
    serde_json::to_value(TokenView::of_listing(listing, now)).unwrap_or(Value::Null)
}

/// The human table, one token per line, times in UTC: columns two spaces apart, no borders
/// (comfy-table's `NOTHING` style), no trailing spaces.
pub fn table(listings: &[TokenListing], now: DateTime<Utc>) -> String {
    let mut table = Table::new();
    table.load_style(presets::NOTHING).set_header([
        "HASH",
        "LABEL",
        "LAST4",
        "PROVIDERS",
        "STATUS",
        "CREATED",
        "EXPIRES",
        "LAST USED",
        "RATE LIMIT",
    ]);
    for l in listings {
        let r = &l.record;
        table.add_row([
            r.hash.chars().take(HASH_SHOWN).collect(),
            r.label.clone(),
            r.last4.clone(),
            providers(r).join(","),
            display_state(r, now).to_owned(),
            display_time(&r.created_at),
            r.expires_at
                .as_deref()
                .filter(|e| !e.trim().is_empty())
                .map_or_else(|| "never".to_owned(), display_time),
            l.last_used
                .as_deref()
                .map_or_else(|| "-".to_owned(), display_time),
            r.rate_limit
                .map_or_else(|| "default".to_owned(), |rl| format!("{rl}s")),
        ]);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    let mut out = String::new();
    for line in table.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::ratelimit::RateLimit;
    use crate::store::contract::sample_record;
    use crate::store::TokenStatus;
    use chrono::TimeZone as _;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 7, 8, 12, 0, 0).unwrap()
    }

    #[test]
    fn derived_states_follow_check_precedence() {
        let mut r = sample_record("ab");
        assert_eq!(display_state(&r, now()), "active");
        r.expires_at = Some("2026-07-08T12:00:00.000Z".into());
        assert_eq!(display_state(&r, now()), "expired");
        r.expires_at = Some("soon".into());
        assert_eq!(display_state(&r, now()), "bad-expiry");
        r.status = TokenStatus::Disabled;
        assert_eq!(display_state(&r, now()), "disabled");
    }

    #[test]
    fn table_has_aligned_columns() {
        let mut a = sample_record("ab");
        a.rate_limit = Some(RateLimit {
            limit: 3,
            window_s: 60,
        });
        a.expires_at = Some("2030-01-01T00:00:00.000Z".into());
        let b = sample_record("cd");
        let text = table(
            &[
                TokenListing {
                    record: a,
                    last_used: Some("2026-07-08T11:59:00.000Z".into()),
                },
                TokenListing {
                    record: b,
                    last_used: None,
                },
            ],
            now(),
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("HASH          LABEL"), "{text}");
        assert!(lines[1].starts_with("abababababab  team a"), "{text}");
        assert!(lines[1].contains("2030-01-01 00:00") && lines[1].contains("3/60s"));
        assert!(lines[2].contains("never") && lines[2].contains("default"));
        let status_col = lines[0].find("STATUS").unwrap();
        assert_eq!(&lines[1][status_col..status_col + 6], "active");
    }

    #[test]
    fn json_has_every_field() {
        let listing = TokenListing {
            record: sample_record("ab"),
            last_used: None,
        };
        let v = listing_json(&listing, now());
        for field in [
            "hash",
            "label",
            "last4",
            "providers",
            "status",
            "state",
            "created_at",
            "expires_at",
            "last_used",
            "rate_limit",
        ] {
            assert!(v.get(field).is_some(), "{field} missing in {v}");
        }
        assert_eq!(v["providers"], json!(["openai", "gemini"]));
    }
}
