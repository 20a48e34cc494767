//! The `sim` backend: the PoCForge accelerator's RTL, Verilated, driven through the driver's
//! [`Transport`](driver::Transport) like any hardware accelerator.
//!
//! Opening one emits the accelerator's Verilog for the configured array, builds it with
//! Verilator (content-addressed cache: `$POCFORGE_SIM_CACHE`, else `target/verilated`; a build
//! takes minutes the first time, a cache hit a moment), instantiates the model with its memory
//! ([`sim::SimDevice`]), opens it with [`driver::Accelerator`] (reset, identify, capability
//! check), and serves the PoC forward's products with [`driver::accel::matmul::AcceleratorMatmul`].
//! The daemon treats it like every other device: cross-checked, reset on faults, quarantined.
//!
//! **RTL fault injection** (`rtl_faults`, the simulator's grammar, `sim::fault`) breaks the chip
//! itself: a stuck or flipped bit in a processing element or operand buffer, applied by the
//! simulator while the design runs. That is how the golden cross-check is shown to catch a
//! broken accelerator (`host/tests/sim.rs`). A fault build has its own cache entry.
//!
//! The simulator models neither temperature nor power, so its telemetry is empty.

use std::sync::Arc;

use ::sim::accel::{Design, DesignOptions};
use ::sim::fault::FaultSpec;
use ::sim::{MemoryConfig, SimDevice};
use driver::accel::matmul::AcceleratorMatmul;
use driver::Accelerator;
use golden::poc::device::{BatchSpec, MatOut, WeightHandle, WeightUpload};
use golden::poc::{DeviceError, MatmulDevice};
use hdl::rtl::HdlConfig;
use serde::Deserialize;

use super::fault::FaultConfig;
use super::{BackendConfig, Device};

/// `[[device]] backend = "sim"`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Device name (default `sim<index>`).
    pub name: Option<String>,
    /// Systolic array rows (default 4).
    pub rows: usize,
    /// Systolic array columns (default 4).
    pub cols: usize,
    /// Operand buffer depth in k steps, a power of two 16…256 (default 64).
    pub kdepth: usize,
    /// Command queue slots (default 4).
    pub queue_depth: usize,
    /// Longest AXI read burst in beats (default 16).
    pub max_burst: u16,
    /// Device memory in MiB (default 16; the served model's weights must fit, transposed).
    pub memory_mib: u64,
    /// Most `batch × seq_len` rows per forward (default 64). The simulator runs at thousands of
    /// cycles per millisecond, so small units keep progress (and the hang watchdog) fine-grained.
    pub max_batch_tokens: usize,
    /// Faults injected into the RTL by the simulator (`pe:1,2:acc:bit30:stuck1`, …; see
    /// `sim::fault`). Tests and demonstrations only.
    pub rtl_faults: Vec<String>,
    /// Host-side fault injection (as for every backend).
    pub fault: Option<FaultConfig>,
}

impl Default for SimConfig {
    fn default() -> Self {
        let hdl = HdlConfig::default();
        SimConfig {
            name: None,
            rows: hdl.rows,
            cols: hdl.cols,
            kdepth: hdl.kdepth,
            queue_depth: hdl.queue_depth,
            max_burst: hdl.max_burst,
            memory_mib: 16,
            max_batch_tokens: 64,
            rtl_faults: Vec::new(),
            fault: None,
        }
    }
}

impl SimConfig {
    fn hdl(&self) -> HdlConfig {
        HdlConfig {
            rows: self.rows,
            cols: self.cols,
            kdepth: self.kdepth,
            queue_depth: self.queue_depth,
            max_burst: self.max_burst,
            ..HdlConfig::default()
        }
    }

    fn faults(&self) -> Result<Vec<FaultSpec>, String> {
        self.rtl_faults
            .iter()
            .map(|text| {
                text.parse::<FaultSpec>()
                    .map_err(|e| format!("rtl_faults entry {text:?}: {e}"))
            })
            .collect()
    }

    fn memory(&self) -> MemoryConfig {
        MemoryConfig {
            size: self.memory_mib << 20,
            ..MemoryConfig::default()
        }
    }
}

impl BackendConfig for SimConfig {
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn fault(&self) -> Option<&FaultConfig> {
        self.fault.as_ref()
    }

    fn validate(&self) -> Result<(), String> {
        self.hdl().validate().map_err(|e| {
            format!(
                "rows = {}, cols = {}, kdepth = {}, queue_depth = {}, max_burst = {}: {e}",
                self.rows, self.cols, self.kdepth, self.queue_depth, self.max_burst
            )
        })?;
        if !(1..=4096).contains(&self.memory_mib) {
            return Err(format!(
                "memory_mib = {} must be between 1 and 4096 (a 32-bit device address space)",
                self.memory_mib
            ));
        }
        if self.max_batch_tokens == 0 {
            return Err("max_batch_tokens must be at least 1".into());
        }
        self.faults().map(|_| ())
    }

