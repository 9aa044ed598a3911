//! What the final guard costs: the core's work for a forwarded request (plan the rewrite) with
//! and without the guard, natively, on the requests SDKs send and on the worst a token holder
//! can send.
//!
//! `cargo run --release -p ptk-filter-core --example guard_cost` prints wall-clock ns per call
//! (noisy on a shared machine) and the guard's own work counters. For a load-independent
//! number, count instructions:
//! `valgrind --tool=callgrind target/release/examples/guard_cost loop <decide|plan|allow> <case> <n>`
//! runs one variant `n` times; (allow − plan) / n is the guard's instructions per request
//! (docs/benchmarks.md has the numbers). The filter runs the same code compiled to wasm in V8.
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::hint::black_box;
use std::time::Instant;

use ptk_filter_core::guard::{inspect, Sought};
use ptk_filter_core::plan::rewrite_plan;
use ptk_filter_core::{decide_headers, FilterConfig, HeadersDecision, RequestHead};

const KEY: &str = "sk-bench-real-key-0123456789abcdef";
const TOKEN: &str = "ptk_AbCdEfGhIjKlMnOpQrStUvWxYz012345";

/// A request as the OpenAI Python SDK sends it through the proxy, with `path`, `credential`
/// in `authorization` and `extra` headers.
fn head(path: &str, credential: &str, extra: &[(String, String)]) -> RequestHead {
    let pairs = [
        (":method", "POST"),
        (":path", path),
        (":authority", "127.0.0.1:10000"),
        (":scheme", "http"),
        ("authorization", credential),
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
    let mut all: Vec<(String, String)> = pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    all.extend_from_slice(extra);
    RequestHead::new(all)
}

/// Distinct needles of `len` bytes that contain no other (`a…a` and one distinct last byte).
fn pieces(n: usize, len: usize) -> Vec<String> {
    let chars = b"bcdefghijklmnopqrstuvwxyz0123456789";
    (0..n)
        .map(|i| format!("{}{}", "a".repeat(len - 1), chars[i % chars.len()] as char))
        .collect()
}

/// Three percent-decoding layers, each of them not UTF-8 (the original attack's tail).
const LAYERS: &str = "%FF%25FF%2525FF%252561";

/// The requests measured, by case number.
fn cases() -> Vec<(&'static str, RequestHead)> {
    let bearer = format!("Bearer {TOKEN}");
    let path = "/v1/chat/completions";
    // attack/guard_cpu_dos.py: 28 pieces of 1,000 bytes in one `api-key`, a 28,000-byte pad.
    let dos = vec![
        ("api-key".to_string(), pieces(28, 1000).join(" ")),
        (
            "x-pad".to_string(),
            format!("{}{LAYERS}", "a".repeat(28_000)),
        ),
    ];
    // The same attack fitted under every bound: 4 distinct 2,000-byte needles (8,000 bytes of
    // forms), and the rest of Envoy's 60 KiB as one header decoded three times.
    let mut fitted: Vec<(String, String)> = pieces(4, 2000)
        .into_iter()
        .map(|p| ("api-key".to_string(), p))
        .collect();
    fitted.push((
        "x-pad".to_string(),
        format!("{}{LAYERS}", "a".repeat(52_000)),
    ));
    // 30 distinct needles of 250 bytes that branch at the same state (the most transitions a
    // state can have), and 98 headers of 500 bytes that stay in that state.
    let mut spread: Vec<(String, String)> = pieces(30, 250)
        .into_iter()
        .map(|p| ("api-key".to_string(), p))
        .collect();
    spread.extend((0..68).map(|i| (format!("x-pad-{i}"), format!("{}{LAYERS}", "a".repeat(700)))));
    // The shape's prefix again and again, each time one byte short of a token.
    let prefixes = format!("ptk_{}!", "a".repeat(TOKEN.len() - 5));
    let shapes = vec![(
        "x-pad".to_string(),
        format!("{}{LAYERS}", prefixes.repeat(58_000 / prefixes.len())),
    )];
    vec![
        ("SDK request, 19 headers", head(path, &bearer, &[])),
        (
            "same, percent-encoded query",
            head(
                "/v1/chat/completions?model=gpt-4o%2Dmini&q=a%20b+c%25d",
                &bearer,
                &[],
            ),
        ),
        (
            "same, custom token",
            head(path, "Bearer my-own-custom-proxy-token", &[]),
        ),
        ("attack/guard_cpu_dos.py", head(path, &bearer, &dos)),
        (
            "attack fitted under the bounds",
            head(path, &bearer, &fitted),
        ),
        ("30 needles, 98 headers", head(path, &bearer, &spread)),
        ("token prefixes, 58 KB", head(path, &bearer, &shapes)),
    ]
}

fn per_call(rounds: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..rounds / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..rounds {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(rounds)
}

fn main() -> Result<(), String> {
    let config = FilterConfig::parse(b"")?;
    let args: Vec<String> = std::env::args().collect();
    for (i, (name, h)) in cases().iter().enumerate() {
        let HeadersDecision::Check(pending) = decide_headers(&config, h) else {
            return Err(format!("{name}: expected a check"));
        };
        let upstream = config.upstream(pending.identified.dialect.provider());
        let plan = || {
            black_box(rewrite_plan(
                black_box(h),
                &pending.identified,
                KEY,
                upstream,
            ))
        };
        let allow = || black_box(pending.allow(&config, black_box(h), KEY).is_ok());
        if let [_, mode, variant, case, n] = args.as_slice() {
            if mode == "loop" && case.parse() == Ok(i) {
                let n: u32 = n.parse().map_err(|_| "n: a number")?;
                for _ in 0..n {
                    match variant.as_str() {
                        "allow" => {
                            allow();
                        }
                        "decide" => {
                            black_box(decide_headers(&config, black_box(h)));
                        }
                        _ => {
                            plan();
                        }
                    }
                }
            }
            continue;
        }
        let inspection = inspect(h, &plan(), Sought::Slots(Some(&pending.identified.token)));
        let rounds = if i < 3 { 200_000 } else { 200 };
        let without = per_call(rounds, || {
            plan();
        });
        let with = per_call(rounds, || {
            allow();
        });
        println!(
            "{i} {name}: plan {without:.0} ns, plan + guard {with:.0} ns; {:?}, {:?}",
            inspection.finding, inspection.cost
        );
    }
    Ok(())
}
