//! GEMM throughput: the golden fast GEMM (bf16, fp16, int8; every kernel family this CPU has)
//! against the f32 GEMM of BLAS-class crates, at the same thread count, in one process.
//!
//! `cargo bench -p bench --bench gemm` runs the criterion benchmarks (throughput is reported in
//! elements/s where one element is one floating-point operation, so `Gelem/s` = GFLOP/s), then
//! a *paired* summary at M = N = K = 1024: every contender runs once per round, in rotation,
//! and keeps its best round, so that load from elsewhere on a shared machine hits all alike.
//! The summary prints GFLOP/s and the ratios that docs/benchmarks.md reports.
//!
//! Single-threaded contenders are timed by the calling thread's CPU time (criterion and the
//! summary alike): on a machine shared with other work, wall-clock time mostly measures how
//! long the thread waited for a core. Multi-threaded contenders are timed by wall-clock time.
//!
//! Environment: `GEMM_BENCH=summary` skips criterion and prints only the paired summary;
//! `GEMM_BENCH=criterion` skips the summary. Under `cargo test --benches` (no `--bench`
//! argument) criterion runs each benchmark once and the summary is skipped.

use std::hint::black_box;
use std::time::Duration;

use bench::{bf16_values, fp16_values, gemm_flops, i8_values, paired_best, thread_cpu_time, Best};
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkId, Criterion, Throughput};
use golden::gemm::fast::{
    available, gemm_packed, Isa, MatMut, MatRef, Operand, Options, Output, PackedB, Prior,
};
use golden::numerics::float::bf16_to_f32;

/// One problem size with inputs in every precision (the same values as far as formats allow).
struct Problem {
    m: usize,
    n: usize,
    k: usize,
    a_bf16: Vec<u16>,
    a_fp16: Vec<u16>,
    a_i8: Vec<i8>,
    a_f32: Vec<f32>,
    b_f32: Vec<f32>,
    packed_bf16: PackedB,
    packed_fp16: PackedB,
    packed_i8: PackedB,
}

impl Problem {
    fn new(m: usize, n: usize, k: usize) -> Self {
        let a_bf16 = bf16_values(m * k, 1);
        let b_bf16 = bf16_values(k * n, 2);
        let a_fp16 = fp16_values(m * k, 3);
        let b_fp16 = fp16_values(k * n, 4);
        let a_i8 = i8_values(m * k, 5);
        let b_i8 = i8_values(k * n, 6);
        let pack = |b| PackedB::new(b).expect("valid benchmark shapes");
        Problem {
            m,
            n,
            k,
            a_f32: a_bf16.iter().map(|&x| bf16_to_f32(x)).collect(),
            b_f32: b_bf16.iter().map(|&x| bf16_to_f32(x)).collect(),
            packed_bf16: pack(Operand::Bf16(MatRef::dense(&b_bf16, k, n).unwrap())),
            packed_fp16: pack(Operand::Fp16(MatRef::dense(&b_fp16, k, n).unwrap())),
            packed_i8: pack(Operand::Int8(MatRef::dense(&b_i8, k, n).unwrap())),
            a_bf16,
            a_fp16,
            a_i8,
        }
    }

    fn flops(&self) -> f64 {
        gemm_flops(self.m, self.n, self.k)
    }

    fn label(&self) -> String {
        format!("{}x{}x{}", self.m, self.n, self.k)
    }

    /// f32 GEMM of the `gemm` crate (row-major, no accumulation), `threads` rayon threads.
    fn gemm_crate_f32(&self, threads: usize, out: &mut [f32]) {
        let (m, n, k) = (self.m, self.n, self.k);
        assert!(out.len() == m * n && self.a_f32.len() == m * k && self.b_f32.len() == k * n);
        let parallelism = if threads == 1 {
            gemm::Parallelism::None
        } else {
            gemm::Parallelism::Rayon(threads)
        };
        // SAFETY: the three buffers are dense row-major m×n, m×k and k×n (asserted above), so
        // every (row stride, column stride) = (columns, 1) address is in bounds; `out` is
        // exclusively borrowed and does not alias the inputs.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                out.as_mut_ptr(),
                1,
                n as isize,
                false,
                self.a_f32.as_ptr(),
                1,
                k as isize,
                self.b_f32.as_ptr(),
                1,
                n as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
    }

