//! Packing `A` into the kernels' row panels, once per GEMM.
//!
//! A panel holds `r ≤ MR` consecutive rows of `A`, interleaved so that a kernel reads the `r`
//! values of one `k` (floats) or one quad of 4 `k` (`int8`) from consecutive addresses:
//!
//! - floats: `panel[k·r + i] = widen(A[row0 + i][k])`, widening bf16/fp16 to `f32` exactly;
//! - `int8`: `panel[(q·r + i)·4 + t] = A[row0 + i][4q + t]` in the kernel's [`ALayout`], the
//!   last quad padded with zeros (`0x80` in the offset layout, which also stands for 0).
//!
//! Floats are converted a chunk of 64 `k` at a time into a small row-major buffer (a loop the
//! compiler vectorises) and then transposed into the panel; on x86 the conversion is compiled
//! for AVX2.

use super::convert::{widen_bf16, widen_fp16};
use super::int8_kernels::ALayout;
use super::matrix::MatRef;
use super::Isa;

/// The most rows any kernel's register block has.
pub(crate) const MAX_MR: usize = 14;

/// Packs rows `row0..row0 + r` of a floating `A` (all `K` columns) into `panel` (`K·r` floats).
pub(crate) fn float_panel(
    isa: Isa,
    fp16: bool,
    a: &MatRef<'_, u16>,
    row0: usize,
    panel: &mut [f32],
) {
    match isa {
        Isa::Portable => float_panel_with(fp16, a, row0, panel),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: every non-portable kernel family requires AVX2 and was checked against this
        // CPU before the GEMM started.
        _ => unsafe { float_panel_avx2(fp16, a, row0, panel) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => float_panel_with(fp16, a, row0, panel),
    }
}

/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn float_panel_avx2(fp16: bool, a: &MatRef<'_, u16>, row0: usize, panel: &mut [f32]) {
    float_panel_with(fp16, a, row0, panel);
}

#[inline(always)]
fn float_panel_with(fp16: bool, a: &MatRef<'_, u16>, row0: usize, panel: &mut [f32]) {
    if fp16 {
        transpose_widen(a, row0, panel, widen_fp16);
    } else {
        transpose_widen(a, row0, panel, widen_bf16);
    }
}

#[inline(always)]
fn transpose_widen(a: &MatRef<'_, u16>, row0: usize, panel: &mut [f32], widen: fn(u16) -> f32) {
    const CHUNK: usize = 64;
    let k = a.cols();
    let r = panel.len() / k;
    assert!(r <= MAX_MR && panel.len() == r * k && row0 + r <= a.rows());
    let mut rows = [[0f32; CHUNK]; MAX_MR];
    for k0 in (0..k).step_by(CHUNK) {
        let len = CHUNK.min(k - k0);
        for (i, buffer) in rows[..r].iter_mut().enumerate() {
            let src = &a.row(row0 + i)[k0..k0 + len];
            for (dst, &bits) in buffer[..len].iter_mut().zip(src) {
                *dst = widen(bits);
            }
        }
        for t in 0..len {
            let dst = &mut panel[(k0 + t) * r..(k0 + t + 1) * r];
            for (i, d) in dst.iter_mut().enumerate() {
                *d = rows[i][t];
            }
        }
    }
}

/// Packs rows `row0..row0 + r` of an `int8` `A` into `panel` in layout `layout` (`I8` and
/// `U8Offset` as bytes; for `I16` `panel` holds the little-endian bytes of the `i16` values),
/// `⌈K/4⌉·r` quads.
pub(crate) fn int8_panel(layout: ALayout, a: &MatRef<'_, i8>, row0: usize, panel: &mut [u8]) {
    let k = a.cols();
    let quads = k.div_ceil(4);
    let quad_bytes = 4 * layout.element_bytes();
    let r = panel.len() / (quads * quad_bytes);
    assert!(panel.len() == r * quads * quad_bytes && row0 + r <= a.rows());
    let xor = if layout == ALayout::U8Offset { 0x80 } else { 0 };
    for i in 0..r {
        let row = a.row(row0 + i);
        for q in 0..quads {
            let mut quad = [0i8; 4];
            let src = &row[4 * q..(4 * q + 4).min(k)];
            quad[..src.len()].copy_from_slice(src);
            let at = (q * r + i) * quad_bytes;
            let dst = &mut panel[at..at + quad_bytes];
            match layout {
                ALayout::I8 | ALayout::U8Offset => {
                    for (d, &x) in dst.iter_mut().zip(&quad) {
                        *d = (x as u8) ^ xor;
                    }
                }
                ALayout::I16 => {
                    for (d, &x) in dst.chunks_exact_mut(2).zip(&quad) {
                        d.copy_from_slice(&i16::from(x).to_le_bytes());
                    }
                }
            }
        }
    }
}
