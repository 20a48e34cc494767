//! Sequential `f32` reductions of many rows at once, for the host side of the forward.
//!
//! The contract fixes each row's reductions (RMSNorm's `Σ x²`, the reflection's `v·x`, softmax's
//! `Σ e_j`) as a sequential `f32` chain from index 0, each term and each sum rounded. One row
//! alone therefore runs at the latency of one addition per element. [`reduce_rows`] runs
//! [`ROW_LANES`] rows' chains side by side instead: step `k` of every row, then step `k + 1`, each
//! row still in index order, so the bits are those of reducing each row alone. On x86 with AVX
//! the rows become vector lanes: 8×8 tiles are transposed in registers (rows to lanes) and each
//! column is one vector operation.

/// Rows whose reductions [`reduce_rows`] computes side by side.
pub(crate) const ROW_LANES: usize = 16;

/// A fixed-order reduction of one row `t_0, t_1, …`: an accumulator from [`Reduction::init`],
/// updated by [`Reduction::step`] at `k = 0, 1, …`, each operation rounded (no fused
/// multiply-add).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reduction<'a> {
    /// `Σ t_k · t_k` (RMSNorm).
    SumSquares,
    /// `Σ w[k] · t_k` (the reflection's dot product; `w` has at least one weight per column).
    Dot(&'a [f32]),
    /// `Σ t_k` (softmax's denominator).
    Sum,
    /// `max t_k · scale` (softmax's shift), starting from `−∞`; a NaN term never replaces the
    /// accumulator. Between a `+0` and a `−0` maximum the first one seen is kept, where `f32::max`
    /// may return either; the result `m` only enters `exp32(t·scale − m)`, which is 1 for either
    /// zero, so no output bit depends on it.
    MaxScaled(f32),
}

impl Reduction<'_> {
    /// The accumulator before the first term.
    #[inline(always)]
    pub(crate) fn init(self) -> f32 {
        match self {
            Reduction::MaxScaled(_) => f32::NEG_INFINITY,
            _ => 0.0,
        }
    }

    /// The accumulator after the term `t` at index `k`.
    #[inline(always)]
    pub(crate) fn step(self, acc: f32, k: usize, t: f32) -> f32 {
        match self {
            Reduction::SumSquares => acc + t * t,
            Reduction::Dot(w) => acc + w[k] * t,
            Reduction::Sum => acc + t,
            Reduction::MaxScaled(scale) => {
                let y = t * scale;
                if y > acc {
                    y
                } else {
                    acc
                }
            }
        }
    }
}

/// `op` over each `width`-wide row `r` of `x` (at most [`ROW_LANES`] rows), restricted to the
/// row's first `lens[r]` elements when `lens` is given (at most `width` each): the bits of
/// reducing each row alone in index order. Lanes past the last row hold `op.init()`.
pub(crate) fn reduce_rows(
    x: &[f32],
    width: usize,
    lens: Option<&[usize]>,
    op: Reduction<'_>,
) -> [f32; ROW_LANES] {
    let rows = x.len().checked_div(width).unwrap_or(0);
    assert!(
        rows <= ROW_LANES && rows * width == x.len(),
        "reduce_rows takes at most {ROW_LANES} whole rows"
    );
    if let Reduction::Dot(w) = op {
        assert!(w.len() >= width, "a dot product needs a weight per column");
    }
    if let Some(lens) = lens {
        assert!(
            lens.len() == rows && lens.iter().all(|&l| l <= width),
            "one prefix length per row, at most the row width"
        );
    }
    #[cfg(target_arch = "x86_64")]
    if rows == ROW_LANES && width < 1 << 24 && std::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512 F support was just detected at run time; `x` holds ROW_LANES rows of
        // `width`, `Dot` weights have `width` elements and `lens` one entry per row (all
        // asserted above); `width < 2^24` keeps column indices exact in `i32`.
        return unsafe { x86::reduce_rows_avx512(x, width, lens, op) };
    }
    #[cfg(target_arch = "x86_64")]
    if rows == ROW_LANES && width < 1 << 24 && std::is_x86_feature_detected!("avx") {
        // SAFETY: AVX support was just detected at run time; `x` holds ROW_LANES rows of
        // `width`, `Dot` weights have `width` elements and `lens` one entry per row (all
        // asserted above); `width < 2^24` keeps column indices exact in `f32`.
        return unsafe { x86::reduce_rows_avx(x, width, lens, op) };
    }
    reduce_rows_portable(x, width, lens, op)
}

