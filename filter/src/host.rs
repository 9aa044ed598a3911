//! The only file that makes proxy-wasm host calls. Every call returns a `Result` (the SDK's
//! trait helpers unwrap, and a panic takes the whole VM down for every request).

use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType, Status};
use ptk_filter_core::activity::Call;
use ptk_filter_core::flow::{Host, Level, ResponseHost};
use ptk_filter_core::shared_data::{GetError, SetError, SharedData, Stored};
use ptk_filter_core::LocalReply;

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

/// A header map, values converted lossily (a non-UTF-8 value can never be a token). A valid
/// UTF-8 value keeps its buffer: no copy per header on the hot path.
pub fn headers(map: MapType) -> Result<Vec<(String, String)>, Status> {
    Ok(hostcalls::get_map_bytes(map)?
        .into_iter()
        .map(|(name, value)| {
            let value = String::from_utf8(value)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            (name, value)
        })
        .collect())
}

/// Lets a paused request continue.
pub fn resume_request() -> Result<(), Status> {
    hostcalls::resume_http_request()
}

/// Answers the request locally.
pub fn send_reply(reply: &LocalReply) -> Result<(), Status> {
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    hostcalls::send_http_response(u32::from(reply.status), headers, Some(&reply.body))
}

/// The callout response being delivered: its `:status` (none for a failed callout, which
/// arrives with no headers at all) and its body.
pub fn call_response(body_size: usize) -> (Option<u16>, Option<Vec<u8>>) {
    let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
        .ok()
        .flatten()
        .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok());
    let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size);
    (status, body.ok().flatten())
}

/// Asks for `on_tick` every `period`.
pub fn set_tick(period: Duration) {
    let _ = hostcalls::set_tick_period(period);
}

/// Defines a counter or gauge; `None` if the host refuses (metrics are best effort).
pub fn define_metric(kind: MetricType, name: &str) -> Option<u32> {
    hostcalls::define_metric(kind, name).ok()
}

/// Adds `delta` (may be negative) to a metric.
pub fn add_to_metric(metric: Option<u32>, delta: i64) {
    if let Some(id) = metric {
        let _ = hostcalls::increment_metric(id, delta);
    }
}

/// The flow's view of Envoy: every method a host call.
pub struct EnvoyHost;

impl Host for EnvoyHost {
    type Shared = HostSharedData;

    fn shared(&self) -> &HostSharedData {
        &HostSharedData
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
        let address = hostcalls::get_property(vec!["source", "address"])
            .ok()
            .flatten();
        address
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    }

    fn dispatch(&mut self, cluster: &str, call: &Call, timeout_ms: u64) -> Result<u32, String> {
        let headers: Vec<(&str, &str)> = call
            .0
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let timeout = Duration::from_millis(timeout_ms);
        hostcalls::dispatch_http_call(cluster, headers, Some(&call.1), vec![], timeout)
            .map_err(|status| format!("{status:?}"))
    }

    fn set_request_header(&mut self, name: &str, value: Option<&str>) -> bool {
        match value {
            Some(value) => hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value)),
            None => hostcalls::remove_map_value(MapType::HttpRequestHeaders, name),
        }
        .is_ok()
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

impl ResponseHost for EnvoyHost {
    fn response_header(&self, name: &str) -> Option<String> {
        let value = hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, name);
        value
            .ok()
            .flatten()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    fn response_headers(&self) -> Vec<(String, String)> {
        headers(MapType::HttpResponseHeaders).unwrap_or_default()
    }

    fn set_response_header(&mut self, name: &str, value: &str) -> bool {
        hostcalls::set_map_value(MapType::HttpResponseHeaders, name, Some(value)).is_ok()
    }

    fn response_body(&self, size: usize) -> Option<Vec<u8>> {
        hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size)
            .ok()
            .flatten()
    }

    fn set_response_body(&mut self, size: usize, body: &[u8]) -> bool {
        hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, body).is_ok()
    }

    fn send_reply(&mut self, reply: &LocalReply) -> bool {
        send_reply(reply).is_ok()
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
