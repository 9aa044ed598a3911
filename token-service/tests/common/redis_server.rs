//! A throwaway `redis-server` on a free loopback port, killed on drop. Never skipped:
//! `make test-deps` installs it; a missing binary is a set-up error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Redis {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `redis-server` (never skipped: `make test` installs it; missing is a set-up error).
/// The port comes from below the kernel's ephemeral range (no outgoing connection can take it
/// between the pick and the bind); if another test's server still wins it, ours exits and a
/// fresh port is tried, so a test never talks to someone else's Redis.
pub fn start_redis() -> Redis {
    let dir = tempfile::tempdir().unwrap();
    for _attempt in 0..3 {
        let port = portpicker::pick_unused_port().expect("no free loopback port");
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--dir", dir.path().to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server not found: run `make test-deps` (apt-get install redis-server)");
        for _ in 0..100 {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && child.try_wait().unwrap().is_none()
            {
                return Redis {
                    child,
                    url: format!("redis://127.0.0.1:{port}/0"),
                    _dir: dir,
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("redis-server did not start on a free port, three times");
}
