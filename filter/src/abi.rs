//! The proxy-wasm host calls the filter makes, declared here with their raw status codes.
//!
//! The SDK's wrappers (`proxy_wasm::hostcalls`) panic on any status they do not expect, and a
//! panic traps the VM: Envoy then fails every later request of that worker (fail closed, but
//! down). Envoy answers an unexpected status when a call comes in the wrong phase (a request
//! header set from a body callback after the headers went on, response headers read from a
//! body callback, a local reply after the response started): measured on Envoy 1.40, the SDK's
//! `set_map_value` there trapped with "unreachable". So every call here returns its status to
//! the caller, who treats anything but `Ok` as "not done". The byte layouts are
//! `ptk_filter_core::abi_codec`'s.
//!
//! Memory the host returns was allocated through the module's `proxy_on_memory_allocate` (the
//! SDK's: a boxed slice of exactly that size), so it is taken back as a `Vec` of that length
//! and capacity, as the SDK does.
//!
//! Left to the SDK: `dispatch_http_call`, whose token it must register to route the answer to
//! this context (Envoy returns only `Ok`, `BadArgument` or `InternalFailure` there, the three the
//! SDK expects), and the context callbacks themselves.

use std::ptr::null_mut;

use ptk_filter_core::abi_codec::{deserialize_map, property_path, serialize_map};

/// A proxy-wasm status code (`Ok` = 0, `NotFound` = 1, `CasMismatch` = 8, …).
pub type Status = u32;
/// `Ok`.
pub const OK: Status = 0;
/// `NotFound`.
pub const NOT_FOUND: Status = 1;
/// `CasMismatch`.
pub const CAS_MISMATCH: Status = 8;

/// Header maps (proxy-wasm `MapType`).
pub mod map {
    /// The request's headers.
    pub const REQUEST_HEADERS: u32 = 0;
    /// The response's headers.
    pub const RESPONSE_HEADERS: u32 = 2;
    /// A callout answer's headers.
    pub const CALLOUT_RESPONSE_HEADERS: u32 = 6;
}

/// Buffers (proxy-wasm `BufferType`).
pub mod buffer {
    /// The request body Envoy lends this callback.
    pub const REQUEST_BODY: u32 = 0;
    /// The response body Envoy lends this callback.
    pub const RESPONSE_BODY: u32 = 1;
    /// A callout answer's body.
    pub const CALLOUT_RESPONSE_BODY: u32 = 4;
    /// The plugin configuration.
    pub const PLUGIN_CONFIGURATION: u32 = 7;
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> Status;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> Status;
    fn proxy_set_tick_period_milliseconds(period: u32) -> Status;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> Status;
    fn proxy_set_buffer_bytes(
        buffer_type: u32,
        start: usize,
        size: usize,
        data: *const u8,
        data_size: usize,
    ) -> Status;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> Status;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> Status;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> Status;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize)
        -> Status;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> Status;
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> Status;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
        return_cas: *mut u32,
    ) -> Status;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> Status;
    fn proxy_continue_stream(stream_type: u32) -> Status;
    fn proxy_send_local_response(
        status_code: u32,
        details_data: *const u8,
        details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> Status;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> Status;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> Status;
    fn proxy_record_metric(metric_id: u32, value: u64) -> Status;
    fn proxy_set_effective_context(context_id: u32) -> Status;
    fn proxy_close_stream(stream_type: u32) -> Status;
}

/// `StreamType::HttpRequest`.
const STREAM_HTTP_REQUEST: u32 = 0;
const STREAM_HTTP_RESPONSE: u32 = 1;

/// Takes ownership of bytes the host returned (allocated by this module for it).
///
/// # Safety
/// `data` is null, or was returned by the host with `size` for this call (so it came from
/// `proxy_on_memory_allocate(size)`) and is not owned by anything else.
unsafe fn returned(data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if data.is_null() {
        return None;
    }
    // SAFETY: per this function's contract, allocated as a boxed slice of exactly `size`.
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// Runs a host call that may return bytes: `Ok(Some)` with them, `Ok(None)` for none or
/// `NotFound`, `Err` with any other status.
fn fetch(call: impl FnOnce(*mut *mut u8, *mut usize) -> Status) -> Result<Option<Vec<u8>>, Status> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    match call(&mut data, &mut size) {
        // SAFETY: the host filled `data`/`size` for this call.
        OK => Ok(unsafe { returned(data, size) }),
        NOT_FOUND => Ok(None),
        status => Err(status),
    }
}

/// Writes a log line at `level` (proxy-wasm `LogLevel`: 2 info … 5 critical).
pub fn log(level: u32, message: &str) -> Status {
    // SAFETY: a pointer and length of a live string.
    unsafe { proxy_log(level, message.as_ptr(), message.len()) }
}

/// Host time in nanoseconds since the Unix epoch.
pub fn now_ns() -> Option<u64> {
    let mut now: u64 = 0;
    // SAFETY: a pointer to a live u64.
    let status = unsafe { proxy_get_current_time_nanoseconds(&mut now) };
    (status == OK).then_some(now)
}

/// Asks for a tick every `period_ms` (saturated to the ABI's u32).
pub fn set_tick(period_ms: u64) -> Status {
    let period = u32::try_from(period_ms).unwrap_or(u32::MAX);
    // SAFETY: plain integer argument.
    unsafe { proxy_set_tick_period_milliseconds(period) }
}

/// Up to `max` bytes of a buffer from its start.
pub fn get_buffer(kind: u32, max: usize) -> Option<Vec<u8>> {
    // SAFETY: out-pointers to live locals (in `fetch`).
    fetch(|data, size| unsafe { proxy_get_buffer_bytes(kind, 0, max, data, size) })
        .ok()
        .flatten()
}

