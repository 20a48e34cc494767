//! Sequential `f32` reductions of many rows at once, for the host side of the forward.
//!
//! The contract fixes each row's reductions (RMSNorm's `Σ x²`, the reflection's `v·x`) as a
//! sequential `f32` chain from index 0, each term and each sum rounded. One row alone therefore
//! runs at the latency of one addition per element. [`row_sums`] runs [`ROW_LANES`] rows' chains
//! side by side instead: step `k` of every row, then step `k + 1`, each row still in index order,
//! so the bits are those of summing each row alone. On x86 with AVX the rows become vector lanes:
//! 8×8 tiles are transposed in registers (rows to lanes) and each column is one vector addition.

/// Rows whose sums [`row_sums`] computes side by side.
pub(crate) const ROW_LANES: usize = 16;

/// The term a row's sum adds at index `k` for element `t`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Term<'a> {
    /// `t · t` (a sum of squares).
    Square,
    /// `w[k] · t` (a dot product with `w`, which has at least `width` elements).
    Times(&'a [f32]),
}

impl Term<'_> {
    #[inline(always)]
    fn at(self, k: usize, t: f32) -> f32 {
        match self {
            Term::Square => t * t,
            Term::Times(w) => w[k] * t,
        }
    }
}

/// `Σ_k term(k, row_r[k])` for each `width`-wide row `r` of `x` (at most [`ROW_LANES`] rows;
/// lanes past the last row are 0): each sum a sequential `f32` chain from `k = 0` with every
/// term and every sum rounded (no fused multiply-add), exactly as one row's loop computes it.
pub(crate) fn row_sums(x: &[f32], width: usize, term: Term<'_>) -> [f32; ROW_LANES] {
    let rows = if width == 0 { 0 } else { x.len() / width };
    assert!(
        rows <= ROW_LANES && rows * width == x.len(),
        "row_sums takes at most {ROW_LANES} whole rows"
    );
    if let Term::Times(w) = term {
        assert!(w.len() >= width, "a dot product needs a weight per column");
    }
    #[cfg(target_arch = "x86_64")]
    if rows == ROW_LANES && std::is_x86_feature_detected!("avx") {
        // SAFETY: AVX support was just detected at run time; `x` holds ROW_LANES rows of
        // `width` and `Times` weights have `width` elements (both asserted above).
        return unsafe { x86::row_sums_avx(x, width, term) };
    }
    row_sums_portable(x, width, term)
}

