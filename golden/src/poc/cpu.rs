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
    check_batch, check_upload, BatchSpec, DeviceError, MatOut, MatmulDevice, WeightHandle,
    WeightUpload,
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
