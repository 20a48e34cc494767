//! Level 1: whole GEMMs over many shapes, value distributions, output formats and both
//! accumulate settings.
//!
//! The first cases walk a fixed plan, the full cross product of [`SHAPES`] × distributions ×
//! output formats × accumulate (shape varying fastest, so even a short suite sees every shape);
//! later cases draw all four at random. The operand values always come from the case's own
//! random stream.

use crate::gemm::GemmSpec;
use crate::numerics::float::{pow2_f64, FloatFormat, F32};
use crate::numerics::{OutputFormat, Precision, Requant};

use super::super::prng::SplitMix64;
use super::values as v;
use super::{accumulator_bytes, operand_bytes, GemmInputs, GemmSource};

/// Shapes `(M, N, K)` of the plan: ones, primes, squares, skinny and fat matrices, and sizes
/// just off every multiple of 2, 4, 8 and 16 (what tiled hardware gets wrong at the edges).
pub const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 1, 2),
    (1, 1, 7),
    (1, 1, 1000),
    (2, 2, 2),
    (3, 5, 7),
    (7, 3, 5),
    (5, 7, 3),
    (4, 4, 4),
    (8, 8, 8),
    (16, 16, 16),
    (32, 32, 32),
    (64, 64, 64),
    (13, 17, 19),
    (31, 37, 41),
    (61, 67, 71),
    (15, 15, 15),
    (17, 17, 17),
    (33, 33, 33),
    (31, 33, 63),
    (63, 65, 127),
    (127, 9, 129),
    (9, 127, 129),
    (1, 64, 64),
    (64, 1, 64),
    (64, 64, 1),
    (1, 257, 17),
    (257, 1, 17),
    (2, 300, 3),
    (300, 2, 3),
    (3, 3, 511),
    (100, 100, 1),
];

/// Distributions of the floating suites (also their categories).
const FLOAT_DISTRIBUTIONS: &[&str] = &["small-int", "normal", "wide-exponent", "special-heavy"];
/// Distributions of the integer suite (also its categories).
const INT_DISTRIBUTIONS: &[&str] = &["small", "uniform", "extremes", "sparse"];
/// Output choices per precision family; the plan cycles through them.
const OUTPUT_CHOICES: usize = 3;

/// The level-1 case source of one precision.
pub struct GemmSuiteSource {
    precision: Precision,
}

impl GemmSuiteSource {
    /// The source for `precision`.
    pub fn new(precision: Precision) -> Self {
        GemmSuiteSource { precision }
    }

    fn distributions(&self) -> &'static [&'static str] {
        match self.precision.operand_format() {
            Some(_) => FLOAT_DISTRIBUTIONS,
            None => INT_DISTRIBUTIONS,
        }
    }
}

/// What one case is made of, before values are drawn.
struct Plan {
    shape: (usize, usize, usize),
    distribution: usize,
    output: usize,
    accumulate: bool,
}

impl GemmSource for GemmSuiteSource {
    fn categories(&self) -> &[&'static str] {
        self.distributions()
    }

    fn directed_count(&self) -> u64 {
        (SHAPES.len() * self.distributions().len() * OUTPUT_CHOICES * 2) as u64
    }

    fn case(&self, index: u64, rng: &mut SplitMix64) -> GemmInputs {
        let dists = self.distributions().len();
        let plan = if index < self.directed_count() {
            let i = index as usize;
            let rest = i / SHAPES.len();
            Plan {
                shape: SHAPES[i % SHAPES.len()],
                distribution: rest % dists,
                output: (rest / dists) % OUTPUT_CHOICES,
                accumulate: (rest / dists / OUTPUT_CHOICES) % 2 == 1,
            }
        } else {
            Plan {
                shape: (dimension(rng), dimension(rng), dimension(rng)),
                distribution: rng.index(dists),
                output: rng.index(OUTPUT_CHOICES),
                accumulate: rng.percent(50),
            }
        };
        match self.precision.operand_format() {
            Some(format) => float_case(self.precision, format, &plan, rng),
            None => int_case(&plan, rng),
        }
    }
}

