//! `?limit=N&after=CURSOR` on the token list (`GET /admin/api/tokens`) and the dashboard's
//! rows (`GET /admin/fragments/tokens`): one parser, so both refuse the same bad input.

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use serde::Deserialize;

use super::error::AdminError;
use crate::store::{PageCursor, MAX_PAGE_LIMIT};

/// Tokens per page when the request names no `limit`.
pub const DEFAULT_PAGE_LIMIT: usize = 100;

/// The response header that carries the dashboard fragment's next cursor (absent on the last
/// page); the JSON API carries it as `next` in the body.
pub const NEXT_CURSOR_HEADER: &str = "x-next-cursor";

/// The raw query; other parameters are ignored.
#[derive(Deserialize)]
pub struct PageQuery {
    limit: Option<String>,
    after: Option<String>,
}

/// A validated page request.
#[derive(Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// `1..=MAX_PAGE_LIMIT`.
    pub limit: usize,
    /// Where the page starts; `None` for the first page.
    pub after: Option<PageCursor>,
}

impl PageRequest {
    /// Reads the query: `limit` an integer from 1 to [`MAX_PAGE_LIMIT`] (default
    /// [`DEFAULT_PAGE_LIMIT`]), `after` a cursor from an earlier page; anything else is a 400.
    pub fn parse(query: Result<Query<PageQuery>, QueryRejection>) -> Result<Self, AdminError> {
        let Query(query) = query.map_err(|_| AdminError::BadRequest("bad query".into()))?;
        let limit = match query.limit.as_deref() {
            None => DEFAULT_PAGE_LIMIT,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE_LIMIT).contains(n))
                .ok_or_else(|| {
                    AdminError::BadRequest(format!("limit must be 1 to {MAX_PAGE_LIMIT}"))
                })?,
        };
        let after = match query.after.as_deref().filter(|a| !a.is_empty()) {
            None => None,
            Some(text) => Some(PageCursor::decode(text).ok_or_else(|| {
                AdminError::BadRequest("bad cursor: pass `next` from an earlier page".into())
            })?),
        };
        Ok(PageRequest { limit, after })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn parse(limit: Option<&str>, after: Option<&str>) -> Result<PageRequest, AdminError> {
        PageRequest::parse(Ok(Query(PageQuery {
            limit: limit.map(str::to_owned),
            after: after.map(str::to_owned),
        })))
    }

    #[test]
    fn limits_default_and_are_bounded_and_cursors_must_decode() {
        assert_eq!(parse(None, None).unwrap().limit, DEFAULT_PAGE_LIMIT);
        assert_eq!(parse(Some("1"), None).unwrap().limit, 1);
        assert_eq!(parse(Some("1000"), None).unwrap().limit, MAX_PAGE_LIMIT);
        for bad in ["0", "1001", "-1", "ten", ""] {
            assert!(parse(Some(bad), None).is_err(), "{bad}");
        }
        let cursor = PageCursor {
            created_at: "2026-01-01T00:00:00.000Z".into(),
            hash: "ab".repeat(32),
        };
        assert_eq!(
            parse(None, Some(&cursor.encode())).unwrap().after,
            Some(cursor)
        );
        assert_eq!(parse(None, Some("")).unwrap().after, None);
        assert!(parse(None, Some("not a cursor")).is_err());
    }
}