/// [`row_sums`] without SIMD: the rows' chains interleaved column by column.
fn row_sums_portable(x: &[f32], width: usize, term: Term<'_>) -> [f32; ROW_LANES] {
    let mut sums = [0f32; ROW_LANES];
    for k in 0..width {
        for (sum, row) in sums.iter_mut().zip(x.chunks_exact(width)) {
            *sum += term.at(k, row[k]);
        }
    }
    sums
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Term, ROW_LANES};
    use std::arch::x86_64::*;

    /// [`super::row_sums`] for exactly [`ROW_LANES`] rows with AVX: two groups of eight rows,
    /// each an 8-lane vector of sums; columns come from 8×8 in-register transposes, and the
    /// columns past the last multiple of 8 from scalar loads. Every lane performs the same
    /// `mul` (not fused) and `add` sequence as the scalar loop.
    ///
    /// # Safety
    /// The CPU must support AVX; `x.len() == ROW_LANES · width`, and `Times` weights must have
    /// at least `width` elements.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn row_sums_avx(x: &[f32], width: usize, term: Term<'_>) -> [f32; ROW_LANES] {
        debug_assert_eq!(x.len(), ROW_LANES * width);
        let mut out = [0f32; ROW_LANES];
        let full = width / 8 * 8;
        for (group, sums_out) in out.chunks_exact_mut(8).enumerate() {
            let rows = &x[group * 8 * width..(group + 1) * 8 * width];
            let mut acc = _mm256_setzero_ps();
            let add = |acc: __m256, k: usize, column: __m256| -> __m256 {
                let t = match term {
                    Term::Square => _mm256_mul_ps(column, column),
                    Term::Times(w) => _mm256_mul_ps(_mm256_set1_ps(w[k]), column),
                };
                _mm256_add_ps(acc, t)
            };
            let mut k0 = 0;
            while k0 < full {
                // SAFETY: row r's columns k0..k0 + 8 lie inside `rows` (k0 + 8 ≤ width).
                let load = |r: usize| unsafe { _mm256_loadu_ps(rows.as_ptr().add(r * width + k0)) };
                let columns = transpose8([
                    load(0),
                    load(1),
                    load(2),
                    load(3),
                    load(4),
                    load(5),
                    load(6),
                    load(7),
                ]);
                for (j, &column) in columns.iter().enumerate() {
                    acc = add(acc, k0 + j, column);
                }
                k0 += 8;
            }
            for k in full..width {
                let column = _mm256_setr_ps(
                    rows[k],
                    rows[width + k],
                    rows[2 * width + k],
                    rows[3 * width + k],
                    rows[4 * width + k],
                    rows[5 * width + k],
                    rows[6 * width + k],
                    rows[7 * width + k],
                );
                acc = add(acc, k, column);
            }
            // SAFETY: `sums_out` has 8 elements.
            unsafe { _mm256_storeu_ps(sums_out.as_mut_ptr(), acc) };
        }
        out
    }

    /// The transpose of an 8×8 tile: `r[i]` is row `i`; the result's element `j` holds column
    /// `j` (`(r[0][j], …, r[7][j])`). Only moves data.
    #[inline(always)]
    fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        // SAFETY: every intrinsic here is AVX; the caller is compiled with AVX enabled.
        unsafe {
            let t0 = _mm256_unpacklo_ps(r[0], r[1]);
            let t1 = _mm256_unpackhi_ps(r[0], r[1]);
            let t2 = _mm256_unpacklo_ps(r[2], r[3]);
            let t3 = _mm256_unpackhi_ps(r[2], r[3]);
            let t4 = _mm256_unpacklo_ps(r[4], r[5]);
            let t5 = _mm256_unpackhi_ps(r[4], r[5]);
            let t6 = _mm256_unpacklo_ps(r[6], r[7]);
            let t7 = _mm256_unpackhi_ps(r[6], r[7]);
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            [
                _mm256_permute2f128_ps::<0x20>(u0, u4),
                _mm256_permute2f128_ps::<0x20>(u1, u5),
                _mm256_permute2f128_ps::<0x20>(u2, u6),
                _mm256_permute2f128_ps::<0x20>(u3, u7),
                _mm256_permute2f128_ps::<0x31>(u0, u4),
                _mm256_permute2f128_ps::<0x31>(u1, u5),
                _mm256_permute2f128_ps::<0x31>(u2, u6),
                _mm256_permute2f128_ps::<0x31>(u3, u7),
            ]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values over many magnitudes and both signs, so a reordered sum would show.
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let exponent = 100 + (state >> 27); // 2^-27 .. 2^4
                f32::from_bits(
                    ((state & 0x8000) << 16) | (exponent << 23) | (state >> 9 & 0x7F_FFFF),
                )
            })
            .collect()
    }

    fn one_row(row: &[f32], term: Term<'_>) -> f32 {
        let mut sum = 0f32;
        for (k, &t) in row.iter().enumerate() {
            sum += term.at(k, t);
        }
        sum
    }

    #[test]
    fn side_by_side_sums_equal_one_row_at_a_time() {
        for width in [1usize, 7, 8, 13, 64, 100] {
            let w = values(width, 7);
            for rows in [1usize, 5, ROW_LANES] {
                let x = values(rows * width, width as u32);
                for term in [Term::Square, Term::Times(&w)] {
                    let got = row_sums(&x, width, term);
                    for (r, row) in x.chunks_exact(width).enumerate() {
                        let want = one_row(row, term);
                        assert_eq!(
                            got[r].to_bits(),
                            want.to_bits(),
                            "{width} {rows} {term:?} row {r}"
                        );
                    }
                    assert!(got[rows..].iter().all(|&s| s == 0.0));
                    let portable = row_sums_portable(&x, width, term);
                    assert_eq!(got.map(f32::to_bits), portable.map(f32::to_bits));
                }
            }
        }
    }

    #[test]
    fn special_values_keep_their_bits() {
        let width = 9;
        let mut x = values(ROW_LANES * width, 3);
        x[4] = f32::NAN;
        x[width + 2] = f32::INFINITY;
        x[2 * width + 8] = f32::MAX; // its square overflows
        x[3 * width] = -0.0;
        let got = row_sums(&x, width, Term::Square);
        for (r, row) in x.chunks_exact(width).enumerate() {
            assert_eq!(
                got[r].to_bits(),
                one_row(row, Term::Square).to_bits(),
                "row {r}"
            );
        }
    }
}
