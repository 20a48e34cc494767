//! Micro-kernels for the floating precisions: an `R × 32` block of `f32` accumulators updated
//! by `kc` contract MACs per element, `k` ascending.
//!
//! Every kernel loads the accumulators from a tile in memory, runs the `k` loop with the block
//! in registers, and stores it back; the driver calls it once per `k` block, so the stored
//! binary32 value between blocks is exactly the rounded accumulator and blocking changes no bit
//! (docs/numerics.md §5). One step is one IEEE fused multiply-add on the exactly widened
//! operands, which is the contract's MAC (§2, §8); the portable kernel computes the same value
//! as `f64` product (exact) plus `f64` sum rounded to `f32` (`mac::fast`). NaNs are left as the
//! hardware makes them and canonicalised by the output stage.
//!
//! Operand layouts: `a` is the packed `A` panel, `kc × rows` floats (`a[k·rows + i]`); `b` is
//! a packed `B` panel slice, `kc × 32` floats ([`NR`]); the tile row `i` starts at `i·ldt`.

use super::packed::NR;
use super::Isa;

/// A floating micro-kernel and the most rows it handles at once.
#[derive(Clone, Copy)]
pub(crate) struct FloatKernel {
    /// Rows per register block (`MR`).
    pub mr: usize,
    isa: Isa,
}

impl FloatKernel {
    /// The kernel of `isa`. The caller has checked that this CPU supports `isa`.
    pub(crate) fn new(isa: Isa) -> Self {
        assert!(
            isa.is_supported(),
            "{isa} kernels requested on a CPU without them"
        );
        let mr = match isa {
            Isa::Portable => 4,
            Isa::Avx2 => 6,
            Isa::Avx512 | Isa::Avx512Vnni => 14,
        };
        FloatKernel { mr, isa }
    }

