//! The `token-service` binary as an operator uses it: `tokens ...` against a temp database,
//! and `serve` on the same database honouring what the CLI did.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_token-service");

#[path = "common/pg_server.rs"]
mod pg_server;

struct Db {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/ptk.sqlite3");
    Db { _dir: dir, path }
}

/// The binary with a clean environment pointed at `db`.
fn cmd(db: &Db) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear().env("PTK_DB", &db.path);
    c
}

fn tokens(db: &Db, args: &[&str]) -> Command {
    let mut c = cmd(db);
    c.arg("tokens").args(args);
    c
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Creates a token with `--json` and returns the parsed object.
fn create_json(db: &Db, extra: &[&str]) -> Value {
    let mut args = vec!["create", "--label", "team a", "--json"];
    args.extend_from_slice(extra);
    let out = tokens(db, &args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).unwrap()
}

fn list_json(db: &Db) -> Vec<Value> {
    let out = tokens(db, &["list", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn create_prints_exactly_the_token_on_stdout() {
    let db = db();
    let assert = tokens(
        &db,
        &[
            "create",
            "--label",
            " laptop ",
            "--providers",
            "openai,gemini",
        ],
    )
    .assert()
    .success();
    let out = assert.get_output();
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    assert!(stdout.ends_with('\n'));
    let token = stdout.trim_end();
    assert!(token.starts_with("ptk_") && token.len() == 36, "{token}");
    assert!(token[4..]
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    assert!(
        stderr.contains(&sha256_hex(token)),
        "guidance shows the hash: {stderr}"
    );
    assert!(
        !stderr.contains(token),
        "the token is printed once, on stdout"
    );
    let listed = list_json(&db);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["label"], "laptop");
    assert_eq!(listed[0]["last4"], &token[32..]);
}

#[test]
fn create_json_describes_the_token() {
    let db = db();
    let v = create_json(
        &db,
        &[
            "--providers",
            "gemini,openai",
            "--providers",
            "gemini",
            "--expires",
            "2030-01-01T02:00:00+02:00",
            "--rate-limit",
            "3/60",
        ],
    );
    let token = v["token"].as_str().unwrap();
    assert_eq!(v["hash"], sha256_hex(token));
    assert_eq!(v["label"], "team a");
    assert_eq!(v["providers"], serde_json::json!(["gemini", "openai"]));
    assert_eq!(v["status"], "active");
    assert_eq!(v["expires_at"], "2030-01-01T00:00:00.000Z");
    assert_eq!(
        v["rate_limit"],
        serde_json::json!({"count": 3, "window_s": 60})
    );
    assert!(v["created_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn custom_tokens_are_trimmed_checked_and_unique() {
    let db = db();
    let v = create_json(
        &db,
        &[
            "--providers",
            "anthropic",
            "--token",
            "  my-own-token-123  ",
        ],
    );
    assert_eq!(v["token"], "my-own-token-123");
    assert_eq!(v["hash"], sha256_hex("my-own-token-123"));
    tokens(
        &db,
        &[
            "create",
            "--label",
            "x",
            "--providers",
            "openai",
            "--token",
            "my-own-token-123",
        ],
    )
    .assert()
    .failure()
    .stderr(predicate::str::contains("already exists"));
    tokens(
        &db,
        &[
            "create",
            "--label",
            "x",
            "--providers",
            "openai",
            "--token",
            " 11-chars-xx ",
        ],
    )
    .assert()
    .failure()
    .stdout("")
    .stderr(predicate::str::contains(
        "custom token too short (min 12 chars)",
    ));
    assert_eq!(list_json(&db).len(), 1);
}

#[test]
fn bad_create_arguments_fail_with_a_message_and_create_nothing() {
    let db = db();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--label", "x", "--providers", "openai,azure"],
            "unknown provider \"azure\"",
        ),
        (
            &["--label", "   ", "--providers", "openai"],
            "label is required",
        ),
        (
            &["--label", "x", "--providers", ","],
            "pick at least one provider",
        ),
        (&["--label", "x"], "--providers"),
        (
            &[
                "--label",
                "x",
                "--providers",
                "openai",
                "--expires",
                "tomorrow",
            ],
            "invalid expiry",
        ),
        (
            &[
                "--label",
                "x",
                "--providers",
                "openai",
                "--rate-limit",
                "0/60",
            ],
            "N/SECONDS",
        ),
    ];
    for (args, message) in cases {
        let mut full = vec!["create"];
        full.extend_from_slice(args);
        tokens(&db, &full)
            .assert()
            .failure()
            .stdout("")
            .stderr(predicate::str::contains(*message));
    }
    assert!(list_json(&db).is_empty());
}

#[test]
fn list_shows_a_table_and_json() {
    let db = db();
    tokens(&db, &["list"])
        .assert()
        .success()
        .stdout("")
        .stderr(predicate::str::contains("no tokens yet"));
    let a = create_json(&db, &["--providers", "openai", "--rate-limit", "5/10"]);
    let b = create_json(
        &db,
        &[
            "--providers",
            "anthropic",
            "--expires",
            "2020-01-01T00:00:00Z",
        ],
    );
    let out = tokens(&db, &["list"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let table = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    for header in [
        "HASH",
        "LABEL",
        "LAST4",
        "PROVIDERS",
        "STATUS",
        "CREATED",
        "EXPIRES",
        "LAST USED",
        "RATE LIMIT",
    ] {
        assert!(lines[0].contains(header), "{header} in {table}");
    }
    let row_a = lines
        .iter()
        .find(|l| l.starts_with(&a["hash"].as_str().unwrap()[..12]))
        .unwrap();
    assert!(
        row_a.contains("active") && row_a.contains("5/10s") && row_a.contains("never"),
        "{row_a}"
    );
    let row_b = lines
        .iter()
        .find(|l| l.starts_with(&b["hash"].as_str().unwrap()[..12]))
        .unwrap();
    assert!(
        row_b.contains("expired") && row_b.contains("2020-01-01 00:00"),
        "{row_b}"
    );
    assert!(!table.contains(a["token"].as_str().unwrap()));

    let listed = list_json(&db);
    assert_eq!(listed.len(), 2);
    let b_listed = listed.iter().find(|v| v["hash"] == b["hash"]).unwrap();
    assert_eq!(b_listed["state"], "expired");
    assert_eq!(b_listed["status"], "active");
    assert_eq!(b_listed["last_used"], Value::Null);
    assert!(b_listed.get("token").is_none());
}

fn state_of(db: &Db, hash: &Value) -> (String, Value) {
    let listed = list_json(db);
    let v = listed.iter().find(|v| v["hash"] == *hash).unwrap();
    (
        v["state"].as_str().unwrap().to_owned(),
        v["expires_at"].clone(),
    )
}

#[test]
fn disable_enable_expire_and_delete_by_prefix() {
    let db = db();
    let v = create_json(&db, &["--providers", "openai"]);
    let hash = v["hash"].as_str().unwrap();
    let prefix = &hash[..10];

    tokens(&db, &["disable", prefix])
        .assert()
        .success()
        .stdout(predicate::str::contains("disabled token"));
    assert_eq!(state_of(&db, &v["hash"]).0, "disabled");
    tokens(&db, &["enable", &prefix.to_uppercase()])
        .assert()
        .success();
    assert_eq!(state_of(&db, &v["hash"]).0, "active");

    tokens(&db, &["expire", prefix, "--at", "2020-01-01T00:00:00Z"])
        .assert()
        .success()
        .stderr(predicate::str::contains("already passed"));
    assert_eq!(
        state_of(&db, &v["hash"]),
        ("expired".into(), Value::from("2020-01-01T00:00:00.000Z"))
    );
    tokens(&db, &["expire", prefix, "--at", "garbage"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("invalid expiry"));
    tokens(&db, &["expire", hash, "--at", "never"])
        .assert()
        .success();
    assert_eq!(state_of(&db, &v["hash"]), ("active".into(), Value::Null));

    tokens(&db, &["delete", prefix])
        .assert()
        .success()
        .stdout(predicate::str::contains("deleted token"));
    assert!(list_json(&db).is_empty());
    tokens(&db, &["delete", prefix])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no token matches"));
}

#[test]
fn ambiguous_short_and_bad_prefixes_are_refused() {
    let db = db();
    create_json(&db, &["--providers", "openai"]); // creates the schema
    let conn = rusqlite::Connection::open(&db.path).unwrap();
    for tail in ["1", "2"] {
        let hash = format!("abcdef01{}", tail.repeat(56));
        conn.execute(
            "INSERT INTO tokens (hash, label, last4, providers, status, created_at)
             VALUES (?1, 'dup', 'xxxx', '[\"openai\"]', 'active', '2026-01-01T00:00:00.000Z')",
            [hash],
        )
        .unwrap();
    }
    tokens(&db, &["disable", "abcdef01"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("ambiguous"));
    assert!(
        list_json(&db).iter().all(|v| v["status"] == "active"),
        "nothing changed"
    );
    tokens(&db, &["disable", "abcdef011"]).assert().success();
    for bad in ["abcdef0", "not-a-hash", "ptk_abcdefghijkl"] {
        tokens(&db, &["disable", bad])
            .assert()
            .failure()
            .stderr(predicate::str::contains("is not a token hash or prefix"));
    }
    tokens(&db, &["enable", "0000000000"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no token matches"));
}

#[test]
fn serve_refuses_to_start_without_a_good_secret() {
    let db = db();
    cmd(&db)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("PTK_CHECK_SECRET is required"));
    cmd(&db)
        .env("PTK_CHECK_SECRET", "short")
        .args(["serve", "--listen", "127.0.0.1:0"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "PTK_CHECK_SECRET must be at least 16 characters",
        ));
    cmd(&db)
        .env("PTK_CHECK_SECRET", "a-long-enough-check-secret")
        .env("PTK_RATE_LIMIT", "lots")
        .args(["serve", "--listen", "127.0.0.1:0"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("N/SECONDS"));
}

/// A `serve` child process, killed on drop; its stderr is collected line by line.
struct Server {
    child: Child,
    addr: String,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    /// Stops the server and returns everything it logged.
    fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut all = std::mem::take(&mut self.seen);
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            all.push(line);
        }
        all
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CHECK_SECRET: &str = "cli-test-check-secret-42";
const REAL_KEY: &str = "sk-cli-test-real-openai-key";

fn serve(db: &Path) -> Server {
    serve_with(db, &[])
}

/// `serve` on `db` with more environment (e.g. `PTK_DATABASE_URL`).
fn serve_with(db: &Path, env: &[(&str, &str)]) -> Server {
    let mut child = std::process::Command::new(BIN)
        .env_clear()
        .env("PTK_DB", db)
        .envs(env.iter().copied())
        .env("PTK_LISTEN", "127.0.0.1:0")
        .env("PTK_CHECK_SECRET", CHECK_SECRET)
        .env("OPENAI_API_KEY", REAL_KEY)
        .env("RUST_LOG", "debug")
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut server = Server {
        child,
        addr: String::new(),
        lines,
        seen: Vec::new(),
    };
    loop {
        let line = server
            .lines
            .recv_timeout(Duration::from_secs(30))
            .expect("serve never logged its listen address");
        server.seen.push(line.clone());
        if let Some(rest) = line.split("listening on ").nth(1) {
            server.addr = rest.split(';').next().unwrap().to_owned();
            assert!(line.contains("providers with keys: openai"), "{line}");
            return server;
        }
    }
}

/// A plain-socket HTTP/1.1 check (reqwest's blocking client is not worth a feature here).
fn check(server: &Server, hash: &str) -> Value {
    use std::io::{Read as _, Write as _};
    let body = format!(r#"{{"hash":"{hash}","provider":"openai"}}"#);
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    write!(
        stream,
        "POST /v1/check HTTP/1.1\r\nhost: x\r\nx-ptk-check-secret: {CHECK_SECRET}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, payload) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(payload).unwrap()
}

#[test]
fn serve_allows_cli_tokens_and_honours_cli_disable() {
    let db = db();
    let token = {
        let out = tokens(&db, &["create", "--label", "e2e", "--providers", "openai"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        String::from_utf8(out).unwrap().trim_end().to_owned()
    };
    let hash = sha256_hex(&token);
    let server = serve(&db.path);

    let verdict = check(&server, &hash);
    assert_eq!(verdict["verdict"], "allow", "{verdict}");
    assert_eq!(verdict["key"], REAL_KEY);

    tokens(&db, &["disable", &hash[..8]]).assert().success();
    let verdict = check(&server, &hash);
    assert_eq!(
        verdict,
        serde_json::json!({"verdict": "deny", "reason": "invalid"})
    );

    tokens(&db, &["enable", &hash[..8]]).assert().success();
    assert_eq!(check(&server, &hash)["verdict"], "allow");

    // The service's logs (at debug level) never carry the key or the token.
    let logged = server.stop();
    assert!(!logged.is_empty());
    for line in &logged {
        assert!(!line.contains(REAL_KEY) && !line.contains(&token), "{line}");
    }
}

#[test]
fn replicas_on_one_postgres_share_tokens_and_revocations() {
    let pg = pg_server::PgServer::start();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(pg.create_db("ptk"));
    let url = pg.url("ptk");
    let db = db(); // PTK_DB stays set: PTK_DATABASE_URL must win, and no SQLite file appear
    let pg_env = [("PTK_DATABASE_URL", url.as_str())];
    let on_pg = |args: &[&str]| {
        let mut c = tokens(&db, args);
        c.env("PTK_DATABASE_URL", &url);
        c
    };
    let out = on_pg(&[
        "create",
        "--label",
        "fleet",
        "--providers",
        "openai",
        "--json",
    ])
    .assert()
    .success()
    .get_output()
    .stdout
    .clone();
    let created: Value = serde_json::from_slice(&out).unwrap();
    let hash = created["hash"].as_str().unwrap().to_owned();

    let replicas = [serve_with(&db.path, &pg_env), serve_with(&db.path, &pg_env)];
    for replica in &replicas {
        let verdict = check(replica, &hash);
        assert_eq!(verdict["verdict"], "allow", "{verdict}");
        assert_eq!(verdict["key"], REAL_KEY);
    }
    on_pg(&["disable", &hash]).assert().success();
    for replica in &replicas {
        let verdict = check(replica, &hash);
        assert_eq!(verdict["verdict"], "deny", "{verdict}");
        assert_eq!(verdict["reason"], "invalid", "{verdict}");
    }
    let listed = on_pg(&["list", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(String::from_utf8_lossy(&listed).contains(&hash));
    assert!(!db.path.exists(), "the SQLite file must not be created");
}

#[test]
fn a_postgres_url_never_shows_its_password() {
    let db = db();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://ptk:hunter2-secret@127.0.0.1:{port}/ptk?connect_timeout=2");
    let out = tokens(&db, &["list"])
        .env("PTK_DATABASE_URL", &url)
        .assert()
        .failure()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("postgres://ptk@127.0.0.1:{port}/ptk")),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn help_never_shows_a_secret_from_the_environment() {
    // clap prints `[env: NAME=value]` under each flag unless told not to: the URLs that may
    // hold passwords are hidden; ordinary settings still show (so the test sees real help).
    let db = db();
    for args in [&["serve", "--help"][..], &["tokens", "list", "--help"]] {
        let out = cmd(&db)
            .env("PTK_DATABASE_URL", "postgres://ptk:pg-help-secret@db/ptk")
            .env("PTK_REDIS_URL", "redis://:redis-help-secret@cache:6379/0")
            .env("PTK_RATE_LIMIT", "7/9")
            .args(args)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let help = String::from_utf8_lossy(&out);
        assert!(help.contains("PTK_DATABASE_URL"), "{help}");
        assert!(!help.contains("pg-help-secret"), "{help}");
        assert!(!help.contains("redis-help-secret"), "{help}");
        if args[0] == "serve" {
            assert!(help.contains("PTK_RATE_LIMIT=7/9"), "{help}");
        }
    }
}

/// `healthcheck` (the container images' probe) passes against a serving instance and fails,
/// with a message, once nothing answers there.
#[test]
fn healthcheck_follows_the_served_healthz() {
    let db = db();
    let server = serve(&db.path);
    let addr = server.addr.clone();
    Command::new(BIN)
        .env_clear()
        .args(["healthcheck", "--addr", &addr])
        .assert()
        .success();
    // The address `serve` read from PTK_LISTEN is where the probe looks by default.
    Command::new(BIN)
        .env_clear()
        .env("PTK_LISTEN", &addr)
        .arg("healthcheck")
        .assert()
        .success();
    server.stop();
    Command::new(BIN)
        .env_clear()
        .args(["healthcheck", "--addr", &addr, "--timeout-ms", "500"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("cannot connect"));
}

/// A configured provider dropped from `PTK_PROVIDERS` before its tokens were deleted leaves
/// rows this service cannot read; deleting one must still work (it grants nothing), or the
/// operator's only way out is to configure the provider again.
#[test]
fn a_token_of_a_provider_no_longer_configured_can_still_be_deleted() {
    let db = db();
    let ghost = tokens(
        &db,
        &[
            "create",
            "--label",
            "ghost",
            "--providers",
            "ghost",
            "--json",
        ],
    )
    .env("PTK_PROVIDERS", "ghost=GHOST_API_KEY")
    .assert()
    .success()
    .get_output()
    .stdout
    .clone();
    let ghost: Value = serde_json::from_slice(&ghost).unwrap();
    let prefix = &ghost["hash"].as_str().unwrap()[..12];
    tokens(&db, &["delete", prefix])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("deleted token {prefix}")));
    assert!(list_json(&db).is_empty());
}

#[test]
fn a_reader_that_goes_away_is_no_error() {
    // `tokens list | head -1`: the pipe closes before the listing is written.
    let db = db();
    for _ in 0..3 {
        create_json(&db, &["--providers", "openai"]);
    }
    for args in [&["list"][..], &["list", "--json"]] {
        let mut child = std::process::Command::new(BIN)
            .env_clear()
            .env("PTK_DB", &db.path)
            .arg("tokens")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{args:?}: {:?}", out.status);
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");
    }
}

#[test]
fn update_writes_only_the_settings_named() {
    let db = db();
    let v = create_json(
        &db,
        &[
            "--providers",
            "openai",
            "--rate-limit",
            "5/60",
            "--expires",
            "2040-01-01T00:00:00Z",
        ],
    );
    let hash = v["hash"].as_str().unwrap();
    tokens(&db, &["update", &hash[..10], "--rate-limit", "7/30"])
        .assert()
        .success()
        .stdout(predicate::str::contains("rate limit 7/30s"));
    let listed = &list_json(&db)[0];
    assert_eq!(
        listed["rate_limit"],
        serde_json::json!({"count": 7, "window_s": 30}),
        "{listed}"
    );
    assert_eq!(
        listed["expires_at"],
        Value::from("2040-01-01T00:00:00.000Z"),
        "the expiry was not named, so it stays"
    );
    let out = tokens(
        &db,
        &[
            "update",
            hash,
            "--no-rate-limit",
            "--expires",
            "never",
            "--json",
        ],
    )
    .assert()
    .success()
    .get_output()
    .stdout
    .clone();
    let updated: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(updated["rate_limit"], Value::Null, "{updated}");
    assert_eq!(updated["expires_at"], Value::Null, "{updated}");
    // Nothing named, a bad value, or both spellings of the quota: refused, nothing written.
    tokens(&db, &["update", hash])
        .assert()
        .failure()
        .stderr(predicate::str::contains("nothing to update"));
    tokens(&db, &["update", hash, "--expires", "soon"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("invalid expiry"));
    tokens(
        &db,
        &["update", hash, "--rate-limit", "1/1", "--no-rate-limit"],
    )
    .assert()
    .failure();
    assert_eq!(list_json(&db)[0]["rate_limit"], Value::Null);
}

#[test]
fn models_are_set_at_create_changed_by_update_and_cleared() {
    let db = db();
    let v = create_json(
        &db,
        &["--providers", "openai", "--models", "gpt-5*, gpt-4o,GPT-5*"],
    );
    assert_eq!(v["models"], serde_json::json!(["gpt-5*", "gpt-4o"]), "{v}");
    let hash = v["hash"].as_str().unwrap();
    tokens(&db, &["update", hash, "--models", "claude-sonnet-4*"])
        .assert()
        .success()
        .stdout(predicate::str::contains("models claude-sonnet-4*"));
    assert_eq!(
        list_json(&db)[0]["models"],
        serde_json::json!(["claude-sonnet-4*"])
    );
    // Invalid lists and both spellings are refused; nothing is written.
    for bad in [
        &["--models", ""][..],
        &["--models", "gpt 5"],
        &["--models", "a", "--no-models"],
    ] {
        let mut args = vec!["update", hash];
        args.extend_from_slice(bad);
        tokens(&db, &args).assert().failure();
    }
    assert_eq!(
        list_json(&db)[0]["models"],
        serde_json::json!(["claude-sonnet-4*"])
    );
    tokens(&db, &["update", hash, "--no-models"])
        .assert()
        .success()
        .stdout(predicate::str::contains("models any"));
    assert_eq!(list_json(&db)[0]["models"], Value::Null);
}
