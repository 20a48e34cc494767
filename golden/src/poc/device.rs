//! The matrix products of the forward, behind a trait a device implements.
//!
//! The PoC forward is split in two: every matrix product goes to a [`MatmulDevice`] (the CPU
//! golden model here; the simulated accelerator, an FPGA or an ASIC through the driver), and
//! everything else (norms, RoPE, softmax, SiLU, residual adds, reflections, the artifact) stays
//! on the host in [`super::forward`]. Because both sides follow the numeric contract bit for bit,
//! any conforming device gives the same artifact as the CPU alone.
//!
//! Two kinds of products:
//! - **resident weights**: a projection matrix is uploaded once per model
//!   ([`MatmulDevice::upload_weight`]) and referenced by a [`WeightHandle`]; activations stream
//!   per call ([`MatmulDevice::matmul_weight`]). A weight may carry an `f32` bias, which is the
//!   contract's prior accumulator `C` with every row equal to the bias;
//! - **streamed batches**: many small independent products whose both operands are activations
//!   (attention scores `Q·Kᵀ` and `P·V`, one per nonce and head) in one call
//!   ([`MatmulDevice::matmul_batch`]).
//!
//! Every call names its precision (the operands' format) and its output conversion through the
//! output buffer's variant ([`MatOut`]): `f32` (the accumulator), or rounded to bf16/fp16. The
//! accumulation order is the contract's: for each output element, `k` ascending from the bias (or
//! +0), one fused MAC per step.

use crate::numerics::Precision;

/// Refers to a weight matrix resident on a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WeightHandle(pub u32);

/// A weight matrix to make resident: `B` (`K×N`) of the products `A·B`.
///
/// It is given *transposed*, as `N` rows of `K` operands (`bt[j·K + k] = B[k][j]`), which is the
/// Hugging Face `Linear.weight` layout `[out, in]`; devices pack it however they like.
#[derive(Clone, Copy, Debug)]
pub struct WeightUpload<'a> {
    /// A name for errors and traces (`layer3.qkv`).
    pub name: &'a str,
    /// Operand precision (`Bf16` or `Fp16`).
    pub precision: Precision,
    /// Accumulation length (input features).
    pub k: usize,
    /// Output columns (output features).
    pub n: usize,
    /// `N×K` raw operand bits.
    pub bt: &'a [u16],
    /// Optional prior accumulator per output column (`N` values): each output element starts
    /// from `bias[j]` instead of `+0`.
    pub bias: Option<&'a [f32]>,
}

/// Shape and precision of a streamed batch: `count` independent products `A_b[m×k]·B_b[k×n]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSpec {
    /// Operand precision.
    pub precision: Precision,
    /// Number of products.
    pub count: usize,
    /// Rows of each `A_b` and `D_b`.
    pub m: usize,
    /// Accumulation length.
    pub k: usize,
    /// Columns of each `B_b` and `D_b`.
    pub n: usize,
}

/// Where the matrices of a streamed batch lie in a larger buffer, so that a device can read
/// operands and write results in place (attention's values straight from the fused q|k|v rows,
/// its output straight into the rows the next projection reads) instead of the host copying them
/// into dense blocks and back.
///
/// Product `p` is `(outer, inner) = (p / inner_count, p % inner_count)` (a nonce and a head). Its
/// matrix starts at `base + outer·outer_stride + (inner / inner_group)·inner_stride` and its row
/// `i` lies `i·row_stride` further; `inner_group` query heads share one key/value head in
/// grouped-query attention. [`BatchLayout::dense`] is the layout [`MatmulDevice::matmul_batch`]
/// takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLayout {
    /// Offset of product 0's first element.
    pub base: usize,
    /// Distance between consecutive outer indices.
    pub outer_stride: usize,
    /// Products per outer index (at least 1).
    pub inner_count: usize,
    /// Consecutive inner indices that share one matrix (at least 1).
    pub inner_group: usize,
    /// Distance between consecutive shared matrices within an outer index.
    pub inner_stride: usize,
    /// Distance between consecutive rows of a matrix (at least its width).
    pub row_stride: usize,
}

