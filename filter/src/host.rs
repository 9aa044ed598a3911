//! The only file that makes proxy-wasm host calls. Every call returns a `Result` (the SDK's
//! trait helpers unwrap, and a panic takes the whole VM down for every request).

use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType as Kind, Status};
use ptk_filter_core::activity::Call;
use ptk_filter_core::flow::{ContextHost, Host, Level, MetricType, RequestBodyHost, ResponseHost};
use ptk_filter_core::shared_data::{GetError, SetError, SharedData, Stored};
use ptk_filter_core::LocalReply;

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
fn value(map: MapType, name: &str) -> Option<String> {
    hostcalls::get_map_value_bytes(map, name)
        .ok()
        .flatten()
        .map(text)
}

/// A whole header map.
fn map(map: MapType) -> Option<Vec<(String, String)>> {
    let pairs = hostcalls::get_map_bytes(map).ok()?;
    Some(pairs.into_iter().map(|(n, v)| (n, text(v))).collect())
}

/// Sets a header (replacing every value), or removes it with `None`.
fn set(map: MapType, name: &str, value: Option<&str>) -> bool {
    match value {
        Some(value) => hostcalls::set_map_value(map, name, Some(value)),
        None => hostcalls::remove_map_value(map, name),
    }
    .is_ok()
}

/// The first `size` bytes of a buffer.
pub fn buffer(kind: BufferType, size: usize) -> Option<Vec<u8>> {
    hostcalls::get_buffer(kind, 0, size).ok().flatten()
}

impl Host for EnvoyHost {
    type Shared = EnvoyHost;

    fn shared(&self) -> &EnvoyHost {
        self
    }

    fn now_ms(&self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    // `source.address` as Envoy determined it (honouring `use_remote_address` /
    // `xff_num_trusted_hops`).
    fn source_address(&self) -> String {
        let address = hostcalls::get_property(vec!["source", "address"]);
        address.ok().flatten().map(text).unwrap_or_default()
    }

    fn dispatch(&mut self, cluster: &str, call: &Call, timeout_ms: u64) -> Result<u32, String> {
        let timeout = Duration::from_millis(timeout_ms);
        let headers = borrowed(&call.0);
        hostcalls::dispatch_http_call(cluster, headers, Some(&call.1), vec![], timeout)
            .map_err(|status| format!("{status:?}"))
    }

    fn set_request_header(&mut self, name: &str, value: Option<&str>) -> bool {
        set(MapType::HttpRequestHeaders, name, value)
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
            Level::Critical => LogLevel::Critical,
        };
        let _ = hostcalls::log(level, message);
    }

    // Envoy stores a property set from a stream context in its filter state as
    // `wasm.<name>` (bytes), for the access log's `%FILTER_STATE(wasm.<name>:PLAIN)%`.
    fn set_log_field(&mut self, name: &str, value: &str) -> bool {
        hostcalls::set_property(vec![name], Some(value.as_bytes())).is_ok()
    }
}

impl ResponseHost for EnvoyHost {
    fn response_header(&self, name: &str) -> Option<String> {
        value(MapType::HttpResponseHeaders, name)
    }

    fn response_headers(&self) -> Vec<(String, String)> {
        map(MapType::HttpResponseHeaders).unwrap_or_default()
    }

    fn set_response_header(&mut self, name: &str, value: &str) -> bool {
        set(MapType::HttpResponseHeaders, name, Some(value))
    }

    fn remove_response_header(&mut self, name: &str) -> bool {
        set(MapType::HttpResponseHeaders, name, None)
    }

    fn response_body(&self, size: usize) -> Option<Vec<u8>> {
        buffer(BufferType::HttpResponseBody, size)
    }

    fn set_response_body(&mut self, size: usize, body: &[u8]) -> bool {
        hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, body).is_ok()
    }

    fn send_reply(&mut self, reply: &LocalReply) -> bool {
        let (status, headers) = (u32::from(reply.status), borrowed(&reply.headers));
        hostcalls::send_http_response(status, headers, Some(&reply.body)).is_ok()
    }
}

impl RequestBodyHost for EnvoyHost {
    fn request_body(&self, size: usize) -> Option<Vec<u8>> {
        buffer(BufferType::HttpRequestBody, size)
    }

    fn set_request_body(&mut self, size: usize, body: &[u8]) -> bool {
        hostcalls::set_buffer(BufferType::HttpRequestBody, 0, size, body).is_ok()
    }
}

impl ContextHost for EnvoyHost {
    fn request_headers(&self) -> Option<Vec<(String, String)>> {
        map(MapType::HttpRequestHeaders)
    }

    fn resume_request(&mut self) -> bool {
        hostcalls::resume_http_request().is_ok()
    }

    fn callout_answer(&self, body_size: usize) -> (Option<String>, Option<Vec<u8>>) {
        let status = value(MapType::HttpCallResponseHeaders, ":status");
        (status, buffer(BufferType::HttpCallResponseBody, body_size))
    }

    fn callout_headers(&self) -> Vec<(String, String)> {
        map(MapType::HttpCallResponseHeaders).unwrap_or_default()
    }

    fn define_metric(&mut self, kind: MetricType, name: &str) -> Option<u32> {
        let kind = match kind {
            MetricType::Counter => Kind::Counter,
            MetricType::Gauge => Kind::Gauge,
            MetricType::Histogram => Kind::Histogram,
        };
        hostcalls::define_metric(kind, name).ok()
    }

    fn add_to_metric(&mut self, id: u32, delta: i64) {
        let _ = hostcalls::increment_metric(id, delta);
    }

    fn close_stream(&mut self, context_id: u32, root_id: u32) -> bool {
        close_stream(context_id, root_id)
    }

    fn set_tick(&mut self, period_ms: u64) {
        let _ = hostcalls::set_tick_period(Duration::from_millis(period_ms));
    }

    fn now_us(&self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    fn record_metric(&mut self, id: u32, value: u64) {
        let _ = hostcalls::record_metric(id, value);
    }
}

/// Proxy-wasm shared data (one store for every worker of this VM id).
impl SharedData for EnvoyHost {
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
fn close_stream(context_id: u32, root_id: u32) -> bool {
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
