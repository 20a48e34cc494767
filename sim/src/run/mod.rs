//! The work of the `sim` command: build the accelerator, run conformance suites, benchmark
//! GEMMs and a PoC batch on it through the driver's accelerator API, and compare every result
//! with the golden model bit for bit.
//!
//! Everything goes through `driver::Accelerator` over [`SimDevice`], exactly as it would over a
//! PCIe or serial transport: the simulation is a device, not a special case.

pub mod poc;
pub mod select;
pub mod suites;

use std::path::PathBuf;
use std::time::Instant;

use driver::accel::gemm::{GemmJob, GemmRunner};
use driver::{Accelerator, DriverError};
use golden::gemm::GemmSpec;
use golden::numerics::Precision;
use golden::vectors::{engine, generate::random_gemm_inputs, SuiteDef};
use indicatif::ProgressBar;

use crate::accel::{Design, DesignOptions};
use crate::device::SimDevice;
use crate::error::SimError;
use crate::memory::{Bandwidth, MemoryConfig};
use crate::report::{
    BuildInfo, ClockReport, ConfigReport, FaultReport, GemmReport, MemoryReport, SimReport,
};

/// One suite to run.
#[derive(Clone, Debug)]
pub struct SuiteRequest {
    /// Which suite.
    pub def: &'static SuiteDef,
    /// Cases to generate.
    pub count: u64,
    /// Cases to run (a spread sample, see [`select`]); `None` runs all.
    pub sample: Option<u64>,
}

/// The PoC batch to run.
#[derive(Clone, Debug)]
pub struct PocRequest {
    /// `synthetic:<preset>` or a checkpoint directory.
    pub model: String,
    /// The round's block hash.
    pub block_hash: String,
    /// The round's public key.
    pub public_key: String,
    /// The nonces, computed as one batch.
    pub nonces: Vec<u64>,
    /// Sequence length; `None` for the model's default.
    pub seq_len: Option<usize>,
}

/// Everything a run does.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The design to build (configuration, tracing, faults).
    pub design: DesignOptions,
    /// The memory behind the DMA port.
    pub memory: MemoryConfig,
    /// Write a VCD trace of the whole run here.
    pub trace: Option<PathBuf>,
    /// Conformance suites.
    pub suites: Vec<SuiteRequest>,
    /// Seed of the generated suites.
    pub seed: u64,
    /// Leave out sampled cases whose work estimate exceeds this ([`select::work_estimate`]).
    pub max_case_work: Option<u64>,
    /// GEMMs to benchmark (precision, M, N, K), with random inputs checked against the golden
    /// model.
    pub bench: Vec<(Precision, usize, usize, usize)>,
    /// The PoC batch.
    pub poc: Option<PocRequest>,
    /// Clocks to state throughput at.
    pub clocks: Vec<ClockReport>,
    /// Failing cases described per suite.
    pub show_failures: usize,
    /// The command line that repeats the run (for the report).
    pub reproduce: String,
}

/// The driver's view of the simulated accelerator.
pub type SimAccelerator = Accelerator<SimDevice>;

fn memory_report(m: &MemoryConfig) -> MemoryReport {
    MemoryReport {
        read_latency: m.read_latency,
        write_latency: m.write_latency,
        bandwidth: match m.bandwidth {
            Bandwidth::Unlimited => "unlimited".into(),
            Bandwidth::BytesPer { bytes, cycles } => format!("{bytes} bytes per {cycles} cycles"),
        },
        max_outstanding_reads: m.max_outstanding_reads,
    }
}

/// Total units of work, for the progress bar: cases, bench GEMMs, nonces.
fn work_units(options: &RunOptions, selected: u64) -> u64 {
    selected
        + options.bench.len() as u64
        + options.poc.as_ref().map_or(0, |p| p.nonces.len() as u64)
}