impl BatchLayout {
    /// Matrices of `rows × cols` back to back, row-major.
    pub fn dense(rows: usize, cols: usize) -> Self {
        BatchLayout {
            base: 0,
            outer_stride: rows * cols,
            inner_count: 1,
            inner_group: 1,
            inner_stride: 0,
            row_stride: cols,
        }
    }

    /// Where product `p`'s matrix starts (the layout must have passed [`check_strided`]).
    pub fn offset(&self, p: usize) -> usize {
        let (outer, inner) = (p / self.inner_count, p % self.inner_count);
        self.base + outer * self.outer_stride + inner / self.inner_group * self.inner_stride
    }

    /// One past the last element of product `p`'s `rows × cols` matrix, `None` on overflow.
    fn end(&self, p: usize, rows: usize, cols: usize) -> Option<usize> {
        let (outer, inner) = (p / self.inner_count, p % self.inner_count);
        outer
            .checked_mul(self.outer_stride)?
            .checked_add((inner / self.inner_group).checked_mul(self.inner_stride)?)?
            .checked_add(self.base)?
            .checked_add((rows - 1).checked_mul(self.row_stride)?)?
            .checked_add(cols)
    }

    /// Whether each outer index's products lie within its own `outer_stride` elements, so the
    /// outer indices own disjoint, consecutive slices of the buffer (a device may then fill them
    /// in parallel).
    pub fn outer_blocks_are_disjoint(&self, rows: usize, cols: usize) -> bool {
        let shared = (self.inner_count - 1) / self.inner_group;
        shared
            .checked_mul(self.inner_stride)
            .and_then(|x| x.checked_add((rows - 1).checked_mul(self.row_stride)?))
            .and_then(|x| x.checked_add(cols))
            .is_some_and(|span| span <= self.outer_stride)
    }
}

/// An operand or result of [`MatmulDevice::matmul_batch_strided`]: its buffer and where each
/// product's matrix lies in it.
#[derive(Debug)]
pub struct Strided<T> {
    /// The buffer.
    pub data: T,
    /// Where each product's matrix lies in `data`.
    pub layout: BatchLayout,
}

/// An output buffer; its variant is the output conversion of the call.
#[derive(Debug)]
pub enum MatOut<'a> {
    /// The `f32` accumulator (NaN canonicalised).
    F32(&'a mut [f32]),
    /// Rounded to bfloat16 (raw bits).
    Bf16(&'a mut [u16]),
    /// Rounded to IEEE binary16 (raw bits).
    Fp16(&'a mut [u16]),
}

impl MatOut<'_> {
    /// Number of elements the buffer holds.
    pub fn len(&self) -> usize {
        match self {
            MatOut::F32(d) => d.len(),
            MatOut::Bf16(d) | MatOut::Fp16(d) => d.len(),
        }
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The contract name of the output conversion.
    pub fn format_name(&self) -> &'static str {
        match self {
            MatOut::F32(_) => "f32",
            MatOut::Bf16(_) => "bf16",
            MatOut::Fp16(_) => "fp16",
        }
    }
}

/// Why a device call failed. Devices fail and time out; the host reports it and may retry on
/// another device.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeviceError {
    /// The call itself was malformed (wrong buffer length, unknown handle, unsupported precision).
    #[error("device {device} rejected the call: {reason}")]
    Rejected {
        /// Device description.
        device: String,
        /// What was wrong and what would be right.
        reason: String,
    },
    /// The device failed while running a well-formed call.
    #[error("device {device} failed: {reason}")]
    Failed {
        /// Device description.
        device: String,
        /// What happened.
        reason: String,
    },
    /// The device did not answer in time.
    #[error("device {device} timed out after {seconds:.1} s")]
    Timeout {
        /// Device description.
        device: String,
        /// How long the host waited.
        seconds: f64,
    },
}