/// Replaces the first `size` bytes of a buffer with `bytes`; `false` if the host refused.
pub fn set_buffer(kind: u32, size: usize, bytes: &[u8]) -> bool {
    // SAFETY: a pointer and length of a live slice.
    unsafe { proxy_set_buffer_bytes(kind, 0, size, bytes.as_ptr(), bytes.len()) == OK }
}

/// Every header of a map (values as bytes); `None` if unreadable (wrong phase, malformed).
pub fn map_pairs(map_type: u32) -> Option<Vec<(String, Vec<u8>)>> {
    // SAFETY: out-pointers to live locals (in `fetch`).
    let bytes = fetch(|data, size| unsafe { proxy_get_header_map_pairs(map_type, data, size) });
    deserialize_map(&bytes.ok()??)
}

/// The first value of a header; `None` if absent or unreadable.
pub fn map_value(map_type: u32, name: &str) -> Option<Vec<u8>> {
    let (key, len) = (name.as_ptr(), name.len());
    // SAFETY: a live string and out-pointers to live locals (in `fetch`).
    fetch(|data, size| unsafe { proxy_get_header_map_value(map_type, key, len, data, size) })
        .ok()
        .flatten()
}

/// Sets a header (replacing every value), or removes it with `None`; `false` if refused.
pub fn set_map_value(map_type: u32, name: &str, value: Option<&str>) -> bool {
    let (key, len) = (name.as_ptr(), name.len());
    // SAFETY: pointers and lengths of live strings.
    let status = unsafe {
        match value {
            Some(v) => proxy_replace_header_map_value(map_type, key, len, v.as_ptr(), v.len()),
            None => proxy_remove_header_map_value(map_type, key, len),
        }
    };
    status == OK
}

/// A property (`["source", "address"]`); `None` if absent or unreadable.
pub fn get_property(path: &[&str]) -> Option<Vec<u8>> {
    let path = property_path(path);
    // SAFETY: a live path and out-pointers to live locals (in `fetch`).
    fetch(|data, size| unsafe { proxy_get_property(path.as_ptr(), path.len(), data, size) })
        .ok()
        .flatten()
}

/// Sets a property (a stream's lands in Envoy's filter state as `wasm.<path>`); `false` if
/// refused.
pub fn set_property(path: &[&str], value: &[u8]) -> bool {
    let path = property_path(path);
    // SAFETY: pointers and lengths of live buffers.
    unsafe { proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len()) == OK }
}

/// A shared-data value and its CAS (0: none); `Ok((None, 0))` when absent.
pub fn get_shared_data(key: &str) -> Result<(Option<Vec<u8>>, u32), Status> {
    let mut cas: u32 = 0;
    let (k, len) = (key.as_ptr(), key.len());
    let cas_out: *mut u32 = &mut cas;
    // SAFETY: a live key and out-pointers to live locals.
    let value = fetch(|data, size| unsafe { proxy_get_shared_data(k, len, data, size, cas_out) })?;
    Ok((value, cas))
}

/// Sets a shared-data value if its CAS still matches (`cas` 0: unconditionally).
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Status {
    // SAFETY: pointers and lengths of live buffers.
    unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) }
}

/// Lets the paused request go on; `false` if refused.
pub fn resume_request() -> bool {
    // SAFETY: plain integer argument.
    unsafe { proxy_continue_stream(STREAM_HTTP_REQUEST) == OK }
}

/// Lets the held response go on; `false` if refused.
pub fn resume_response() -> bool {
    // SAFETY: plain integer argument.
    unsafe { proxy_continue_stream(STREAM_HTTP_RESPONSE) == OK }
}

/// Answers locally with `status`, `headers` and `body`; `false` if refused or unencodable.
pub fn send_local_response(status: u32, headers: &[(&str, &str)], body: &[u8]) -> bool {
    let pairs: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    let Some(headers) = serialize_map(&pairs) else {
        return false;
    };
    // SAFETY: pointers and lengths of live buffers; no details string, no gRPC status (-1).
    let sent = unsafe {
        proxy_send_local_response(
            status,
            std::ptr::null(),
            0,
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    };
    sent == OK
}

/// Defines a metric (`MetricType`: 0 counter, 1 gauge, 2 histogram); its id.
pub fn define_metric(kind: u32, name: &str) -> Option<u32> {
    let mut id: u32 = 0;
    // SAFETY: a live string and a pointer to a live u32.
    let status = unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) };
    (status == OK).then_some(id)
}

/// Adds `delta` to a counter or gauge.
pub fn increment_metric(id: u32, delta: i64) -> Status {
    // SAFETY: plain integer arguments.
    unsafe { proxy_increment_metric(id, delta) }
}

/// Records `value` into a histogram (or sets a gauge).
pub fn record_metric(id: u32, value: u64) -> Status {
    // SAFETY: plain integer arguments.
    unsafe { proxy_record_metric(id, value) }
}

/// Resets the HTTP stream of the current context (from one of its own callbacks); `false` if
/// the host refused.
pub fn reset_stream() -> bool {
    // SAFETY: plain integer argument.
    unsafe { proxy_close_stream(STREAM_HTTP_REQUEST) == OK }
}

/// Resets the HTTP stream of another context from the root context, then makes `root_id`
/// effective again so later calls (callouts) stay the root's. `false` if the host refused
/// (the stream may already be gone).
pub fn close_stream(context_id: u32, root_id: u32) -> bool {
    // SAFETY: plain host calls with integer arguments; no memory is shared.
    let closed = unsafe {
        proxy_set_effective_context(context_id) == OK
            && proxy_close_stream(STREAM_HTTP_REQUEST) == OK
    };
    // SAFETY: as above.
    unsafe {
        proxy_set_effective_context(root_id);
    }
    closed
}