    /// f32 GEMM of the `matrixmultiply` crate (single-threaded: its thread count is fixed per
    /// process by an environment variable).
    fn matrixmultiply_f32(&self, out: &mut [f32]) {
        let (m, n, k) = (self.m, self.n, self.k);
        assert!(out.len() == m * n && self.a_f32.len() == m * k && self.b_f32.len() == k * n);
        // SAFETY: as in `gemm_crate_f32`: dense row-major buffers of the stated shapes.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                self.a_f32.as_ptr(),
                k as isize,
                1,
                self.b_f32.as_ptr(),
                n as isize,
                1,
                0.0,
                out.as_mut_ptr(),
                n as isize,
                1,
            );
        }
    }

    fn golden_float(&self, fp16: bool, isa: Isa, threads: usize, out: &mut [f32]) {
        let (m, n, k) = (self.m, self.n, self.k);
        let (a, packed) = if fp16 {
            let a = MatRef::dense(&self.a_fp16, m, k).unwrap();
            (Operand::Fp16(a), &self.packed_fp16)
        } else {
            let a = MatRef::dense(&self.a_bf16, m, k).unwrap();
            (Operand::Bf16(a), &self.packed_bf16)
        };
        let out = Output::F32(MatMut::dense(out, m, n).unwrap());
        gemm_packed(a, packed, Prior::Zero, out, Options { isa, threads }).unwrap();
    }

    fn golden_int8(&self, isa: Isa, threads: usize, out: &mut [i32]) {
        let (m, n, k) = (self.m, self.n, self.k);
        let a = Operand::Int8(MatRef::dense(&self.a_i8, m, k).unwrap());
        let out = Output::I32(MatMut::dense(out, m, n).unwrap());
        gemm_packed(
            a,
            &self.packed_i8,
            Prior::Zero,
            out,
            Options { isa, threads },
        )
        .unwrap();
    }
}

/// Criterion measurement of the calling thread's CPU time (see [`bench::thread_cpu_time`]),
/// for single-threaded contenders: it leaves out the time the thread waited for a core, which
/// on a shared machine is most of the noise. Falls back to wall-clock time where the platform
/// has no per-thread clock.
struct ThreadCpu;

impl ThreadCpu {
    fn now() -> Duration {
        thread_cpu_time().unwrap_or_else(|| {
            static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
            START.get_or_init(std::time::Instant::now).elapsed()
        })
    }
}

impl Measurement for ThreadCpu {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        Self::now()
    }
    fn end(&self, start: Duration) -> Duration {
        Self::now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuTimeFormatter
    }
}

/// Formats nanoseconds of CPU time, and throughputs per CPU second.
struct CpuTimeFormatter;

