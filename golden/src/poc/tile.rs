//! Block transposes of 16-bit values for the host side of the forward.
//!
//! The attention scores' `B` operand is each key head transposed (`head_dim × seq_len`), while
//! the keys arrive one position (one row) at a time. Writing each element to its transposed
//! place is one scalar store per element, every one to a different row; [`transpose_u16`]
//! instead transposes 8×8 tiles in registers and writes whole 8-element rows. It only moves
//! bits, so it cannot change any result.

/// Side of the square tiles [`transpose_u16`] moves in registers.
pub(crate) const TILE: usize = 8;

/// Writes the `rows × cols` block `src` (row-major, `cols` per row) transposed into `dst`, whose
/// rows lie `stride` apart: `dst[c · stride + r] = src[r · cols + c]`. Nothing else in `dst`
/// changes.
///
/// Panics if `src` is not `rows · cols` long or `dst` cannot hold the block (an internal
/// invariant of the callers, never input).
#[inline(always)]
pub(crate) fn transpose_u16(src: &[u16], rows: usize, cols: usize, dst: &mut [u16], stride: usize) {
    assert_eq!(src.len(), rows * cols, "the block is rows × cols");
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(
        rows <= stride && (cols - 1) * stride + rows <= dst.len(),
        "the transposed block fits in dst"
    );
    let (full_rows, full_cols) = (rows / TILE * TILE, cols / TILE * TILE);
    #[cfg(target_arch = "x86_64")]
    for r0 in (0..full_rows).step_by(TILE) {
        for c0 in (0..full_cols).step_by(TILE) {
            let tile: [&[u16; TILE]; TILE] = std::array::from_fn(|i| {
                src[(r0 + i) * cols + c0..][..TILE]
                    .try_into()
                    .expect("TILE elements")
            });
            let columns = x86::transpose8x8(tile);
            for (i, column) in columns.iter().enumerate() {
                let out: &mut [u16; TILE] = (&mut dst[(c0 + i) * stride + r0..][..TILE])
                    .try_into()
                    .expect("TILE elements");
                x86::store(out, *column);
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let (full_rows, full_cols) = (0, 0);
    // What the tiles did not cover: the columns past the last whole tile of the tiled rows,
    // then every column of the rows past the last whole tile.
    for r in 0..full_rows {
        for c in full_cols..cols {
            dst[c * stride + r] = src[r * cols + c];
        }
    }
    for r in full_rows..rows {
        for c in 0..cols {
            dst[c * stride + r] = src[r * cols + c];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::TILE;
    use std::arch::x86_64::*;

    /// The transpose of an 8×8 tile of 16-bit values: `r[i]` is row `i`, the result's element
    /// `j` holds column `j` (`(r[0][j], …, r[7][j])`). SSE2 only, which every x86-64 CPU has;
    /// inlined into AVX code it is VEX-encoded there.
    #[inline(always)]
    pub(super) fn transpose8x8(r: [&[u16; TILE]; TILE]) -> [__m128i; TILE] {
        // SAFETY: each reference points at TILE = 8 readable u16, the 16 bytes an unaligned
        // 128-bit load reads; every intrinsic here is SSE2, part of the x86-64 baseline.
        unsafe {
            let a: [__m128i; TILE] = std::array::from_fn(|i| _mm_loadu_si128(r[i].as_ptr().cast()));
            // Pairs of rows interleaved by 16, then by 32, then by 64 bits.
            let t0 = _mm_unpacklo_epi16(a[0], a[1]);
            let t1 = _mm_unpackhi_epi16(a[0], a[1]);
            let t2 = _mm_unpacklo_epi16(a[2], a[3]);
            let t3 = _mm_unpackhi_epi16(a[2], a[3]);
            let t4 = _mm_unpacklo_epi16(a[4], a[5]);
            let t5 = _mm_unpackhi_epi16(a[4], a[5]);
            let t6 = _mm_unpacklo_epi16(a[6], a[7]);
            let t7 = _mm_unpackhi_epi16(a[6], a[7]);
            let u0 = _mm_unpacklo_epi32(t0, t2);
            let u1 = _mm_unpackhi_epi32(t0, t2);
            let u2 = _mm_unpacklo_epi32(t1, t3);
            let u3 = _mm_unpackhi_epi32(t1, t3);
            let u4 = _mm_unpacklo_epi32(t4, t6);
            let u5 = _mm_unpackhi_epi32(t4, t6);
            let u6 = _mm_unpacklo_epi32(t5, t7);
            let u7 = _mm_unpackhi_epi32(t5, t7);
            [
                _mm_unpacklo_epi64(u0, u4),
                _mm_unpackhi_epi64(u0, u4),
                _mm_unpacklo_epi64(u1, u5),
                _mm_unpackhi_epi64(u1, u5),
                _mm_unpacklo_epi64(u2, u6),
                _mm_unpackhi_epi64(u2, u6),
                _mm_unpacklo_epi64(u3, u7),
                _mm_unpackhi_epi64(u3, u7),
            ]
        }
    }

    /// Stores one tile row.
    #[inline(always)]
    pub(super) fn store(out: &mut [u16; TILE], v: __m128i) {
        // SAFETY: `out` is TILE = 8 writable u16, the 16 bytes an unaligned 128-bit store
        // writes; SSE2 is part of the x86-64 baseline.
        unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), v) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scalar(src: &[u16], rows: usize, cols: usize, dst: &mut [u16], stride: usize) {
        for r in 0..rows {
            for c in 0..cols {
                dst[c * stride + r] = src[r * cols + c];
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any block shape, including partial tiles and a wider destination, lands where the
        /// element-by-element transpose puts it, and nothing else in `dst` changes.
        #[test]
        fn equals_the_scalar_transpose(rows in 0usize..20, cols in 0usize..20, pad in 0usize..9, offset in 0usize..5, seed in any::<u16>()) {
            let stride = rows + pad;
            let src: Vec<u16> = (0..rows * cols).map(|i| (i as u16).wrapping_mul(40_503) ^ seed).collect();
            let len = offset + cols * stride + 3;
            let fill: Vec<u16> = (0..len).map(|i| 0xA000 ^ i as u16).collect();
            let (mut want, mut got) = (fill.clone(), fill);
            scalar(&src, rows, cols, &mut want[offset..], stride);
            transpose_u16(&src, rows, cols, &mut got[offset..], stride);
            prop_assert_eq!(got, want);
        }
    }
}
