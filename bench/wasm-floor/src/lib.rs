//! Bench-only filter for `make bench`, one module in three modes picked by the plugin
//! configuration string:
//!
//! - `swap` (or empty): the "wasm floor": read `authorization` and, if present, replace it
//!   with a fixed value. What any header-swapping proxy-wasm filter costs per request.
//! - `empty`: implement nothing (Envoy still creates a context and enters the VM for the
//!   request and response headers): the cost of a wasm filter that makes no host call.
//! - `probe`: on each request, time the host calls the ptk filter makes, and the ptk filter's
//!   own Rust work, in loops inside the VM; log one `ptk-probe <name> <ns>` line per item.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType};

mod probe;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| Box::new(Root { mode: Mode::Swap }));
}}

#[derive(Clone, Copy)]
enum Mode {
    Swap,
    Empty,
    Probe,
}

struct Root {
    mode: Mode,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        self.mode = match config.as_slice() {
            b"" | b"swap" => Mode::Swap,
            b"empty" => Mode::Empty,
            b"probe" => Mode::Probe,
            _ => return false,
        };
        true
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(match self.mode {
            Mode::Swap => Box::new(Swap),
            Mode::Empty => Box::new(Empty),
            Mode::Probe => Box::new(probe::Probe),
        })
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Empty;
impl Context for Empty {}
impl HttpContext for Empty {}

struct Swap;
impl Context for Swap {}
impl HttpContext for Swap {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let present = matches!(
            hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, "authorization"),
            Ok(Some(_))
        );
        if present {
            let _ = hostcalls::set_map_value(
                MapType::HttpRequestHeaders,
                "authorization",
                Some("Bearer sk-bench-floor"),
            );
        }
        Action::Continue
    }
}
