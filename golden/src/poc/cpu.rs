//! Two CPU implementations of [`MatmulDevice`]: the fast golden model and the reference.
//!
//! [`CpuDevice`] is what `golden poc` runs: every product goes through the fast bit-exact GEMM
//! ([`crate::gemm::fast`]): resident weights are packed once ([`PackedB`]), activations stream
//! through [`gemm_packed`]; a streamed batch runs its small products in parallel, one per task.
//! The fast GEMM equals the reference bit for bit for every kernel family and thread count, so
//! results do not depend on either.
//!
//! [`ReferenceDevice`] runs every product through [`crate::gemm::reference::gemm`] (exact MAC,
//! triple loop). It is slow and obviously right; tests run the forward on both and require equal
//! artifact bits, which is the "device runs only the GEMMs" proof in miniature.

use std::sync::Arc;

use rayon::prelude::*;

use crate::gemm::fast::{
    self, gemm_packed, Isa, MatMut, MatRef, Operand, Options, Output, PackedB, Prior,
};
use crate::gemm::{self, GemmError, GemmSpec};
use crate::numerics::{OutputFormat, Precision};

use super::device::{
    check_batch, check_strided, check_upload, strided_by_copies, BatchSpec, DeviceError, MatOut,
    MatmulDevice, Strided, WeightHandle, WeightUpload,
};

/// A resident weight: the packed `B` and its prior accumulator row.
struct Resident {
    packed: PackedB,
    k: usize,
    n: usize,
    bias: Option<Vec<f32>>,
}

/// The fast CPU golden model of a matmul device.
pub struct CpuDevice {
    threads: usize,
    isa: Isa,
    pool: Arc<rayon::ThreadPool>,
    weights: Vec<Resident>,
}

impl CpuDevice {
    /// A device using `threads` threads (at least 1) and the best kernel family of this CPU.
    pub fn new(threads: usize) -> Self {
        CpuDevice::with_isa(threads, fast::best())
    }

    /// The same device with the portable kernels (no SIMD); tests use it to show that the
    /// kernel family does not change any bit.
    pub fn portable(threads: usize) -> Self {
        CpuDevice::with_isa(threads, Isa::Portable)
    }

    /// A device with a chosen kernel family (it must be in [`fast::available`]; otherwise the
    /// best one is used).
    pub fn with_isa(threads: usize, isa: Isa) -> Self {
        let threads = threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("golden-cpu-{i}"))
            .build()
            .expect("the OS can start a handful of threads");
        CpuDevice::in_pool(Arc::new(pool), isa)
    }

    /// The same device on an existing thread pool, which it may share with the host's
    /// elementwise passes ([`super::forward::Engine::set_host_pool`]): two pools on the same cores
    /// fight, because rayon's idle workers spin for a while before they sleep, taking the core
    /// from the other pool's workers just woken for the next step.
    pub fn in_pool(pool: Arc<rayon::ThreadPool>, isa: Isa) -> Self {
        CpuDevice {
            threads: pool.current_num_threads(),
            isa: if isa.is_supported() {
                isa
            } else {
                fast::best()
            },
            pool,
            weights: Vec::new(),
        }
    }

    /// The device's thread pool, for the host passes to share ([`CpuDevice::in_pool`]).
    pub fn pool(&self) -> Arc<rayon::ThreadPool> {
        Arc::clone(&self.pool)
    }

    fn error(&self, e: GemmError) -> DeviceError {
        DeviceError::Rejected {
            device: self.describe(),
            reason: e.to_string(),
        }
    }
}

fn operand(
    precision: Precision,
    data: &[u16],
    rows: usize,
    cols: usize,
) -> Result<Operand<'_>, GemmError> {
    let view = MatRef::dense(data, rows, cols)?;
    Ok(match precision {
        Precision::Bf16 => Operand::Bf16(view),
        _ => Operand::Fp16(view),
    })
}

/// A `rows × cols` operand view at `offset` in `data`, rows `row_stride` apart.
fn strided_operand(
    precision: Precision,
    data: &[u16],
    offset: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
) -> Result<Operand<'_>, GemmError> {
    let view = MatRef::new(&data[offset..], rows, cols, row_stride)?;
    Ok(match precision {
        Precision::Bf16 => Operand::Bf16(view),
        _ => Operand::Fp16(view),
    })
}

