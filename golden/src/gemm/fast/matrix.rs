//! Typed, strided matrix views and the operand/output descriptions of [`gemm_packed`].
//!
//! A view is a slice plus a shape and a row stride (in elements), checked once when it is made,
//! so the kernels can never read or write outside the slice. Operands carry their precision in
//! the enum variant ([`Operand::Bf16`] holds raw bfloat16 bits as `u16`), which keeps the typed
//! entry points free of conversions and copies.
//!
//! [`gemm_packed`]: super::gemm_packed

use crate::gemm::GemmError;
use crate::numerics::{OutputFormat, Precision, Requant};

/// Checks a strided shape against a slice length; returns the elements the view spans.
fn check_view(
    what: &'static str,
    len: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
) -> Result<(), GemmError> {
    if rows == 0 || cols == 0 {
        return Err(GemmError::EmptyView { what, rows, cols });
    }
    if row_stride < cols {
        return Err(GemmError::StrideTooSmall {
            what,
            row_stride,
            cols,
        });
    }
    let needed = (rows - 1)
        .checked_mul(row_stride)
        .and_then(|x| x.checked_add(cols));
    match needed {
        Some(needed) if needed <= len => Ok(()),
        _ => Err(GemmError::ViewTooShort {
            what,
            rows,
            cols,
            row_stride,
            len,
        }),
    }
}

/// A read-only `rows × cols` matrix inside a slice, row `i` starting at `i * row_stride`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl<'a, T: Copy> MatRef<'a, T> {
    /// A strided view; fails unless `rows, cols ≥ 1`, `row_stride ≥ cols` and the last row ends
    /// inside `data`.
    pub fn new(
        data: &'a [T],
        rows: usize,
        cols: usize,
        row_stride: usize,
    ) -> Result<Self, GemmError> {
        check_view("matrix view", data.len(), rows, cols, row_stride)?;
        Ok(MatRef {
            data,
            rows,
            cols,
            row_stride,
        })
    }

    /// A dense row-major view (`row_stride == cols`); `data` must hold exactly `rows × cols`.
    pub fn dense(data: &'a [T], rows: usize, cols: usize) -> Result<Self, GemmError> {
        let view = Self::new(data, rows, cols, cols)?;
        if data.len() != rows * cols {
            return Err(GemmError::DenseLength {
                rows,
                cols,
                len: data.len(),
            });
        }
        Ok(view)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Elements between the starts of consecutive rows.
    pub fn row_stride(&self) -> usize {
        self.row_stride
    }

    /// Row `i` (`i < rows`).
    #[inline]
    pub fn row(&self, i: usize) -> &'a [T] {
        let start = i * self.row_stride;
        &self.data[start..start + self.cols]
    }
}

/// A writable `rows × cols` matrix inside a slice, row `i` starting at `i * row_stride`.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    data: &'a mut [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl<'a, T: Copy> MatMut<'a, T> {
    /// A strided view; the same checks as [`MatRef::new`].
    pub fn new(
        data: &'a mut [T],
        rows: usize,
        cols: usize,
        row_stride: usize,
    ) -> Result<Self, GemmError> {
        check_view("matrix view", data.len(), rows, cols, row_stride)?;
        Ok(MatMut {
            data,
            rows,
            cols,
            row_stride,
        })
    }

    /// A dense row-major view; `data` must hold exactly `rows × cols`.
    pub fn dense(data: &'a mut [T], rows: usize, cols: usize) -> Result<Self, GemmError> {
        let len = data.len();
        let view = Self::new(data, rows, cols, cols)?;
        if len != rows * cols {
            return Err(GemmError::DenseLength { rows, cols, len });
        }
        Ok(view)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Elements between the starts of consecutive rows.
    pub fn row_stride(&self) -> usize {
        self.row_stride
    }

    /// A raw handle for disjoint tile writes from several threads (see [`RawMat`]).
    pub(crate) fn raw(&mut self) -> RawMat<T> {
        RawMat {
            ptr: self.data.as_mut_ptr(),
            row_stride: self.row_stride,
        }
    }
}

/// A pointer to a validated [`MatMut`], shared by the worker threads of one GEMM.
///
/// Each worker writes only its own tile of the output, and tiles never overlap, so no element
/// is touched by two threads. The borrow of the `MatMut` it came from outlives the GEMM call.
pub(crate) struct RawMat<T> {
    ptr: *mut T,
    row_stride: usize,
}

impl<T> Clone for RawMat<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for RawMat<T> {}

// SAFETY: a RawMat is only used by the GEMM driver, which hands every worker a disjoint set of
// output elements (one tile each); `T` is a plain number type that is itself Send.
unsafe impl<T: Send> Send for RawMat<T> {}
// SAFETY: as above; shared references to a RawMat only hand out tile rows that no other worker
// touches.
unsafe impl<T: Send> Sync for RawMat<T> {}