/// Builds the design, runs everything, and returns the report. `progress` is advanced per case,
/// GEMM and nonce (its length is set here). Fails only on errors that stop the run before any
/// result (a build that fails, a device that does not identify); device errors during the work
/// are recorded in the report.
pub fn run(options: &RunOptions, progress: &ProgressBar) -> Result<SimReport, SimError> {
    let started = Instant::now();
    progress.set_message("building the accelerator");
    let design = Design::build(&options.design)?;
    let device = design.device(options.memory.clone(), options.trace.clone())?;
    let mut accel = Accelerator::open(device).map_err(driver_error)?;
    let caps = accel.capabilities().clone();
    let mut report = SimReport {
        config: ConfigReport {
            rows: design.config.rows,
            cols: design.config.cols,
            precisions: caps
                .precisions
                .iter()
                .map(|p| p.name().to_owned())
                .collect(),
            kdepth: caps.kdepth as usize,
            queue_depth: caps.queue_depth as usize,
            max_burst: caps.max_burst as u16,
            data_bytes: caps.data_bytes,
            memory: memory_report(&options.memory),
            seed: options.seed,
            clocks: options.clocks.clone(),
            build: BuildInfo {
                cache_hit: design.build.cache_hit,
                emit_seconds: design.emit_time.as_secs_f64(),
                build_seconds: design.build.duration.as_secs_f64(),
                key: design.build.key.clone(),
                dir: design.build.dir.display().to_string(),
                verilator: design.build.verilator.clone(),
                trace: options.design.trace,
            },
        },
        reproduce: options.reproduce.clone(),
        ..SimReport::default()
    };

    // Generate the suites first (golden model, fast), so the progress bar knows the total.
    progress.set_message("generating suites");
    let prepared = suites::prepare(options, &caps)?;
    let selected: u64 = prepared
        .iter()
        .map(|p| p.selection.cases.len() as u64)
        .sum();
    progress.set_length(work_units(options, selected));
    progress.set_position(0);

    let mut sim_seconds = 0.0;
    let cycles_at_start = accel.transport().cycles();
    let mut runner = GemmRunner::new(4 << 20);
    for prepared in &prepared {
        progress.set_message(prepared.def.name);
        let t = Instant::now();
        let suite_report = suites::run(
            &mut accel,
            &mut runner,
            prepared,
            options.show_failures,
            progress,
        );
        sim_seconds += t.elapsed().as_secs_f64();
        report.suites.push(suite_report);
    }

    for &(precision, m, n, k) in &options.bench {
        progress.set_message(format!("gemm {m}×{n}×{k}"));
        let t = Instant::now();
        let g = bench_gemm(&mut accel, &mut runner, precision, m, n, k, options.seed);
        sim_seconds += t.elapsed().as_secs_f64();
        report.gemm.push(g);
        progress.inc(1);
    }
    let _ = runner.release(&mut accel);

    if let Some(request) = &options.poc {
        progress.set_message(format!("PoC {}", request.model));
        let (poc_report, shapes, seconds, accel_back) =
            poc::run(accel, request, &options.clocks, progress)?;
        accel = accel_back;
        sim_seconds += seconds;
        report.gemm.extend(shapes);
        report.poc = Some(poc_report);
    }

    report.faults = design
        .faults
        .iter()
        .zip(accel.transport().bench_ref().model_ref().fault_hits())
        .map(|(f, hits)| FaultReport {
            spec: f.label.clone(),
            signal: f.signal.clone()
                + &f.word.map(|w| format!("[{w}]")).unwrap_or_default()
                + &format!(" bit {}", f.bit),
            hits,
        })
        .collect();
    if options.trace.is_some() {
        accel.transport_mut().bench().model_mut().flush_trace();
    }
    report.sim_cycles = accel.transport().cycles() - cycles_at_start;
    report.sim_seconds = sim_seconds;
    report.sim_cycles_per_second = report.sim_cycles as f64 / sim_seconds.max(1e-9);
    report.total_seconds = started.elapsed().as_secs_f64();
    report.bit_exact = report.suites.iter().all(|s| s.ok())
        && report.gemm.iter().all(|g| g.bit_exact != Some(false))
        && report
            .poc
            .as_ref()
            .is_none_or(|p| p.artifacts_equal_golden && p.error.is_none());
    progress.finish_and_clear();
    Ok(report)
}

fn driver_error(e: DriverError) -> SimError {
    SimError::Config(format!("the simulated accelerator: {e}"))
}

/// One benchmark GEMM: random inputs, run alone (so the counters are its own), compared with
/// the golden model.
fn bench_gemm(
    accel: &mut SimAccelerator,
    runner: &mut GemmRunner,
    precision: Precision,
    m: usize,
    n: usize,
    k: usize,
    seed: u64,
) -> GemmReport {
    let spec = GemmSpec::new(precision, m, n, k);
    let (a, b, _) = random_gemm_inputs(&spec, seed ^ ((m * 1_000_003 + n * 1009 + k) as u64));
    let mut expected = vec![0u8; spec.d_bytes()];
    let golden_ok = engine::gemm(&spec, &a, &b, None, &mut expected).is_ok();
    let mut report = GemmReport {
        source: "bench".into(),
        precision: precision.name().into(),
        m,
        n,
        k,
        count: 1,
        ..GemmReport::default()
    };
    let pes = accel.capabilities().pes();
    let job = GemmJob {
        spec,
        a: &a,
        b: &b,
        c: None,
    };
    let mut out = vec![Vec::new()];
    let before = accel.perf();
    let result = runner.run(accel, &[job], &mut out);
    let after = accel.perf();
    match (result, before, after) {
        (Ok(_), Ok(before), Ok(after)) => {
            let delta = after.since(&before);
            report.cycles = delta.busy;
            report.macs = delta.macs;
            report.utilization = delta.utilization(pes);
            report.bit_exact = Some(golden_ok && out[0] == expected);
        }
        _ => {
            report.bit_exact = Some(false);
            let _ = accel.reset();
        }
    }
    report
}
