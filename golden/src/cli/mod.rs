//! Subcommands of the `golden` command-line tool, one module each.

pub mod poc;
