//! The PoC pipeline's matrix device on the accelerator: [`golden::poc::MatmulDevice`] over any
//! [`Transport`], so a simulated, PCIe or serial accelerator runs the forward's products.
//!
//! - **Resident weights**: the upload gives `Bᵀ` (`N×K`, the Hugging Face layout); the
//!   descriptors want `B` as `K×N` row-major, so it is transposed once on upload and kept in
//!   device memory. A bias becomes the contract's prior accumulator `C` (every row equal to the
//!   bias, `f32`), prepared once per weight for the largest row count seen and reused.
//! - **Weight products** (`matmul_weight`): one descriptor; `A` and `D` go through a reusable
//!   device-memory arena.
//! - **Streamed batches** (`matmul_batch`, attention): one descriptor per product, queued
//!   several deep through [`Accelerator::run`].
//!
//! Each call's busy cycles and MACs (from the performance counters) are accumulated per shape in
//! [`MatmulStats`], which is what utilization reports are made of.

use std::collections::BTreeMap;

use golden::numerics::Precision;
use golden::poc::device::{
    check_batch, check_upload, transpose_upload, BatchSpec, DeviceError, MatOut, MatmulDevice,
    WeightHandle, WeightUpload,
};
use hdl::regmap::{GemmDescriptor, OutputCode, PrecisionCode};

use super::{Accelerator, DriverError, PerfCounters};
use crate::transport::{DmaBuffer, Transport, TransportError};

/// Alignment of matrices in device memory.
const ALIGN: u64 = 64;

/// What the device did for one kind of product.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ShapeStats {
    /// Calls (weight products) or products (batches).
    pub products: u64,
    /// Busy cycles the device counted for them.
    pub busy_cycles: u64,
    /// MACs the device counted.
    pub macs: u64,
}

