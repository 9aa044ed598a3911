//! The only file that makes proxy-wasm host calls. Every call returns a `Result` (the SDK's
//! trait helpers unwrap, and a panic takes the whole VM down for every request).

use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType, Status};
use ptk_filter_core::flow::{Host, Level};
use ptk_filter_core::shared_data::{GetError, SetError, SharedData, Stored};
use ptk_filter_core::usage::Call;
use ptk_filter_core::RewritePlan;

/// Logs through Envoy (never pass a token or a key here).
pub fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}

/// The plugin configuration bytes, or empty.
pub fn plugin_configuration() -> Vec<u8> {
    hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The request headers, values converted lossily (a non-UTF-8 value can never be a token).
/// A valid UTF-8 value keeps its buffer: no copy per header on the hot path.
pub fn request_headers() -> Result<Vec<(String, String)>, Status> {
    Ok(hostcalls::get_map_bytes(MapType::HttpRequestHeaders)?
        .into_iter()
        .map(|(name, value)| {
            let value = String::from_utf8(value)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            (name, value)
        })
        .collect())
}

/// Removes a request header (all values).
pub fn remove_request_header(name: &str) -> Result<(), Status> {
    hostcalls::remove_map_value(MapType::HttpRequestHeaders, name)
}

/// Sets a request header, replacing any existing values.
pub fn set_request_header(name: &str, value: &str) -> Result<(), Status> {
    hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value))
}

/// The first value of a response header.
pub fn response_header(name: &str) -> Option<String> {
    hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, name)
        .ok()
        .flatten()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// Every response header, values converted lossily.
pub fn response_headers() -> Result<Vec<(String, String)>, Status> {
    Ok(hostcalls::get_map_bytes(MapType::HttpResponseHeaders)?
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
        .collect())
}

/// The response body Envoy holds for this callback (what was buffered, or this chunk).
pub fn response_body(size: usize) -> Option<Vec<u8>> {
    hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size)
        .ok()
        .flatten()
}

/// Replaces the first `size` bytes of the response body Envoy holds with `body`.
pub fn set_response_body(size: usize, body: &[u8]) -> Result<(), Status> {
    hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, body)
}

/// Sets a response header, replacing any existing values.
pub fn set_response_header(name: &str, value: &str) -> Result<(), Status> {
    hostcalls::set_map_value(MapType::HttpResponseHeaders, name, Some(value))
}

/// Lets a paused request continue.
pub fn resume_request() -> Result<(), Status> {
    hostcalls::resume_http_request()
}

/// Answers the request locally.
pub fn send_reply(status: u16, headers: &[(String, String)], body: &[u8]) -> Result<(), Status> {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    hostcalls::send_http_response(u32::from(status), headers, Some(body))
}

/// Starts an HTTP callout; returns its token id.
pub fn dispatch(
    cluster: &str,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<u32, Status> {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    hostcalls::dispatch_http_call(cluster, headers, Some(body), vec![], timeout)
}

/// The `:status` of the callout response being delivered, if it has one (a failed callout
/// arrives with no headers at all).
pub fn call_response_status() -> Option<u16> {
    hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
        .ok()
        .flatten()
        .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok())
}

/// The body of the callout response being delivered.
pub fn call_response_body(size: usize) -> Option<Vec<u8>> {
    hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, size)
        .ok()
        .flatten()
}

/// Host time in milliseconds since the Unix epoch (0 if the host cannot tell).
pub fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The flow's view of Envoy: every method a host call.
pub struct EnvoyHost;

impl Host for EnvoyHost {
    type Shared = HostSharedData;

    fn shared(&self) -> &HostSharedData {
        &HostSharedData
    }

    fn now_ms(&self) -> u64 {
        now_ms()
    }

    fn source_address(&self) -> String {
        source_address()
    }

    fn dispatch(&mut self, cluster: &str, call: &Call, timeout_ms: u64) -> Result<u32, String> {
        let timeout = Duration::from_millis(timeout_ms);
        dispatch(cluster, &call.0, &call.1, timeout).map_err(|status| format!("{status:?}"))
    }

    fn rewrite(&mut self, plan: &RewritePlan) -> bool {
        let removed = plan
            .remove
            .iter()
            .all(|name| remove_request_header(name).is_ok());
        let set = plan
            .set
            .iter()
            .all(|(name, value)| set_request_header(name, value).is_ok());
        removed && set
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        log(level, message);
    }
}

/// Proxy-wasm shared data (one store for every worker of this VM id).
pub struct HostSharedData;

impl SharedData for HostSharedData {
    fn get(&self, key: &str) -> Result<Stored, GetError> {
        hostcalls::get_shared_data(key).map_err(|_| GetError)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
        hostcalls::set_shared_data(key, Some(value), cas).map_err(|status| match status {
            Status::CasMismatch => SetError::CasMismatch,
            _ => SetError::Other,
        })
    }
}

/// The downstream peer as Envoy determined it (`source.address`: `ip:port`, honouring the
/// connection manager's `use_remote_address` / `xff_num_trusted_hops`); empty if unknown.
pub fn source_address() -> String {
    hostcalls::get_property(vec!["source", "address"])
        .ok()
        .flatten()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .unwrap_or_default()
}

/// Asks for `on_tick` every `period`.
pub fn set_tick(period: Duration) {
    let _ = hostcalls::set_tick_period(period);
}

/// Defines a counter; `None` if the host refuses (metrics are best effort).
pub fn define_counter(name: &str) -> Option<u32> {
    hostcalls::define_metric(MetricType::Counter, name).ok()
}

/// Defines a gauge; `None` if the host refuses.
pub fn define_gauge(name: &str) -> Option<u32> {
    hostcalls::define_metric(MetricType::Gauge, name).ok()
}

/// Adds `delta` (may be negative) to a gauge.
pub fn add_to_gauge(metric: Option<u32>, delta: i64) {
    if let Some(id) = metric {
        let _ = hostcalls::increment_metric(id, delta);
    }
}

/// Adds `n` to a counter.
pub fn add_to_counter(metric: Option<u32>, n: u64) {
    if let Some(id) = metric {
        let _ = hostcalls::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
    }
}

// The SDK's `set_effective_context` and `reset_http_request` panic on an unexpected status, and
// a panic takes the VM down for every request: these two are declared here returning it.
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_close_stream(stream_type: u32) -> u32;
}

/// `proxy_close_stream`'s stream type for the HTTP request (Envoy resets the whole stream).
const STREAM_HTTP_REQUEST: u32 = 0;

/// Status `Ok` of the proxy-wasm ABI.
const STATUS_OK: u32 = 0;

/// Resets the HTTP stream of another context (a revoked token's open request) from the root
/// context, then makes `root_id` effective again so later calls (callouts) stay the root's.
/// `false` if the host refused (the stream may already be gone).
pub fn close_stream(context_id: u32, root_id: u32) -> bool {
    // SAFETY: plain host calls with integer arguments; no memory is shared.
    let closed = unsafe {
        proxy_set_effective_context(context_id) == STATUS_OK
            && proxy_close_stream(STREAM_HTTP_REQUEST) == STATUS_OK
    };
    // SAFETY: as above.
    unsafe {
        proxy_set_effective_context(root_id);
    }
    closed
}
