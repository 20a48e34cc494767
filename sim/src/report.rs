//! What a `sim` run reports: one structure, written as JSON (`--report FILE.json`, fields in
//! `docs/sim.md`) and as a short text summary.

use std::fmt::{self, Write as _};

use serde::Serialize;

/// Everything a run found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SimReport {
    /// The design, the memory and the build.
    pub config: ConfigReport,
    /// Every result of the run equals the golden model's, bit for bit (false if anything did
    /// not run because of a device error).
    pub bit_exact: bool,
    /// Conformance suites.
    pub suites: Vec<SuiteReport>,
    /// GEMMs by shape: the benchmark GEMMs and the PoC's products.
    pub gemm: Vec<GemmReport>,
    /// The PoC batch, when one ran.
    pub poc: Option<PocReport>,
    /// Faults injected and how often each changed the state.
    pub faults: Vec<FaultReport>,
    /// Simulated clock cycles in all.
    pub sim_cycles: u64,
    /// Wall-clock seconds spent simulating (excluding the build and the golden model).
    pub sim_seconds: f64,
    /// Simulated cycles per wall-clock second.
    pub sim_cycles_per_second: f64,
    /// Wall-clock seconds of the whole run.
    pub total_seconds: f64,
    /// The command line that repeats this run.
    pub reproduce: String,
}

/// The configuration part of the report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ConfigReport {
    /// Array rows.
    pub rows: usize,
    /// Array columns.
    pub cols: usize,
    /// Precisions built in.
    pub precisions: Vec<String>,
    /// Operand buffer depth (k steps).
    pub kdepth: usize,
    /// Command queue slots.
    pub queue_depth: usize,
    /// Longest read burst in beats.
    pub max_burst: u16,
    /// Memory bus bytes per beat.
    pub data_bytes: u32,
    /// The memory model behind the DMA port.
    pub memory: MemoryReport,
    /// Seed of the generated suites.
    pub seed: u64,
    /// Clocks at which throughput is stated.
    pub clocks: Vec<ClockReport>,
    /// The Verilator build.
    pub build: BuildInfo,
}

/// The memory model's knobs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MemoryReport {
    /// Cycles from a read request to its first data beat.
    pub read_latency: u32,
    /// Cycles from the last write beat to the response.
    pub write_latency: u32,
    /// `unlimited` or `B bytes per C cycles`.
    pub bandwidth: String,
    /// Outstanding read bursts accepted.
    pub max_outstanding_reads: u32,
}

/// A clock for converting cycles into time.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ClockReport {
    /// What it is (`design target`, `ECP5 post-P&R Fmax of one PE`).
    pub label: String,
    /// Frequency in MHz.
    pub mhz: f64,
}

/// How the simulation library was obtained.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BuildInfo {
    /// Found in the cache.
    pub cache_hit: bool,
    /// Seconds to emit the Verilog.
    pub emit_seconds: f64,
    /// Seconds to build (or find) the library.
    pub build_seconds: f64,
    /// Cache key.
    pub key: String,
    /// Build folder.
    pub dir: String,
    /// Verilator used.
    pub verilator: String,
    /// Compiled with VCD tracing.
    pub trace: bool,
}

/// One conformance suite.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SuiteReport {
    /// Suite name (`mac-bf16`).
    pub name: String,
    /// Level (0 MAC chains, 1 GEMMs, 2 layers, 3 PoC forwards).
    pub level: u8,
    /// Cases generated (the suite's size).
    pub cases: u64,
    /// Cases selected by the sample.
    pub selected: u64,
    /// Sampled cases left out because their work estimate exceeded the cap.
    pub over_budget: u64,
    /// Cases whose output equals the expected bits.
    pub passed: u64,
    /// Cases whose output differs.
    pub failed: u64,
    /// Selected cases without a result (a device error stopped them).
    pub not_run: u64,
    /// Simulated cycles spent on the suite.
    pub cycles: u64,
    /// Busy cycles the accelerator counted.
    pub busy_cycles: u64,
    /// MACs the accelerator counted.
    pub macs: u64,
    /// MACs / (busy cycles × PEs).
    pub utilization: f64,
    /// A device error, if one interrupted the suite.
    pub error: Option<String>,
    /// The first failing cases.
    pub failures: Vec<FailureReport>,
}

