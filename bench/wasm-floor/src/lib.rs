//! A trivial header-swap filter, for `make bench`'s "wasm floor" scenario: what running any
//! proxy-wasm filter in Envoy's V8 costs per request, before the ptk filter does any work.
//! It reads `authorization` and, if present, replaces it with a fixed value.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MapType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| Box::new(Root));
}}

struct Root;
impl Context for Root {}
impl RootContext for Root {
    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Swap))
    }
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

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
