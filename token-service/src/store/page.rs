//! Keyset pagination of the token list: a page is the tokens after a cursor in the list's
//! order (newest first: `created_at` descending, then `hash` ascending), never an offset, so a
//! page costs its own rows whatever the table's size, and inserts or deletes between two
//! requests neither repeat nor skip a token that was there all along.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::TokenListing;

/// The most tokens one page holds; larger requests get this many.
pub const MAX_PAGE_LIMIT: usize = 1_000;

/// Where a page ends: the sort key of its last token. Carried by clients as an opaque string
/// ([`PageCursor::encode`]); it stays valid when that token is deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCursor {
    /// The last token's `created_at`, as stored.
    pub created_at: String,
    /// The last token's hash.
    pub hash: String,
}

impl PageCursor {
    /// The cursor just past `listing`.
    pub fn after(listing: &TokenListing) -> PageCursor {
        PageCursor {
            created_at: listing.record.created_at.clone(),
            hash: listing.record.hash.clone(),
        }
    }

    /// `<base64url created_at>.<hash>`: URL-safe whatever the stored timestamp holds.
    pub fn encode(&self) -> String {
        format!("{}.{}", URL_SAFE_NO_PAD.encode(&self.created_at), self.hash)
    }

    /// Reads [`PageCursor::encode`]'s form; `None` for anything else (the hash must be
    /// lowercase hex, at most 64 characters).
    pub fn decode(text: &str) -> Option<PageCursor> {
        let (created_at, hash) = text.split_once('.')?;
        let created_at = String::from_utf8(URL_SAFE_NO_PAD.decode(created_at).ok()?).ok()?;
        let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        if hash.is_empty() || hash.len() > 64 || !hash.chars().all(hex) {
            return None;
        }
        Some(PageCursor {
            created_at,
            hash: hash.to_owned(),
        })
    }
}

/// One page of the token list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// At most the limit asked for, newest first.
    pub tokens: Vec<TokenListing>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<PageCursor>,
}

/// The row count a backend asks for: the limit clamped to `1..=MAX_PAGE_LIMIT`, plus one row
/// that only tells whether another page follows.
pub(super) fn rows_to_fetch(limit: usize) -> i64 {
    let rows = limit.clamp(1, MAX_PAGE_LIMIT).saturating_add(1);
    i64::try_from(rows).unwrap_or(i64::MAX)
}

impl Page {
    /// The page from rows fetched with [`rows_to_fetch`]`(limit)`: the extra row, if it came,
    /// is dropped and the cursor points after the last row kept.
    pub(super) fn from_rows(mut tokens: Vec<TokenListing>, limit: usize) -> Page {
        let limit = limit.clamp(1, MAX_PAGE_LIMIT);
        let more = tokens.len() > limit;
        tokens.truncate(limit);
        let next = if more {
            tokens.last().map(PageCursor::after)
        } else {
            None
        };
        Page { tokens, next }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let cursor = PageCursor {
            created_at: "2026-07-08T12:00:00.000Z".into(),
            hash: "ab".repeat(32),
        };
        let text = cursor.encode();
        assert!(text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
        assert_eq!(PageCursor::decode(&text), Some(cursor));
        for bad in [
            "",
            "no-dot",
            "!!!.abcd",
            "MjAyNg.",
            "MjAyNg.ABCD",
            "MjAyNg.abcg",
            &format!("MjAyNg.{}", "a".repeat(65)),
        ] {
            assert_eq!(PageCursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_limit_is_clamped_and_one_extra_row_is_asked_for() {
        assert_eq!(rows_to_fetch(0), 2);
        assert_eq!(rows_to_fetch(10), 11);
        assert_eq!(rows_to_fetch(usize::MAX), 1_001);
    }
}
