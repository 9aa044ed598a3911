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
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