    fn open(&self) -> Result<Box<dyn Device>, DeviceError> {
        let failed = |reason: String| DeviceError::Failed {
            device: format!("sim:{}x{}", self.rows, self.cols),
            reason,
        };
        let faults = self.faults().map_err(failed)?;
        tracing::info!(
            rows = self.rows,
            cols = self.cols,
            faults = faults.len(),
            "building (or finding in the cache) the Verilated accelerator"
        );
        let design = Design::build(&DesignOptions {
            config: self.hdl(),
            faults,
            ..DesignOptions::default()
        })
        .map_err(|e| failed(format!("the accelerator could not be built: {e}")))?;
        tracing::info!(build = %design.build, "Verilated accelerator ready");
        let design = Arc::new(design);
        let memory = self.memory();
        let matmul = power_on(&design, &memory)?;
        Ok(Box::new(SimBackend {
            design,
            memory,
            matmul,
            max_batch_tokens: self.max_batch_tokens,
        }))
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
            value
                .parse()
                .map_err(|_| format!("{key}={value:?} is not a non-negative integer"))
        }
        match key {
            "name" => self.name = Some(value.to_string()),
            "rows" => self.rows = number(key, value)?,
            "cols" => self.cols = number(key, value)?,
            "kdepth" => self.kdepth = number(key, value)?,
            "queue_depth" => self.queue_depth = number(key, value)?,
            "max_burst" => self.max_burst = number(key, value)?,
            "memory_mib" => self.memory_mib = number(key, value)?,
            "max_batch_tokens" => self.max_batch_tokens = number(key, value)?,
            "rtl_faults" | "rtl_fault" => return Err(
                "RTL faults contain commas; set rtl_faults in the config file's [[device]] table"
                    .into(),
            ),
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
                        "unknown sim device key {other:?}; expected name, rows, cols, kdepth, \
                         queue_depth, max_burst, memory_mib, max_batch_tokens or fault_*"
                    ))
                }
            },
        }
        Ok(())
    }
}

/// A fresh instance of the design, opened by the driver: what a power cycle gives.
fn power_on(
    design: &Design,
    memory: &MemoryConfig,
) -> Result<AcceleratorMatmul<SimDevice>, DeviceError> {
    let failed = |reason: String| DeviceError::Failed {
        device: design.name(),
        reason,
    };
    let transport = design
        .device(memory.clone(), None)
        .map_err(|e| failed(format!("the simulated device could not start: {e}")))?;
    let accel = Accelerator::open(transport)
        .map_err(|e| failed(format!("the driver could not open the device: {e}")))?;
    Ok(AcceleratorMatmul::new(accel))
}

/// The simulated accelerator in the pool.
pub struct SimBackend {
    design: Arc<Design>,
    memory: MemoryConfig,
    matmul: AcceleratorMatmul<SimDevice>,
    max_batch_tokens: usize,
}

impl MatmulDevice for SimBackend {
    fn describe(&self) -> String {
        self.matmul.describe()
    }

    fn upload_weight(&mut self, weight: &WeightUpload<'_>) -> Result<WeightHandle, DeviceError> {
        self.matmul.upload_weight(weight)
    }

    fn release_weights(&mut self) -> Result<(), DeviceError> {
        self.matmul.release_weights()
    }

    fn matmul_weight(
        &mut self,
        weight: WeightHandle,
        a: &[u16],
        m: usize,
        d: MatOut<'_>,
    ) -> Result<(), DeviceError> {
        self.matmul.matmul_weight(weight, a, m, d)
    }

    fn matmul_batch(
        &mut self,
        spec: &BatchSpec,
        a: &[u16],
        b: &[u16],
        d: MatOut<'_>,
    ) -> Result<(), DeviceError> {
        self.matmul.matmul_batch(spec, a, b, d)
    }
}

impl Device for SimBackend {
    fn backend(&self) -> &'static str {
        "sim"
    }

    /// A power cycle: a fresh model instance of the same design (its memory and every register
    /// cleared), opened again by the driver. Resident weights are gone, as the trait says.
    fn reset(&mut self) -> Result<(), DeviceError> {
        self.matmul = power_on(&self.design, &self.memory)?;
        Ok(())
    }

    fn max_batch_tokens(&self) -> Option<usize> {
        Some(self.max_batch_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_sim_settings_name_the_key() {
        let mut config = SimConfig::default();
        config.validate().unwrap();
        config.kdepth = 17;
        assert!(config.validate().unwrap_err().contains("kdepth"));
        config = SimConfig {
            memory_mib: 0,
            ..SimConfig::default()
        };
        assert!(config.validate().unwrap_err().contains("memory_mib"));
        config = SimConfig {
            rtl_faults: vec!["pe:0,0:acc:bit99:wobble".into()],
            ..SimConfig::default()
        };
        assert!(config.validate().unwrap_err().contains("rtl_faults"));
        config = SimConfig {
            rtl_faults: vec!["pe:1,2:acc:bit30:stuck1".into()],
            ..SimConfig::default()
        };
        config.validate().unwrap();
    }
}
