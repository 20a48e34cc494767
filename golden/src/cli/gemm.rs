//! `golden gemm`: one GEMM on seeded random operands, for quick experiments.

use std::time::Instant;

use anyhow::bail;
use golden::gemm::{reference, GemmSpec};
use golden::numerics::{OutputFormat, Precision, Requant};
use golden::vectors::generate::random_gemm_inputs;
use golden::vectors::manifest::sha256_hex;
use golden::vectors::{engine, Element};

use super::{seconds, Outcome};

/// Output formats accepted by `--output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    F32,
    Bf16,
    Fp16,
    I32,
    I8,
}

/// Arguments of `golden gemm`.
///
/// A and B (and C with --accumulate) are drawn from --seed: floating operands roughly normal
/// with σ = 1, int8 operands uniform; the same arguments always give the same D, whose SHA-256
/// is printed so that other implementations can compare.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Operand precision: int8, bf16 or fp16.
    #[arg(long, value_parser = parse_precision)]
    precision: Precision,
    /// Rows of A and D.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    m: u32,
    /// Columns of B and D.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    n: u32,
    /// Columns of A, rows of B (the accumulation length).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    k: u32,
    /// Seed of the random operands.
    #[arg(long)]
    seed: u64,
    /// Output format (default: the accumulator, f32 or i32). bf16/fp16 follow floating
    /// precisions, i8 (requantised) follows int8.
    #[arg(long, value_enum)]
    output: Option<Output>,
    /// Start from a random prior accumulator C instead of +0.
    #[arg(long)]
    accumulate: bool,
    /// i8 requantisation multiplier.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    multiplier: i32,
    /// i8 requantisation right shift (0 to 62).
    #[arg(long, default_value_t = 0)]
    shift: u8,
    /// i8 requantisation zero point.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    zero_point: i8,
    /// Time this many runs (after one untimed warm-up run) and report the fastest.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Also compute D with the exact reference (about 1 µs per MAC) and compare bit for bit;
    /// exit code 1 if they differ.
    #[arg(long)]
    check: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// How many elements of D to print.
    #[arg(long, default_value_t = 4)]
    show: usize,
}

fn parse_precision(text: &str) -> Result<Precision, String> {
    text.parse().map_err(|e| format!("{e}"))
}

/// Runs `golden gemm`.
pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let output = match args.output {
        None => args.precision.raw_output(),
        Some(Output::F32) => OutputFormat::F32,
        Some(Output::Bf16) => OutputFormat::Bf16,
        Some(Output::Fp16) => OutputFormat::Fp16,
        Some(Output::I32) => OutputFormat::I32,
        Some(Output::I8) => OutputFormat::I8(Requant {
            multiplier: args.multiplier,
            shift: args.shift,
            zero_point: args.zero_point,
        }),
    };
    let requant_given = args.multiplier != 1 || args.shift != 0 || args.zero_point != 0;
    if requant_given && !matches!(output, OutputFormat::I8(_)) {
        bail!("--multiplier, --shift and --zero-point apply only to --output i8");
    }
    let spec = GemmSpec {
        precision: args.precision,
        m: args.m as usize,
        n: args.n as usize,
        k: args.k as usize,
        accumulate: args.accumulate,
        output,
    };
    spec.validate()?;
    let (a, b, c) = random_gemm_inputs(&spec, args.seed);
    let mut d = vec![0u8; spec.d_bytes()];
    // One untimed run first: it starts the thread pool and grows the scratch buffers, which
    // would otherwise dominate the timing of small GEMMs.
    engine::gemm(&spec, &a, &b, c.as_deref(), &mut d)?;
    let mut best = f64::INFINITY;
    for _ in 0..args.repeat {
        let started = Instant::now();
        engine::gemm(&spec, &a, &b, c.as_deref(), &mut d)?;
        best = best.min(started.elapsed().as_secs_f64());
    }
    let ops = 2.0 * spec.macs() as f64;
    let rate = ops / best / 1e9;
    let digest = sha256_hex(&d);
    let element = Element::output(spec.output);
    let shown: Vec<(String, golden::vectors::Shown)> = (0..(spec.m * spec.n).min(args.show))
        .map(|e| {
            let at = format!("D[{}][{}]", e / spec.n, e % spec.n);
            (at, element.show(element.read(&d, e)))
        })
        .collect();

    let check = if args.check {
        if spec.macs() > 50_000_000 {
            eprintln!(
                "note: the exact reference takes about 1 µs per MAC; {} MACs will take a while",
                spec.macs()
            );
        }
        let mut exact = vec![0u8; spec.d_bytes()];
        let started = Instant::now();
        reference::gemm(&spec, &a, &b, c.as_deref(), &mut exact)?;
        let elapsed = started.elapsed().as_secs_f64();
        let w = spec.output.bytes();
        let differing = d
            .chunks_exact(w)
            .zip(exact.chunks_exact(w))
            .filter(|(x, y)| x != y)
            .count();
        Some((differing, elapsed))
    } else {
        None
    };

    let unit = if spec.precision == Precision::Int8 {
        "GOP/s"
    } else {
        "GFLOP/s"
    };
    if args.json {
        let json = serde_json::json!({
            "precision": spec.precision.name(),
            "m": spec.m, "n": spec.n, "k": spec.k,
            "accumulate": spec.accumulate,
            "output": spec.output.name(),
            "requant": match spec.output {
                OutputFormat::I8(r) => serde_json::json!({
                    "multiplier": r.multiplier, "shift": r.shift, "zero_point": r.zero_point
                }),
                _ => serde_json::Value::Null,
            },
            "seed": args.seed,
            "repeat": args.repeat,
            "seconds": best,
            "ops_per_second": ops / best,
            "d_bytes": d.len(),
            "d_sha256": digest,
            "elements": shown.iter().map(|(at, v)| serde_json::json!({
                "at": at, "hex": v.hex, "value": v.value
            })).collect::<Vec<_>>(),
            "check": check.map(|(differing, elapsed)| serde_json::json!({
                "equal": differing == 0,
                "differing_elements": differing,
                "reference_seconds": elapsed,
            })),
        });
        say!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        say!(
            "gemm {} {}×{}×{}{} → {}, seed {}",
            spec.precision,
            spec.m,
            spec.n,
            spec.k,
            if spec.accumulate { " accumulate" } else { "" },
            spec.output,
            args.seed
        );
        say!(
            "  time      {} (best of {}), {:.3} {unit}",
            seconds(best),
            args.repeat,
            rate
        );
        say!("  D sha256  {digest}");
        for (at, v) in &shown {
            say!("  {at:<9} {} ({})", v.hex, v.value);
        }
        if let Some((differing, elapsed)) = check {
            if differing == 0 {
                say!(
                    "  check     equal to the exact reference, bit for bit ({} MACs in {})",
                    spec.macs(),
                    seconds(elapsed)
                );
            } else {
                say!(
                    "  check     MISMATCH: {differing} of {} elements differ from the exact reference",
                    spec.m * spec.n
                );
            }
        }
    }
    Ok(match check {
        Some((differing, _)) if differing > 0 => Outcome::Mismatch,
        _ => Outcome::Success,
    })
}
