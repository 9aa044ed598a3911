//! bench-sse: time to first event (TTFE) and to last event (TTLE) of SSE chat streams through
//! one proxy. Plain blocking sockets and one connection per stream: the clock starts once the
//! connection is up, right before the request is written, so connection set-up is not counted
//! and no client library's buffering sits between the proxy and the timestamps.
//!
//! Prints one JSON object: `{"sequential": {"ttfe_us": [...], "ttle_us": [...], "events": N},
//! "concurrent": {...}, "errors": [...]}`; the harness pools rounds and takes percentiles.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use clap::Parser;
use ptk_bench::sse::{count_events, scan};
use serde_json::json;

#[derive(Parser, Clone)]
struct Args {
    /// The proxy's address.
    #[arg(long)]
    addr: SocketAddr,
    /// `Host` header to send (plain Envoy and ext_authz route on it).
    #[arg(long)]
    host: String,
    /// Request path.
    #[arg(long, default_value = "/v1/chat/completions")]
    path: String,
    /// The bearer token (from the environment, so it is not in `ps`).
    #[arg(long, env = "BENCH_TOKEN", hide_env_values = true)]
    token: String,
    /// Streams run one after another.
    #[arg(long, default_value_t = 50)]
    sequential: usize,
    /// Parallel clients in the concurrent phase.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Streams each parallel client runs.
    #[arg(long, default_value_t = 5)]
    per_client: usize,
    /// Give up on one stream after this long.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
}

/// Microseconds from writing the request to the first `data:` and to `data: [DONE]`, and the
/// number of events (`data:` lines) the stream delivered.
type Sample = (u64, u64, usize);

fn one_stream(args: &Args, request: &[u8]) -> Result<Sample, String> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let mut conn = TcpStream::connect_timeout(&args.addr, timeout).map_err(|e| e.to_string())?;
    conn.set_nodelay(true).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    conn.write_all(request).map_err(|e| e.to_string())?;
    let (mut received, mut buf) = (Vec::with_capacity(2048), [0u8; 4096]);
    let mut first = None;
    loop {
        let n = conn.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!(
                "closed early: {:?}",
                String::from_utf8_lossy(&received)
            ));
        }
        received.extend_from_slice(&buf[..n]);
        let seen = scan(&received);
        if let Some(status) = seen.status.filter(|s| *s != 200) {
            return Err(format!("status {status}"));
        }
        if seen.first_event && first.is_none() {
            first = Some(start.elapsed());
        }
        if seen.done {
            let last = start.elapsed();
            let first = first.unwrap_or(last);
            let events = count_events(&received);
            return Ok((first.as_micros() as u64, last.as_micros() as u64, events));
        }
    }
}

fn run(args: &Args, request: &[u8], count: usize, out: &mut Vec<Sample>, errors: &mut Vec<String>) {
    for _ in 0..count {
        match one_stream(args, request) {
            Ok(sample) => out.push(sample),
            Err(e) => errors.push(e),
        }
    }
}

fn samples_json(samples: &[Sample]) -> serde_json::Value {
    json!({
        "ttfe_us": samples.iter().map(|s| s.0).collect::<Vec<_>>(),
        "ttle_us": samples.iter().map(|s| s.1).collect::<Vec<_>>(),
        "events": samples.iter().map(|s| s.2).sum::<usize>(),
    })
}

fn main() {
    let args = Args::parse();
    let body =
        r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        args.path,
        args.host,
        args.token,
        body.len()
    );
    let request = request.as_bytes();
    let (mut sequential, mut errors) = (Vec::new(), Vec::new());
    run(
        &args,
        request,
        args.sequential,
        &mut sequential,
        &mut errors,
    );
    let results: Vec<(Vec<Sample>, Vec<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..args.concurrency)
            .map(|_| {
                scope.spawn(|| {
                    let (mut got, mut errs) = (Vec::new(), Vec::new());
                    run(&args, request, args.per_client, &mut got, &mut errs);
                    (got, errs)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| (Vec::new(), vec!["client thread died".into()]))
            })
            .collect()
    });
    let mut concurrent = Vec::new();
    for (got, errs) in results {
        concurrent.extend(got);
        errors.extend(errs);
    }
    let report = json!({
        "sequential": samples_json(&sequential),
        "concurrent": samples_json(&concurrent),
        "errors": errors,
    });
    println!("{report}");
}
