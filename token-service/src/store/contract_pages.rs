//! The paging cases of the store contract (`contract.rs` lists them with the others): the
//! pages of `list_page` are `list` cut into pieces, and a cursor keeps its place while tokens
//! come and go between two pages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::contract::{sample_record, Store};
use super::{PageCursor, TokenListing, TokenRecord};

/// `n` tokens whose timestamps tie in groups of five (the hash breaks the ties), inserted in
/// an order unrelated to the list's.
async fn seed(store: &Store, n: usize) -> Vec<TokenRecord> {
    let mut records = Vec::new();
    for i in (0..n).rev() {
        let mut r = sample_record(&format!("{:02x}", (i * 37) % 256));
        r.created_at = format!("2026-03-{:02}T00:00:00.000Z", 1 + i / 5);
        store.insert(&r).await.unwrap();
        records.push(r);
    }
    records
}

/// Walks every page of `limit` from `after`, checking each page's size; returns the tokens.
/// Gives up after 100 pages (a cursor that does not advance would loop forever).
async fn walk(store: &Store, limit: usize, mut after: Option<PageCursor>) -> Vec<TokenListing> {
    let mut out = Vec::new();
    for _ in 0..100 {
        let page = store.list_page(limit, after.as_ref()).await.unwrap();
        assert!(
            page.tokens.len() <= limit,
            "{} > {limit}",
            page.tokens.len()
        );
        out.extend(page.tokens);
        match page.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
    panic!("the cursor does not advance: {:?}", after);
}

fn hashes(listings: &[TokenListing]) -> Vec<String> {
    listings.iter().map(|l| l.record.hash.clone()).collect()
}

pub(crate) async fn pages_cut_the_list_in_its_order(store: Store) {
    let empty = store.list_page(10, None).await.unwrap();
    assert!(empty.tokens.is_empty() && empty.next.is_none());
    let records = seed(&store, 23).await;
    store
        .stamp_last_used(&records[3].hash, "2026-04-01T00:00:00.000Z")
        .await
        .unwrap();
    let all = store.list().await.unwrap();
    assert_eq!(all.len(), 23);
    for limit in [1, 5, 7, 23, 100] {
        assert_eq!(walk(&store, limit, None).await, all, "limit {limit}");
    }
    let first = store.list_page(7, None).await.unwrap();
    assert_eq!(first.tokens.len(), 7);
    assert_eq!(first.next, Some(PageCursor::after(&all[6])));
}

pub(crate) async fn an_exact_fit_has_no_next_page_and_limits_are_clamped(store: Store) {
    seed(&store, 6).await;
    let page = store.list_page(6, None).await.unwrap();
    assert_eq!(page.tokens.len(), 6);
    assert_eq!(page.next, None, "a full last page must not promise another");
    let page = store.list_page(3, None).await.unwrap();
    let rest = store.list_page(3, page.next.as_ref()).await.unwrap();
    assert_eq!((rest.tokens.len(), rest.next), (3, None));
    // Zero is clamped up to one: a page always makes progress.
    let one = store.list_page(0, None).await.unwrap();
    assert_eq!(one.tokens.len(), 1);
    assert!(one.next.is_some());
}

pub(crate) async fn cursors_hold_their_place_while_tokens_come_and_go(store: Store) {
    seed(&store, 15).await;
    let before = store.list().await.unwrap();
    let first = store.list_page(6, None).await.unwrap();
    let cursor = first.next.clone().unwrap();
    assert_eq!(hashes(&first.tokens), hashes(&before[..6]));

    // Between the pages: the cursor's own token and a later one go, a newer token (before
    // the cursor), an older one (after it) and a tie of the cursor's timestamp on either
    // side of its hash arrive.
    store.delete(&before[5].record.hash).await.unwrap();
    store.delete(&before[9].record.hash).await.unwrap();
    let mut newer = sample_record("f1");
    newer.created_at = "2026-12-01T00:00:00.000Z".into();
    let mut older = sample_record("f2");
    older.created_at = "2025-01-01T00:00:00.000Z".into();
    let mut tie_before = sample_record("01");
    tie_before.created_at = cursor.created_at.clone();
    let mut tie_after = sample_record("ff");
    tie_after.created_at = cursor.created_at.clone();
    for r in [&newer, &older, &tie_before, &tie_after] {
        store.insert(r).await.unwrap();
    }

    let rest = walk(&store, 4, Some(cursor)).await;
    let mut expected: Vec<String> = hashes(&before[6..]);
    expected.retain(|h| *h != before[9].record.hash);
    let tie_at = expected
        .iter()
        .position(|h| {
            let r = before.iter().find(|l| l.record.hash == *h).unwrap();
            r.record.created_at != tie_after.created_at || *h > tie_after.hash
        })
        .unwrap_or(expected.len());
    expected.insert(tie_at, tie_after.hash.clone());
    expected.push(older.hash.clone());
    assert_eq!(hashes(&rest), expected);
    let seen = hashes(&rest);
    assert!(!seen.contains(&newer.hash) && !seen.contains(&tie_before.hash));
}
