//! Two CPU implementations of [`MatmulDevice`]: the fast golden model and the reference.
//!
//! [`CpuDevice`] is what `golden poc` runs: weights are packed once into panels of [`NR`]
//! columns, and a register-blocked kernel computes [`MR`]×[`NR`] output tiles with `k` ascending
//! for every element, so it performs exactly the contract's MAC sequence. The MAC is a hardware
//! `f32` fused multiply-add where the CPU has one (IEEE FMA rounds `acc + a·b` once, which is the
//! contract's MAC), and otherwise the `f64` form of [`crate::numerics::mac::fast`]; both give the
//! contract's bits. Threads split the rows; each element is computed by one thread in one fixed
//! order, so results do not depend on the thread count.
//!
//! [`ReferenceDevice`] runs every product through [`crate::gemm::reference::gemm`] (exact MAC,
//! triple loop). It is slow and obviously right; tests run the forward on both and require equal
//! artifact bits, which is the "device runs only the GEMMs" proof in miniature.

use crate::gemm::{self, GemmSpec};
use crate::numerics::{float, OutputFormat, Precision};

use super::device::{
    check_batch, check_upload, BatchSpec, DeviceError, MatOut, MatmulDevice, WeightHandle,
    WeightUpload,
};

/// Columns per packed weight panel (one AVX-512 register or two AVX2 registers of `f32`).
pub const NR: usize = 16;
/// Rows per register tile.
pub const MR: usize = 4;

/// The contract's floating MAC, two equivalent ways.
trait MacOp {
    fn mac(acc: f32, a: f32, b: f32) -> f32;
}

/// Hardware `f32` FMA (one rounding of the exact `acc + a·b`).
struct HwFma;
impl MacOp for HwFma {
    #[inline(always)]
    fn mac(acc: f32, a: f32, b: f32) -> f32 {
        a.mul_add(b, acc)
    }
}

/// `f64` product (exact for bf16/fp16 operands) and sum, rounded to `f32`.
struct F64Mac;
impl MacOp for F64Mac {
    #[inline(always)]
    fn mac(acc: f32, a: f32, b: f32) -> f32 {
        (f64::from(acc) + f64::from(a) * f64::from(b)) as f32
    }
}

/// An element of a packed weight panel.
trait PanelElem: Copy + Send + Sync {
    fn to_f32(self) -> f32;
}
/// bf16 panels stay 16-bit; decoding is a shift.
#[derive(Clone, Copy)]
struct Bf16Bits(u16);
impl PanelElem for Bf16Bits {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f32::from_bits(u32::from(self.0) << 16)
    }
}
impl PanelElem for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

/// A packed weight: panels of [`NR`] columns, each `K×NR`, columns past `N` zero.
enum Panels {
    Bf16(Vec<Bf16Bits>),
    /// fp16 weights are decoded once to `f32` (exact), since fp16 decoding is not a shift.
    F32(Vec<f32>),
}

struct Resident {
    precision: Precision,
    k: usize,
    n: usize,
    panels: Panels,
    /// Prior accumulator per column, padded to a multiple of [`NR`] (zeros without a bias).
    bias: Vec<f32>,
}

/// The fast CPU golden model of a matmul device.
pub struct CpuDevice {
    threads: usize,
    use_fma: bool,
    weights: Vec<Resident>,
}

impl CpuDevice {
    /// A device using `threads` threads (at least 1) and the hardware FMA when present.
    pub fn new(threads: usize) -> Self {
        CpuDevice {
            threads: threads.max(1),
            use_fma: hardware_fma(),
            weights: Vec::new(),
        }
    }

    /// The same device without the hardware FMA path (the portable `f64` MAC); used to test that
    /// both paths give the same bits.
    pub fn portable(threads: usize) -> Self {
        CpuDevice {
            use_fma: false,
            ..CpuDevice::new(threads)
        }
    }

