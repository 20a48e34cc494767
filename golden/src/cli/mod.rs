//! Command-line interface: one module per subcommand.
//!
//! Adding a subcommand (e.g. `poc`) means a new module with an `Args` struct and a `run`
//! function, one variant in [`Command`] and one arm in [`run`]; the others stay untouched.

/// Prints a line to standard output. A closed pipe (`golden vectors list | head`) quietly ends
/// the output instead of failing the command; other write errors are reported.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::emit(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

mod gemm;
mod poc;
mod vectors;

use std::io::Write;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Writes to standard output; see [`say!`].
fn emit(text: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    match std::io::stdout().lock().write_fmt(text) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to standard output")
        }
        _ => Ok(()),
    }
}

/// The PoCForge golden model: the bit-exact reference every device is measured against.
#[derive(Debug, Parser)]
#[command(
    name = "golden",
    version,
    about,
    long_about = "The PoCForge golden model: the bit-exact reference every device is measured \
                  against (docs/numerics.md), and the conformance-vector tools (docs/vectors.md).\n\n\
                  Exit codes: 0 success, 1 mismatches found, 2 bad usage, bad input or corrupt files."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Conformance vector suites: generate, run the golden model on, check device results, list.
    Vectors(vectors::Args),
    /// One GEMM on seeded random operands: time, GFLOP/s, SHA-256 of D, optional exact check.
    Gemm(gemm::Args),
    /// The network's Proof of Compute: compute artifacts, validate a batch, export a model
    /// (docs/poc.md).
    Poc(Box<poc::PocArgs>),
}

/// How a successful command ended.
pub enum Outcome {
    /// All good: exit code 0.
    Success,
    /// A comparison found differences: exit code 1.
    Mismatch,
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Vectors(args) => vectors::run(args),
        Command::Gemm(args) => gemm::run(args),
        Command::Poc(args) => poc::run(*args),
    }
}

/// Seconds as a short human string.
fn seconds(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.1} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

/// Bytes as a short human string.
fn bytes(n: u64) -> String {
    if n < 10_000 {
        format!("{n} B")
    } else if n < 1_000_000 {
        format!("{:.1} kB", n as f64 / 1e3)
    } else {
        format!("{:.1} MB", n as f64 / 1e6)
    }
}
