//! The output stage, one row of accumulators at a time: NaN canonicalisation, `f32 → bf16/fp16`
//! rounding and `i32 → i8` requantisation, with the same bits as [`write_output`].
//!
//! The scalar functions here are branch-free so that the compiler vectorises the row loops; on
//! x86 the row loops are compiled a second time inside `#[target_feature]` wrappers (the widest
//! vectors the kernel family may use), and `fp16` uses the F16C conversion instruction, which
//! rounds to nearest-even with subnormals and infinities exactly as the contract says.
//! Equality with [`write_output`] is tested on every special value and on large sweeps of bit
//! patterns.
//!
//! [`write_output`]: crate::gemm::write_output

use super::Isa;
use crate::numerics::float::{BF16_CANONICAL_NAN, F32_CANONICAL_NAN, FP16_CANONICAL_NAN};
use crate::numerics::Requant;

/// `f32` NaN canonicalisation without a branch.
#[inline(always)]
pub(crate) fn canonical_f32(x: f32) -> f32 {
    if x.is_nan() {
        f32::from_bits(F32_CANONICAL_NAN)
    } else {
        x
    }
}

/// `f32 → bf16`, round to nearest even, canonical NaN (the contract's conversion).
#[inline(always)]
pub(crate) fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounded = (bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) >> 16) as u16;
    if x.is_nan() {
        BF16_CANONICAL_NAN
    } else {
        rounded
    }
}

/// `f32 → fp16`, round to nearest even, subnormals kept, overflow to ∞, canonical NaN.
///
/// Normal results round by adding `0x0FFF + lsb` below bit 13 (a carry correctly bumps the
/// exponent); subnormal results are produced by the floating-point adder itself: adding 0.5,
/// whose ulp is 2^-24 (fp16's subnormal quantum), rounds the magnitude to that quantum with
/// round-to-nearest-even, and the low bits of the sum are then the fp16 subnormal code.
#[inline(always)]
pub(crate) fn to_fp16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let abs = bits & 0x7FFF_FFFF;
    let normal = {
        let rounded = abs.wrapping_add(0x0FFF + ((abs >> 13) & 1)) >> 13;
        rounded.wrapping_sub((127 - 15) << 10) as u16
    };
    let subnormal = {
        let sum = f32::from_bits(abs) + 0.5;
        (sum.to_bits().wrapping_sub(0x3F00_0000)) as u16
    };
    let magnitude = if abs >= 0x477F_F000 {
        0x7C00 // at or beyond 65520 (the midpoint above the largest finite): infinity
    } else if abs >= 0x3880_0000 {
        normal // at least 2^-14, fp16's smallest normal
    } else {
        subnormal
    };
    if abs > 0x7F80_0000 {
        FP16_CANONICAL_NAN
    } else {
        sign | magnitude
    }
}

/// `fp16 → f32`, exact (the same bits as `float::fp16_to_f32`), without branches so that
/// packing loops vectorise: normal codes are re-biased, subnormal codes are converted as
/// integers times 2^-24 (exact), and all-ones exponents keep their fraction (∞ or NaN).
#[inline(always)]
pub(crate) fn widen_fp16(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let magnitude = u32::from(h & 0x7FFF);
    let normal = (magnitude << 13) + ((127 - 15) << 23);
    let subnormal = (magnitude as f32 * (1.0 / 16_777_216.0)).to_bits();
    let special = (magnitude << 13) | 0x7F80_0000;
    let bits = if magnitude >= 0x7C00 {
        special
    } else if magnitude < 0x0400 {
        subnormal
    } else {
        normal
    };
    f32::from_bits(bits | sign)
}

/// `bf16 → f32`, exact: the bits move to the top half.
#[inline(always)]
pub(crate) fn widen_bf16(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

fn f32_row_scalar(src: &[f32], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = canonical_f32(s);
    }
}

fn bf16_row_scalar(src: &[f32], dst: &mut [u16]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = to_bf16(s);
    }
}

fn fp16_row_scalar(src: &[f32], dst: &mut [u16]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = to_fp16(s);
    }
}

