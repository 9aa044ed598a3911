//! The token list one page at a time: the JSON API's `limit`/`after`/`next`, the dashboard's
//! first page and its rows fragment (cursor in `x-next-cursor`), and the refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;

use common::admin::{error_of, Admin};
use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use token_service::store::TokenStore as _;

/// `n` tokens written straight into the database, three to a timestamp (ties on purpose).
fn seed(app: &TestApp, n: u32) {
    app.sql(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {n})
         INSERT INTO tokens (hash, label, last4, providers, status, created_at)
         SELECT printf('%064x', i), 'seed', 'abcd', '[\"openai\"]', 'active',
             strftime('%Y-%m-%dT%H:%M:%fZ', 1767225600 + i / 3, 'unixepoch')
         FROM n"
    ));
}

async fn json_page(admin: &Admin, query: &str) -> Value {
    let r = admin.get(&format!("/admin/api/tokens{query}")).await;
    assert_eq!(r.status(), StatusCode::OK, "{query}");
    r.json().await.unwrap()
}

fn hashes_of(page: &Value) -> Vec<String> {
    page["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["hash"].as_str().unwrap().to_owned())
        .collect()
}

fn row_hashes(html: &str) -> Vec<String> {
    html.split("data-hash=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_api_walks_every_token_once_in_list_order() {
    let app = spawn_app().await;
    let admin = app.login().await;
    seed(&app, 250);
    let first = json_page(&admin, "").await;
    assert_eq!(hashes_of(&first).len(), 100, "the default page");
    assert!(first["next"].is_string());

    let mut seen = Vec::new();
    let mut query = "?limit=90".to_owned();
    let mut sizes = Vec::new();
    loop {
        let page = json_page(&admin, &query).await;
        sizes.push(hashes_of(&page).len());
        seen.extend(hashes_of(&page));
        match page["next"].as_str() {
            Some(next) => query = format!("?limit=90&after={next}"),
            None => break,
        }
    }
    assert_eq!(sizes, [90, 90, 70]);
    let listed: Vec<String> = app
        .store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.record.hash)
        .collect();
    assert_eq!(seen, listed);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 250);
}

#[tokio::test]
async fn bad_limits_and_cursors_are_refused_clearly() {
    let app = spawn_app().await;
    let admin = app.login().await;
    for path in ["/admin/api/tokens", "/admin/fragments/tokens"] {
        for limit in ["0", "1001", "-3", "many"] {
            let r = admin.get(&format!("{path}?limit={limit}")).await;
            let (status, _, message) = error_of(r).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {limit}");
            assert_eq!(message, "limit must be 1 to 1000");
        }
        let r = admin.get(&format!("{path}?after=nope")).await;
        let (status, _, message) = error_of(r).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(message.starts_with("bad cursor"), "{message}");
    }
    // Without a session a page is a 401 like the whole list was.
    let r = app
        .client
        .get(app.admin_url("/admin/api/tokens?limit=5"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

/// The dashboard renders the first page only, and its refresh fragment serves any page by
/// cursor: the rows of the page asked for, and the next cursor in `x-next-cursor`.
#[tokio::test]
async fn the_dashboard_shows_one_page_and_its_fragment_pages_by_cursor() {
    let app = spawn_app().await;
    let admin = app.login().await;
    seed(&app, 230);
    let listed: Vec<String> = app
        .store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.record.hash)
        .collect();

    let page = admin.get("/admin").await.text().await.unwrap();
    assert_eq!(row_hashes(&page), listed[..100]);
    let after = page
        .split(r#"id="next-page" type="button" data-after=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the older button carries the next cursor")
        .to_owned();

    let r = admin
        .get(&format!("/admin/fragments/tokens?after={after}"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let next = r.headers()["x-next-cursor"].to_str().unwrap().to_owned();
    assert_eq!(row_hashes(&r.text().await.unwrap()), listed[100..200]);

    let r = admin
        .get(&format!("/admin/fragments/tokens?after={next}"))
        .await;
    assert!(r.headers().get("x-next-cursor").is_none(), "the last page");
    assert_eq!(row_hashes(&r.text().await.unwrap()), listed[200..]);

    // A refresh of the first page is the first page, whatever came after it.
    let r = admin.get("/admin/fragments/tokens").await;
    assert_eq!(row_hashes(&r.text().await.unwrap()), listed[..100]);
}

/// With fewer tokens than a page, the older button is disabled and carries no cursor.
#[tokio::test]
async fn a_short_list_has_no_older_page() {
    let app = spawn_app().await;
    let admin = app.login().await;
    seed(&app, 3);
    let page = admin.get("/admin").await.text().await.unwrap();
    assert!(
        page.contains(r#"<button id="next-page" type="button" disabled>"#),
        "{page}"
    );
    let r = admin.get("/admin/fragments/tokens").await;
    assert!(r.headers().get("x-next-cursor").is_none());
}

/// Through the whole admin stack (session, store, JSON), the first page of 100,000 tokens
/// answers in under 100 ms (the fastest of three: a shared machine may stall one run).
#[tokio::test]
async fn the_first_page_of_a_large_store_is_fast_through_the_api() {
    let app = spawn_app().await;
    let admin = app.login().await;
    seed(&app, 100_000);
    let mut runs = Vec::new();
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let page = json_page(&admin, "").await;
        runs.push(started.elapsed());
        assert_eq!(hashes_of(&page).len(), 100);
    }
    eprintln!("admin API, 100000 tokens, first page: {runs:?}");
    assert!(
        runs.iter().min().unwrap() < &std::time::Duration::from_millis(100),
        "{runs:?}"
    );
}
