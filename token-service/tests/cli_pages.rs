//! `tokens list` over a store larger than one store page: all tokens by default (read page by
//! page), one page with `--limit`, the next with `--after`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_token-service");

fn list(db: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .env_clear()
        .env("PTK_DB", db)
        .args(["tokens", "list"])
        .args(args)
        .output()
        .unwrap()
}

/// A store of `n` tokens (created by the service, then filled in one statement).
fn seeded(dir: &Path, n: u32) -> std::path::PathBuf {
    let db = dir.join("ptk.sqlite3");
    assert!(list(&db, &[]).status.success());
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1)
             INSERT INTO tokens (hash, label, last4, providers, status, created_at)
             SELECT printf('%064x', i), 'seed', 'abcd', '[\"openai\"]', 'active',
                 strftime('%Y-%m-%dT%H:%M:%fZ', 1767225600 + i / 3, 'unixepoch')
             FROM n",
            [n],
        )
        .unwrap();
    db
}

#[test]
fn list_prints_every_token_across_store_pages_and_pages_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let db = seeded(dir.path(), 1_203);

    let all = list(&db, &["--json"]);
    assert!(all.status.success());
    let all: Vec<Value> = serde_json::from_slice(&all.stdout).unwrap();
    let hashes: Vec<&str> = all.iter().map(|t| t["hash"].as_str().unwrap()).collect();
    assert_eq!(hashes.len(), 1_203);
    assert_eq!(hashes.iter().collect::<HashSet<_>>().len(), 1_203);
    let table = list(&db, &[]);
    assert_eq!(
        String::from_utf8(table.stdout).unwrap().lines().count(),
        1_204
    );

    let first = list(&db, &["--limit", "2", "--json"]);
    let first: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(first["tokens"].as_array().unwrap().len(), 2);
    assert_eq!(first["tokens"][1]["hash"], hashes[1]);
    let next = first["next"].as_str().unwrap();
    let second = list(&db, &["--limit", "2", "--after", next, "--json"]);
    let second: Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(second["tokens"][0]["hash"], hashes[2]);

    let table = list(&db, &["--limit", "3"]);
    let out = String::from_utf8(table.stdout).unwrap();
    let err = String::from_utf8(table.stderr).unwrap();
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(err.contains("tokens list --limit 3 --after "), "{err}");

    for bad in [
        &["--limit", "0"][..],
        &["--limit", "1001"],
        &["--after", next],
    ] {
        assert!(!list(&db, bad).status.success(), "{bad:?}");
    }
    let garbage = list(&db, &["--limit", "2", "--after", "nope"]);
    assert!(!garbage.status.success());
    assert!(String::from_utf8(garbage.stderr)
        .unwrap()
        .contains("bad --after"));
}
