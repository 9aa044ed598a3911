//! The check path never waits behind SQLite's write lock: while another connection holds the
//! database's write lock for seconds and the service's own last-used stamps queue behind it,
//! checks keep answering quickly (the real app on port 0, a fresh temp database).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use ptk_wire::{CheckResponse, Provider};
use token_service::store::TokenStore;

/// How long the other connection keeps the write lock: longer than a check's callout timeout
/// in Envoy (a second or two), shorter than the store's busy timeout, so queued stamps land.
const HOLD: Duration = Duration::from_secs(3);

/// A check slower than this would already look like an outage from Envoy's side.
const FAST: Duration = Duration::from_millis(500);

/// Enough distinct tokens that their stamps outnumber any small connection pool.
const TOKENS: usize = 12;

/// Takes the write lock on `db` from a plain connection (as an operator's `sqlite3` shell or a
/// long admin transaction would) and holds it for `hold`; returns once the lock is held.
fn hold_write_lock(db: &std::path::Path, hold: Duration) -> std::thread::JoinHandle<()> {
    let db = db.to_owned();
    let (held, is_held) = mpsc::channel();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
        conn.execute("UPDATE tokens SET label = label", []).unwrap();
        held.send(()).unwrap();
        std::thread::sleep(hold);
        conn.execute_batch("COMMIT").unwrap();
    });
    is_held.recv().unwrap();
    holder
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_answer_quickly_while_another_connection_holds_the_write_lock() {
    let app = spawn_app().await;
    let mut hashes = Vec::new();
    for i in 0..TOKENS {
        let plaintext = format!("ptk_write_lock_test_token_{i:02}");
        hashes.push(app.add_token(&plaintext, &[Provider::Openai], |_| {}).await);
    }

    let holder = hold_write_lock(&app.db_path, HOLD);
    let locked_at = Instant::now();
    // Every first check of a token starts a last-used stamp, which must wait for the lock.
    for hash in &hashes {
        let started = Instant::now();
        let verdict = tokio::time::timeout(HOLD, app.check(hash, Provider::Openai))
            .await
            .expect("a check waited for the write lock");
        assert!(
            matches!(verdict, CheckResponse::Allow { .. }),
            "{verdict:?}"
        );
        let took = started.elapsed();
        assert!(took < FAST, "a check took {took:?} behind the write lock");
    }
    // Readiness reads the store too, and must not queue behind the stamps either.
    let started = Instant::now();
    let health = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        started.elapsed() < FAST,
        "healthz took {:?}",
        started.elapsed()
    );
    assert!(
        locked_at.elapsed() < HOLD,
        "the checks must run while the lock is still held"
    );
    tokio::task::spawn_blocking(move || holder.join().unwrap())
        .await
        .unwrap();

    // The stamps waited (bounded) and landed once the lock was released.
    let deadline = Instant::now() + Duration::from_secs(10);
    for hash in &hashes {
        loop {
            let listing = app.store.get_listing(hash).await.unwrap().unwrap();
            if listing.last_used.is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "a stamp never landed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
