//! `sim`: the chip designer's front door. Builds (or reuses) the Verilated accelerator, runs
//! conformance suites, benchmark GEMMs and a PoC batch on it through the driver, compares every
//! result with the golden model bit for bit, and reports.
//!
//! ```text
//! cargo run --release -p sim                          # the default run (8×8, L0+L1, tiny PoC)
//! cargo run --release -p sim -- --array 4x4 --level 0 --no-poc
//! cargo run --release -p sim -- --fault pe:1,2:acc:bit30:stuck1    # must fail, exit 1
//! ```
//!
//! Exit codes: 0 everything bit-exact, 1 a result differs from the golden model (or a device
//! error stopped work), 2 bad usage or a failure before any result (the message says which).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
