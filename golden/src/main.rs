//! `golden`: the PoCForge golden model on the command line.

mod cli;

use clap::{Parser, Subcommand};

/// The PoCForge golden model: the bit-exact reference every device is checked against.
#[derive(Parser, Debug)]
#[command(name = "golden", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The network's Proof of Compute: compute, validate and export (see docs/poc.md).
    Poc(cli::poc::PocArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Poc(args) => cli::poc::run(args),
    }
}
