//! A throwaway PostgreSQL server for tests: `initdb` into a temp dir, `postgres` on a free
//! loopback port with fsync off, trust auth for user `ptk`; stopped (fast shutdown) on drop.
//! Debian's binaries live in /usr/lib/postgresql/<version>/bin; `make test-deps` installs them.
//! PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user (which
//! the Debian package creates) via `runuser`. Never skipped: missing binaries are a set-up error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PgServer {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// The newest installed server version's bin directory (its pg_dump matches the server).
pub fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    // Highest major version last ("9.6" < "15" needs a numeric compare).
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.split('.').next()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().expect(
        "PostgreSQL server binaries not found under /usr/lib/postgresql: run `make test-deps` \
         (apt-get install postgresql)",
    )
}

fn as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// `program args...`, as the `postgres` user when we are root.
fn command(program: &Path) -> Command {
    if as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// A port below the kernel's ephemeral range, so no outgoing connection can take it between
/// the pick and the server's bind (`bind(0)` ports can: the same race failed a CI run).
fn free_port() -> u16 {
    portpicker::pick_unused_port().expect("no free loopback port")
}

impl PgServer {
    pub fn start() -> PgServer {
        PgServer::start_with(None)
    }

    /// A server that also accepts TLS, with `server.crt`/`server.key` from `cert_dir`
    /// (tools/dev_cert.sh makes them, for 127.0.0.1, with `ca.crt` beside them).
    pub fn start_tls(cert_dir: &Path) -> PgServer {
        PgServer::start_with(Some(cert_dir))
    }

    fn start_with(tls: Option<&Path>) -> PgServer {
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        if as_root() {
            let uid = Command::new("id")
                .args(["-u", "postgres"])
                .output()
                .unwrap();
            let uid: u32 = String::from_utf8_lossy(&uid.stdout).trim().parse().expect(
                "no `postgres` user to run the test server as (apt-get install postgresql)",
            );
            std::os::unix::fs::chown(dir.path(), Some(uid), None).unwrap();
        }
        let data = dir.path().join("data");
        let init = command(&bin.join("initdb"))
            .args([
                "-D",
                data.to_str().unwrap(),
                "-U",
                "ptk",
                "-A",
                "trust",
                "-E",
                "UTF8",
            ])
            .args(["--no-sync", "--no-instructions"])
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let mut tls_args = Vec::new();
        if let Some(cert_dir) = tls {
            // The key must belong to the server's user and be private to it.
            for name in ["server.crt", "server.key"] {
                let to = dir.path().join(name);
                std::fs::copy(cert_dir.join(name), &to).unwrap();
                std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                    .unwrap();
                if as_root() {
                    let owner = std::fs::metadata(dir.path()).unwrap().uid();
                    std::os::unix::fs::chown(&to, Some(owner), None).unwrap();
                }
            }
            let file = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
            tls_args = vec![
                "-c".to_owned(),
                "ssl=on".to_owned(),
                "-c".to_owned(),
                format!("ssl_cert_file={}", file("server.crt")),
                "-c".to_owned(),
                format!("ssl_key_file={}", file("server.key")),
            ];
        }
        // A port can still be lost to another test's server between the pick and the bind:
        // then postgres exits, and a fresh port is tried (its log says why if all fail).
        let log_path = dir.path().join("postgres.log");
        for _attempt in 0..3 {
            let port = free_port();
            let log = std::fs::File::create(&log_path).unwrap();
            let mut child = command(&bin.join("postgres"))
                .args(["-D", data.to_str().unwrap(), "-p", &port.to_string()])
                .args(["-h", "127.0.0.1", "-k", dir.path().to_str().unwrap()])
                .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
                .args(["-c", "full_page_writes=off"])
                .args(&tls_args)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            if wait_ready(&bin, port, &mut child) {
                return PgServer { child, port, dir };
            }
        }
        panic!(
            "postgres exited before it was ready, three times: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
    }

    /// A URL for `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://ptk@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates an empty database `name` (lowercase letters, digits and `_`).
    pub async fn create_db(&self, name: &str) {
        let (client, conn) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        drop(client);
        let _ = task.await;
    }
}

/// Waits until `pg_isready` answers on `port` while `child` is still running (else another
/// server may be the one answering): false if `child` exited first.
fn wait_ready(bin: &Path, port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let ok = Command::new(bin.join("pg_isready"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "ptk",
                "-q",
            ])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok && child.try_wait().unwrap().is_none() {
            return true;
        }
        assert!(Instant::now() < deadline, "postgres did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // SIGINT is PostgreSQL's fast shutdown: backends end, the postmaster exits. As root the
        // child is `runuser`, so signal the postmaster itself (first line of postmaster.pid).
        let pid = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next().map(str::to_owned))
            .unwrap_or_else(|| self.child.id().to_string());
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