    fn reject(&self, reason: String) -> DeviceError {
        DeviceError::Rejected {
            device: self.describe(),
            reason,
        }
    }
}

fn hardware_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl MatmulDevice for CpuDevice {
    fn describe(&self) -> String {
        format!(
            "cpu golden ({} thread(s), {} MAC)",
            self.threads,
            if self.use_fma { "fma" } else { "f64" }
        )
    }

    fn upload_weight(&mut self, w: &WeightUpload<'_>) -> Result<WeightHandle, DeviceError> {
        check_upload(&self.describe(), w)?;
        let format = w
            .precision
            .operand_format()
            .expect("checked: floating precision");
        let panels_count = w.n.div_ceil(NR);
        let k = w.k;
        let gather = |p: usize, kk: usize, c: usize| -> u16 {
            let j = p * NR + c;
            if j < w.n {
                w.bt[j * k + kk]
            } else {
                0
            }
        };
        let panels = match w.precision {
            Precision::Bf16 => {
                let mut v = Vec::with_capacity(panels_count * k * NR);
                for p in 0..panels_count {
                    for kk in 0..k {
                        v.extend((0..NR).map(|c| Bf16Bits(gather(p, kk, c))));
                    }
                }
                Panels::Bf16(v)
            }
            _ => {
                let mut v = Vec::with_capacity(panels_count * k * NR);
                for p in 0..panels_count {
                    for kk in 0..k {
                        v.extend((0..NR).map(|c| format.decode(u32::from(gather(p, kk, c)))));
                    }
                }
                Panels::F32(v)
            }
        };
        let mut bias = vec![0.0; panels_count * NR];
        if let Some(b) = w.bias {
            bias[..w.n].copy_from_slice(b);
        }
        self.weights.push(Resident {
            precision: w.precision,
            k: w.k,
            n: w.n,
            panels,
            bias,
        });
        Ok(WeightHandle(self.weights.len() as u32 - 1))
    }

    fn release_weights(&mut self) -> Result<(), DeviceError> {
        self.weights.clear();
        Ok(())
    }

    fn matmul_weight(
        &mut self,
        weight: WeightHandle,
        a: &[u16],
        m: usize,
        d: MatOut<'_>,
    ) -> Result<(), DeviceError> {
        let res = self
            .weights
            .get(weight.0 as usize)
            .ok_or_else(|| self.reject(format!("no resident weight with handle {}", weight.0)))?;
        if m == 0 || a.len() != m * res.k || d.len() != m * res.n {
            return Err(self.reject(format!(
                "weight product of {m} rows × {}×{} needs A of {} and D of {} elements, got {} and {}",
                res.k,
                res.n,
                m * res.k,
                m * res.n,
                a.len(),
                d.len()
            )));
        }
        let precision = res.precision;
        let (k, n) = (res.k, res.n);
        let threads = self.threads.min(m.div_ceil(MR)).max(1);
        let rows_per = m.div_ceil(threads).div_ceil(MR) * MR;
        let use_fma = self.use_fma;
        let mut acc = vec![0f32; m * n];
        std::thread::scope(|scope| {
            for (t, out) in acc.chunks_mut(rows_per * n).enumerate() {
                let rows = out.len() / n;
                let a_rows = &a[t * rows_per * k..(t * rows_per + rows) * k];
                scope.spawn(move || {
                    let a32 = decode_operands(precision, a_rows);
                    match &res.panels {
                        Panels::Bf16(p) => run_weight(use_fma, &a32, rows, k, n, p, &res.bias, out),
                        Panels::F32(p) => run_weight(use_fma, &a32, rows, k, n, p, &res.bias, out),
                    }
                });
            }
        });
        write_out(&acc, d);
        Ok(())
    }

    fn matmul_batch(
        &mut self,
        spec: &BatchSpec,
        a: &[u16],
        b: &[u16],
        d: MatOut<'_>,
    ) -> Result<(), DeviceError> {
        check_batch(&self.describe(), spec, a, b, &d)?;
        let precision = spec.precision;
        let (m, k, n) = (spec.m, spec.k, spec.n);
        let threads = self.threads.min(spec.count).max(1);
        let per = spec.count.div_ceil(threads).max(1);
        let use_fma = self.use_fma;
        let mut acc = vec![0f32; spec.count * m * n];
        std::thread::scope(|scope| {
            for (t, out) in acc.chunks_mut(per * m * n).enumerate() {
                let count = out.len() / (m * n);
                let first = t * per;
                let a = &a[first * m * k..(first + count) * m * k];
                let b = &b[first * k * n..(first + count) * k * n];
                scope.spawn(move || {
                    let a32 = decode_operands(precision, a);
                    let b32 = decode_operands(precision, b);
                    run_batch(use_fma, &a32, &b32, count, m, k, n, out);
                });
            }
        });
        write_out(&acc, d);
        Ok(())
    }
}

