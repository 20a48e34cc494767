//! `B` packed once into the kernels' layout, for weights that are multiplied many times.
//!
//! Layout (the same for every [`Isa`](super::Isa), so one `PackedB` serves all kernels):
//! `B`'s columns are cut into *panels* of [`NR`] = 32 columns; the last panel is padded with
//! zeros. Inside a panel the `k` rows follow each other, so a kernel streams one panel from
//! front to back.
//!
//! - `bf16`/`fp16`: each element is widened (exactly) to `f32`: panel `p` holds `K × 32` floats,
//!   element `(k, j)` at `k·32 + j mod 32`.
//! - `int8`: `k` is grouped in *quads* of 4 consecutive rows (the last quad zero-padded): panel
//!   `p` holds `⌈K/4⌉ × 32 × 4` bytes, element `(k, j)` at `(k/4)·128 + (j mod 32)·4 + k mod 4`.
//!   A VNNI `vpdpbusd` multiplies one such 64-byte row of 16 columns by a broadcast quad of `A`.
//!   The packing also stores, per column, `−128 × Σ_k B[k][j]` (mod 2^32): the correction that
//!   VNNI kernels add because they feed `A + 128` (unsigned) to the instruction.

use super::buffer::AlignedBuf;
use super::matrix::{MatRef, Operand};
use crate::gemm::GemmError;
use crate::numerics::{float, Precision};

/// Columns per panel of a packed `B` (and of every kernel's register tile).
pub const NR: usize = 32;

/// A `K×N` right-hand operand packed for the fast kernels (see the module documentation).
///
/// Pack resident weights once with [`PackedB::new`], then pass the same `PackedB` to any
/// number of [`gemm_packed`](super::gemm_packed) calls, from any number of threads.
#[derive(Clone)]
pub struct PackedB {
    precision: Precision,
    k: usize,
    n: usize,
    data: AlignedBuf,
    vnni_correction: Vec<i32>,
}

impl std::fmt::Debug for PackedB {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedB")
            .field("precision", &self.precision)
            .field("k", &self.k)
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

impl PackedB {
    /// Packs `B` (`K×N`, any row stride); the operand's variant selects the precision.
    pub fn new(b: Operand<'_>) -> Result<Self, GemmError> {
        match b {
            Operand::Bf16(m) => Self::pack_float(Precision::Bf16, m, float::bf16_to_f32),
            Operand::Fp16(m) => Self::pack_float(Precision::Fp16, m, float::fp16_to_f32),
            Operand::Int8(m) => Self::pack_int8(m),
        }
    }

    /// Packs a dense, row-major, little-endian `B` as the byte-level GEMM API takes it
    /// (`K × N` elements of `precision.operand_bytes()` bytes each).
    pub fn from_le_bytes(
        precision: Precision,
        k: usize,
        n: usize,
        bytes: &[u8],
    ) -> Result<Self, GemmError> {
        let expected = k
            .checked_mul(n)
            .and_then(|x| x.checked_mul(precision.operand_bytes()))
            .ok_or(GemmError::TooLarge { m: 1, n, k })?;
        if bytes.len() != expected {
            return Err(GemmError::BufferSize {
                operand: "B",
                expected,
                actual: bytes.len(),
                shape: format!("{k}×{n} {precision}"),
            });
        }
        match precision {
            Precision::Int8 => {
                let values: Vec<i8> = bytes.iter().map(|&x| x as i8).collect();
                Self::new(Operand::Int8(MatRef::dense(&values, k, n)?))
            }
            Precision::Bf16 | Precision::Fp16 => {
                let values: Vec<u16> = bytes
                    .chunks_exact(2)
                    .map(|x| u16::from_le_bytes([x[0], x[1]]))
                    .collect();
                let view = MatRef::dense(&values, k, n)?;
                Self::new(if precision == Precision::Bf16 {
                    Operand::Bf16(view)
                } else {
                    Operand::Fp16(view)
                })
            }
        }
    }

    /// The precision `B` was packed for; `A` must have the same.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Rows of `B` (the accumulation length `K`).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns of `B` (the output width `N`).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of [`NR`]-column panels.
    pub(crate) fn panels(&self) -> usize {
        self.n.div_ceil(NR)
    }

    /// Panel `p` of a floating `B`: `K × NR` widened values.
    pub(crate) fn f32_panel(&self, p: usize) -> &[f32] {
        let len = self.k * NR;
        &self.data.slice::<f32>(self.panels() * len)[p * len..(p + 1) * len]
    }

    /// Panel `p` of an `int8` `B`: `⌈K/4⌉ × NR × 4` bytes.
    pub(crate) fn i8_panel(&self, p: usize) -> &[i8] {
        let len = self.k.div_ceil(4) * NR * 4;
        &self.data.slice::<i8>(self.panels() * len)[p * len..(p + 1) * len]
    }

