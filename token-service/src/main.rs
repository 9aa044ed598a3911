//! `token-service`: `serve` the check API, or manage tokens with `tokens ...`.

use std::process::ExitCode;

use clap::Parser as _;
use token_service::cli::{run, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = token_service::providers::register_from_env() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`tokens list | head`): what it wanted was printed.
        Err(e) if closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `e` comes from writing to a pipe whose reader is gone.
fn closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