/// A random dimension: often a size next to a power of two, otherwise anything up to 48.
fn dimension(rng: &mut SplitMix64) -> usize {
    if rng.percent(40) {
        rng.pick(&[1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65])
    } else {
        1 + rng.index(48)
    }
}

fn spec(precision: Precision, plan: &Plan, output: OutputFormat) -> GemmSpec {
    let (m, n, k) = plan.shape;
    GemmSpec {
        precision,
        m,
        n,
        k,
        accumulate: plan.accumulate,
        output,
    }
}

fn float_case(
    precision: Precision,
    format: FloatFormat,
    plan: &Plan,
    rng: &mut SplitMix64,
) -> GemmInputs {
    let spec = spec(
        precision,
        plan,
        [OutputFormat::F32, OutputFormat::Bf16, OutputFormat::Fp16][plan.output],
    );
    // Exponent spread of "wide-exponent": as wide as keeps most products finite in f32 (bf16)
    // or in fp16's own range.
    let spread = if precision == Precision::Bf16 { 40 } else { 12 };
    let operand = |rng: &mut SplitMix64| match plan.distribution {
        0 => v::small_int(format, rng, 8),
        1 => v::normal(format, rng, 1.0),
        2 => {
            let scale = pow2_f64(rng.range_i64(-spread, spread) as i32);
            v::normal(format, rng, scale)
        }
        // About one special operand per output's chain of 2K operands: enough that most
        // outputs meet one, few enough that many stay finite.
        _ if rng.below(2 * spec.k as u64 + 2) == 0 => v::special(format, rng),
        _ => v::normal(format, rng, 1.0),
    };
    let a: Vec<u32> = (0..spec.m * spec.k).map(|_| operand(rng)).collect();
    let b: Vec<u32> = (0..spec.k * spec.n).map(|_| operand(rng)).collect();
    let typical = (spec.k as f64).sqrt();
    let c = plan.accumulate.then(|| {
        let values: Vec<u32> = (0..spec.m * spec.n)
            .map(|_| match plan.distribution {
                0 => (rng.range_i64(-64, 64) as f32).to_bits(),
                1 => v::normal(F32, rng, typical),
                2 => {
                    let scale = typical * pow2_f64(rng.range_i64(-2 * spread, 2 * spread) as i32);
                    v::normal(F32, rng, scale)
                }
                _ if rng.percent(20) => v::special(F32, rng),
                _ => v::normal(F32, rng, typical),
            })
            .collect();
        accumulator_bytes(values)
    });
    GemmInputs {
        category: FLOAT_DISTRIBUTIONS[plan.distribution],
        spec,
        a: operand_bytes(precision, a.into_iter()),
        b: operand_bytes(precision, b.into_iter()),
        c,
    }
}

/// Rough standard deviation of one operand of each integer distribution.
const INT_SIGMA: [f64; 4] = [5.0, 74.0, 110.0, 30.0];

