//! What the final guard costs on the hot path: the core's work for a forwarded request (plan
//! the rewrite) with and without the guard, natively.
//!
//! `cargo run --release -p ptk-filter-core --example guard_cost` prints wall-clock ns per call
//! (noisy on a shared machine). For a load-independent number, count instructions:
//! `valgrind --tool=callgrind target/release/examples/guard_cost loop <decide|plan|allow> <case> <n>`
//! runs one variant `n` times; (allow − plan) / n is the guard's instructions per request
//! (docs/benchmarks.md has the numbers). The filter runs the same code compiled to wasm in V8.

use std::hint::black_box;
use std::time::Instant;

use ptk_filter_core::plan::rewrite_plan;
use ptk_filter_core::{decide_headers, FilterConfig, HeadersDecision, RequestHead};

const ROUNDS: u32 = 200_000;
const KEY: &str = "sk-bench-real-key-0123456789abcdef";

/// A request as the OpenAI Python SDK sends it through the proxy, with `path`.
fn head(path: &str) -> RequestHead {
    let pairs = [
        (":method", "POST"),
        (":path", path),
        (":authority", "127.0.0.1:10000"),
        (":scheme", "http"),
        (
            "authorization",
            "Bearer ptk_AbCdEfGhIjKlMnOpQrStUvWxYz012345",
        ),
        ("content-type", "application/json"),
        ("accept", "application/json"),
        ("user-agent", "OpenAI/Python 3.57.0"),
        ("x-stainless-lang", "python"),
        ("x-stainless-package-version", "3.57.0"),
        ("x-stainless-os", "Linux"),
        ("x-stainless-arch", "x64"),
        ("x-stainless-runtime", "CPython"),
        ("x-stainless-runtime-version", "3.11.7"),
        ("x-stainless-retry-count", "0"),
        ("x-stainless-read-timeout", "600"),
        ("content-length", "84"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "6f1c2d0e-8b1a-4c6e-9d2f-3a4b5c6d7e8f"),
    ];
    RequestHead::new(
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    )
}

const CASES: [(&str, &str); 2] = [
    ("SDK request, 19 headers", "/v1/chat/completions"),
    (
        "same, percent-encoded query",
        "/v1/chat/completions?model=gpt-4o%2Dmini&q=a%20b+c%25d",
    ),
];

fn per_call(mut f: impl FnMut()) -> f64 {
    for _ in 0..ROUNDS / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..ROUNDS {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(ROUNDS)
}

fn main() -> Result<(), String> {
    let config = FilterConfig::parse(b"")?;
    let args: Vec<String> = std::env::args().collect();
    for (i, (name, path)) in CASES.iter().enumerate() {
        let h = head(path);
        let HeadersDecision::Check(pending) = decide_headers(&config, &h) else {
            return Err("expected a check".into());
        };
        let upstream = config.upstream(pending.identified.route.provider());
        let plan = || {
            black_box(rewrite_plan(
                black_box(&h),
                &pending.identified,
                KEY,
                upstream,
            ))
        };
        let allow = || black_box(pending.allow(&config, black_box(&h), KEY).is_ok());
        if let [_, mode, variant, case, n] = args.as_slice() {
            if mode == "loop" && case.parse() == Ok(i) {
                let n: u32 = n.parse().map_err(|_| "n: a number")?;
                for _ in 0..n {
                    match variant.as_str() {
                        "allow" => {
                            allow();
                        }
                        "decide" => {
                            black_box(decide_headers(&config, black_box(&h)));
                        }
                        _ => {
                            plan();
                        }
                    }
                }
            }
            continue;
        }
        let without = per_call(|| {
            plan();
        });
        let with = per_call(|| {
            allow();
        });
        println!("{name}: plan {without:.0} ns, plan + guard {with:.0} ns");
    }
    Ok(())
}