/// A device that runs the forward's matrix products under the numeric contract.
///
/// Stateful (`&mut self`: command queues, resident memory) and `Send`, so a worker thread can own
/// it. Implementations must give, for every call, exactly the bits of the contract GEMM
/// (`golden::gemm::reference::gemm`) on the same operands.
pub trait MatmulDevice: Send {
    /// A short human-readable description (`cpu golden (2 threads)`, `sim:4x4`, a PCI address).
    fn describe(&self) -> String;

    /// Makes a weight matrix resident and returns its handle.
    fn upload_weight(&mut self, weight: &WeightUpload<'_>) -> Result<WeightHandle, DeviceError>;

    /// Frees every resident weight (a new model is about to be uploaded).
    fn release_weights(&mut self) -> Result<(), DeviceError>;

    /// `D[m×N] = convert(bias + A[m×K]·B)` for the resident `B` of `weight`: `a` holds `m×K`
    /// operands of the weight's precision, row-major; `d` holds `m×N` outputs.
    fn matmul_weight(
        &mut self,
        weight: WeightHandle,
        a: &[u16],
        m: usize,
        d: MatOut<'_>,
    ) -> Result<(), DeviceError>;

    /// `D_b = convert(A_b·B_b)` for `b < count`: `a` holds the `A_b` (`m×k` each) back to back,
    /// `b` the `B_b` (`k×n` each), `d` the `D_b` (`m×n` each), all row-major.
    fn matmul_batch(
        &mut self,
        spec: &BatchSpec,
        a: &[u16],
        b: &[u16],
        d: MatOut<'_>,
    ) -> Result<(), DeviceError>;

    /// [`MatmulDevice::matmul_batch`] with each operand and the result where its
    /// [`BatchLayout`] says (`A_p` is `m×k`, `B_p` `k×n`, `D_p` `m×n`); elements of `d` outside
    /// every `D_p` keep their values. Where products' results overlap, the later product's
    /// values stand.
    ///
    /// The default copies `A` and `B` into dense blocks, runs [`MatmulDevice::matmul_batch`] and
    /// copies the results out ([`strided_by_copies`]): right for any device, and what a driver
    /// moving operands into device memory does anyway. A device that reads and writes the
    /// host's memory directly (the CPU) overrides it to skip the copies.
    fn matmul_batch_strided(
        &mut self,
        spec: &BatchSpec,
        a: Strided<&[u16]>,
        b: Strided<&[u16]>,
        d: Strided<MatOut<'_>>,
    ) -> Result<(), DeviceError> {
        strided_by_copies(self, spec, a, b, d)
    }
}

/// Checks a [`MatmulDevice::matmul_batch_strided`] call: the shape as [`check_batch`] does,
/// layouts with at least one product per outer index and one per group and rows at least as
/// wide as the matrix, and every product's matrix inside its buffer.
pub fn check_strided(
    device: &str,
    spec: &BatchSpec,
    a: &Strided<&[u16]>,
    b: &Strided<&[u16]>,
    d: &Strided<MatOut<'_>>,
) -> Result<(), DeviceError> {
    check_batch_spec(device, spec)?;
    let reject = |reason: String| {
        Err(DeviceError::Rejected {
            device: device.to_owned(),
            reason,
        })
    };
    let operands = [
        ("A", &a.layout, spec.m, spec.k, a.data.len()),
        ("B", &b.layout, spec.k, spec.n, b.data.len()),
        ("D", &d.layout, spec.m, spec.n, d.data.len()),
    ];
    for (name, layout, rows, cols, len) in operands {
        if layout.inner_count == 0 || layout.inner_group == 0 {
            return reject(format!(
                "batch operand {name}: inner_count and inner_group must be at least 1, got {} and {}",
                layout.inner_count, layout.inner_group
            ));
        }
        if layout.row_stride < cols {
            return reject(format!(
                "batch operand {name}: row stride {} is narrower than its {cols} columns",
                layout.row_stride
            ));
        }
        if spec.count == 0 {
            continue;
        }
        // Each inner index reaches furthest in the last outer index that has it: the last one
        // or, for the inner indices a partial last one lacks, the one before.
        let last_outer = (spec.count - 1) / layout.inner_count * layout.inner_count;
        for p in last_outer.saturating_sub(layout.inner_count)..spec.count {
            match layout.end(p, rows, cols) {
                Some(end) if end <= len => {}
                _ => {
                    return reject(format!(
                        "batch operand {name}: product {p}'s {rows}×{cols} matrix at offset {} \
                         with row stride {} does not fit in its {len} elements",
                        layout.offset(p),
                        layout.row_stride
                    ))
                }
            }
        }
    }
    Ok(())
}

/// [`MatmulDevice::matmul_batch_strided`] by copies: `A` and `B` gathered into dense blocks, one
/// [`MatmulDevice::matmul_batch`], the results scattered into place in product order.
pub fn strided_by_copies<D: MatmulDevice + ?Sized>(
    device: &mut D,
    spec: &BatchSpec,
    a: Strided<&[u16]>,
    b: Strided<&[u16]>,
    d: Strided<MatOut<'_>>,
) -> Result<(), DeviceError> {
    check_strided(&device.describe(), spec, &a, &b, &d)?;
    let (m, k, n, count) = (spec.m, spec.k, spec.n, spec.count);
    let a_dense = gather(&a, count, m, k);
    let b_dense = gather(&b, count, k, n);
    match d.data {
        MatOut::F32(out) => {
            let mut dense = vec![0f32; count * m * n];
            device.matmul_batch(spec, &a_dense, &b_dense, MatOut::F32(&mut dense))?;
            scatter(&dense, out, &d.layout, count, m, n);
        }
        MatOut::Bf16(out) => {
            let mut dense = vec![0u16; count * m * n];
            device.matmul_batch(spec, &a_dense, &b_dense, MatOut::Bf16(&mut dense))?;
            scatter(&dense, out, &d.layout, count, m, n);
        }
        MatOut::Fp16(out) => {
            let mut dense = vec![0u16; count * m * n];
            device.matmul_batch(spec, &a_dense, &b_dense, MatOut::Fp16(&mut dense))?;
            scatter(&dense, out, &d.layout, count, m, n);
        }
    }
    Ok(())
}

/// The `count` matrices of `src` (`rows × cols` each) back to back.
fn gather(src: &Strided<&[u16]>, count: usize, rows: usize, cols: usize) -> Vec<u16> {
    let mut dense = Vec::with_capacity(count * rows * cols);
    for p in 0..count {
        let start = src.layout.offset(p);
        for i in 0..rows {
            let row = start + i * src.layout.row_stride;
            dense.extend_from_slice(&src.data[row..row + cols]);
        }
    }
    dense
}

/// The `count` dense matrices of `dense` written where `layout` places them in `out`.
fn scatter<T: Copy>(
    dense: &[T],
    out: &mut [T],
    layout: &BatchLayout,
    count: usize,
    rows: usize,
    cols: usize,
) {
    for (p, matrix) in dense.chunks_exact(rows * cols).enumerate().take(count) {
        let start = layout.offset(p);
        for (i, row) in matrix.chunks_exact(cols).enumerate() {
            let at = start + i * layout.row_stride;
            out[at..at + cols].copy_from_slice(row);
        }
    }
}

/// Checks a streamed batch's precision and shape (shared by [`check_batch`] and
/// [`check_strided`]).
fn check_batch_spec(device: &str, spec: &BatchSpec) -> Result<(), DeviceError> {
    let reject = |reason: String| {
        Err(DeviceError::Rejected {
            device: device.to_owned(),
            reason,
        })
    };
    if spec.precision == Precision::Int8 {
        return reject("the PoC forward runs bf16 or fp16 products, not int8".into());
    }
    if spec.m == 0 || spec.k == 0 || spec.n == 0 {
        return reject(format!(
            "batch shape {}×{}×{} has a zero dimension",
            spec.m, spec.k, spec.n
        ));
    }
    Ok(())
}

/// Checks buffer lengths of a [`MatmulDevice::matmul_batch`] call (shared by implementations).
pub fn check_batch(
    device: &str,
    spec: &BatchSpec,
    a: &[u16],
    b: &[u16],
    d: &MatOut<'_>,
) -> Result<(), DeviceError> {
    check_batch_spec(device, spec)?;
    let reject = |reason: String| {
        Err(DeviceError::Rejected {
            device: device.to_owned(),
            reason,
        })
    };
    let want = [
        ("A", spec.count * spec.m * spec.k, a.len()),
        ("B", spec.count * spec.k * spec.n, b.len()),
        ("D", spec.count * spec.m * spec.n, d.len()),
    ];
    for (name, expected, actual) in want {
        if expected != actual {
            return reject(format!(
                "batch operand {name} has {actual} elements but {} products of {}×{}×{} need {expected}",
                spec.count, spec.m, spec.k, spec.n
            ));
        }
    }
    Ok(())
}

/// Checks that an output conversion fits a precision (fp16 outputs need not follow fp16
/// operands, but int8 never appears in the forward).
pub fn check_upload(device: &str, w: &WeightUpload<'_>) -> Result<(), DeviceError> {
    let reject = |reason: String| {
        Err(DeviceError::Rejected {
            device: device.to_owned(),
            reason,
        })
    };
    if w.precision == Precision::Int8 {
        return reject(format!(
            "weight {}: the PoC forward uploads bf16 or fp16 weights",
            w.name
        ));
    }
    if w.k == 0 || w.n == 0 || w.bt.len() != w.k * w.n {
        return reject(format!(
            "weight {}: {} operands do not form a non-empty {}×{} matrix",
            w.name,
            w.bt.len(),
            w.n,
            w.k
        ));
    }
    if let Some(bias) = w.bias {
        if bias.len() != w.n {
            return reject(format!(
                "weight {}: bias has {} values but the matrix has {} output columns",
                w.name,
                bias.len(),
                w.n
            ));
        }
    }
    Ok(())
}

/// A boxed device is a device, so callers can pick one at run time (`Engine<Box<dyn …>>`).
impl<T: MatmulDevice + ?Sized> MatmulDevice for Box<T> {
    fn describe(&self) -> String {
        (**self).describe()
    }

