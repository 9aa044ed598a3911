//! The flow's view of Envoy: every method one host call of `abi.rs` (which never panics: a call
//! Envoy refuses is reported as not done, never a trap of the VM).

use std::time::Duration;

use proxy_wasm::hostcalls;
use ptk_filter_core::activity::Call;
use ptk_filter_core::flow::{ContextHost, Host, Level, MetricType, RequestBodyHost, ResponseHost};
use ptk_filter_core::shared_data::{GetError, SetError, SharedData, Stored};
use ptk_filter_core::LocalReply;

use crate::abi::{self, buffer as buf, map as maps};

/// The flow's view of Envoy (shared data included): every method a host call.
pub struct EnvoyHost;

/// Header pairs as the SDK takes them.
fn borrowed(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

/// Bytes as text; a valid UTF-8 value keeps its buffer (no copy per header on the hot path),
/// anything else is converted lossily (a non-UTF-8 value can never be a token).
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// One value of a header map.
fn value(map: u32, name: &str) -> Option<String> {
    abi::map_value(map, name).map(text)
}

/// A whole header map.
fn map(map: u32) -> Option<Vec<(String, String)>> {
    let pairs = abi::map_pairs(map)?;
    Some(pairs.into_iter().map(|(n, v)| (n, text(v))).collect())
}

/// The first `size` bytes of a buffer.
pub fn buffer(kind: u32, size: usize) -> Option<Vec<u8>> {
    abi::get_buffer(kind, size)
}

impl Host for EnvoyHost {
    type Shared = EnvoyHost;

    fn shared(&self) -> &EnvoyHost {
        self
    }

    fn now_ms(&self) -> u64 {
        abi::now_ns().map_or(0, |ns| ns / 1_000_000)
    }

    // `source.address` as Envoy determined it (honouring `use_remote_address` /
    // `xff_num_trusted_hops`).
    fn source_address(&self) -> String {
        abi::get_property(&["source", "address"])
            .map(text)
            .unwrap_or_default()
    }

    // The SDK's call: it registers the token so the answer reaches this context (see abi.rs).
    fn dispatch(&mut self, cluster: &str, call: &Call, timeout_ms: u64) -> Result<u32, String> {
        let timeout = Duration::from_millis(timeout_ms);
        let headers = borrowed(&call.0);
        hostcalls::dispatch_http_call(cluster, headers, Some(&call.1), vec![], timeout)
            .map_err(|status| format!("{status:?}"))
    }

    fn set_request_header(&mut self, name: &str, value: Option<&str>) -> bool {
        abi::set_map_value(maps::REQUEST_HEADERS, name, value)
    }

    fn log(&self, level: Level, message: &str) {
        // proxy-wasm `LogLevel`.
        let level = match level {
            Level::Info => 2,
            Level::Warn => 3,
            Level::Error => 4,
            Level::Critical => 5,
        };
        let _ = abi::log(level, message);
    }

    // Envoy stores a property set from a stream context in its filter state as
    // `wasm.<name>` (bytes), for the access log's `%FILTER_STATE(wasm.<name>:PLAIN)%`.
    fn set_log_field(&mut self, name: &str, value: &str) -> bool {
        abi::set_property(&[name], value.as_bytes())
    }

    // On wasm32-wasip1 `getrandom` calls WASI `random_get`, which Envoy's runtimes provide.
    fn random_u64(&mut self) -> Option<u64> {
        getrandom::u64().ok()
    }
}

impl ResponseHost for EnvoyHost {
    fn response_header(&self, name: &str) -> Option<String> {
        value(maps::RESPONSE_HEADERS, name)
    }

    fn response_headers(&self) -> Vec<(String, String)> {
        map(maps::RESPONSE_HEADERS).unwrap_or_default()
    }

    fn set_response_header(&mut self, name: &str, value: &str) -> bool {
        abi::set_map_value(maps::RESPONSE_HEADERS, name, Some(value))
    }

    fn remove_response_header(&mut self, name: &str) -> bool {
        abi::set_map_value(maps::RESPONSE_HEADERS, name, None)
    }

    fn response_body(&self, size: usize) -> Option<Vec<u8>> {
        buffer(buf::RESPONSE_BODY, size)
    }

    fn set_response_body(&mut self, size: usize, body: &[u8]) -> bool {
        abi::set_buffer(buf::RESPONSE_BODY, size, body)
    }

    fn send_reply(&mut self, reply: &LocalReply) -> bool {
        let headers = borrowed(&reply.headers);
        abi::send_local_response(u32::from(reply.status), &headers, &reply.body)
    }
}

impl RequestBodyHost for EnvoyHost {
    fn request_body(&self, size: usize) -> Option<Vec<u8>> {
        buffer(buf::REQUEST_BODY, size)
    }

    fn set_request_body(&mut self, size: usize, body: &[u8]) -> bool {
        abi::set_buffer(buf::REQUEST_BODY, size, body)
    }
}

impl ContextHost for EnvoyHost {
    fn request_headers(&self) -> Option<Vec<(String, String)>> {
        map(maps::REQUEST_HEADERS)
    }

    fn resume_request(&mut self) -> bool {
        abi::resume_request()
    }

    fn resume_response(&mut self) -> bool {
        abi::resume_response()
    }

    fn callout_answer(&self, body_size: usize) -> (Option<String>, Option<Vec<u8>>) {
        let status = value(maps::CALLOUT_RESPONSE_HEADERS, ":status");
        (status, buffer(buf::CALLOUT_RESPONSE_BODY, body_size))
    }

    fn callout_headers(&self) -> Vec<(String, String)> {
        map(maps::CALLOUT_RESPONSE_HEADERS).unwrap_or_default()
    }

    fn define_metric(&mut self, kind: MetricType, name: &str) -> Option<u32> {
        // proxy-wasm `MetricType`.
        let kind = match kind {
            MetricType::Counter => 0,
            MetricType::Gauge => 1,
            MetricType::Histogram => 2,
        };
        abi::define_metric(kind, name)
    }

    fn add_to_metric(&mut self, id: u32, delta: i64) {
        let _ = abi::increment_metric(id, delta);
    }

    fn close_stream(&mut self, context_id: u32, root_id: u32) -> bool {
        abi::close_stream(context_id, root_id)
    }

    fn reset_stream(&mut self) -> bool {
        abi::reset_stream()
    }

    fn set_tick(&mut self, period_ms: u64) {
        let _ = abi::set_tick(period_ms);
    }

    fn now_us(&self) -> u64 {
        abi::now_ns().map_or(0, |ns| ns / 1_000)
    }

    fn record_metric(&mut self, id: u32, value: u64) {
        let _ = abi::record_metric(id, value);
    }
}

/// Proxy-wasm shared data (one store for every worker of this VM id).
impl SharedData for EnvoyHost {
    fn get(&self, key: &str) -> Result<Stored, GetError> {
        let (value, cas) = abi::get_shared_data(key).map_err(|_| GetError)?;
        Ok((value, (cas != 0).then_some(cas)))
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
        match abi::set_shared_data(key, value, cas.unwrap_or(0)) {
            abi::OK => Ok(()),
            abi::CAS_MISMATCH => Err(SetError::CasMismatch),
            _ => Err(SetError::Other),
        }
    }
}