/// Decodes bf16/fp16 operands to `f32` (exact).
fn decode_operands(precision: Precision, bits: &[u16]) -> Vec<f32> {
    match precision {
        Precision::Bf16 => bits.iter().map(|&b| float::bf16_to_f32(b)).collect(),
        _ => bits.iter().map(|&b| float::fp16_to_f32(b)).collect(),
    }
}

/// The output stage of the contract: canonical NaN for `f32`, round-to-nearest-even otherwise.
fn write_out(acc: &[f32], d: MatOut<'_>) {
    match d {
        MatOut::F32(d) => {
            for (o, &v) in d.iter_mut().zip(acc) {
                *o = float::canonicalize_f32(v);
            }
        }
        MatOut::Bf16(d) => {
            for (o, &v) in d.iter_mut().zip(acc) {
                *o = float::f32_to_bf16_rne(v);
            }
        }
        MatOut::Fp16(d) => {
            for (o, &v) in d.iter_mut().zip(acc) {
                *o = float::f32_to_fp16_rne(v);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_weight<E: PanelElem>(
    use_fma: bool,
    a: &[f32],
    m: usize,
    k: usize,
    n: usize,
    panels: &[E],
    bias: &[f32],
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if use_fma {
        // SAFETY: `use_fma` is only true when `hardware_fma()` detected AVX2 and FMA at run time.
        unsafe { weight_kernel_fma(a, m, k, n, panels, bias, out) };
        return;
    }
    let _ = use_fma;
    weight_kernel::<E, F64Mac>(a, m, k, n, panels, bias, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn weight_kernel_fma<E: PanelElem>(
    a: &[f32],
    m: usize,
    k: usize,
    n: usize,
    panels: &[E],
    bias: &[f32],
    out: &mut [f32],
) {
    weight_kernel::<E, HwFma>(a, m, k, n, panels, bias, out);
}

/// Rows of `A` kept hot while the weight panels stream past.
const MC: usize = 64;

#[inline(always)]
fn weight_kernel<E: PanelElem, M: MacOp>(
    a: &[f32],
    m: usize,
    k: usize,
    n: usize,
    panels: &[E],
    bias: &[f32],
    out: &mut [f32],
) {
    let panel_len = k * NR;
    for r0 in (0..m).step_by(MC) {
        let r1 = (r0 + MC).min(m);
        for (p, panel) in panels.chunks_exact(panel_len).enumerate() {
            let init: &[f32; NR] = bias[p * NR..(p + 1) * NR].try_into().expect("NR slice");
            let cols = NR.min(n - p * NR);
            let mut r = r0;
            while r + MR <= r1 {
                let tile = micro::<E, M, MR>(&a[r * k..(r + MR) * k], k, panel, init);
                store(&tile, out, r, n, p * NR, cols);
                r += MR;
            }
            while r < r1 {
                let tile = micro::<E, M, 1>(&a[r * k..(r + 1) * k], k, panel, init);
                store(&tile, out, r, n, p * NR, cols);
                r += 1;
            }
        }
    }
}

#[inline(always)]
fn store<const R: usize>(
    tile: &[[f32; NR]; R],
    out: &mut [f32],
    row: usize,
    n: usize,
    col: usize,
    cols: usize,
) {
    for (r, values) in tile.iter().enumerate() {
        let at = (row + r) * n + col;
        out[at..at + cols].copy_from_slice(&values[..cols]);
    }
}

/// One `R×NR` tile: for each element, `k` ascending from the bias, one MAC per step.
#[inline(always)]
fn micro<E: PanelElem, M: MacOp, const R: usize>(
    a: &[f32],
    k: usize,
    panel: &[E],
    init: &[f32; NR],
) -> [[f32; NR]; R] {
    let mut acc = [*init; R];
    let rows: [&[f32]; R] = std::array::from_fn(|r| &a[r * k..(r + 1) * k]);
    for (kk, b) in panel.chunks_exact(NR).enumerate().take(k) {
        let b: [f32; NR] = std::array::from_fn(|c| b[c].to_f32());
        for r in 0..R {
            let av = rows[r][kk];
            for c in 0..NR {
                acc[r][c] = M::mac(acc[r][c], av, b[c]);
            }
        }
    }
    acc
}

#[allow(clippy::too_many_arguments)]
fn run_batch(
    use_fma: bool,
    a: &[f32],
    b: &[f32],
    count: usize,
    m: usize,
    k: usize,
    n: usize,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if use_fma {
        // SAFETY: `use_fma` is only true when `hardware_fma()` detected AVX2 and FMA at run time.
        unsafe { batch_kernel_fma(a, b, count, m, k, n, out) };
        return;
    }
    let _ = use_fma;
    batch_kernel::<F64Mac>(a, b, count, m, k, n, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn batch_kernel_fma(
    a: &[f32],
    b: &[f32],
    count: usize,
    m: usize,
    k: usize,
    n: usize,
    out: &mut [f32],
) {
    batch_kernel::<HwFma>(a, b, count, m, k, n, out);
}

/// Small products, i-k-j order: row `i` of the output accumulates `k` ascending, vectorised over
/// `j` (each element still sees its own MACs in `k` order).
#[inline(always)]
fn batch_kernel<M: MacOp>(
    a: &[f32],
    b: &[f32],
    count: usize,
    m: usize,
    k: usize,
    n: usize,
    out: &mut [f32],
) {
    for p in 0..count {
        let ap = &a[p * m * k..(p + 1) * m * k];
        let bp = &b[p * k * n..(p + 1) * k * n];
        let op = &mut out[p * m * n..(p + 1) * m * n];
        for (arow, orow) in ap.chunks_exact(k).zip(op.chunks_exact_mut(n)) {
            orow.fill(0.0);
            for (&av, brow) in arow.iter().zip(bp.chunks_exact(n)) {
                for (o, &bv) in orow.iter_mut().zip(brow) {
                    *o = M::mac(*o, av, bv);
                }
            }
        }
    }
}

/// Every product through the reference GEMM (exact MAC, triple loop).
#[derive(Default)]
pub struct ReferenceDevice {
    /// Each weight as the contract's `B` (`K×N`, little-endian bytes) with its `C` row.
    weights: Vec<(GemmSpec, Vec<u8>, Option<Vec<f32>>)>,
}

impl ReferenceDevice {
    /// An empty reference device.
    pub fn new() -> Self {
        ReferenceDevice::default()
    }
}

fn output_format(d: &MatOut<'_>) -> OutputFormat {
    match d {
        MatOut::F32(_) => OutputFormat::F32,
        MatOut::Bf16(_) => OutputFormat::Bf16,
        MatOut::Fp16(_) => OutputFormat::Fp16,
    }
}

fn bytes_to_out(bytes: &[u8], d: MatOut<'_>) {
    match d {
        MatOut::F32(d) => {
            for (o, c) in d.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        MatOut::Bf16(d) | MatOut::Fp16(d) => {
            for (o, c) in d.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = u16::from_le_bytes([c[0], c[1]]);
            }
        }
    }
}

fn le16(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl MatmulDevice for ReferenceDevice {
    fn describe(&self) -> String {
        "cpu reference (exact MAC)".into()
    }

    fn upload_weight(&mut self, w: &WeightUpload<'_>) -> Result<WeightHandle, DeviceError> {
        check_upload(&self.describe(), w)?;
        let mut b = vec![0u16; w.k * w.n];
        for j in 0..w.n {
            for kk in 0..w.k {
                b[kk * w.n + j] = w.bt[j * w.k + kk];
            }
        }
        let spec = GemmSpec::new(w.precision, 1, w.n, w.k);
        self.weights
            .push((spec, le16(&b), w.bias.map(<[f32]>::to_vec)));
        Ok(WeightHandle(self.weights.len() as u32 - 1))
    }

    fn release_weights(&mut self) -> Result<(), DeviceError> {
        self.weights.clear();
        Ok(())
    }

    fn matmul_weight(
        &mut self,
        weight: WeightHandle,
        a: &[u16],
        m: usize,
        d: MatOut<'_>,
    ) -> Result<(), DeviceError> {
        let describe = self.describe();
        let (spec, b, bias) =
            self.weights
                .get(weight.0 as usize)
                .ok_or_else(|| DeviceError::Rejected {
                    device: describe.clone(),
                    reason: format!("no resident weight with handle {}", weight.0),
                })?;
        let spec = GemmSpec {
            m,
            accumulate: bias.is_some(),
            output: output_format(&d),
            ..*spec
        };
        let c: Option<Vec<u8>> = bias.as_ref().map(|bias| {
            (0..m)
                .flat_map(|_| bias.iter().flat_map(|v| v.to_bits().to_le_bytes()))
                .collect()
        });
        let mut out = vec![0u8; spec.d_bytes()];
        gemm::reference::gemm(&spec, &le16(a), b, c.as_deref(), &mut out).map_err(|e| {
            DeviceError::Rejected {
                device: describe,
                reason: e.to_string(),
            }
        })?;
        bytes_to_out(&out, d);
        Ok(())
    }

    fn matmul_batch(
        &mut self,
        spec: &BatchSpec,
        a: &[u16],
        b: &[u16],
        d: MatOut<'_>,
    ) -> Result<(), DeviceError> {
        check_batch(&self.describe(), spec, a, b, &d)?;
        let mut gspec = GemmSpec::new(spec.precision, spec.m, spec.n, spec.k);
        gspec.output = output_format(&d);
        let mut out = Vec::with_capacity(spec.count * gspec.d_bytes());
        for p in 0..spec.count {
            let ap = &a[p * spec.m * spec.k..(p + 1) * spec.m * spec.k];
            let bp = &b[p * spec.k * spec.n..(p + 1) * spec.k * spec.n];
            let mut dp = vec![0u8; gspec.d_bytes()];
            gemm::reference::gemm(&gspec, &le16(ap), &le16(bp), None, &mut dp).map_err(|e| {
                DeviceError::Rejected {
                    device: self.describe(),
                    reason: e.to_string(),
                }
            })?;
            out.extend_from_slice(&dp);
        }
        bytes_to_out(&out, d);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poc::rng::{normal, seed32};
    use proptest::prelude::*;

    fn operands(precision: Precision, seed: &str, n: usize, scale: f32) -> Vec<u16> {
        let format = precision.operand_format().unwrap();
        normal(seed32(seed), n)
            .iter()
            .map(|&z| format.encode_rne(scale * z) as u16)
            .collect()
    }

    fn compare_weight(precision: Precision, m: usize, k: usize, n: usize, bias: bool, out: &str) {
        let bt = operands(precision, "w", n * k, 1.0);
        let a = operands(precision, "a", m * k, 3.0);
        let bias_v: Vec<f32> = normal(seed32("bias"), n);
        let upload = WeightUpload {
            name: "t",
            precision,
            k,
            n,
            bt: &bt,
            bias: bias.then_some(&bias_v[..]),
        };
        let mut reference = ReferenceDevice::new();
        let h = reference.upload_weight(&upload).unwrap();
        let mut devices = [CpuDevice::new(1), CpuDevice::new(3), CpuDevice::portable(2)];
        let run = |dev: &mut dyn MatmulDevice, h: WeightHandle| -> Vec<u32> {
            match out {
                "f32" => {
                    let mut d = vec![0f32; m * n];
                    dev.matmul_weight(h, &a, m, MatOut::F32(&mut d)).unwrap();
                    d.iter().map(|v| v.to_bits()).collect()
                }
                _ => {
                    let mut d = vec![0u16; m * n];
                    let o = if out == "bf16" {
                        MatOut::Bf16(&mut d)
                    } else {
                        MatOut::Fp16(&mut d)
                    };
                    dev.matmul_weight(h, &a, m, o).unwrap();
                    d.iter().map(|&v| u32::from(v)).collect()
                }
            }
        };
        let expect = run(&mut reference, h);
        for dev in &mut devices {
            let h = dev.upload_weight(&upload).unwrap();
            assert_eq!(run(dev, h), expect, "{} {m}x{k}x{n}", dev.describe());
        }
    }

    #[test]
    fn weight_products_equal_the_reference() {
        compare_weight(Precision::Bf16, 9, 37, 33, true, "f32");
        compare_weight(Precision::Bf16, 4, 16, 16, false, "bf16");
        compare_weight(Precision::Fp16, 7, 20, 17, true, "fp16");
        compare_weight(Precision::Fp16, 1, 3, 1, false, "f32");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn batches_equal_the_reference(count in 1usize..4, m in 1usize..6, k in 1usize..20, n in 1usize..9, fp16 in any::<bool>()) {
            let precision = if fp16 { Precision::Fp16 } else { Precision::Bf16 };
            let spec = BatchSpec { precision, count, m, k, n };
            let a = operands(precision, "ba", count * m * k, 2.0);
            let b = operands(precision, "bb", count * k * n, 2.0);
            let mut expect = vec![0f32; count * m * n];
            ReferenceDevice::new().matmul_batch(&spec, &a, &b, MatOut::F32(&mut expect)).unwrap();
            for mut dev in [CpuDevice::new(2), CpuDevice::portable(1)] {
                let mut got = vec![0f32; count * m * n];
                dev.matmul_batch(&spec, &a, &b, MatOut::F32(&mut got)).unwrap();
                prop_assert!(got.iter().zip(&expect).all(|(x, y)| x.to_bits() == y.to_bits()));
            }
        }
    }

    #[test]
    fn malformed_calls_are_rejected() {
        let mut dev = CpuDevice::new(1);
        let mut d = vec![0f32; 4];
        let err = dev
            .matmul_weight(WeightHandle(9), &[0; 4], 2, MatOut::F32(&mut d))
            .unwrap_err();
        assert!(err.to_string().contains("no resident weight"), "{err}");
        let spec = BatchSpec {
            precision: Precision::Bf16,
            count: 1,
            m: 2,
            k: 2,
            n: 2,
        };
        let err = dev
            .matmul_batch(&spec, &[0; 3], &[0; 4], MatOut::F32(&mut d))
            .unwrap_err();
        assert!(err.to_string().contains("operand A has 3"), "{err}");
        let upload = WeightUpload {
            name: "w",
            precision: Precision::Bf16,
            k: 2,
            n: 2,
            bt: &[0; 3],
            bias: None,
        };
        assert!(dev.upload_weight(&upload).is_err());
    }
}
