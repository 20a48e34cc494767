//! `golden vectors …`: generate, run, check and list conformance suites.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Subcommand;
use golden::vectors::{
    engine, generate, resolve, CheckOptions, Results, Suite, GENERATOR_VERSION, SUITES,
};

use super::{bytes, seconds, Outcome};

/// Arguments of `golden vectors`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a suite into a directory (seeded and reproducible: the same suite, seed, count
    /// and generator version give byte-identical files).
    Generate {
        /// Suite name (`mac-bf16`, `gemm-int8`, … see `golden vectors list`), or a precision
        /// (`int8`, `bf16`, `fp16`) together with --level.
        #[arg(long)]
        suite: String,
        /// Level: 0 MAC chains, 1 GEMMs. Optional with a full suite name (then it must match).
        #[arg(long)]
        level: Option<u8>,
        /// Generator seed.
        #[arg(long)]
        seed: u64,
        /// Directory to write the suite into (created; must be empty unless --force).
        #[arg(long)]
        out: PathBuf,
        /// Number of cases (default: the suite's default, see `golden vectors list`). The
        /// directed corner cases come first, random ones after.
        #[arg(long)]
        count: Option<u64>,
        /// Replace a suite already in --out.
        #[arg(long)]
        force: bool,
    },
    /// Run the golden model on a suite and write its results file: a known-good device, and a
    /// way to re-derive every expected value of a suite someone else generated.
    Run {
        /// Suite directory.
        dir: PathBuf,
        /// Results file to write (safetensors).
        #[arg(long)]
        out: PathBuf,
        /// Producer string recorded in the results file.
        #[arg(long, default_value_t = default_producer())]
        producer: String,
    },
    /// Verify a suite's files, then compare a device's results with it bit for bit.
    /// Exit code 0: all cases match; 1: mismatches (or missing cases); 2: bad or corrupt input.
    Check {
        /// Suite directory.
        dir: PathBuf,
        /// The device's results file.
        #[arg(long)]
        results: PathBuf,
        /// Print the report as JSON (fields in docs/vectors.md).
        #[arg(long)]
        json: bool,
        /// Accept results for a subset of the cases (missing ones are still listed).
        #[arg(long)]
        allow_missing: bool,
        /// How many failing cases to describe.
        #[arg(long, default_value_t = 10)]
        show: usize,
    },
    /// Verify a suite's files (sizes, SHA-256, structure) without any results.
    Verify {
        /// Suite directory.
        dir: PathBuf,
    },
    /// List the suites the generator can build.
    List {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn default_producer() -> String {
    format!("golden {} (CPU reference)", env!("CARGO_PKG_VERSION"))
}

/// Runs `golden vectors …`.
pub fn run(args: Args) -> anyhow::Result<Outcome> {
    match args.command {
        Command::Generate {
            suite,
            level,
            seed,
            out,
            count,
            force,
        } => {
            let def = resolve(&suite, level)?;
            let count = count.unwrap_or(def.default_count);
            let started = Instant::now();
            let files = generate(def, seed, count)?;
            let generated = started.elapsed().as_secs_f64();
            let directed = files.directed_available;
            if count < directed {
                eprintln!(
                    "warning: --count {count} keeps only the first {count} of the {directed} \
                     directed cases of {}; use --count {directed} or more to include all of them",
                    def.name
                );
            }
            files.write_to(&out, force)?;
            let total = started.elapsed().as_secs_f64();
            let m = &files.manifest;
            say!(
                "generated {} (level {}, {}): {} cases ({} directed + {} random), seed {}, generator v{}",
                m.suite,
                m.level,
                m.precision.as_deref().unwrap_or("mixed"),
                m.case_count,
                m.directed_cases,
                m.case_count - m.directed_cases,
                m.seed,
                GENERATOR_VERSION
            );
            say!(
                "  {} data file{}, {} in {} (generated in {}, written in {})",
                m.files.len(),
                if m.files.len() == 1 { "" } else { "s" },
                bytes(files.total_bytes()),
                out.display(),
                seconds(generated),
                seconds(total - generated)
            );
            say!(
                "  manifest sha256 {}",
                golden::vectors::manifest::sha256_hex(&m.to_bytes())
            );
            Ok(Outcome::Success)
        }
        Command::Run { dir, out, producer } => {
            let suite = Suite::open(&dir)?;
            let started = Instant::now();
            let results = engine::run_suite(&suite, &producer);
            let elapsed = started.elapsed().as_secs_f64();
            results.write(&out)?;
            say!(
                "ran {} cases of {} on the golden model in {}; results in {}",
                results.len(),
                suite.manifest().suite,
                seconds(elapsed),
                out.display()
            );
            Ok(Outcome::Success)
        }
        Command::Check {
            dir,
            results,
            json,
            allow_missing,
            show,
        } => {
            let suite = Suite::open(&dir)?;
            let results = Results::open(&results)?;
            let options = CheckOptions {
                allow_missing,
                max_reported: show,
            };
            let report = suite.check(&results, &options)?;
            if json {
                say!(
                    "{}",
                    serde_json::to_string_pretty(&report).context("serialising the report")?
                );
            } else {
                say!("{}", report.to_string().trim_end());
            }
            Ok(if report.passed() {
                Outcome::Success
            } else {
                Outcome::Mismatch
            })
        }
        Command::Verify { dir } => {
            let suite = Suite::open(&dir)?;
            let m = suite.manifest();
            say!(
                "{}: suite {} is intact: {} cases in {} data file{}, every size and SHA-256 as \
                 in the manifest (manifest sha256 {})",
                dir.display(),
                m.suite,
                m.case_count,
                m.files.len(),
                if m.files.len() == 1 { "" } else { "s" },
                suite.manifest_sha256()
            );
            Ok(Outcome::Success)
        }
        Command::List { json } => {
            let rows: Vec<serde_json::Value> = SUITES
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "name": s.name,
                        "level": s.level,
                        "kind": s.kind,
                        "precision": s.precision.map(|p| p.name()),
                        "default_count": s.default_count,
                        "directed_cases": generate::directed_count(s, 1),
                        "summary": s.summary,
                    })
                })
                .collect();
            if json {
                say!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                say!(
                    "{:<10} {:>5}  {:<9} {:>8} {:>9}  description",
                    "suite",
                    "level",
                    "precision",
                    "default",
                    "directed"
                );
                for (s, row) in SUITES.iter().zip(&rows) {
                    say!(
                        "{:<10} {:>5}  {:<9} {:>8} {:>9}  {}",
                        s.name,
                        s.level,
                        s.precision.map_or("-", |p| p.name()),
                        s.default_count,
                        row["directed_cases"].as_u64().unwrap_or(0),
                        s.summary
                    );
                }
                say!(
                    "\ndirected: the hand-designed cases each suite opens with (the rest of \
                     --count is random); generator v{GENERATOR_VERSION}"
                );
            }
            Ok(Outcome::Success)
        }
    }
}
