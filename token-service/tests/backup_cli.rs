//! `token-service backup` / `restore` as an operator runs them, and the PostgreSQL path the
//! README documents (pg_dump / pg_restore of a store the CLI filled), on real databases.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command as StdCommand;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_token-service");

#[path = "common/pg_server.rs"]
mod pg_server;

/// The binary with a clean environment on the SQLite file `db` (and PostgreSQL at `url`).
fn cli(db: &Path, url: Option<&str>, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear().env("PTK_DB", db).args(args);
    if let Some(url) = url {
        c.env("PTK_DATABASE_URL", url);
    }
    c
}

fn create(db: &Path, url: Option<&str>, label: &str) -> String {
    let out = cli(
        db,
        url,
        &[
            "tokens",
            "create",
            "--label",
            label,
            "--providers",
            "openai",
            "--json",
        ],
    )
    .assert()
    .success()
    .get_output()
    .stdout
    .clone();
    let created: Value = serde_json::from_slice(&out).unwrap();
    created["hash"].as_str().unwrap().to_owned()
}

fn labels(db: &Path, url: Option<&str>) -> Vec<String> {
    let out = cli(db, url, &["tokens", "list", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let mut labels: Vec<String> = serde_json::from_slice::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["label"].as_str().unwrap().to_owned())
        .collect();
    labels.sort();
    labels
}

#[test]
fn backup_then_restore_brings_back_exactly_the_backed_up_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/ptk.sqlite3");
    let backup = dir.path().join("ptk-backup.sqlite3");
    create(&db, None, "alpha");
    let beta = create(&db, None, "beta");

    cli(&db, None, &["backup", "--to", backup.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains("backed up 2 tokens"));
    // A second backup to the same file is refused: a backup never overwrites.
    cli(&db, None, &["backup", "--to", backup.to_str().unwrap()])
        .assert()
        .failure()
        .stderr(predicate::str::contains("exists"));

    // Later changes: one token deleted, one added.
    cli(&db, None, &["tokens", "delete", &beta])
        .assert()
        .success();
    create(&db, None, "gamma");
    assert_eq!(labels(&db, None), ["alpha", "gamma"]);

    cli(&db, None, &["restore", "--from", backup.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains("restored 2 tokens"));
    assert_eq!(labels(&db, None), ["alpha", "beta"]);

    // Into a fresh location too (a new machine).
    let fresh = dir.path().join("elsewhere/ptk.sqlite3");
    cli(
        &fresh,
        None,
        &["restore", "--from", backup.to_str().unwrap()],
    )
    .assert()
    .success();
    assert_eq!(labels(&fresh, None), ["alpha", "beta"]);

    // Not a backup: refused, nothing changed.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, "OPENAI_API_KEY=sk-not-a-database\n").unwrap();
    cli(&db, None, &["restore", "--from", junk.to_str().unwrap()])
        .assert()
        .failure()
        .stderr(predicate::str::contains("sk-not-a-database").not());
    assert_eq!(labels(&db, None), ["alpha", "beta"]);
}

#[test]
fn postgres_stores_are_backed_up_with_pg_dump_and_restored_with_pg_restore() {
    let pg = pg_server::PgServer::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(pg.create_db("ptk"));
    runtime.block_on(pg.create_db("ptk_restored"));
    let dir = tempfile::tempdir().unwrap();
    let unused = dir.path().join("unused.sqlite3");
    let source = pg.url("ptk");
    create(&unused, Some(&source), "pg-alpha");
    create(&unused, Some(&source), "pg-beta");

    // The SQLite commands refuse a PostgreSQL store and point at the right tools.
    cli(&unused, Some(&source), &["backup", "--to", "x"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("pg_dump"));

    // The README's commands: a custom-format dump, restored into an empty database.
    let dump = dir.path().join("ptk.dump");
    let status = StdCommand::new(pg_server::bin_dir().join("pg_dump"))
        .args(["--format=custom", "--no-owner", "--file"])
        .arg(&dump)
        .arg(&source)
        .status()
        .unwrap();
    assert!(status.success());
    let target = pg.url("ptk_restored");
    let status = StdCommand::new(pg_server::bin_dir().join("pg_restore"))
        .args(["--no-owner", "--exit-on-error", "--dbname", &target])
        .arg(&dump)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(labels(&unused, Some(&target)), ["pg-alpha", "pg-beta"]);
    assert!(
        !unused.exists(),
        "a PostgreSQL run must not create the SQLite file"
    );
}
