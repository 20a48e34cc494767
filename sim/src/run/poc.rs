//! A PoC batch on the simulated accelerator: the forward's matrix products run on the device
//! (`driver::accel::matmul`), everything else on the host, and the artifacts are compared with
//! the CPU golden model's byte for byte.

use std::time::Instant;

use driver::accel::matmul::AcceleratorMatmul;
use golden::poc::cpu::CpuDevice;
use golden::poc::device::{
    BatchSpec, DeviceError, MatOut, MatmulDevice, WeightHandle, WeightUpload,
};
use golden::poc::model::ModelSpec;
use golden::poc::{Engine, Round, RoundParams};
use indicatif::ProgressBar;

use super::{PocRequest, SimAccelerator};
use crate::error::SimError;
use crate::report::{ClockReport, GemmReport, PocReport, RateReport};

/// Lends a device to an [`Engine`] (which takes its device by value) without giving it away.
struct Lend<'a, D: MatmulDevice>(&'a mut D);

impl<D: MatmulDevice> MatmulDevice for Lend<'_, D> {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn upload_weight(&mut self, weight: &WeightUpload<'_>) -> Result<WeightHandle, DeviceError> {
        self.0.upload_weight(weight)
    }
    fn release_weights(&mut self) -> Result<(), DeviceError> {
        self.0.release_weights()
    }
    fn matmul_weight(
        &mut self,
        weight: WeightHandle,
        a: &[u16],
        m: usize,
        d: MatOut<'_>,
    ) -> Result<(), DeviceError> {
        self.0.matmul_weight(weight, a, m, d)
    }
    fn matmul_batch(
        &mut self,
        spec: &BatchSpec,
        a: &[u16],
        b: &[u16],
        d: MatOut<'_>,
    ) -> Result<(), DeviceError> {
        self.0.matmul_batch(spec, a, b, d)
    }
}

fn poc_error(e: impl std::fmt::Display) -> SimError {
    SimError::Config(format!("PoC batch: {e}"))
}

/// Runs the batch; returns the report, the per-shape GEMM statistics, the seconds spent
/// simulating, and the accelerator.
pub fn run(
    accel: SimAccelerator,
    request: &PocRequest,
    clocks: &[ClockReport],
    progress: &ProgressBar,
) -> Result<(PocReport, Vec<GemmReport>, f64, SimAccelerator), SimError> {
    let spec = ModelSpec::parse(&request.model).map_err(poc_error)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let source = spec
        .open(&request.block_hash, None, threads)
        .map_err(poc_error)?;
    let seq_len = request.seq_len.unwrap_or(match &spec {
        ModelSpec::Synthetic(preset) => preset.seq_len,
        ModelSpec::Checkpoint(_) => 16,
    });
    let precision = source.config().dtype.precision();

    // The golden artifacts, on the CPU.
    let mut golden_engine = Engine::load(&*source, CpuDevice::new(threads)).map_err(poc_error)?;
    let round = Round::new(
        RoundParams::new(&request.block_hash, &request.public_key, seq_len),
        golden_engine.config(),
    )
    .map_err(poc_error)?;
    let batch = request.nonces.len().max(1);
    let golden = golden_engine
        .artifacts(&round, &request.nonces, batch)
        .map_err(poc_error)?;

    // The same batch with every product on the accelerator.
    let pes = accel.capabilities().pes();
    let mut device = AcceleratorMatmul::new(accel);
    let mut report = PocReport {
        model: request.model.clone(),
        block_hash: request.block_hash.clone(),
        public_key: request.public_key.clone(),
        seq_len,
        nonces: request.nonces.clone(),
        ..PocReport::default()
    };
    let started = Instant::now();
    let mut cycles = 0;
    let mut busy = 0;
    let mut macs = 0;
    let outcome = (|| -> Result<_, SimError> {
        let mut engine = Engine::load(&*source, Lend(&mut device)).map_err(poc_error)?;
        // Weights were uploaded by the host (no device cycles); count the batch alone.
        let before_cycles = engine.device().0.accelerator().transport().cycles();
        let result = engine.artifacts(&round, &request.nonces, batch);
        let device = &engine.device().0;
        cycles = device.accelerator().transport().cycles() - before_cycles;
        for s in device.stats().values() {
            busy += s.busy_cycles;
            macs += s.macs;
        }
        result.map_err(poc_error)
    })();
    let seconds = started.elapsed().as_secs_f64();
    progress.inc(request.nonces.len() as u64);
    match outcome {
        Ok(artifacts) => {
            report.artifacts = artifacts.len() as u64;
            let mut mismatched: Vec<u64> = Vec::new();
            for &nonce in &request.nonces {
                let ours = artifacts.iter().find(|a| a.nonce == nonce);
                let theirs = golden.iter().find(|a| a.nonce == nonce);
                if ours != theirs {
                    mismatched.push(nonce);
                }
            }
            report.artifacts_equal_golden = mismatched.is_empty();
            report.mismatched_nonces = mismatched;
        }
        Err(e) => {
            report.error = Some(e.to_string());
            report.mismatched_nonces = request.nonces.clone();
        }
    }
    report.cycles = cycles;
    report.busy_cycles = busy;
    report.utilization = if busy == 0 {
        0.0
    } else {
        macs as f64 / (busy as f64 * pes as f64)
    };
    let nonces = request.nonces.len().max(1) as f64;
    report.cycles_per_artifact = cycles as f64 / nonces;
    report.artifacts_per_second = clocks
        .iter()
        .map(|c| RateReport {
            mhz: c.mhz,
            value: if cycles == 0 {
                0.0
            } else {
                c.mhz * 1e6 / report.cycles_per_artifact
            },
        })
        .collect();
    let shapes = device
        .stats()
        .iter()
        .map(|(&(kind, m, n, k), s)| GemmReport {
            source: format!("poc-{kind}"),
            precision: precision.name().into(),
            m,
            n,
            k,
            count: s.products,
            cycles: s.busy_cycles,
            macs: s.macs,
            utilization: if s.busy_cycles == 0 {
                0.0
            } else {
                s.macs as f64 / (s.busy_cycles as f64 * pes as f64)
            },
            bit_exact: None,
        })
        .collect();
    let accel = device
        .into_accelerator()
        .map_err(|e| SimError::Config(format!("releasing the PoC weights: {e}")))?;
    Ok((report, shapes, seconds, accel))
}
