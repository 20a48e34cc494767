//! The GEMM the vector tools compute with, and the golden model run as a device.
//!
//! [`gemm`] is the one place that decides which bit-exact GEMM computes expected values,
//! `golden vectors run` outputs and `golden gemm` timings. Today it is a row-wise loop over
//! [`golden::gemm::fast::gemm`](crate::gemm::fast::gemm), the SIMD GEMM, except for tiny
//! GEMMs, where a row-wise loop over the contract's fast MAC ([`mac::fast_decoded`], proven
//! equal to the exact one) is faster. Both are bit-exact; tests compare them with each other and
//! with the reference.

use crate::gemm::{fast, read_operand, read_u32, write_output, GemmError, GemmSpec};
use crate::numerics::float::{bf16_to_f32, fp16_to_f32};
use crate::numerics::mac;
use crate::numerics::Precision;

use super::results::{Results, ResultsWriter};
use super::{Case, Suite};

/// Computes `D = convert(C + A·B)` bit-exactly (same signature and buffers as
/// [`reference::gemm`](crate::gemm::reference::gemm)), as fast as this crate can.
pub fn gemm(
    spec: &GemmSpec,
    a: &[u8],
    b: &[u8],
    c: Option<&[u8]>,
    d: &mut [u8],
) -> Result<(), GemmError> {
    // Tiny GEMMs (the level-0 chains are 1×1×K) are dominated by the SIMD GEMM's packing and
    // dispatch; the row-wise loop is several times faster there and just as exact.
    if spec.macs() < ROWWISE_BELOW_MACS {
        rowwise(spec, a, b, c, d)
    } else {
        fast::gemm(spec, a, b, c, d)
    }
}

/// GEMMs with fewer multiply-accumulates than this take the row-wise path.
const ROWWISE_BELOW_MACS: u64 = 4096;

/// Output-stationary in registers, streamed by rows: for each row `i`, the `N` accumulators of
/// row `i` start from `C` (or `+0`) and take one MAC per `k`, ascending — exactly the
/// contract's order per element, with `B` decoded once and read contiguously.
fn rowwise(
    spec: &GemmSpec,
    a: &[u8],
    b: &[u8],
    c: Option<&[u8]>,
    d: &mut [u8],
) -> Result<(), GemmError> {
    spec.check_buffers(a, b, c, d)?;
    let (m, n, k) = (spec.m, spec.n, spec.k);
    let out_bytes = spec.output.bytes();
    let initial = |i: usize, j: usize| c.map_or(0, |c| read_u32(c, i * n + j));
    match spec.precision {
        Precision::Int8 => {
            let b: Vec<i32> = b.iter().map(|&x| i32::from(x as i8)).collect();
            let mut acc = vec![0i32; n];
            for i in 0..m {
                for (j, acc) in acc.iter_mut().enumerate() {
                    *acc = initial(i, j) as i32;
                }
                for kk in 0..k {
                    let x = i32::from(a[i * k + kk] as i8);
                    let row = &b[kk * n..(kk + 1) * n];
                    for (acc, y) in acc.iter_mut().zip(row) {
                        *acc = acc.wrapping_add(x * y);
                    }
                }
                for (j, acc) in acc.iter().enumerate() {
                    let at = (i * n + j) * out_bytes;
                    write_output(spec.output, *acc as u32, &mut d[at..at + out_bytes]);
                }
            }
        }
        Precision::Bf16 | Precision::Fp16 => {
            let decode = match spec.precision {
                Precision::Bf16 => bf16_to_f32,
                _ => fp16_to_f32,
            };
            let operand =
                |buffer: &[u8], index| decode(read_operand(spec.precision, buffer, index) as u16);
            let b: Vec<f32> = (0..k * n).map(|index| operand(b, index)).collect();
            let mut acc = vec![0f32; n];
            for i in 0..m {
                for (j, acc) in acc.iter_mut().enumerate() {
                    *acc = f32::from_bits(initial(i, j));
                }
                for kk in 0..k {
                    let x = operand(a, i * k + kk);
                    let row = &b[kk * n..(kk + 1) * n];
                    for (acc, y) in acc.iter_mut().zip(row) {
                        *acc = mac::fast_decoded(*acc, x, *y);
                    }
                }
                for (j, acc) in acc.iter().enumerate() {
                    let at = (i * n + j) * out_bytes;
                    write_output(spec.output, acc.to_bits(), &mut d[at..at + out_bytes]);
                }
            }
        }
    }
    Ok(())
}

