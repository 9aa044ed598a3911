//! `wasm-prune <module.wasm> --drop-file <names.txt>`: rewrites a core wasm module in place
//! without the listed exports; every other section is copied byte for byte.
//!
//! Why: Envoy enters the wasm VM for a proxy-wasm callback only if the module exports it, and
//! the Rust SDK exports every callback whether the filter implements it or not. Dropping the
//! ones the filter leaves at their defaults (request/response bodies and trailers, log, done,
//! TCP, gRPC) means Envoy never calls into V8 for body chunks of a streamed response.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod prune;

fn usage() -> ExitCode {
    eprintln!("usage: wasm-prune <module.wasm> --drop-file <names.txt>");
    ExitCode::from(2)
}

fn run(module: &Path, drop_file: &Path) -> Result<String, String> {
    let names =
        std::fs::read_to_string(drop_file).map_err(|e| format!("{}: {e}", drop_file.display()))?;
    let names = prune::parse_names(&names);
    let bytes = std::fs::read(module).map_err(|e| format!("{}: {e}", module.display()))?;
    let outcome = prune::prune(&bytes, &names).map_err(|e| format!("{}: {e}", module.display()))?;
    // Written beside the module and renamed over it, so a failed write never leaves half a file.
    let tmp = module.with_extension("wasm.pruning");
    std::fs::write(&tmp, &outcome.module).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, module).map_err(|e| format!("{}: {e}", module.display()))?;
    Ok(format!(
        "wasm-prune: {}: dropped {} export(s){}",
        module.display(),
        outcome.dropped.len(),
        if outcome.dropped.is_empty() {
            " (already pruned)".to_string()
        } else {
            format!(": {}", outcome.dropped.join(", "))
        }
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (module, drop_file) = match args.as_slice() {
        [module, flag, file] if flag == "--drop-file" => {
            (PathBuf::from(module), PathBuf::from(file))
        }
        _ => return usage(),
    };
    match run(&module, &drop_file) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wasm-prune: {e}");
            ExitCode::FAILURE
        }
    }
}
