//! Shared pieces of the `make bench` binaries: the mock's fixed answers, stream detection,
//! and the SSE client's response scanner. The orchestration lives in `bench/run.py`.

pub mod fixtures;
pub mod sse;

/// Prints the bound address the way the harness waits for it (`listening on HOST:PORT`), so
/// every service can bind port 0 and never race another process for a fixed port.
pub fn announce(addr: std::net::SocketAddr) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    // A closed stdout only loses the announcement; the harness then times out and says so.
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();
}
