//! Micro-kernels for `int8`: an `R × 32` block of `i32` accumulators updated by `4·kq` wrapping
//! MACs per element.
//!
//! Wrapping `i32` addition is associative and commutative, so these kernels may sum the
//! products in any order and in any grouping: the result mod 2^32 is the contract's
//! (docs/numerics.md §3). Each kernel loads the accumulator tile, adds its `kq` quads of
//! products, and stores it back.
//!
//! `B` is a packed panel slice: `kq` rows of 32 columns × 4 bytes (`b[q·128 + c·4 + t]` is
//! `B[4q + t][c]`). `A` is packed per kernel family in quads as well (see [`ALayout`]).
//!
//! - VNNI (`vpdpbusd`) multiplies *unsigned* bytes by signed bytes, 4 products per 32-bit lane,
//!   and adds them to the lane without saturation. The kernel feeds `A + 128` (0…255): the lane
//!   gains `Σ (a + 128)·b = Σ a·b + 128·Σ b`; each group of 4 products is at most
//!   4·255·128 = 130 560 in magnitude, so the instruction's intermediate sum is exact, and the
//!   driver starts the accumulator at `prior − 128·Σ_k B[k][j]` (mod 2^32, precomputed in
//!   [`PackedB`](super::PackedB)) so that the offset cancels exactly.
//! - AVX2 (`vpmaddwd`) multiplies sign-extended 16-bit values in pairs and adds each pair into a
//!   32-bit lane (at most 2·128·128 = 32 768: exact); the two partial sums of each column are
//!   combined with `vphaddd` (wrapping) at the end.

use super::packed::NR;
use super::Isa;

/// How a kernel wants `A` packed: quads of 4 consecutive `k` of one row, `q`-major, then row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ALayout {
    /// `i8` as is (portable kernel).
    I8,
    /// `a + 128` as `u8` (VNNI).
    U8Offset,
    /// `i16` sign-extended (AVX2 `vpmaddwd`).
    I16,
}

impl ALayout {
    /// Bytes of one packed element.
    pub(crate) fn element_bytes(self) -> usize {
        match self {
            ALayout::I8 | ALayout::U8Offset => 1,
            ALayout::I16 => 2,
        }
    }
}

/// An `int8` micro-kernel and the most rows it handles at once.
#[derive(Clone, Copy)]
pub(crate) struct Int8Kernel {
    /// Rows per register block (`MR`).
    pub mr: usize,
    /// How `A` must be packed for [`run`](Self::run).
    pub layout: ALayout,
    isa: Isa,
}

impl Int8Kernel {
    /// The kernel of `isa`. The caller has checked that this CPU supports `isa`.
    pub(crate) fn new(isa: Isa) -> Self {
        assert!(
            isa.is_supported(),
            "{isa} kernels requested on a CPU without them"
        );
        let (mr, layout) = match isa {
            Isa::Portable => (4, ALayout::I8),
            Isa::Avx2 | Isa::Avx512 => (6, ALayout::I16),
            Isa::Avx512Vnni => (14, ALayout::U8Offset),
        };
        Int8Kernel { mr, layout, isa }
    }

