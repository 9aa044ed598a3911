//! Times, inside the VM, what one ptk request costs piece by piece: each kind of host call the
//! filter makes, and the filter's own Rust work on a cache hit (find the token, hash it, spend
//! a pooled unit, plan the rewrite). Loops run with hot caches, so these are lower bounds on
//! what the same work costs per request under load.

use std::hint::black_box;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel, MapType};
use ptk_filter_core::config::FilterConfig;
use ptk_filter_core::local_pool::{LocalPool, Take};
use ptk_filter_core::verdict_cache::Grant;
use ptk_filter_core::{decide_headers, HeadersDecision, RequestHead};

const ROUNDS: u32 = 20_000;
const REAL_KEY: &str = "sk-bench-real-key-0123456789abcdef";

fn now_ns() -> u128 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

/// Runs `f` `ROUNDS` times and logs the mean in nanoseconds.
fn time(name: &str, mut f: impl FnMut()) {
    let start = now_ns();
    for _ in 0..ROUNDS {
        f();
    }
    let per = now_ns().saturating_sub(start) / u128::from(ROUNDS);
    let _ = hostcalls::log(LogLevel::Warn, &format!("ptk-probe {name} {per}"));
}

/// The ptk filter's Rust work for a request served from this worker's pool.
fn warm_path(config: &FilterConfig, pool: &mut LocalPool, headers: &[(String, Vec<u8>)]) {
    let head = RequestHead::new(
        headers
            .iter()
            .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect(),
    );
    if let HeadersDecision::Check(pending) = decide_headers(config, &head) {
        if let Take::Empty { .. } = pool.take(&pending.cache_key, 1) {
            let grant = Grant {
                key: REAL_KEY.to_string(),
                limits: None,
            };
            pool.hold(&pending.cache_key, u32::MAX, u64::MAX, 1, &grant);
        }
        // The plan and the final guard (allow returns the guard's refusal instead).
        black_box(pending.allow(config, &head, REAL_KEY).is_ok());
    }
}

pub struct Probe;
impl Context for Probe {}
impl HttpContext for Probe {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let headers = MapType::HttpRequestHeaders;
        time("get_current_time", || {
            black_box(hostcalls::get_current_time().ok());
        });
        time("get_header_map", || {
            black_box(hostcalls::get_map_bytes(headers).ok());
        });
        time("get_header_present", || {
            black_box(hostcalls::get_map_value_bytes(headers, "authorization").ok());
        });
        time("get_header_absent", || {
            black_box(hostcalls::get_map_value_bytes(headers, "x-ptk-absent").ok());
        });
        time("set_header", || {
            black_box(hostcalls::set_map_value(headers, "x-ptk-probe", Some(REAL_KEY)).ok());
        });
        let _ = hostcalls::set_map_value(headers, "x-ptk-probe", None);
        let value = [7u8; 48];
        let _ = hostcalls::set_shared_data("ptk-probe", Some(&value), None);
        time("get_shared_data", || {
            black_box(hostcalls::get_shared_data("ptk-probe").ok());
        });
        time("shared_data_cas_write", || {
            if let Ok((_, cas)) = hostcalls::get_shared_data("ptk-probe") {
                black_box(hostcalls::set_shared_data("ptk-probe", Some(&value), cas).ok());
            }
        });
        if let (Ok(config), Ok(map)) = (FilterConfig::parse(b""), hostcalls::get_map_bytes(headers))
        {
            let mut pool = LocalPool::default();
            time("ptk_rust_cache_hit", || warm_path(&config, &mut pool, &map));
        }
        Action::Continue
    }
}