/// Per-shape statistics: key `(kind, m, n, k)` with kind `"weight"` or `"batch"`.
pub type MatmulStats = BTreeMap<(&'static str, usize, usize, usize), ShapeStats>;

struct Resident {
    name: String,
    precision: PrecisionCode,
    k: usize,
    n: usize,
    b: DmaBuffer,
    bias: Option<Vec<f32>>,
    /// `C` with every row the bias, and its row count.
    prior: Option<(DmaBuffer, usize)>,
}

/// A grow-only scratch buffer of device memory.
#[derive(Default)]
struct Arena {
    buffer: Option<DmaBuffer>,
}

impl Arena {
    fn ensure<T: Transport>(
        &mut self,
        accel: &mut Accelerator<T>,
        bytes: u64,
    ) -> Result<&DmaBuffer, DriverError> {
        if self.buffer.as_ref().is_some_and(|b| b.len() < bytes) {
            if let Some(old) = self.buffer.take() {
                accel.free(old)?;
            }
        }
        if self.buffer.is_none() {
            // Round up generously so that slowly growing requests do not reallocate each time.
            let len = bytes.max(1).next_power_of_two().max(64 * 1024);
            self.buffer = Some(accel.alloc(len, 4096)?);
        }
        Ok(self.buffer.as_ref().expect("allocated above"))
    }
}

/// The accelerator as a [`MatmulDevice`].
pub struct AcceleratorMatmul<T: Transport> {
    accel: Accelerator<T>,
    weights: Vec<Resident>,
    arena: Arena,
    stats: MatmulStats,
}

fn align_up(x: u64) -> u64 {
    x.div_ceil(ALIGN) * ALIGN
}

fn precision_code(p: Precision) -> PrecisionCode {
    match p {
        Precision::Int8 => PrecisionCode::Int8,
        Precision::Bf16 => PrecisionCode::Bf16,
        Precision::Fp16 => PrecisionCode::Fp16,
    }
}

fn output_code(d: &MatOut<'_>) -> OutputCode {
    match d {
        MatOut::F32(_) => OutputCode::Raw,
        MatOut::Bf16(_) => OutputCode::Bf16,
        MatOut::Fp16(_) => OutputCode::Fp16,
    }
}

fn le_bytes(values: &[u16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Copies device output bytes into the caller's typed buffer.
fn store(bytes: &[u8], d: MatOut<'_>) {
    match d {
        MatOut::F32(d) => {
            for (out, chunk) in d.iter_mut().zip(bytes.chunks_exact(4)) {
                *out = f32::from_bits(u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
            }
        }
        MatOut::Bf16(d) | MatOut::Fp16(d) => {
            for (out, chunk) in d.iter_mut().zip(bytes.chunks_exact(2)) {
                *out = u16::from_le_bytes([chunk[0], chunk[1]]);
            }
        }
    }
}

impl<T: Transport> AcceleratorMatmul<T> {
    /// Wraps an opened accelerator.
    pub fn new(accel: Accelerator<T>) -> Self {
        Self {
            accel,
            weights: Vec::new(),
            arena: Arena::default(),
            stats: MatmulStats::new(),
        }
    }

    /// The accelerator.
    pub fn accelerator(&self) -> &Accelerator<T> {
        &self.accel
    }

    /// The accelerator, mutably (performance counters, reset).
    pub fn accelerator_mut(&mut self) -> &mut Accelerator<T> {
        &mut self.accel
    }

    /// Frees the resident weights and the scratch memory, and gives the accelerator back.
    pub fn into_accelerator(mut self) -> Result<Accelerator<T>, DriverError> {
        for w in std::mem::take(&mut self.weights) {
            self.accel.free(w.b)?;
            if let Some((c, _)) = w.prior {
                self.accel.free(c)?;
            }
        }
        if let Some(arena) = self.arena.buffer.take() {
            self.accel.free(arena)?;
        }
        Ok(self.accel)
    }

    /// What the device did so far, per shape.
    pub fn stats(&self) -> &MatmulStats {
        &self.stats
    }

    fn fail(&self, error: DriverError) -> DeviceError {
        let device = self.describe();
        match error {
            DriverError::Transport(TransportError::Timeout { elapsed, .. }) => {
                DeviceError::Timeout {
                    device,
                    seconds: elapsed.as_secs_f64(),
                }
            }
            DriverError::InvalidDescriptor { .. } | DriverError::Unsupported(_) => {
                DeviceError::Rejected {
                    device,
                    reason: error.to_string(),
                }
            }
            other => DeviceError::Failed {
                device,
                reason: other.to_string(),
            },
        }
    }

    fn reject(&self, reason: String) -> DeviceError {
        DeviceError::Rejected {
            device: self.describe(),
            reason,
        }
    }

    fn check_precision(&self, p: Precision) -> Result<PrecisionCode, DeviceError> {
        let code = precision_code(p);
        if !self.accel.capabilities().supports(code) {
            return Err(self.reject(format!(
                "{} products, but the accelerator has only {}",
                p.name(),
                self.accel.capabilities().precision_names()
            )));
        }
        Ok(code)
    }

    fn perf(&mut self) -> Result<PerfCounters, DriverError> {
        self.accel.perf()
    }

    fn record(
        &mut self,
        key: (&'static str, usize, usize, usize),
        products: u64,
        delta: PerfCounters,
    ) {
        let entry = self.stats.entry(key).or_default();
        entry.products += products;
        entry.busy_cycles += delta.busy;
        entry.macs += delta.macs;
    }

    fn weight_product(
        &mut self,
        index: usize,
        a: &[u16],
        m: usize,
        d: MatOut<'_>,
    ) -> Result<(), DriverError> {
        let (k, n, precision) = {
            let w = &self.weights[index];
            (w.k, w.n, w.precision)
        };
        // The prior accumulator for `m` rows, made once and kept while m does not grow.
        let needs_prior = self.weights[index].bias.is_some()
            && self.weights[index]
                .prior
                .as_ref()
                .is_none_or(|(_, rows)| *rows < m);
        if needs_prior {
            if let Some((old, _)) = self.weights[index].prior.take() {
                self.accel.free(old)?;
            }
            let bias = self.weights[index].bias.as_ref().expect("checked above");
            let row: Vec<u8> = bias
                .iter()
                .flat_map(|v| v.to_bits().to_le_bytes())
                .collect();
            let c: Vec<u8> = row.iter().copied().cycle().take(row.len() * m).collect();
            let buffer = self.accel.upload(&c, ALIGN)?;
            self.weights[index].prior = Some((buffer, m));
        }
        let output = output_code(&d);
        let a_bytes = le_bytes(a);
        let d_len = (m * n) as u64 * u64::from(output.bytes());
        let a_len = align_up(a_bytes.len() as u64);
        let arena = self.arena.ensure(&mut self.accel, a_len + d_len)?;
        let base = arena.iova().get();
        let arena_handle = self.arena.buffer.as_ref().expect("ensured above");
        self.accel.write(arena_handle, 0, &a_bytes)?;
        let w = &self.weights[index];
        let descriptor = GemmDescriptor {
            a: base,
            b: w.b.iova().get(),
            c: w.prior.as_ref().map_or(0, |(c, _)| c.iova().get()),
            d: base + a_len,
            m: m as u32,
            n: n as u32,
            k: k as u32,
            lda: (k as u32) * precision.operand_bytes(),
            ldb: (n as u32) * precision.operand_bytes(),
            ldc: (n as u32) * 4,
            ldd: (n as u32) * output.bytes(),
            precision,
            output,
            accumulate: w.bias.is_some(),
            rq_multiplier: 1,
            rq_shift: 0,
            rq_zero_point: 0,
        };
        let before = self.perf()?;
        self.accel.run(&[descriptor])?;
        let after = self.perf()?;
        self.record(("weight", m, n, k), 1, after.since(&before));
        let mut out = vec![0u8; d_len as usize];
        let arena_handle = self.arena.buffer.as_ref().expect("ensured above");
        self.accel.read(arena_handle, a_len, &mut out)?;
        store(&out, d);
        Ok(())
    }

    fn batch_products(
        &mut self,
        spec: &BatchSpec,
        precision: PrecisionCode,
        a: &[u16],
        b: &[u16],
        d: MatOut<'_>,
    ) -> Result<(), DriverError> {
        let (m, k, n) = (spec.m, spec.k, spec.n);
        let output = output_code(&d);
        let eb = u64::from(precision.operand_bytes());
        let (a_each, b_each) = ((m * k) as u64 * eb, (k * n) as u64 * eb);
        let d_each = (m * n) as u64 * u64::from(output.bytes());
        let (a_len, b_len) = (
            align_up(a_each * spec.count as u64),
            align_up(b_each * spec.count as u64),
        );
        let d_len = d_each * spec.count as u64;
        let arena = self.arena.ensure(&mut self.accel, a_len + b_len + d_len)?;
        let base = arena.iova().get();
        let arena = self.arena.buffer.as_ref().expect("ensured above");
        self.accel.write(arena, 0, &le_bytes(a))?;
        self.accel.write(arena, a_len, &le_bytes(b))?;
        let descriptors: Vec<GemmDescriptor> = (0..spec.count as u64)
            .map(|p| GemmDescriptor {
                a: base + p * a_each,
                b: base + a_len + p * b_each,
                c: 0,
                d: base + a_len + b_len + p * d_each,
                m: m as u32,
                n: n as u32,
                k: k as u32,
                lda: k as u32 * precision.operand_bytes(),
                ldb: n as u32 * precision.operand_bytes(),
                ldc: n as u32 * 4,
                ldd: n as u32 * output.bytes(),
                precision,
                output,
                accumulate: false,
                rq_multiplier: 1,
                rq_shift: 0,
                rq_zero_point: 0,
            })
            .collect();
        let before = self.perf()?;
        self.accel.run(&descriptors)?;
        let after = self.perf()?;
        self.record(("batch", m, n, k), spec.count as u64, after.since(&before));
        let mut out = vec![0u8; d_len as usize];
        let arena = self.arena.buffer.as_ref().expect("ensured above");
        self.accel.read(arena, a_len + b_len, &mut out)?;
        store(&out, d);
        Ok(())
    }
}

impl<T: Transport> MatmulDevice for AcceleratorMatmul<T> {
    fn describe(&self) -> String {
        let caps = self.accel.capabilities();
        format!(
            "{} ({}×{} PoCForge accelerator, {})",
            self.accel.transport().info().name,
            caps.rows,
            caps.cols,
            caps.precision_names()
        )
    }

    fn upload_weight(&mut self, w: &WeightUpload<'_>) -> Result<WeightHandle, DeviceError> {
        check_upload(&self.describe(), w)?;
        let precision = self.check_precision(w.precision)?;
        if u32::try_from(w.k * w.n * 2).is_err() {
            return Err(self.reject(format!(
                "weight {} of {}×{} is beyond the descriptor's 32-bit sizes",
                w.name, w.n, w.k
            )));
        }
        let b = le_bytes(&transpose_upload(w));
        let buffer = self.accel.upload(&b, ALIGN).map_err(|e| self.fail(e))?;
        self.weights.push(Resident {
            name: w.name.to_owned(),
            precision,
            k: w.k,
            n: w.n,
            b: buffer,
            bias: w.bias.map(<[f32]>::to_vec),
            prior: None,
        });
        Ok(WeightHandle(self.weights.len() as u32 - 1))
    }

    fn release_weights(&mut self) -> Result<(), DeviceError> {
        for w in std::mem::take(&mut self.weights) {
            self.accel.free(w.b).map_err(|e| self.fail(e))?;
            if let Some((c, _)) = w.prior {
                self.accel.free(c).map_err(|e| self.fail(e))?;
            }
        }
        Ok(())
    }

    fn matmul_weight(
        &mut self,
        weight: WeightHandle,
        a: &[u16],
        m: usize,
        d: MatOut<'_>,
    ) -> Result<(), DeviceError> {
        let index = weight.0 as usize;
        let Some(w) = self.weights.get(index) else {
            return Err(self.reject(format!("no resident weight with handle {}", weight.0)));
        };
        if m == 0 || a.len() != m * w.k || d.len() != m * w.n {
            return Err(self.reject(format!(
                "weight {} ({}×{}): A has {} operands and D {} outputs, but m = {m} needs {} and {}",
                w.name,
                w.k,
                w.n,
                a.len(),
                d.len(),
                m * w.k,
                m * w.n
            )));
        }
        if u32::try_from(m * w.n * 4).is_err() {
            return Err(self.reject(format!("m = {m} rows is beyond the descriptor's sizes")));
        }
        self.weight_product(index, a, m, d)
            .map_err(|e| self.fail(e))
    }

    fn matmul_batch(
        &mut self,
        spec: &BatchSpec,
        a: &[u16],
        b: &[u16],
        d: MatOut<'_>,
    ) -> Result<(), DeviceError> {
        check_batch(&self.describe(), spec, a, b, &d)?;
        let precision = self.check_precision(spec.precision)?;
        if spec.count == 0 {
            return Ok(());
        }
        self.batch_products(spec, precision, a, b, d)
            .map_err(|e| self.fail(e))
    }
}