fn int_case(plan: &Plan, rng: &mut SplitMix64) -> GemmInputs {
    let (_, _, k) = plan.shape;
    let output = match plan.output {
        0 => OutputFormat::I32,
        1 => OutputFormat::I8(sensible_requant(rng, INT_SIGMA[plan.distribution], k)),
        _ => OutputFormat::I8(Requant {
            multiplier: rng.next_u32() as i32,
            shift: rng.below(63) as u8,
            zero_point: rng.range_i64(-128, 127) as i8,
        }),
    };
    let spec = spec(Precision::Int8, plan, output);
    let operand = |rng: &mut SplitMix64| -> i64 {
        match plan.distribution {
            0 => rng.range_i64(-8, 8),
            1 => rng.range_i64(-128, 127),
            2 => rng.pick(&[-128, -128, -128, 127, 127, 127, -127, 126, -1, 0, 1]),
            _ if rng.percent(85) => 0,
            _ => rng.range_i64(-128, 127),
        }
    };
    let to_u32 = |x: i64| u32::from(x as i8 as u8);
    let a: Vec<u32> = (0..spec.m * spec.k).map(|_| to_u32(operand(rng))).collect();
    let b: Vec<u32> = (0..spec.k * spec.n).map(|_| to_u32(operand(rng))).collect();
    let c = plan.accumulate.then(|| {
        let values: Vec<u32> = (0..spec.m * spec.n)
            .map(|_| match plan.distribution {
                1 => rng.next_u32(),
                2 => {
                    let near = rng.range_i64(0, 1 << 16) as i32;
                    (if rng.percent(50) {
                        i32::MAX - near
                    } else {
                        i32::MIN + near
                    }) as u32
                }
                _ => rng.range_i64(-1000, 1000) as i32 as u32,
            })
            .collect();
        accumulator_bytes(values)
    });
    GemmInputs {
        category: INT_DISTRIBUTIONS[plan.distribution],
        spec,
        a: operand_bytes(Precision::Int8, a.into_iter()),
        b: operand_bytes(Precision::Int8, b.into_iter()),
        c,
    }
}

/// A requantisation that maps typical accumulators (about `sqrt(K)·σ²`) to about ±40, with a
/// 31-bit multiplier as real quantised networks use, slightly jittered, and a small zero point.
/// Only exactly-rounded `f64` operations (`sqrt`, `/`, scaling by 2) are used, so the result
/// is the same everywhere.
fn sensible_requant(rng: &mut SplitMix64, sigma: f64, k: usize) -> Requant {
    let typical = (k as f64).sqrt() * sigma * sigma;
    let scale = 40.0 / typical;
    let mut x = scale;
    let mut exponent = 0i32; // scale = x · 2^exponent with x in [1, 2)
    while x >= 2.0 {
        x /= 2.0;
        exponent += 1;
    }
    while x < 1.0 {
        x *= 2.0;
        exponent -= 1;
    }
    let shift = (30 - exponent).clamp(0, 62);
    let multiplier = (scale * pow2_f64(shift)).min(f64::from(i32::MAX)) as i32;
    let jitter = rng.below((multiplier / 10).max(1) as u64) as i32;
    Requant {
        multiplier: multiplier - jitter,
        shift: shift as u8,
        zero_point: rng.range_i64(-10, 10) as i8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_covers_every_combination_once() {
        for precision in Precision::ALL {
            let source = GemmSuiteSource::new(precision);
            let mut seen = std::collections::BTreeSet::new();
            for index in 0..source.directed_count() {
                let mut rng = SplitMix64::new(index);
                let case = source.case(index, &mut rng);
                let s = case.spec;
                seen.insert((s.m, s.n, s.k, case.category, s.output.name(), s.accumulate));
                assert!(s.validate().is_ok());
            }
            let shapes: std::collections::BTreeSet<_> =
                seen.iter().map(|t| (t.0, t.1, t.2)).collect();
            assert_eq!(shapes.len(), SHAPES.len());
            let outputs: std::collections::BTreeSet<_> = seen.iter().map(|t| t.4).collect();
            let expected = if precision == Precision::Int8 { 2 } else { 3 };
            assert_eq!(outputs.len(), expected, "{precision}");
            assert!(seen.iter().any(|t| t.5) && seen.iter().any(|t| !t.5));
        }
    }

    #[test]
    fn sensible_requant_keeps_typical_values_in_range() {
        let mut rng = SplitMix64::new(1);
        for k in [1, 17, 1000] {
            let r = sensible_requant(&mut rng, 74.0, k);
            assert!(r.validate().is_ok());
            let typical = ((k as f64).sqrt() * 74.0 * 74.0) as i32;
            let y = r.apply(typical);
            assert!(
                (20..=60).contains(&(i32::from(y) - i32::from(r.zero_point))),
                "k={k}: {y}"
            );
        }
    }
}