impl SuiteReport {
    /// Whether everything selected ran and matched.
    pub fn ok(&self) -> bool {
        self.failed == 0 && self.not_run == 0 && self.error.is_none()
    }
}

/// One failing case.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FailureReport {
    /// Case index in its suite.
    pub case: u64,
    /// Its category.
    pub category: String,
    /// One line: `bf16 13×17×19 accumulate → f32`.
    pub description: String,
    /// What differs (`3 of 221 elements differ; D[0][4]: expected 0x…, actual 0x…`).
    pub detail: String,
}

/// GEMMs of one shape.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GemmReport {
    /// Where they come from: `bench`, `poc-weight` (a projection) or `poc-batch` (attention).
    pub source: String,
    /// Operand precision.
    pub precision: String,
    /// Rows.
    pub m: usize,
    /// Columns.
    pub n: usize,
    /// Accumulation length.
    pub k: usize,
    /// How many ran.
    pub count: u64,
    /// Busy cycles the accelerator counted for them.
    pub cycles: u64,
    /// MACs counted.
    pub macs: u64,
    /// MACs / (cycles × PEs).
    pub utilization: f64,
    /// Whether every output equals the golden model's (bench GEMMs; PoC products are judged by
    /// their artifacts).
    pub bit_exact: Option<bool>,
}

/// The PoC batch.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PocReport {
    /// The model (`synthetic:tiny`).
    pub model: String,
    /// Block hash of the round.
    pub block_hash: String,
    /// Public key of the round.
    pub public_key: String,
    /// Sequence length.
    pub seq_len: usize,
    /// Nonces computed.
    pub nonces: Vec<u64>,
    /// Artifacts the accelerator produced.
    pub artifacts: u64,
    /// Every artifact equals the CPU golden model's, byte for byte.
    pub artifacts_equal_golden: bool,
    /// Nonces whose artifacts differ (or are missing on one side).
    pub mismatched_nonces: Vec<u64>,
    /// Simulated cycles for the batch's products (weights were uploaded before).
    pub cycles: u64,
    /// Busy cycles the accelerator counted.
    pub busy_cycles: u64,
    /// `cycles / nonces`.
    pub cycles_per_artifact: f64,
    /// Artifacts per simulated second at each clock of the configuration, counting device
    /// cycles only (the host's part of the forward runs beside the device).
    pub artifacts_per_second: Vec<RateReport>,
    /// MACs / (busy cycles × PEs) over the batch.
    pub utilization: f64,
    /// Error that stopped the batch, if any.
    pub error: Option<String>,
}

/// A rate at a clock.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RateReport {
    /// The clock in MHz.
    pub mhz: f64,
    /// The rate.
    pub value: f64,
}

/// One injected fault.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FaultReport {
    /// The spec as given.
    pub spec: String,
    /// The signal it resolved to.
    pub signal: String,
    /// Cycles on which it changed the state.
    pub hits: u64,
}

fn percent(x: f64) -> String {
    format!("{:.1} %", 100.0 * x)
}

fn si(x: f64) -> String {
    match x {
        x if x >= 1e9 => format!("{:.2} G", x / 1e9),
        x if x >= 1e6 => format!("{:.2} M", x / 1e6),
        x if x >= 1e3 => format!("{:.1} k", x / 1e3),
        x => format!("{x:.1} "),
    }
}

