//! The `cpu` backend: the golden model's fast CPU device.
//!
//! It is the reference every other backend is cross-checked against, and a real miner on its
//! own. Temperature and power are the CPU package's, where Linux exposes them (see
//! [`super::telemetry`]).

use std::sync::Arc;

use golden::poc::cpu::CpuDevice;
use golden::poc::device::{BatchSpec, MatOut, WeightHandle, WeightUpload};
use golden::poc::{DeviceError, MatmulDevice, ThreadPool};
use serde::Deserialize;

use super::fault::FaultConfig;
use super::telemetry::CpuTelemetry;
use super::{BackendConfig, Device, Telemetry};

/// `[[device]] backend = "cpu"`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuConfig {
    /// Device name (default `cpu<index>`).
    #[serde(default)]
    pub name: Option<String>,
    /// Threads for its matrix products (default 1).
    #[serde(default = "one")]
    pub threads: usize,
    /// Fault injection (tests and operations only).
    #[serde(default)]
    pub fault: Option<FaultConfig>,
}

fn one() -> usize {
    1
}

impl Default for CpuConfig {
    fn default() -> Self {
        CpuConfig {
            name: None,
            threads: 1,
            fault: None,
        }
    }
}

impl BackendConfig for CpuConfig {
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn fault(&self) -> Option<&FaultConfig> {
        self.fault.as_ref()
    }

    fn validate(&self) -> Result<(), String> {
        if self.threads == 0 || self.threads > 1024 {
            return Err(format!(
                "threads = {} must be between 1 and 1024",
                self.threads
            ));
        }
        Ok(())
    }

    fn open(&self) -> Result<Box<dyn Device>, DeviceError> {
        Ok(Box::new(CpuBackend::new(self.threads)))
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "name" => self.name = Some(value.to_string()),
            "threads" => {
                self.threads = value
                    .parse()
                    .map_err(|_| format!("threads={value:?} is not a positive integer"))?
            }
            other => match other.strip_prefix("fault_") {
                Some(fault_key) => self
                    .fault
                    .get_or_insert_with(|| FaultConfig {
                        every: 1,
                        ..FaultConfig::default()
                    })
                    .set(fault_key, value)?,
                None => {
                    return Err(format!(
                        "unknown cpu device key {other:?}; expected name, threads or fault_*"
                    ))
                }
            },
        }
        Ok(())
    }
}

/// The golden CPU device with health.
pub struct CpuBackend {
    threads: usize,
    device: CpuDevice,
    telemetry: CpuTelemetry,
}

impl CpuBackend {
    /// A CPU device using `threads` threads.
    pub fn new(threads: usize) -> Self {
        CpuBackend {
            threads,
            device: CpuDevice::new(threads),
            telemetry: CpuTelemetry::discover(),
        }
    }
}

impl MatmulDevice for CpuBackend {
    fn describe(&self) -> String {
        self.device.describe()
    }

    fn upload_weight(&mut self, weight: &WeightUpload<'_>) -> Result<WeightHandle, DeviceError> {
        self.device.upload_weight(weight)
    }

    fn release_weights(&mut self) -> Result<(), DeviceError> {
        self.device.release_weights()
    }

    fn matmul_weight(
        &mut self,
        weight: WeightHandle,
        a: &[u16],
        m: usize,
        d: MatOut<'_>,
    ) -> Result<(), DeviceError> {
        self.device.matmul_weight(weight, a, m, d)
    }

    fn matmul_batch(
        &mut self,
        spec: &BatchSpec,
        a: &[u16],
        b: &[u16],
        d: MatOut<'_>,
    ) -> Result<(), DeviceError> {
        self.device.matmul_batch(spec, a, b, d)
    }
}

impl Device for CpuBackend {
    fn backend(&self) -> &'static str {
        "cpu"
    }

    fn reset(&mut self) -> Result<(), DeviceError> {
        // A CPU has no device state beyond its resident weights: start afresh.
        self.device = CpuDevice::new(self.threads);
        Ok(())
    }

    fn telemetry(&mut self) -> Telemetry {
        self.telemetry.read()
    }

    fn host_threads(&self) -> usize {
        self.threads
    }

    fn host_pool(&self) -> Option<Arc<ThreadPool>> {
        Some(self.device.pool())
    }
}
