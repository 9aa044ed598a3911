//! The ptk proxy-wasm HTTP filter: a thin shim that moves data between Envoy and the pure
//! decisions in `ptk-filter-core`. Host calls live in `host.rs` only.

mod context;
mod host;

// The VM entry point (`_start`), kept in a private module: exported to Envoy, not a Rust API.
mod entry {
    use proxy_wasm::types::LogLevel;

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Info);
        proxy_wasm::set_root_context(|context_id| Box::new(crate::context::PtkRoot::new(context_id)));
    }}
}