impl fmt::Display for SimReport {
    /// The short text report printed at the end of a run.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        writeln!(
            f,
            "design   {}×{} array, {}, k depth {}, queue {}, bursts of {}; memory latency {}/{} \
             cycles, bandwidth {}",
            c.rows,
            c.cols,
            c.precisions.join("+"),
            c.kdepth,
            c.queue_depth,
            c.max_burst,
            c.memory.read_latency,
            c.memory.write_latency,
            c.memory.bandwidth
        )?;
        writeln!(
            f,
            "build    {} in {:.1} s (emit {:.1} s){}",
            if c.build.cache_hit {
                "cache hit"
            } else {
                "built"
            },
            c.build.build_seconds,
            c.build.emit_seconds,
            if c.build.trace { ", with tracing" } else { "" }
        )?;
        for fault in &self.faults {
            writeln!(
                f,
                "fault    {} → {} (changed the state on {} cycles)",
                fault.spec, fault.signal, fault.hits
            )?;
        }
        if !self.suites.is_empty() {
            writeln!(f)?;
            writeln!(
                f,
                "{:<12} {:>6} {:>7} {:>7} {:>8} {:>10} {:>7}",
                "suite", "result", "passed", "failed", "of cases", "cycles", "util."
            )?;
            for s in &self.suites {
                let mut of = format!("{}", s.cases);
                if s.over_budget > 0 {
                    of.push('*');
                }
                writeln!(
                    f,
                    "{:<12} {:>6} {:>7} {:>7} {:>8} {:>10} {:>7}",
                    s.name,
                    if s.ok() { "pass" } else { "FAIL" },
                    s.passed,
                    s.failed,
                    of,
                    si(s.cycles as f64),
                    percent(s.utilization)
                )?;
            }
            let skipped: u64 = self.suites.iter().map(|s| s.over_budget).sum();
            if skipped > 0 {
                writeln!(
                    f,
                    "* {skipped} sampled case(s) above --max-case-work left out (long MAC chains)"
                )?;
            }
            for s in self.suites.iter().filter(|s| !s.ok()) {
                if let Some(error) = &s.error {
                    writeln!(f, "  {}: device error: {error}", s.name)?;
                }
                for failure in &s.failures {
                    writeln!(
                        f,
                        "  {} case {} [{}]: {}: {}",
                        s.name, failure.case, failure.category, failure.description, failure.detail
                    )?;
                }
            }
        }
        if !self.gemm.is_empty() {
            writeln!(f)?;
            writeln!(
                f,
                "{:<11} {:<5} {:>15} {:>6} {:>10} {:>7}",
                "gemm", "prec", "M×N×K", "count", "cycles", "util."
            )?;
            for g in &self.gemm {
                let mut shape = String::new();
                let _ = write!(shape, "{}×{}×{}", g.m, g.n, g.k);
                writeln!(
                    f,
                    "{:<11} {:<5} {:>15} {:>6} {:>10} {:>7}{}",
                    g.source,
                    g.precision,
                    shape,
                    g.count,
                    si(g.cycles as f64),
                    percent(g.utilization),
                    match g.bit_exact {
                        Some(false) => "  MISMATCH",
                        _ => "",
                    }
                )?;
            }
        }
        if let Some(p) = &self.poc {
            writeln!(f)?;
            writeln!(
                f,
                "poc      {} nonces of {} (S = {}): {} artifacts, {}",
                p.nonces.len(),
                p.model,
                p.seq_len,
                p.artifacts,
                if p.artifacts_equal_golden {
                    "all equal to the CPU golden model".to_owned()
                } else {
                    format!("MISMATCH on nonces {:?}", p.mismatched_nonces)
                }
            )?;
            if let Some(error) = &p.error {
                writeln!(f, "         device error: {error}")?;
            }
            let rates: Vec<String> = p
                .artifacts_per_second
                .iter()
                .map(|r| format!("{:.1}/s at {} MHz", r.value, r.mhz))
                .collect();
            writeln!(
                f,
                "         {} cycles per artifact, utilization {}; {}",
                si(p.cycles_per_artifact),
                percent(p.utilization),
                rates.join(", ")
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "speed    {} cycles in {:.1} s: {} cycles/s simulated",
            si(self.sim_cycles as f64),
            self.sim_seconds,
            si(self.sim_cycles_per_second)
        )?;
        writeln!(
            f,
            "result   {}",
            if self.bit_exact {
                "BIT-EXACT: every result equals the golden model"
            } else {
                "NOT BIT-EXACT: see the failures above"
            }
        )?;
        write!(f, "repeat   {}", self.reproduce)
    }
}