/// Runs one case on the golden model and returns its output bytes.
pub fn run_case(case: &Case<'_>) -> Vec<u8> {
    match case {
        Case::Gemm(g) => {
            let mut d = vec![0; g.spec.d_bytes()];
            gemm(&g.spec, g.a, g.b, g.c, &mut d)
                .expect("Suite::open validated every case's spec and buffer sizes");
            d
        }
    }
}

/// Runs every case of `suite` on the golden model: a known-good device, for tests and for
/// cross-checking a suite someone else generated.
pub fn run_suite(suite: &Suite, producer: &str) -> Results {
    let mut writer = ResultsWriter::new(suite, producer);
    for case in suite.cases() {
        writer
            .push(case.index(), &run_case(&case))
            .expect("cases arrive in ascending order");
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::reference;
    use crate::numerics::{OutputFormat, Requant};
    use crate::vectors::prng::SplitMix64;

    fn random_bytes(rng: &mut SplitMix64, n: usize) -> Vec<u8> {
        (0..n).map(|_| rng.next_u32() as u8).collect()
    }

    #[test]
    fn equals_the_reference_on_random_bits() {
        // Uniformly random operand bits: every special value at its natural frequency.
        let mut rng = SplitMix64::new(42);
        for trial in 0..60 {
            let precision = Precision::ALL[trial % 3];
            let (m, n, k) = (1 + rng.index(6), 1 + rng.index(6), 1 + rng.index(9));
            let mut spec = GemmSpec::new(precision, m, n, k);
            spec.accumulate = trial % 2 == 0;
            spec.output = match (precision, trial % 4) {
                (Precision::Int8, 0 | 1) => OutputFormat::I32,
                (Precision::Int8, _) => OutputFormat::I8(Requant {
                    multiplier: rng.next_u32() as i32,
                    shift: rng.below(63) as u8,
                    zero_point: rng.next_u32() as i8,
                }),
                (_, 0) => OutputFormat::F32,
                (_, 1) => OutputFormat::Bf16,
                _ => OutputFormat::Fp16,
            };
            let a = random_bytes(&mut rng, spec.a_bytes());
            let b = random_bytes(&mut rng, spec.b_bytes());
            let c = spec
                .accumulate
                .then(|| random_bytes(&mut rng, spec.c_bytes()));
            let mut fast = vec![0; spec.d_bytes()];
            let mut exact = vec![0; spec.d_bytes()];
            gemm(&spec, &a, &b, c.as_deref(), &mut fast).unwrap();
            reference::gemm(&spec, &a, &b, c.as_deref(), &mut exact).unwrap();
            assert_eq!(fast, exact, "{spec:?}");
        }
    }

    #[test]
    fn both_paths_agree_around_the_threshold() {
        let mut rng = SplitMix64::new(7);
        for (precision, m, n, k) in [
            (Precision::Bf16, 1, 1, 4095),
            (Precision::Fp16, 16, 16, 16),
            (Precision::Int8, 17, 15, 17),
            (Precision::Bf16, 33, 31, 9),
        ] {
            let mut spec = GemmSpec::new(precision, m, n, k);
            spec.accumulate = true;
            let a = random_bytes(&mut rng, spec.a_bytes());
            let b = random_bytes(&mut rng, spec.b_bytes());
            let c = random_bytes(&mut rng, spec.c_bytes());
            let mut row = vec![0; spec.d_bytes()];
            let mut simd = vec![0; spec.d_bytes()];
            rowwise(&spec, &a, &b, Some(&c), &mut row).unwrap();
            fast::gemm(&spec, &a, &b, Some(&c), &mut simd).unwrap();
            assert_eq!(row, simd, "{spec:?}");
        }
    }

    #[test]
    fn rejects_what_the_reference_rejects() {
        let spec = GemmSpec::new(Precision::Bf16, 2, 2, 2);
        let err = gemm(&spec, &[0; 7], &[0; 8], None, &mut [0; 16]).unwrap_err();
        assert!(err.to_string().contains("operand A has 7 bytes"));
    }
}