    fn upload_weight(&mut self, weight: &WeightUpload<'_>) -> Result<WeightHandle, DeviceError> {
        (**self).upload_weight(weight)
    }

    fn release_weights(&mut self) -> Result<(), DeviceError> {
        (**self).release_weights()
    }

    fn matmul_weight(
        &mut self,
        weight: WeightHandle,
        a: &[u16],
        m: usize,
        d: MatOut<'_>,
    ) -> Result<(), DeviceError> {
        (**self).matmul_weight(weight, a, m, d)
    }

    fn matmul_batch(
        &mut self,
        spec: &BatchSpec,
        a: &[u16],
        b: &[u16],
        d: MatOut<'_>,
    ) -> Result<(), DeviceError> {
        (**self).matmul_batch(spec, a, b, d)
    }

    fn matmul_batch_strided(
        &mut self,
        spec: &BatchSpec,
        a: Strided<&[u16]>,
        b: Strided<&[u16]>,
        d: Strided<MatOut<'_>>,
    ) -> Result<(), DeviceError> {
        (**self).matmul_batch_strided(spec, a, b, d)
    }
}

/// The contract's `B` (`K×N`, row-major) from an upload's transposed `bt` (`N×K`), in bands of
/// rows spread over rayon's threads (a plain strided loop is several times slower on large
/// weights).
pub fn transpose_upload(w: &WeightUpload<'_>) -> Vec<u16> {
    use rayon::prelude::*;
    const BAND: usize = 64;
    let (k, n) = (w.k, w.n);
    let mut b = vec![0u16; k * n];
    b.par_chunks_mut(BAND * n)
        .enumerate()
        .for_each(|(band, rows)| {
            let k0 = band * BAND;
            let height = rows.len() / n;
            for (j, source) in w.bt.chunks_exact(k).enumerate() {
                for (r, &v) in source[k0..k0 + height].iter().enumerate() {
                    rows[r * n + j] = v;
                }
            }
        });
    b
}