fn i8_row_scalar(src: &[i32], dst: &mut [i8], requant: Requant) {
    // `requant` was validated (shift ≤ 62) before the GEMM started.
    let shift = u32::from(requant.shift);
    let multiplier = i64::from(requant.multiplier);
    let zero_point = i64::from(requant.zero_point);
    let half = if shift == 0 { 0 } else { 1i64 << (shift - 1) };
    for (d, &s) in dst.iter_mut().zip(src) {
        let rounded = (i64::from(s) * multiplier + half) >> shift;
        *d = (rounded + zero_point).clamp(-128, 127) as i8;
    }
}

/// Writes `dst[j] = canonical(src[j])`.
pub(crate) fn f32_row(isa: Isa, src: &[f32], dst: &mut [f32]) {
    match isa {
        Isa::Portable => f32_row_scalar(src, dst),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` was checked against this CPU's features before the GEMM started.
        _ => unsafe { x86::f32_row(src, dst) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => f32_row_scalar(src, dst),
    }
}

/// Writes `dst[j] = bf16(src[j])`.
pub(crate) fn bf16_row(isa: Isa, src: &[f32], dst: &mut [u16]) {
    match isa {
        Isa::Portable => bf16_row_scalar(src, dst),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` was checked against this CPU's features before the GEMM started.
        _ => unsafe { x86::bf16_row(src, dst) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => bf16_row_scalar(src, dst),
    }
}

/// Writes `dst[j] = fp16(src[j])`.
pub(crate) fn fp16_row(isa: Isa, src: &[f32], dst: &mut [u16]) {
    match isa {
        Isa::Portable => fp16_row_scalar(src, dst),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` was checked against this CPU's features before the GEMM started.
        _ => unsafe { x86::fp16_row(src, dst) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => fp16_row_scalar(src, dst),
    }
}

/// Writes `dst[j] = requant(src[j])`.
pub(crate) fn i8_row(isa: Isa, src: &[i32], dst: &mut [i8], requant: Requant) {
    match isa {
        Isa::Portable => i8_row_scalar(src, dst, requant),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` was checked against this CPU's features before the GEMM started.
        _ => unsafe { x86::i8_row(src, dst, requant) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => i8_row_scalar(src, dst, requant),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The row loops compiled for AVX2 (every non-portable family includes AVX2 and F16C).
    use super::*;
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn f32_row(src: &[f32], dst: &mut [f32]) {
        f32_row_scalar(src, dst);
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn bf16_row(src: &[f32], dst: &mut [u16]) {
        bf16_row_scalar(src, dst);
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn i8_row(src: &[i32], dst: &mut [i8], requant: Requant) {
        i8_row_scalar(src, dst, requant);
    }

    /// # Safety
    /// The CPU must support AVX2 and F16C.
    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn fp16_row(src: &[f32], dst: &mut [u16]) {
        let len = src.len().min(dst.len());
        let vectors = len / 8;
        let canonical = _mm_set1_epi16(FP16_CANONICAL_NAN as i16);
        for v in 0..vectors {
            // SAFETY: `v * 8 + 8 ≤ len` for both slices; unaligned loads and stores.
            unsafe {
                let x = _mm256_loadu_ps(src.as_ptr().add(v * 8));
                // Round to nearest even (imm 0, not MXCSR); subnormals and infinities follow
                // IEEE 754 (F16C does not flush), NaNs are replaced below.
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x);
                let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x);
                // Narrow the 8 × 32-bit NaN mask to 8 × 16 bits (0 or -1 survive saturation).
                let nan16 = _mm_packs_epi32(
                    _mm256_castsi256_si128(_mm256_castps_si256(nan)),
                    _mm256_extracti128_si256::<1>(_mm256_castps_si256(nan)),
                );
                let out = _mm_blendv_epi8(h, canonical, nan16);
                _mm_storeu_si128(dst.as_mut_ptr().add(v * 8).cast(), out);
            }
        }
        fp16_row_scalar(&src[vectors * 8..len], &mut dst[vectors * 8..len]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::fast::available;
    use crate::gemm::write_output;
    use crate::numerics::OutputFormat;

    fn reference_u16(format: OutputFormat, x: f32) -> u16 {
        let mut out = [0u8; 2];
        write_output(format, x.to_bits(), &mut out);
        u16::from_le_bytes(out)
    }

    /// Bit patterns that matter: every exponent with edge mantissas, rounding boundaries of
    /// both narrow formats, and a stride through everything.
    fn interesting_bits(stride: u32) -> Vec<u32> {
        let mut v: Vec<u32> = (0..=u32::MAX / stride)
            .map(|i| (i * stride).wrapping_add(i % 7))
            .collect();
        for sign in [0, 0x8000_0000u32] {
            for exp in 0..=255u32 {
                for frac in [
                    0, 1, 2, 0x7FFF, 0x8000, 0x8001, 0x17FFF, 0x18000, 0xFFF, 0x1000, 0x1001,
                    0x2FFF, 0x3000, 0x7F_FFFF, 0x7F_E000, 0x7F_F000, 0x7F_EFFF, 0x40_0000,
                ] {
                    v.push(sign | (exp << 23) | frac);
                }
            }
            // Around fp16's largest finite / overflow threshold and smallest subnormal.
            for base in [
                0x477F_E000u32,
                0x477F_F000,
                0x3300_0000,
                0x3380_0000,
                0x3880_0000,
            ] {
                for d in 0..64 {
                    v.push(sign | (base - 32 + d));
                }
            }
        }
        v
    }

    fn check_all_rows(bits: &[u32]) {
        let src: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
        for &isa in available() {
            let mut f = vec![0f32; src.len()];
            let mut b = vec![0u16; src.len()];
            let mut h = vec![0u16; src.len()];
            f32_row(isa, &src, &mut f);
            bf16_row(isa, &src, &mut b);
            fp16_row(isa, &src, &mut h);
            for (i, &x) in src.iter().enumerate() {
                let mut out = [0u8; 4];
                write_output(OutputFormat::F32, x.to_bits(), &mut out);
                assert_eq!(f[i].to_bits(), u32::from_le_bytes(out), "{isa} f32 {x:e}");
                assert_eq!(
                    b[i],
                    reference_u16(OutputFormat::Bf16, x),
                    "{isa} bf16 {:#010x}",
                    x.to_bits()
                );
                assert_eq!(
                    h[i],
                    reference_u16(OutputFormat::Fp16, x),
                    "{isa} fp16 {:#010x}",
                    x.to_bits()
                );
            }
        }
    }

    #[test]
    fn float_rows_equal_write_output() {
        // POCFORGE_FULL sweeps one pattern in 61 (~70 M); the default run one in 40 009.
        let stride = if std::env::var_os("POCFORGE_FULL").is_some() {
            61
        } else {
            40_009
        };
        check_all_rows(&interesting_bits(stride));
    }

    #[test]
    fn widening_is_exact_for_every_code() {
        for h in 0..=u16::MAX {
            let expected = crate::numerics::float::fp16_to_f32(h).to_bits();
            assert_eq!(widen_fp16(h).to_bits(), expected, "{h:#06x}");
            let expected = crate::numerics::float::bf16_to_f32(h).to_bits();
            assert_eq!(widen_bf16(h).to_bits(), expected, "{h:#06x}");
        }
    }

    #[test]
    fn requant_rows_equal_requant_apply() {
        let accs: Vec<i32> = [
            i32::MIN,
            i32::MIN + 1,
            -65_537,
            -129,
            -128,
            -3,
            -1,
            0,
            1,
            2,
            3,
        ]
        .into_iter()
        .chain([127, 128, 255, 65_536, i32::MAX - 1, i32::MAX])
        .chain((0..2000).map(|i: i32| i.wrapping_mul(2_147_483).wrapping_sub(1_000_000_000)))
        .collect();
        let params = [
            Requant::SATURATE,
            Requant {
                multiplier: 1,
                shift: 1,
                zero_point: -3,
            },
            Requant {
                multiplier: -7,
                shift: 9,
                zero_point: 5,
            },
            Requant {
                multiplier: i32::MIN,
                shift: 62,
                zero_point: 0,
            },
            Requant {
                multiplier: i32::MAX,
                shift: 40,
                zero_point: -128,
            },
        ];
        for &isa in available() {
            for rq in params {
                let mut out = vec![0i8; accs.len()];
                i8_row(isa, &accs, &mut out, rq);
                for (&acc, &y) in accs.iter().zip(&out) {
                    assert_eq!(y, rq.apply(acc), "{isa} {rq} acc={acc}");
                }
            }
        }
    }
}