    /// `tile[i][c] = MAC(… MAC(tile[i][c], a[0][i], b[0][c]) …, a[kc−1][i], b[kc−1][c])` for
    /// `i < rows ≤ mr`, `c < 32`.
    pub(crate) fn run(
        &self,
        rows: usize,
        kc: usize,
        a: &[f32],
        b: &[f32],
        tile: &mut [f32],
        ldt: usize,
    ) {
        assert!((1..=self.mr).contains(&rows) && kc >= 1);
        assert!(a.len() >= kc * rows && b.len() >= kc * NR);
        assert!(ldt >= NR && tile.len() >= (rows - 1) * ldt + NR);
        match self.isa {
            Isa::Portable => portable(rows, kc, a, b, tile, ldt),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `new` checked that the CPU supports AVX2 and FMA; the slices are long
            // enough for `rows`, `kc` and `ldt` (asserted above).
            Isa::Avx2 => unsafe {
                x86::avx2(rows, kc, a.as_ptr(), b.as_ptr(), tile.as_mut_ptr(), ldt)
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `new` checked that the CPU supports AVX-512F; bounds as above.
            Isa::Avx512 | Isa::Avx512Vnni => unsafe {
                x86::avx512(rows, kc, a.as_ptr(), b.as_ptr(), tile.as_mut_ptr(), ldt)
            },
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("only the portable kernel exists on this architecture"),
        }
    }
}

/// Plain Rust: `f64` product (exact) and sum, rounded to `f32` (equal to `mac::fast`).
fn portable(rows: usize, kc: usize, a: &[f32], b: &[f32], tile: &mut [f32], ldt: usize) {
    for i in 0..rows {
        let row = &mut tile[i * ldt..i * ldt + NR];
        let mut acc = [0f32; NR];
        acc.copy_from_slice(row);
        for k in 0..kc {
            let x = f64::from(a[k * rows + i]);
            let b_row = &b[k * NR..k * NR + NR];
            for (acc, &y) in acc.iter_mut().zip(b_row) {
                *acc = (f64::from(*acc) + x * f64::from(y)) as f32;
            }
        }
        row.copy_from_slice(&acc);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::NR;
    use std::arch::x86_64::*;

    /// Expands to a `match rows { 1 => f::<1>(…), … }` over the supported register-block heights.
    macro_rules! dispatch_rows {
        ($rows:expr, $f:ident, $args:tt, [$($r:literal)*]) => {
            match $rows {
                $($r => $f::<$r> $args,)*
                other => unreachable!("row count {other} exceeds the register block"),
            }
        };
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA; `a` holds `kc·rows` floats, `b` `kc·32` floats, and
    /// `tile` `rows` rows of 32 floats `ldt` apart; `1 ≤ rows ≤ 6`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2(
        rows: usize,
        kc: usize,
        a: *const f32,
        b: *const f32,
        tile: *mut f32,
        ldt: usize,
    ) {
        // SAFETY: forwarded from this function's contract; each half reads columns 0..16 or
        // 16..32 of the same rows.
        unsafe {
            for half in 0..2 {
                let (b, tile) = (b.add(16 * half), tile.add(16 * half));
                dispatch_rows!(rows, avx2_block, (kc, a, b, tile, ldt), [1 2 3 4 5 6]);
            }
        }
    }

    /// `R × 16` block: 2 × `R` accumulators, 2 loads of `B` and `R` broadcasts of `A` per `k`.
    ///
    /// # Safety
    /// As [`avx2`], for 16 columns starting at `b` and `tile` (`b` rows are 32 floats apart).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn avx2_block<const R: usize>(
        kc: usize,
        a: *const f32,
        b: *const f32,
        tile: *mut f32,
        ldt: usize,
    ) {
        // SAFETY: every pointer offset stays inside the ranges the caller guarantees.
        unsafe {
            let mut lo = [_mm256_setzero_ps(); R];
            let mut hi = [_mm256_setzero_ps(); R];
            for i in 0..R {
                lo[i] = _mm256_loadu_ps(tile.add(i * ldt));
                hi[i] = _mm256_loadu_ps(tile.add(i * ldt + 8));
            }
            let (mut a, mut b) = (a, b);
            for _ in 0..kc {
                let b0 = _mm256_loadu_ps(b);
                let b1 = _mm256_loadu_ps(b.add(8));
                for i in 0..R {
                    let x = _mm256_broadcast_ss(&*a.add(i));
                    lo[i] = _mm256_fmadd_ps(x, b0, lo[i]);
                    hi[i] = _mm256_fmadd_ps(x, b1, hi[i]);
                }
                a = a.add(R);
                b = b.add(NR);
            }
            for i in 0..R {
                _mm256_storeu_ps(tile.add(i * ldt), lo[i]);
                _mm256_storeu_ps(tile.add(i * ldt + 8), hi[i]);
            }
        }
    }

    /// # Safety
    /// The CPU must support AVX-512F; `a` holds `kc·rows` floats, `b` `kc·32` floats, and
    /// `tile` `rows` rows of 32 floats `ldt` apart; `1 ≤ rows ≤ 14`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512(
        rows: usize,
        kc: usize,
        a: *const f32,
        b: *const f32,
        tile: *mut f32,
        ldt: usize,
    ) {
        // SAFETY: forwarded from this function's contract.
        unsafe {
            dispatch_rows!(
                rows,
                avx512_block,
                (kc, a, b, tile, ldt),
                [1 2 3 4 5 6 7 8 9 10 11 12 13 14]
            )
        }
    }

    /// `R × 32` block: 2 × `R` zmm accumulators (28 of the 32 registers at `R` = 14), 2 loads
    /// of `B` and `R` broadcasts of `A` per `k`.
    ///
    /// # Safety
    /// As [`avx512`].
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn avx512_block<const R: usize>(
        kc: usize,
        a: *const f32,
        b: *const f32,
        tile: *mut f32,
        ldt: usize,
    ) {
        // SAFETY: every pointer offset stays inside the ranges the caller guarantees.
        unsafe {
            let mut lo = [_mm512_setzero_ps(); R];
            let mut hi = [_mm512_setzero_ps(); R];
            for i in 0..R {
                lo[i] = _mm512_loadu_ps(tile.add(i * ldt));
                hi[i] = _mm512_loadu_ps(tile.add(i * ldt + 16));
            }
            let (mut a, mut b) = (a, b);
            for _ in 0..kc {
                let b0 = _mm512_loadu_ps(b);
                let b1 = _mm512_loadu_ps(b.add(16));
                for i in 0..R {
                    let x = _mm512_set1_ps(*a.add(i));
                    lo[i] = _mm512_fmadd_ps(x, b0, lo[i]);
                    hi[i] = _mm512_fmadd_ps(x, b1, hi[i]);
                }
                a = a.add(R);
                b = b.add(NR);
            }
            for i in 0..R {
                _mm512_storeu_ps(tile.add(i * ldt), lo[i]);
                _mm512_storeu_ps(tile.add(i * ldt + 16), hi[i]);
            }
        }
    }
}