fn output(d: MatOut<'_>, rows: usize, cols: usize) -> Result<Output<'_>, GemmError> {
    Ok(match d {
        MatOut::F32(d) => Output::F32(MatMut::dense(d, rows, cols)?),
        MatOut::Bf16(d) => Output::Bf16(MatMut::dense(d, rows, cols)?),
        MatOut::Fp16(d) => Output::Fp16(MatMut::dense(d, rows, cols)?),
    })
}

impl MatmulDevice for CpuDevice {
    fn describe(&self) -> String {
        format!(
            "cpu golden ({} thread(s), {} kernels)",
            self.threads, self.isa
        )
    }

    fn upload_weight(&mut self, w: &WeightUpload<'_>) -> Result<WeightHandle, DeviceError> {
        check_upload(&self.describe(), w)?;
        // The contract's B is K×N; the upload is its transpose.
        let b = super::device::transpose_upload(w);
        let packed = operand(w.precision, &b, w.k, w.n)
            .and_then(PackedB::new)
            .map_err(|e| self.error(e))?;
        self.weights.push(Resident {
            packed,
            k: w.k,
            n: w.n,
            bias: w.bias.map(<[f32]>::to_vec),
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
            .ok_or_else(|| DeviceError::Rejected {
                device: self.describe(),
                reason: format!("no resident weight with handle {}", weight.0),
            })?;
        // The bias is the contract's prior accumulator with every row equal to it.
        let prior_rows: Option<Vec<f32>> = res
            .bias
            .as_ref()
            .map(|bias| (0..m).flat_map(|_| bias.iter().copied()).collect());
        let options = Options {
            isa: self.isa,
            threads: self.threads,
        };
        let result = (|| {
            let a = operand(res.packed.precision(), a, m, res.k)?;
            let prior = match &prior_rows {
                Some(c) => Prior::F32(MatRef::dense(c, m, res.n)?),
                None => Prior::Zero,
            };
            let out = output(d, m, res.n)?;
            self.pool
                .install(|| gemm_packed(a, &res.packed, prior, out, options))
        })();
        result.map_err(|e| self.error(e))
    }

    fn matmul_batch(
        &mut self,
        spec: &BatchSpec,
        a: &[u16],
        b: &[u16],
        d: MatOut<'_>,
    ) -> Result<(), DeviceError> {
        check_batch(&self.describe(), spec, a, b, &d)?;
        let (m, k, n) = (spec.m, spec.k, spec.n);
        let options = Options {
            isa: self.isa,
            threads: 1,
        };
        let precision = spec.precision;
        let one = |p: usize, out: MatOut<'_>| -> Result<(), GemmError> {
            let packed = PackedB::new(operand(precision, &b[p * k * n..(p + 1) * k * n], k, n)?)?;
            let a = operand(precision, &a[p * m * k..(p + 1) * m * k], m, k)?;
            gemm_packed(a, &packed, Prior::Zero, output(out, m, n)?, options)
        };
        let result = self.pool.install(|| match d {
            MatOut::F32(d) => d
                .par_chunks_mut(m * n)
                .enumerate()
                .try_for_each(|(p, o)| one(p, MatOut::F32(o))),
            MatOut::Bf16(d) => d
                .par_chunks_mut(m * n)
                .enumerate()
                .try_for_each(|(p, o)| one(p, MatOut::Bf16(o))),
            MatOut::Fp16(d) => d
                .par_chunks_mut(m * n)
                .enumerate()
                .try_for_each(|(p, o)| one(p, MatOut::Fp16(o))),
        });
        result.map_err(|e| self.error(e))
    }

    /// Reads each `A_p` and `B_p` where it lies and writes each `D_p` in place, one outer index
    /// (a nonce) per task, when the outer indices own disjoint slices of `d`
    /// ([`super::device::BatchLayout::outer_blocks_are_disjoint`]); otherwise by copies.
    fn matmul_batch_strided(
        &mut self,
        spec: &BatchSpec,
        a: Strided<&[u16]>,
        b: Strided<&[u16]>,
        d: Strided<MatOut<'_>>,
    ) -> Result<(), DeviceError> {
        check_strided(&self.describe(), spec, &a, &b, &d)?;
        let (m, k, n, count) = (spec.m, spec.k, spec.n, spec.count);
        let dl = d.layout;
        if count == 0 || !dl.outer_blocks_are_disjoint(m, n) {
            return strided_by_copies(self, spec, a, b, d);
        }
        let options = Options {
            isa: self.isa,
            threads: 1,
        };
        let precision = spec.precision;
        let (al, bl) = (a.layout, b.layout);
        // Outer index `o`'s products, into its block of `d` (which starts at
        // `dl.base + o·outer_stride`).
        let outer = |o: usize, block: MatOut<'_>| -> Result<(), GemmError> {
            let mut block = block;
            let first = o * dl.inner_count;
            for p in first..(first + dl.inner_count).min(count) {
                let b_view = strided_operand(precision, b.data, bl.offset(p), k, n, bl.row_stride)?;
                let packed = PackedB::new(b_view)?;
                let a_view = strided_operand(precision, a.data, al.offset(p), m, k, al.row_stride)?;
                let at = dl.offset(p) - dl.base - o * dl.outer_stride;
                let out = match &mut block {
                    MatOut::F32(x) => Output::F32(MatMut::new(&mut x[at..], m, n, dl.row_stride)?),
                    MatOut::Bf16(x) => {
                        Output::Bf16(MatMut::new(&mut x[at..], m, n, dl.row_stride)?)
                    }
                    MatOut::Fp16(x) => {
                        Output::Fp16(MatMut::new(&mut x[at..], m, n, dl.row_stride)?)
                    }
                };
                gemm_packed(a_view, &packed, Prior::Zero, out, options)?;
            }
            Ok(())
        };
        let outers = count.div_ceil(dl.inner_count);
        let stride = dl.outer_stride;
        let result = self.pool.install(|| match d.data {
            MatOut::F32(x) => x[dl.base..]
                .par_chunks_mut(stride)
                .take(outers)
                .enumerate()
                .try_for_each(|(o, block)| outer(o, MatOut::F32(block))),
            MatOut::Bf16(x) => x[dl.base..]
                .par_chunks_mut(stride)
                .take(outers)
                .enumerate()
                .try_for_each(|(o, block)| outer(o, MatOut::Bf16(block))),
            MatOut::Fp16(x) => x[dl.base..]
                .par_chunks_mut(stride)
                .take(outers)
                .enumerate()
                .try_for_each(|(o, block)| outer(o, MatOut::Fp16(block))),
        });
        result.map_err(|e| self.error(e))
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
    use crate::poc::device::BatchLayout;
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
        let mut devices = [
            CpuDevice::new(1),
            CpuDevice::new(3),
            CpuDevice::portable(2),
            CpuDevice::with_isa(2, Isa::Avx2),
        ];
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

    /// Attention-shaped layouts: `outers` nonces of `inner` heads, `group` heads sharing one
    /// `B`, rows `pad` wider than the matrices, and `D` either in disjoint per-nonce blocks
    /// (heads side by side in each row, as the forward's output rows) or overlapping.
    fn strided_case(
        precision: Precision,
        (outers, inner, group): (usize, usize, usize),
        (m, k, n): (usize, usize, usize),
        count: usize,
        pad: usize,
        disjoint: bool,
    ) {
        let spec = BatchSpec {
            precision,
            count,
            m,
            k,
            n,
        };
        let a_layout = BatchLayout {
            base: 3,
            outer_stride: inner * m * (k + pad),
            inner_count: inner,
            inner_group: 1,
            inner_stride: m * (k + pad),
            row_stride: k + pad,
        };
        let b_row = inner / group * n + pad;
        let b_layout = BatchLayout {
            base: 1,
            outer_stride: k * b_row,
            inner_count: inner,
            inner_group: group,
            inner_stride: n,
            row_stride: b_row,
        };
        let d_row = inner * n + pad;
        let d_layout = BatchLayout {
            base: 2,
            // Overlapping: each nonce's block starts one row into the previous one's.
            outer_stride: if disjoint { m * d_row } else { d_row.max(1) },
            inner_count: inner,
            inner_group: 1,
            inner_stride: n,
            row_stride: d_row,
        };
        let a = operands(precision, "sa", 3 + outers * a_layout.outer_stride, 2.0);
        let b = operands(precision, "sb", 1 + outers * b_layout.outer_stride, 2.0);
        let d_len = 2 + outers * d_layout.outer_stride + m * d_row;
        let sentinel = 0x7E57u16;
        // The reference: by copies through the exact reference device.
        let run = |dev: &mut dyn MatmulDevice, f32_out: bool| -> Vec<u32> {
            let (a, b) = (
                Strided {
                    data: &a[..],
                    layout: a_layout,
                },
                Strided {
                    data: &b[..],
                    layout: b_layout,
                },
            );
            if f32_out {
                let mut d = vec![f32::from_bits(u32::from(sentinel)); d_len];
                let out = Strided {
                    data: MatOut::F32(&mut d),
                    layout: d_layout,
                };
                dev.matmul_batch_strided(&spec, a, b, out).unwrap();
                d.iter().map(|v| v.to_bits()).collect()
            } else {
                let mut d = vec![sentinel; d_len];
                let data = match precision {
                    Precision::Bf16 => MatOut::Bf16(&mut d),
                    _ => MatOut::Fp16(&mut d),
                };
                dev.matmul_batch_strided(
                    &spec,
                    a,
                    b,
                    Strided {
                        data,
                        layout: d_layout,
                    },
                )
                .unwrap();
                d.iter().map(|&v| u32::from(v)).collect()
            }
        };
        for f32_out in [true, false] {
            let expect = run(&mut ReferenceDevice::new(), f32_out);
            // Elements outside every product keep their values.
            assert_eq!(expect[0], u32::from(sentinel));
            assert_eq!(
                expect[d_len - 1],
                u32::from(sentinel),
                "the last row's padding"
            );
            for mut dev in [CpuDevice::new(2), CpuDevice::portable(1)] {
                let got = run(&mut dev, f32_out);
                assert_eq!(
                    got,
                    expect,
                    "{} disjoint {disjoint} f32 {f32_out}",
                    dev.describe()
                );
            }
        }
    }

    /// The CPU's in-place strided products equal the reference device's (which goes by
    /// copies), bit for bit, elements outside the products included: grouped `B`s, padded rows,
    /// a partial last nonce, results in disjoint blocks (filled in parallel) and overlapping
    /// (by copies, in product order).
    #[test]
    fn strided_batches_equal_the_reference() {
        for disjoint in [true, false] {
            strided_case(Precision::Bf16, (3, 4, 2), (5, 7, 3), 12, 2, disjoint);
            strided_case(Precision::Fp16, (3, 4, 1), (1, 9, 4), 10, 0, disjoint);
            strided_case(Precision::Bf16, (2, 2, 2), (4, 3, 5), 3, 1, disjoint);
        }
    }

    #[test]
    fn malformed_strided_calls_are_rejected() {
        let spec = BatchSpec {
            precision: Precision::Bf16,
            count: 5,
            m: 2,
            k: 2,
            n: 2,
        };
        let dense = BatchLayout::dense(2, 2);
        let call = |a_layout: BatchLayout, b_layout: BatchLayout, b_len: usize| {
            let mut d = vec![0f32; 20];
            let (a, b) = (vec![0u16; 20], vec![0u16; b_len]);
            CpuDevice::new(1)
                .matmul_batch_strided(
                    &spec,
                    Strided {
                        data: &a[..],
                        layout: a_layout,
                    },
                    Strided {
                        data: &b[..],
                        layout: b_layout,
                    },
                    Strided {
                        data: MatOut::F32(&mut d),
                        layout: dense,
                    },
                )
                .unwrap_err()
                .to_string()
        };
        let err = call(
            BatchLayout {
                row_stride: 1,
                ..dense
            },
            dense,
            20,
        );
        assert!(err.contains("operand A: row stride 1 is narrower"), "{err}");
        let err = call(
            dense,
            BatchLayout {
                inner_count: 0,
                ..dense
            },
            20,
        );
        assert!(
            err.contains("operand B: inner_count and inner_group"),
            "{err}"
        );
        let err = call(dense, dense, 19);
        assert!(
            err.contains("operand B: product 4's 2×2 matrix at offset 16"),
            "{err}"
        );
        // Product 3 (inner 3 of nonce 0) reaches past a partial last nonce's product 4.
        let wide = BatchLayout {
            base: 0,
            outer_stride: 4,
            inner_count: 4,
            inner_group: 1,
            inner_stride: 5,
            row_stride: 2,
        };
        let err = call(dense, wide, 18);
        assert!(err.contains("product 3's 2×2 matrix at offset 15"), "{err}");
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
