//! bench-mock: the upstream every proxy in `make bench` forwards to. Fixed OpenAI-shaped
//! answers, no recording, no parsing beyond spotting `"stream": true` and
//! `"include_usage": true`, so the numbers measure the proxies and not the mock (the Python
//! test mock tops out far below Envoy).
//!
//! - `POST /v1/chat/completions`: the fixed completion, or an SSE stream whose first event is
//!   sent at once and whose last event follows after `--sse-delay-ms` (with a usage-only chunk
//!   before `[DONE]` when the request asks for `stream_options.include_usage`, as OpenAI does).
//! - `GET /v1/models`: the fixed model list.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use clap::Parser;
use ptk_bench::fixtures::{
    sse_last, wants_stream, wants_usage, CHAT_COMPLETION, MODELS, SSE_FIRST,
};

#[derive(Parser)]
struct Args {
    /// Address to bind; port 0 picks a free one (printed as `listening on ADDR`).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Delay between the first and the last SSE event.
    #[arg(long, default_value_t = 50)]
    sse_delay_ms: u64,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn json(body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn sse(delay: Duration, with_usage: bool) -> Response {
    let events = futures_util::stream::unfold(0u8, move |step| async move {
        match step {
            0 => Some((
                Ok::<_, Infallible>(Bytes::from_static(SSE_FIRST.as_bytes())),
                1,
            )),
            1 => {
                tokio::time::sleep(delay).await;
                Some((Ok(Bytes::from(sse_last(with_usage))), 2))
            }
            _ => None,
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(events),
    )
        .into_response()
}

fn router(delay: Duration) -> Router {
    Router::new()
        .route(
            "/v1/chat/completions",
            post(move |body: Bytes| async move {
                if wants_stream(&body) {
                    sse(delay, wants_usage(&body))
                } else {
                    json(CHAT_COMPLETION)
                }
            }),
        )
        .route("/v1/models", get(|| async { json(MODELS) }))
        .fallback(|| async { (StatusCode::NOT_FOUND, json(r#"{"error":"no route"}"#)) })
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(args.listen).await?;
            ptk_bench::announce(listener.local_addr()?);
            axum::serve(listener, router(Duration::from_millis(args.sse_delay_ms))).await
        })
}