/// Causal softmax of exactly [`ROW_LANES`] rows of `s` scores (`scores`, row-major): row `r`
/// attends to its first `lens[r]` scores (`1 ≤ lens[r] ≤ s`), and `out` (row-major, `s` per row)
/// gets `round(e_j / Σ e)` for `j < lens[r]` and `0` past it, with
/// `e_j = exp_f32(scores_j · scale − max)` and `max` the largest `scores_j · scale` of the prefix:
/// rule 4's operations, each row's max and sum a sequential chain in index order (see
/// [`Reduction::MaxScaled`] and [`Reduction::Sum`]). `cols` is scratch.
///
/// Returns `false` (and writes nothing) where the CPU lacks AVX-512; the caller then takes the
/// row-by-row path, which gives the same bits. With it, the rows are transposed once into
/// columns (lane `r` = row `r`) and every step (max, exponential, sum, division, rounding) runs on
/// whole columns; the results are transposed back. That keeps the per-row work out of the
/// loop: two reductions, a broadcast, a short exponential loop and a short division loop per row
/// made a row of 32 scores cost about 300 cycles.
pub(crate) fn softmax_rows16(
    scores: &[f32],
    s: usize,
    lens: &[usize; ROW_LANES],
    scale: f32,
    round: impl Fn(f32) -> u16,
    cols: &mut Vec<[f32; ROW_LANES]>,
    out: &mut [u16],
) -> bool {
    assert!(
        scores.len() == ROW_LANES * s && out.len() == scores.len(),
        "softmax_rows16 takes {ROW_LANES} whole rows"
    );
    assert!(
        lens.iter().all(|&l| l <= s) && s < 1 << 24,
        "each row's prefix fits in the row"
    );
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vl")
    {
        if cols.len() < s {
            cols.resize(s, [0.0; ROW_LANES]);
        }
        // SAFETY: AVX-512 F/BW/VL support was just detected at run time; the lengths of
        // `scores`, `out` and `cols` and the prefix lengths were checked above.
        unsafe { x86::softmax16_avx512(scores, s, lens, scale, round, &mut cols[..s], out) };
        return true;
    }
    let _ = (scale, round, cols);
    false
}