impl ValueFormatter for CpuTimeFormatter {
    fn scale_values(&self, typical_ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical_ns < 1e3 {
            (1.0, "ns cpu")
        } else if typical_ns < 1e6 {
            (1e-3, "µs cpu")
        } else if typical_ns < 1e9 {
            (1e-6, "ms cpu")
        } else {
            (1e-9, "s cpu")
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(
        &self,
        _typical_ns: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let (per_iteration, unit) = match *throughput {
            Throughput::Elements(e) | Throughput::ElementsAndBytes { elements: e, .. } => {
                (e as f64, "Gelem/s")
            }
            Throughput::Bytes(b) | Throughput::BytesDecimal(b) => (b as f64, "GB/s"),
            Throughput::Bits(b) => (b as f64, "Gb/s"),
        };
        values.iter_mut().for_each(|v| *v = per_iteration / *v); // per ns = G per s
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

/// Thread counts to compare: 1, and every core rayon's pool has (if more than one).
fn thread_counts() -> Vec<usize> {
    let all = rayon::current_num_threads();
    if all > 1 {
        vec![1, all]
    } else {
        vec![1]
    }
}

/// The criterion benchmarks of one thread count: single-threaded ones measure the thread's
/// CPU time, multi-threaded ones wall-clock time.
fn criterion_benches<M: Measurement>(c: &mut Criterion<M>, threads: usize) {
    for size in [256, 512, 1024] {
        let p = Problem::new(size, size, size);
        let mut out_f32 = vec![0f32; size * size];
        let mut out_i32 = vec![0i32; size * size];
        let mut group = c.benchmark_group(format!("gemm/{}/t{threads}", p.label()));
        group.throughput(Throughput::Elements(p.flops() as u64));
        if size >= 1024 {
            group.sample_size(10);
            group.warm_up_time(Duration::from_secs(1));
            group.measurement_time(Duration::from_secs(4));
        }
        group.bench_function("f32/gemm-crate", |bencher| {
            bencher.iter(|| p.gemm_crate_f32(threads, black_box(&mut out_f32)))
        });
        if threads == 1 {
            group.bench_function("f32/matrixmultiply", |bencher| {
                bencher.iter(|| p.matrixmultiply_f32(black_box(&mut out_f32)))
            });
        }
        for &isa in available() {
            // The portable kernels are a correctness fallback; time them on small sizes.
            if isa == Isa::Portable && size > 256 {
                continue;
            }
            for (name, fp16) in [("bf16", false), ("fp16", true)] {
                let id = BenchmarkId::new(format!("{name}/golden"), isa);
                group.bench_function(id, |bencher| {
                    bencher.iter(|| p.golden_float(fp16, isa, threads, black_box(&mut out_f32)))
                });
            }
            let id = BenchmarkId::new("int8/golden", isa);
            group.bench_function(id, |bencher| {
                bencher.iter(|| p.golden_int8(isa, threads, black_box(&mut out_i32)))
            });
        }
        group.finish();
    }
}

/// The paired summary at 1024³: GFLOP/s of every contender and the ratios behind the targets
/// (fast bf16/fp16 ≥ 70 % of the f32 baseline, int8 ≥ 2× bf16). Single-threaded rates use
/// the calling thread's CPU time (see [`bench::thread_cpu_time`]).
fn paired_summary() {
    let size = 1024;
    let p = Problem::new(size, size, size);
    let isa = golden::gemm::fast::best();
    let rounds = 21;
    println!(
        "\n## Paired summary, M = N = K = {size}, kernel family {isa}, best of {rounds} rounds"
    );
    for threads in thread_counts() {
        let mut out_f32 = vec![0f32; size * size];
        let mut out_i32 = vec![0i32; size * size];
        let out = std::cell::RefCell::new((&mut out_f32, &mut out_i32));
        let names = [
            "f32 gemm crate",
            "f32 matrixmultiply (1 thread)",
            "bf16 golden",
            "fp16 golden",
            "int8 golden",
        ];
        let times = paired_best(
            rounds,
            &mut [
                &mut || p.gemm_crate_f32(threads, out.borrow_mut().0),
                &mut || p.matrixmultiply_f32(out.borrow_mut().0),
                &mut || p.golden_float(false, isa, threads, out.borrow_mut().0),
                &mut || p.golden_float(true, isa, threads, out.borrow_mut().0),
                &mut || p.golden_int8(isa, threads, out.borrow_mut().1),
            ],
        );
        // One thread: the calling thread's CPU time, which leaves out the time it waited for a
        // core on a shared machine. More threads: wall-clock time (the only fair measure).
        let single = threads == 1;
        let seconds = |best: &Best, median: bool| {
            let (cpu, wall) = if median {
                (best.median_thread_cpu, best.median_wall)
            } else {
                (best.thread_cpu, best.wall)
            };
            if single && cpu != Duration::MAX {
                cpu.as_secs_f64()
            } else {
                wall.as_secs_f64()
            }
        };
        let rate = |median: bool| -> Vec<f64> {
            times
                .iter()
                .map(|t| p.flops() / seconds(t, median) / 1e9)
                .collect()
        };
        let (gflops, median_gflops) = (rate(false), rate(true));
        let clock = if single {
            "thread CPU time"
        } else {
            "wall time"
        };
        println!("\n### {threads} thread(s), GFLOP/s from {clock}\n");
        println!("| contender | best wall | best thread CPU | GFLOP/s (best) | GFLOP/s (median) |");
        println!("|---|---:|---:|---:|---:|");
        for (i, (name, time)) in names.iter().zip(&times).enumerate() {
            let cpu = if single || name.contains("1 thread") {
                format!("{:.2} ms", time.thread_cpu.as_secs_f64() * 1e3)
            } else {
                "–".to_owned()
            };
            let wall = time.wall.as_secs_f64() * 1e3;
            println!(
                "| {name} | {wall:.2} ms | {cpu} | {:.1} | {:.1} |",
                gflops[i], median_gflops[i]
            );
        }
        // matrixmultiply runs on one thread: it is a baseline only for the 1-thread rows.
        let ratios = |g: &[f64]| {
            let baseline = if single { g[0].max(g[1]) } else { g[0] };
            (g[2] / baseline, g[3] / baseline, g[4] / g[2])
        };
        let (best, median) = (ratios(&gflops), ratios(&median_gflops));
        println!();
        println!("| ratio | best | median |\n|---|---:|---:|");
        println!("| bf16 / f32 baseline | {:.2} | {:.2} |", best.0, median.0);
        println!("| fp16 / f32 baseline | {:.2} | {:.2} |", best.1, median.1);
        println!("| int8 / bf16 | {:.2} | {:.2} |", best.2, median.2);
        // Keep the outputs observable so nothing is optimised away.
        let (f, i) = &*out.borrow();
        black_box((f[0], i[0]));
    }
}

fn main() {
    let mode = std::env::var("GEMM_BENCH").unwrap_or_default();
    if mode != "summary" {
        for threads in thread_counts() {
            if threads == 1 {
                let mut c = Criterion::default()
                    .with_measurement(ThreadCpu)
                    .configure_from_args();
                criterion_benches(&mut c, threads);
                c.final_summary();
            } else {
                let mut c = Criterion::default()
                    .with_measurement(WallTime)
                    .configure_from_args();
                criterion_benches(&mut c, threads);
                c.final_summary();
            }
        }
    }
    // `cargo bench` passes `--bench`; without it (`cargo test --benches`) criterion only checks
    // that every benchmark runs once, and the summary's timing rounds are skipped too.
    let benchmarking = std::env::args().any(|arg| arg == "--bench");
    if mode != "criterion" && benchmarking {
        paired_summary();
    }
}
