//! `golden`: the PoCForge golden model on the command line.
//!
//! Exit codes: 0 everything matched (or the command succeeded), 1 a comparison found
//! mismatches, 2 bad usage, bad input or corrupt files (the message says which).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with code 2 (and 0 for --help/--version).
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(cli::Outcome::Success) => ExitCode::SUCCESS,
        Ok(cli::Outcome::Mismatch) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
