//! `token-service`: `serve` the check API, or manage tokens with `tokens ...`.

use std::process::ExitCode;

use clap::Parser as _;
use token_service::cli::{run, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