impl<T> RawMat<T> {
    /// Columns `j0..j0 + len` of row `i` as a mutable slice.
    ///
    /// # Safety
    /// The element range must lie inside the validated view this came from, the `MatMut` borrow
    /// must still be live, and no other thread may access these elements during the borrow.
    #[inline]
    pub(crate) unsafe fn row_mut<'t>(&self, i: usize, j0: usize, len: usize) -> &'t mut [T] {
        // SAFETY: the caller guarantees bounds, liveness and exclusivity (see above).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(i * self.row_stride + j0), len) }
    }
}

/// An `A` matrix (or the `B` matrix given to [`PackedB::new`](super::PackedB::new)), with its
/// precision: raw bit patterns for the floating formats, `i8` for `int8`.
#[derive(Clone, Copy, Debug)]
pub enum Operand<'a> {
    /// Two's-complement bytes.
    Int8(MatRef<'a, i8>),
    /// Raw bfloat16 bits.
    Bf16(MatRef<'a, u16>),
    /// Raw IEEE binary16 bits.
    Fp16(MatRef<'a, u16>),
}

impl Operand<'_> {
    /// The GEMM precision this operand selects.
    pub fn precision(&self) -> Precision {
        match self {
            Operand::Int8(_) => Precision::Int8,
            Operand::Bf16(_) => Precision::Bf16,
            Operand::Fp16(_) => Precision::Fp16,
        }
    }

    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        match self {
            Operand::Int8(m) => (m.rows, m.cols),
            Operand::Bf16(m) | Operand::Fp16(m) => (m.rows, m.cols),
        }
    }
}

/// Where each output element's accumulation starts.
#[derive(Clone, Copy, Debug, Default)]
pub enum Prior<'a> {
    /// From `+0` (the usual GEMM).
    #[default]
    Zero,
    /// From a prior `f32` accumulator matrix `C` (`M×N`, floating precisions).
    F32(MatRef<'a, f32>),
    /// From a prior `i32` accumulator matrix `C` (`M×N`, `int8`).
    I32(MatRef<'a, i32>),
    /// From the output's current contents (`D += A·B`); only for the raw-accumulator outputs
    /// [`Output::F32`] and [`Output::I32`].
    Output,
}

/// Where the results go, and in which format (the contract's output conversion).
#[derive(Debug)]
pub enum Output<'a> {
    /// The `f32` accumulators, NaN canonicalised (floating precisions).
    F32(MatMut<'a, f32>),
    /// Rounded to bfloat16 bits (floating precisions).
    Bf16(MatMut<'a, u16>),
    /// Rounded to IEEE binary16 bits (floating precisions).
    Fp16(MatMut<'a, u16>),
    /// The `i32` accumulators (`int8`).
    I32(MatMut<'a, i32>),
    /// Requantised to `i8` (`int8`).
    I8(MatMut<'a, i8>, Requant),
}

impl Output<'_> {
    /// The contract's name for this conversion.
    pub fn format(&self) -> OutputFormat {
        match self {
            Output::F32(_) => OutputFormat::F32,
            Output::Bf16(_) => OutputFormat::Bf16,
            Output::Fp16(_) => OutputFormat::Fp16,
            Output::I32(_) => OutputFormat::I32,
            Output::I8(_, r) => OutputFormat::I8(*r),
        }
    }

    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        match self {
            Output::F32(m) => (m.rows, m.cols),
            Output::Bf16(m) | Output::Fp16(m) => (m.rows, m.cols),
            Output::I32(m) => (m.rows, m.cols),
            Output::I8(m, _) => (m.rows, m.cols),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_check_shape_stride_and_length() {
        let data = [0u16; 10];
        assert!(MatRef::new(&data, 2, 3, 7).is_ok()); // 7 + 3 = 10
        let err = MatRef::new(&data, 2, 3, 8).unwrap_err().to_string();
        assert!(err.contains("stride 8") && err.contains("10"), "{err}");
        let err = MatRef::new(&data, 2, 4, 3).unwrap_err().to_string();
        assert!(
            err.contains("stride 3") && err.contains("4 columns"),
            "{err}"
        );
        assert!(MatRef::new(&data, 0, 3, 3).is_err());
        assert!(MatRef::new(&data, usize::MAX, 3, usize::MAX).is_err());
        assert!(MatRef::dense(&data, 3, 3).is_err());
        assert!(MatRef::dense(&data, 2, 5).is_ok());
        let view = MatRef::new(&data, 2, 3, 7).unwrap();
        assert_eq!(view.row(1).len(), 3);
    }
}