/// [`reduce_rows`] without SIMD: one row at a time.
fn reduce_rows_portable(
    x: &[f32],
    width: usize,
    lens: Option<&[usize]>,
    op: Reduction<'_>,
) -> [f32; ROW_LANES] {
    let mut out = [op.init(); ROW_LANES];
    for (r, (acc, row)) in out.iter_mut().zip(x.chunks_exact(width)).enumerate() {
        let len = lens.map_or(width, |l| l[r]);
        for (k, &t) in row[..len].iter().enumerate() {
            *acc = op.step(*acc, k, t);
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Reduction, ROW_LANES};
    use crate::poc::math;
    use std::arch::x86_64::*;

    /// [`super::reduce_rows`] for exactly [`ROW_LANES`] rows with AVX: two groups of eight
    /// rows, each an 8-lane accumulator; columns come from 8×8 in-register transposes (and the
    /// columns past the last multiple of 8 from scalar loads). Every lane performs the scalar
    /// step's operations in the same order; a lane past its row's prefix keeps its accumulator.
    ///
    /// # Safety
    /// The CPU must support AVX; `x.len() == ROW_LANES · width`, `width < 2^24`, `Dot` weights
    /// must have at least `width` elements and `lens` (if any) `ROW_LANES` entries.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn reduce_rows_avx(
        x: &[f32],
        width: usize,
        lens: Option<&[usize]>,
        op: Reduction<'_>,
    ) -> [f32; ROW_LANES] {
        debug_assert_eq!(x.len(), ROW_LANES * width);
        let mut out = [0f32; ROW_LANES];
        let full = width / 8 * 8;
        for (group, group_out) in out.chunks_exact_mut(8).enumerate() {
            let rows = &x[group * 8 * width..(group + 1) * 8 * width];
            // Each lane's prefix length, as f32 (exact below 2^24) for a vector comparison.
            let len_of = |r: usize| lens.map_or(width, |l| l[group * 8 + r]) as f32;
            let limits = _mm256_setr_ps(
                len_of(0),
                len_of(1),
                len_of(2),
                len_of(3),
                len_of(4),
                len_of(5),
                len_of(6),
                len_of(7),
            );
            let mut acc = _mm256_set1_ps(op.init());
            let step = |acc: __m256, k: usize, column: __m256| -> __m256 {
                let next = match op {
                    Reduction::SumSquares => _mm256_add_ps(acc, _mm256_mul_ps(column, column)),
                    Reduction::Dot(w) => {
                        _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(w[k]), column))
                    }
                    Reduction::Sum => _mm256_add_ps(acc, column),
                    Reduction::MaxScaled(scale) => {
                        let y = _mm256_mul_ps(column, _mm256_set1_ps(scale));
                        // Ordered `>`: false when `y` is NaN, as in the scalar step.
                        _mm256_blendv_ps(acc, y, _mm256_cmp_ps::<_CMP_GT_OQ>(y, acc))
                    }
                };
                if lens.is_some() {
                    let inside = _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_set1_ps(k as f32), limits);
                    _mm256_blendv_ps(acc, next, inside)
                } else {
                    next
                }
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
                    acc = step(acc, k0 + j, column);
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
                acc = step(acc, k, column);
            }
            // SAFETY: `group_out` has 8 elements.
            unsafe { _mm256_storeu_ps(group_out.as_mut_ptr(), acc) };
        }
        out
    }

    /// [`super::reduce_rows`] for exactly [`ROW_LANES`] rows with AVX-512: all 16 rows in the
    /// lanes of one accumulator (one dependency chain instead of two 8-lane chains run one
    /// after the other); columns come from 16×16 in-register transposes (and the columns past
    /// the last multiple of 16 from scalar loads). Every lane performs the scalar step's
    /// operations in the same order; a lane past its row's prefix keeps its accumulator
    /// (masked operations).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F; `x.len() == ROW_LANES · width`, `width < 2^24`, `Dot`
    /// weights must have at least `width` elements and `lens` (if any) `ROW_LANES` entries.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn reduce_rows_avx512(
        x: &[f32],
        width: usize,
        lens: Option<&[usize]>,
        op: Reduction<'_>,
    ) -> [f32; ROW_LANES] {
        debug_assert_eq!(x.len(), ROW_LANES * width);
        // Each lane's prefix length (below 2^24, exact in i32) for a vector comparison.
        let mut limits = [width as i32; ROW_LANES];
        if let Some(lens) = lens {
            for (limit, &len) in limits.iter_mut().zip(lens) {
                *limit = len as i32;
            }
        }
        // SAFETY: `limits` has 16 `i32`s.
        let limits = unsafe { _mm512_loadu_si512(limits.as_ptr().cast()) };
        let mut acc = _mm512_set1_ps(op.init());
        let step = |acc: __m512, k: usize, column: __m512| -> __m512 {
            // Lanes whose row has element `k` (all of them without `lens`).
            let inside: __mmask16 = if lens.is_some() {
                _mm512_cmpgt_epi32_mask(limits, _mm512_set1_epi32(k as i32))
            } else {
                0xFFFF
            };
            match op {
                Reduction::SumSquares => {
                    _mm512_mask_add_ps(acc, inside, acc, _mm512_mul_ps(column, column))
                }
                Reduction::Dot(w) => _mm512_mask_add_ps(
                    acc,
                    inside,
                    acc,
                    _mm512_mul_ps(_mm512_set1_ps(w[k]), column),
                ),
                Reduction::Sum => _mm512_mask_add_ps(acc, inside, acc, column),
                Reduction::MaxScaled(scale) => {
                    let y = _mm512_mul_ps(column, _mm512_set1_ps(scale));
                    // `vmaxps y, acc` is `y > acc ? y : acc` (ordered: `acc` when `y` is NaN,
                    // and `acc` between zeros), exactly the scalar step.
                    _mm512_mask_max_ps(acc, inside, y, acc)
                }
            }
        };
        let full = width / ROW_LANES * ROW_LANES;
        let mut k0 = 0;
        while k0 < full {
            let mut tile = [_mm512_setzero_ps(); ROW_LANES];
            for (r, row) in tile.iter_mut().enumerate() {
                // SAFETY: row r's columns k0..k0 + 16 lie inside `x` (k0 + 16 ≤ width).
                *row = unsafe { _mm512_loadu_ps(x.as_ptr().add(r * width + k0)) };
            }
            let columns = transpose16(tile);
            for (j, &column) in columns.iter().enumerate() {
                acc = step(acc, k0 + j, column);
            }
            k0 += ROW_LANES;
        }
        for k in full..width {
            let mut column = [0f32; ROW_LANES];
            for (r, c) in column.iter_mut().enumerate() {
                *c = x[r * width + k];
            }
            // SAFETY: `column` has 16 `f32`s.
            acc = step(acc, k, unsafe { _mm512_loadu_ps(column.as_ptr()) });
        }
        let mut out = [0f32; ROW_LANES];
        // SAFETY: `out` has 16 `f32`s.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), acc) };
        out
    }

    /// [`super::softmax_rows16`] on AVX-512.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW and VL; `scores` and `out` hold `ROW_LANES · s`
    /// values, `cols` exactly `s` columns, every `lens[r] ≤ s < 2^24`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn softmax16_avx512(
        scores: &[f32],
        s: usize,
        lens: &[usize; ROW_LANES],
        scale: f32,
        round: impl Fn(f32) -> u16,
        cols: &mut [[f32; ROW_LANES]],
        out: &mut [u16],
    ) {
        debug_assert!(scores.len() == ROW_LANES * s && out.len() == scores.len());
        debug_assert_eq!(cols.len(), s);
        let longest = lens.iter().copied().max().unwrap_or(0);
        let blocks = longest.div_ceil(ROW_LANES);
        let lens32: [u32; ROW_LANES] = std::array::from_fn(|r| lens[r] as u32);
        // SAFETY: `lens32` has 16 `u32`s.
        let limits = unsafe { _mm512_loadu_si512(lens32.as_ptr().cast()) };
        let inside = |k: usize| _mm512_cmpgt_epi32_mask(limits, _mm512_set1_epi32(k as i32));
        // Columns 0 .. 16·blocks of the 16 rows (only those up to `s`), and each row's max.
        let scale_v = _mm512_set1_ps(scale);
        let mut max = _mm512_set1_ps(f32::NEG_INFINITY);
        for b in 0..blocks {
            let c0 = b * ROW_LANES;
            let width = (s - c0).min(ROW_LANES);
            let mask = lanes_mask(width);
            // SAFETY: row r's columns c0 .. c0 + width lie inside `scores`; masked-off lanes
            // are not read.
            let tile: [__m512; ROW_LANES] = std::array::from_fn(|r| unsafe {
                _mm512_maskz_loadu_ps(mask, scores.as_ptr().add(r * s + c0))
            });
            let columns = transpose16(tile);
            for (j, column) in columns.iter().enumerate().take(width) {
                // SAFETY: `cols[c0 + j]` has 16 `f32`s (c0 + j < s).
                unsafe { _mm512_storeu_ps(cols[c0 + j].as_mut_ptr(), *column) };
            }
        }
        for (k, column) in cols.iter().enumerate().take(longest) {
            // SAFETY: `column` has 16 `f32`s.
            let y = _mm512_mul_ps(unsafe { _mm512_loadu_ps(column.as_ptr()) }, scale_v);
            // As `Reduction::MaxScaled`: `acc` stays where `y` is NaN or not larger.
            max = _mm512_mask_max_ps(max, inside(k), y, max);
        }
        let mut max_lanes = [0f32; ROW_LANES];
        // SAFETY: `max_lanes` has 16 `f32`s.
        unsafe { _mm512_storeu_ps(max_lanes.as_mut_ptr(), max) };
        // Exponentials in place, and each row's sum in index order.
        let mut sum = _mm512_setzero_ps();
        for (k, column) in cols.iter_mut().enumerate().take(longest) {
            let mut e = [0f32; ROW_LANES];
            for l in 0..ROW_LANES {
                e[l] = math::exp_f32(column[l] * scale - max_lanes[l]);
            }
            *column = e;
            // SAFETY: `e` has 16 `f32`s.
            sum = _mm512_mask_add_ps(sum, inside(k), sum, unsafe { _mm512_loadu_ps(e.as_ptr()) });
        }
        let mut sum_lanes = [0f32; ROW_LANES];
        // SAFETY: `sum_lanes` has 16 `f32`s.
        unsafe { _mm512_storeu_ps(sum_lanes.as_mut_ptr(), sum) };
        // Quotients, rounded, zero past each prefix; back to rows 16 columns at a time.
        for b in 0..blocks {
            let c0 = b * ROW_LANES;
            let width = (s - c0).min(ROW_LANES);
            let mut tile = [_mm512_setzero_ps(); ROW_LANES];
            for (j, lane) in tile.iter_mut().enumerate().take(width) {
                let k = c0 + j;
                if k >= longest {
                    break;
                }
                let e = &cols[k];
                let mut p = [0u32; ROW_LANES];
                for l in 0..ROW_LANES {
                    let q = u32::from(round(e[l] / sum_lanes[l]));
                    p[l] = if (k as u32) < lens32[l] { q } else { 0 };
                }
                // SAFETY: `p` has 16 `u32`s.
                *lane = _mm512_castsi512_ps(unsafe { _mm512_loadu_si512(p.as_ptr().cast()) });
            }
            let rows = transpose16(tile);
            let mask = lanes_mask(width);
            for (r, row) in rows.iter().enumerate() {
                let bits = _mm512_cvtepi32_epi16(_mm512_castps_si512(*row));
                // SAFETY: row r's columns c0 .. c0 + width lie inside `out`; masked-off lanes
                // are not written.
                unsafe {
                    _mm256_mask_storeu_epi16(out.as_mut_ptr().add(r * s + c0).cast(), mask, bits)
                };
            }
        }
        // Columns past the last block: past every prefix.
        let done = (blocks * ROW_LANES).min(s);
        for row in out.chunks_exact_mut(s) {
            row[done..].fill(0);
        }
    }

    /// The mask of the first `width` of 16 lanes (`1 ≤ width ≤ 16`).
    #[inline(always)]
    fn lanes_mask(width: usize) -> __mmask16 {
        ((1u32 << width) - 1) as __mmask16
    }

    /// The transpose of a 16×16 tile: `r[i]` is row `i`; the result's element `j` holds column
    /// `j`. Only moves data: pairs of rows interleaved, then 4-row groups per 128-bit lane, then
    /// the 128-bit lanes themselves in two steps.
    #[inline(always)]
    fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
        // SAFETY: every intrinsic here is AVX-512 F; the caller is compiled with it enabled.
        unsafe {
            // t[2i], t[2i + 1]: rows 2i and 2i + 1 interleaved (per 128-bit lane L: columns
            // 4L, 4L + 1 and 4L + 2, 4L + 3).
            let mut t = [_mm512_setzero_ps(); 16];
            for i in 0..8 {
                t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            // u[4g + c]: in 128-bit lane L, column 4L + c of rows 4g .. 4g + 3.
            let mut u = [_mm512_setzero_ps(); 16];
            for g in 0..4 {
                let (a, b, c, d) = (t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]);
                u[4 * g] = _mm512_shuffle_ps::<0x44>(a, c);
                u[4 * g + 1] = _mm512_shuffle_ps::<0xEE>(a, c);
                u[4 * g + 2] = _mm512_shuffle_ps::<0x44>(b, d);
                u[4 * g + 3] = _mm512_shuffle_ps::<0xEE>(b, d);
            }
            // A 4×4 transpose of 128-bit lanes among u[c], u[4 + c], u[8 + c], u[12 + c].
            let mut columns = [_mm512_setzero_ps(); 16];
            for c in 0..4 {
                let v0 = _mm512_shuffle_f32x4::<0x88>(u[c], u[4 + c]);
                let v1 = _mm512_shuffle_f32x4::<0xDD>(u[c], u[4 + c]);
                let v2 = _mm512_shuffle_f32x4::<0x88>(u[8 + c], u[12 + c]);
                let v3 = _mm512_shuffle_f32x4::<0xDD>(u[8 + c], u[12 + c]);
                columns[c] = _mm512_shuffle_f32x4::<0x88>(v0, v2);
                columns[4 + c] = _mm512_shuffle_f32x4::<0x88>(v1, v3);
                columns[8 + c] = _mm512_shuffle_f32x4::<0xDD>(v0, v2);
                columns[12 + c] = _mm512_shuffle_f32x4::<0xDD>(v1, v3);
            }
            columns
        }
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

    /// One row alone, as the forward computed it before rows ran side by side.
    fn one_row(row: &[f32], op: Reduction<'_>) -> f32 {
        let mut acc = op.init();
        for (k, &t) in row.iter().enumerate() {
            acc = match op {
                Reduction::MaxScaled(scale) => acc.max(t * scale),
                _ => op.step(acc, k, t),
            };
        }
        acc
    }

    fn check(x: &[f32], width: usize, lens: Option<&[usize]>, op: Reduction<'_>) {
        let rows = x.len() / width;
        let got = reduce_rows(x, width, lens, op);
        for (r, row) in x.chunks_exact(width).enumerate() {
            let len = lens.map_or(width, |l| l[r]);
            let want = one_row(&row[..len], op);
            assert_eq!(
                got[r].to_bits(),
                want.to_bits(),
                "{width} {rows} {op:?} row {r}"
            );
        }
        assert!(got[rows..]
            .iter()
            .all(|&s| s.to_bits() == op.init().to_bits()));
        let portable = reduce_rows_portable(x, width, lens, op);
        assert_eq!(got.map(f32::to_bits), portable.map(f32::to_bits));
        // `reduce_rows` picks the widest kernel the CPU has; the narrower one must agree too.
        #[cfg(target_arch = "x86_64")]
        if rows == ROW_LANES && std::is_x86_feature_detected!("avx") {
            // SAFETY: AVX support was just detected; the shapes are those `reduce_rows` checks.
            let avx = unsafe { x86::reduce_rows_avx(x, width, lens, op) };
            assert_eq!(
                avx.map(f32::to_bits),
                portable.map(f32::to_bits),
                "AVX {op:?}"
            );
        }
    }

    #[test]
    fn side_by_side_reductions_equal_one_row_at_a_time() {
        for width in [1usize, 7, 8, 13, 16, 17, 32, 100, 256] {
            let w = values(width, 7);
            for rows in [1usize, 5, ROW_LANES] {
                let x = values(rows * width, width as u32);
                let lens: Vec<usize> = (0..rows).map(|r| (r * 7 + 1) % (width + 1)).collect();
                for op in [
                    Reduction::SumSquares,
                    Reduction::Dot(&w),
                    Reduction::Sum,
                    Reduction::MaxScaled(0.17),
                ] {
                    check(&x, width, None, op);
                    check(&x, width, Some(&lens), op);
                }
            }
        }
    }

    #[test]
    fn special_values_keep_their_bits() {
        for width in [9usize, 16, 35] {
            let mut x = values(ROW_LANES * width, 3);
            x[4] = f32::NAN;
            x[width + 2] = f32::INFINITY;
            x[2 * width + 8] = f32::MAX; // its square overflows
            x[3 * width] = -0.0;
            for r in 4..8 {
                x[r * width..(r + 1) * width].fill(f32::NAN); // a maximum over NaNs only is −∞
            }
            // Zeros of both signs, in both orders, as a row's maximum.
            x[8 * width..9 * width].fill(-0.0);
            x[8 * width + 3] = 0.0;
            x[9 * width..10 * width].fill(0.0);
            x[9 * width + 1] = -0.0;
            x[10 * width + 5] = f32::NEG_INFINITY;
            let lens: Vec<usize> = (0..ROW_LANES).map(|r| (r * 5 + 2) % (width + 1)).collect();
            for op in [
                Reduction::SumSquares,
                Reduction::Sum,
                Reduction::MaxScaled(2.0),
                Reduction::MaxScaled(-0.5),
            ] {
                check(&x, width, None, op);
                check(&x, width, Some(&lens), op);
            }
        }
    }
}
