//! The ptk proxy-wasm HTTP filter: a thin shim that moves data between Envoy and the pure
//! decisions in `ptk-filter-core`. Host calls live in `abi.rs` (declared with their status
//! codes, never a panic) and `host.rs` (the flow's host traits over them).

mod abi;
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