    /// Adds `Σ_{q<kq, t<4} A'[q][i][t] · B[q][c][t]` to `tile[i][c]` for `i < rows`, `c < 32`,
    /// where `A'` is `A` in this kernel's [`ALayout`] (`a` holds its raw bytes).
    pub(crate) fn run(
        &self,
        rows: usize,
        kq: usize,
        a: &[u8],
        b: &[i8],
        tile: &mut [i32],
        ldt: usize,
    ) {
        assert!((1..=self.mr).contains(&rows) && kq >= 1);
        assert!(a.len() >= kq * rows * 4 * self.layout.element_bytes());
        assert!(b.len() >= kq * NR * 4);
        assert!(ldt >= NR && tile.len() >= (rows - 1) * ldt + NR);
        match self.isa {
            Isa::Portable => portable(rows, kq, a, b, tile, ldt),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `new` checked that the CPU supports AVX2; bounds asserted above.
            Isa::Avx2 | Isa::Avx512 => unsafe {
                x86::avx2(rows, kq, a.as_ptr(), b.as_ptr(), tile.as_mut_ptr(), ldt)
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `new` checked that the CPU supports AVX-512F and VNNI; bounds as above.
            Isa::Avx512Vnni => unsafe {
                x86::vnni(rows, kq, a.as_ptr(), b.as_ptr(), tile.as_mut_ptr(), ldt)
            },
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("only the portable kernel exists on this architecture"),
        }
    }
}

/// Plain Rust, wrapping `i32` (the contract's integer MAC, in `k` order within each quad).
fn portable(rows: usize, kq: usize, a: &[u8], b: &[i8], tile: &mut [i32], ldt: usize) {
    for i in 0..rows {
        let row = &mut tile[i * ldt..i * ldt + NR];
        let mut acc = [0i32; NR];
        acc.copy_from_slice(row);
        for q in 0..kq {
            let quad = &a[(q * rows + i) * 4..(q * rows + i) * 4 + 4];
            let b_row = &b[q * NR * 4..(q + 1) * NR * 4];
            for (acc, b_quad) in acc.iter_mut().zip(b_row.chunks_exact(4)) {
                for t in 0..4 {
                    let product = i32::from(quad[t] as i8) * i32::from(b_quad[t]);
                    *acc = acc.wrapping_add(product);
                }
            }
        }
        row.copy_from_slice(&acc);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::NR;
    use std::arch::x86_64::*;

    macro_rules! dispatch_rows {
        ($rows:expr, $f:ident, $args:tt, [$($r:literal)*]) => {
            match $rows {
                $($r => $f::<$r> $args,)*
                other => unreachable!("row count {other} exceeds the register block"),
            }
        };
    }

    /// # Safety
    /// The CPU must support AVX2; `a` holds `kq·rows` quads of `i16`, `b` `kq·128` bytes, and
    /// `tile` `rows` rows of 32 `i32` `ldt` apart; `1 ≤ rows ≤ 6`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn avx2(
        rows: usize,
        kq: usize,
        a: *const u8,
        b: *const i8,
        tile: *mut i32,
        ldt: usize,
    ) {
        // SAFETY: forwarded; each group reads and writes columns 8g..8g+8 of the same rows.
        unsafe {
            for group in 0..NR / 8 {
                let (b, tile) = (b.add(32 * group), tile.add(8 * group));
                dispatch_rows!(rows, avx2_block, (kq, a, b, tile, ldt), [1 2 3 4 5 6]);
            }
        }
    }

    /// `R × 8` block: per row, two accumulators of 4 columns × 2 partial sums.
    ///
    /// # Safety
    /// As [`avx2`], for the 8 columns starting at `tile` whose quads start at `b` (`b` rows are
    /// 128 bytes apart).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn avx2_block<const R: usize>(
        kq: usize,
        a: *const u8,
        b: *const i8,
        tile: *mut i32,
        ldt: usize,
    ) {
        // SAFETY: every pointer offset stays inside the ranges the caller guarantees; all loads
        // and stores are unaligned-tolerant.
        unsafe {
            let mut lo = [_mm256_setzero_si256(); R];
            let mut hi = [_mm256_setzero_si256(); R];
            let (mut a, mut b) = (a, b);
            for _ in 0..kq {
                // Columns 0..4 and 4..8, each 4 k's, sign-extended to 16 bits.
                let b_lo = _mm256_cvtepi8_epi16(_mm_loadu_si128(b.cast()));
                let b_hi = _mm256_cvtepi8_epi16(_mm_loadu_si128(b.add(16).cast()));
                for i in 0..R {
                    let quad = a.add(8 * i).cast::<i64>().read_unaligned();
                    let x = _mm256_set1_epi64x(quad);
                    lo[i] = _mm256_add_epi32(lo[i], _mm256_madd_epi16(x, b_lo));
                    hi[i] = _mm256_add_epi32(hi[i], _mm256_madd_epi16(x, b_hi));
                }
                a = a.add(8 * R);
                b = b.add(4 * NR);
            }
            for i in 0..R {
                // [c0 c1 c4 c5 | c2 c3 c6 c7] → [c0 … c7]
                let sums =
                    _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(lo[i], hi[i]));
                let at = tile.add(i * ldt).cast::<__m256i>();
                _mm256_storeu_si256(at, _mm256_add_epi32(_mm256_loadu_si256(at), sums));
            }
        }
    }

    /// # Safety
    /// The CPU must support AVX-512F and AVX-512 VNNI; `a` holds `kq·rows` quads of `u8`, `b`
    /// `kq·128` bytes, and `tile` `rows` rows of 32 `i32` `ldt` apart; `1 ≤ rows ≤ 14`.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub(super) unsafe fn vnni(
        rows: usize,
        kq: usize,
        a: *const u8,
        b: *const i8,
        tile: *mut i32,
        ldt: usize,
    ) {
        // SAFETY: forwarded from this function's contract.
        unsafe {
            dispatch_rows!(
                rows,
                vnni_block,
                (kq, a, b, tile, ldt),
                [1 2 3 4 5 6 7 8 9 10 11 12 13 14]
            )
        }
    }

    /// `R × 32` block: 2 × `R` zmm accumulators, 2 loads of `B` and `R` quad broadcasts of `A`
    /// per quad of `k`.
    ///
    /// # Safety
    /// As [`vnni`].
    #[target_feature(enable = "avx512f,avx512vnni")]
    #[inline]
    unsafe fn vnni_block<const R: usize>(
        kq: usize,
        a: *const u8,
        b: *const i8,
        tile: *mut i32,
        ldt: usize,
    ) {
        // SAFETY: every pointer offset stays inside the ranges the caller guarantees.
        unsafe {
            let mut lo = [_mm512_setzero_si512(); R];
            let mut hi = [_mm512_setzero_si512(); R];
            for i in 0..R {
                lo[i] = _mm512_loadu_si512(tile.add(i * ldt).cast());
                hi[i] = _mm512_loadu_si512(tile.add(i * ldt + 16).cast());
            }
            let (mut a, mut b) = (a, b);
            for _ in 0..kq {
                let b0 = _mm512_loadu_si512(b.cast());
                let b1 = _mm512_loadu_si512(b.add(64).cast());
                for i in 0..R {
                    let quad = a.add(4 * i).cast::<i32>().read_unaligned();
                    let x = _mm512_set1_epi32(quad);
                    lo[i] = _mm512_dpbusd_epi32(lo[i], x, b0);
                    hi[i] = _mm512_dpbusd_epi32(hi[i], x, b1);
                }
                a = a.add(4 * R);
                b = b.add(4 * NR);
            }
            for i in 0..R {
                _mm512_storeu_si512(tile.add(i * ldt).cast(), lo[i]);
                _mm512_storeu_si512(tile.add(i * ldt + 16).cast(), hi[i]);
            }
        }
    }
}
