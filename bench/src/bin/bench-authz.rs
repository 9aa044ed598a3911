//! bench-authz: the design peer for `make bench`, a minimal HTTP `ext_authz` service. Envoy
//! forwards each request's headers here; a known `Authorization: Bearer <token>` (compared as
//! a SHA-256 hash against an in-memory set, as the token-service stores them) gets 200 with
//! the real key in `authorization`, which Envoy copies upstream (`allowed_upstream_headers`);
//! anything else gets 401. It does the same work as our check, minus the store and limits, so
//! the comparison is about where the check runs, not about what it checks.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use clap::Parser;
use sha2::{Digest, Sha256};

#[derive(Parser)]
struct Args {
    /// Address to bind; port 0 picks a free one (printed as `listening on ADDR`).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// File of lowercase hex SHA-256 token hashes, one per line.
    #[arg(long)]
    hashes: PathBuf,
    /// The real key handed upstream (from the environment, so it is not in `ps`).
    #[arg(long, env = "BENCH_REAL_KEY", hide_env_values = true)]
    real_key: String,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

struct Peer {
    hashes: HashSet<[u8; 32]>,
    upstream_auth: HeaderValue,
}

fn load_hashes(path: &PathBuf) -> std::io::Result<HashSet<[u8; 32]>> {
    let text = std::fs::read_to_string(path)?;
    let mut set = HashSet::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut hash = [0u8; 32];
        hex::decode_to_slice(line, &mut hash).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{line:?}: {e}"))
        })?;
        set.insert(hash);
    }
    Ok(set)
}

async fn check(State(peer): State<Arc<Peer>>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let known = token.is_some_and(|t| peer.hashes.contains(&<[u8; 32]>::from(Sha256::digest(t))));
    if known {
        let upstream = [(header::AUTHORIZATION, peer.upstream_auth.clone())];
        (StatusCode::OK, upstream).into_response()
    } else {
        StatusCode::UNAUTHORIZED.into_response()
    }
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let peer = Arc::new(Peer {
        hashes: load_hashes(&args.hashes)?,
        upstream_auth: HeaderValue::try_from(format!("Bearer {}", args.real_key))
            .map_err(|e| invalid(e.to_string()))?,
    });
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(args.listen).await?;
            ptk_bench::announce(listener.local_addr()?);
            let app = Router::new().fallback(check).with_state(peer);
            axum::serve(listener, app).await
        })
}