    /// `−128 × Σ_k B[k][j]` (wrapping) for every padded column `j` of an `int8` `B`.
    pub(crate) fn vnni_correction(&self) -> &[i32] {
        &self.vnni_correction
    }

    fn too_large(k: usize, n: usize) -> GemmError {
        GemmError::TooLarge { m: 1, n, k }
    }

    fn pack_float(
        precision: Precision,
        b: MatRef<'_, u16>,
        widen: impl Fn(u16) -> f32,
    ) -> Result<Self, GemmError> {
        let (k, n) = (b.rows(), b.cols());
        let panels = n.div_ceil(NR);
        let panel_len = k.checked_mul(NR).ok_or(Self::too_large(k, n))?;
        let total = panel_len
            .checked_mul(panels)
            .filter(|t| t.checked_mul(4).is_some())
            .ok_or(Self::too_large(k, n))?;
        let mut data = AlignedBuf::zeroed::<f32>(total);
        let dst = data.slice_mut::<f32>(total);
        for kk in 0..k {
            let row = b.row(kk);
            for (p, chunk) in row.chunks(NR).enumerate() {
                let out = &mut dst[p * panel_len + kk * NR..][..chunk.len()];
                for (o, &bits) in out.iter_mut().zip(chunk) {
                    *o = widen(bits);
                }
            }
        }
        Ok(PackedB {
            precision,
            k,
            n,
            data,
            vnni_correction: Vec::new(),
        })
    }

    fn pack_int8(b: MatRef<'_, i8>) -> Result<Self, GemmError> {
        let (k, n) = (b.rows(), b.cols());
        let panels = n.div_ceil(NR);
        let quads = k.div_ceil(4);
        let panel_len = quads.checked_mul(NR * 4).ok_or(Self::too_large(k, n))?;
        let total = panel_len.checked_mul(panels).ok_or(Self::too_large(k, n))?;
        let mut data = AlignedBuf::zeroed::<i8>(total);
        let dst = data.slice_mut::<i8>(total);
        let mut column_sums = vec![0i32; panels * NR];
        for kk in 0..k {
            let row = b.row(kk);
            for (j, &value) in row.iter().enumerate() {
                let (p, c) = (j / NR, j % NR);
                dst[p * panel_len + (kk / 4) * NR * 4 + c * 4 + kk % 4] = value;
                column_sums[j] = column_sums[j].wrapping_add(i32::from(value));
            }
        }
        let vnni_correction = column_sums.iter().map(|&s| s.wrapping_mul(-128)).collect();
        Ok(PackedB {
            precision: Precision::Int8,
            k,
            n,
            data,
            vnni_correction,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_panels_hold_widened_values_and_zero_padding() {
        // 2×33 bf16: value = row * 100 + col.
        let values: Vec<u16> = (0..2)
            .flat_map(|r| (0..33).map(move |c| float::f32_to_bf16_rne((r * 100 + c) as f32)))
            .collect();
        let packed = PackedB::new(Operand::Bf16(MatRef::dense(&values, 2, 33).unwrap())).unwrap();
        assert_eq!(packed.panels(), 2);
        assert_eq!(packed.f32_panel(0)[NR + 5], 105.0);
        assert_eq!(packed.f32_panel(1)[0], 32.0);
        assert_eq!(packed.f32_panel(1)[NR], 132.0);
        assert_eq!(packed.f32_panel(1)[1], 0.0); // padding
    }

    #[test]
    fn int8_quads_and_correction() {
        // 5×2: B[k][j] = k - 2 + 10 j  (column 0: -2..2, column 1: 8..12)
        let values: Vec<i8> = (0..5)
            .flat_map(|k| (0..2).map(move |j| (k - 2 + 10 * j) as i8))
            .collect();
        let packed = PackedB::new(Operand::Int8(MatRef::dense(&values, 5, 2).unwrap())).unwrap();
        let panel = packed.i8_panel(0);
        assert_eq!(panel.len(), 2 * NR * 4);
        assert_eq!(&panel[0..4], &[-2, -1, 0, 1]);
        assert_eq!(&panel[4..8], &[8, 9, 10, 11]);
        assert_eq!(&panel[NR * 4..NR * 4 + 8], &[2, 0, 0, 0, 12, 0, 0, 0]);
        assert_eq!(packed.vnni_correction()[0], 0);
        assert_eq!(packed.vnni_correction()[1], -128 * 50);
    }

    #[test]
    fn byte_packing_checks_length() {
        let err = PackedB::from_le_bytes(Precision::Fp16, 2, 3, &[0; 11]).unwrap_err();
        assert!(err.to_string().contains("12"), "{err}");
        assert!(PackedB::from_le_bytes(Precision::Fp16, 2, 3, &[0; 12]).is_ok());
    }
}
