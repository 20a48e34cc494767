//! Devices: what computes the PoC forward's matrix products, with health around it.
//!
//! A device is a [`golden::poc::MatmulDevice`] (the golden model's device-dispatch trait: the
//! forward runs on the host, every matrix product on the device) plus what the daemon needs to
//! keep a pool of them healthy ([`Device`]: reset, telemetry, a batch limit).
//!
//! Backends are modules here, each with a config struct; [`DeviceConfig`] is the `[[device]]`
//! table of the config file, tagged by `backend`. Adding a backend (`sim`, `vfio`, `serial`,
//! `gpu`) is adding its module, one variant to [`DeviceConfig`] and one arm to
//! [`DeviceConfig::backend`]; the pool, the cross-check, fault handling and metrics need no
//! change.

pub mod cpu;
pub mod fault;
pub mod guard;
pub mod sim;
pub mod telemetry;

use std::sync::Arc;

use golden::poc::{DeviceError, MatmulDevice, ThreadPool};
use serde::Deserialize;

pub use fault::FaultConfig;
pub use telemetry::Telemetry;

/// A device in the pool: the matrix products, plus health.
pub trait Device: MatmulDevice {
    /// The backend's name (`cpu`, `sim`, …), for logs and metrics labels.
    fn backend(&self) -> &'static str;

    /// Brings the device back to a known state after a fault. Resident weights are gone
    /// afterwards (the pool uploads them again).
    fn reset(&mut self) -> Result<(), DeviceError>;

    /// Temperature and power, where the device reports them.
    fn telemetry(&mut self) -> Telemetry {
        Telemetry::default()
    }

    /// The most `batch × seq_len` rows the device takes in one forward, if it is limited.
    fn max_batch_tokens(&self) -> Option<usize> {
        None
    }

    /// Threads for the forward's host-side work (norms, attention softmax, reflections) that
    /// feeds this device.
    fn host_threads(&self) -> usize {
        1
    }

    /// A thread pool the host-side work should share with the device, where the device computes
    /// on this machine's cores (the CPU backend): a pool of its own would fight the device's for
    /// the same cores.
    fn host_pool(&self) -> Option<Arc<ThreadPool>> {
        None
    }
}

/// What every backend's config offers.
pub trait BackendConfig {
    /// The name given in the config, if any.
    fn name(&self) -> Option<&str>;
    /// The fault-injection settings (a test and operations feature).
    fn fault(&self) -> Option<&FaultConfig>;
    /// Checks values; the message says what is wrong.
    fn validate(&self) -> Result<(), String>;
    /// Opens the device.
    fn open(&self) -> Result<Box<dyn Device>, DeviceError>;
    /// Applies one `key=value` of a `--device` spec; unknown keys are errors.
    fn set(&mut self, key: &str, value: &str) -> Result<(), String>;
}

/// One `[[device]]` of the config file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case")]
pub enum DeviceConfig {
    /// The CPU golden model.
    Cpu(cpu::CpuConfig),
    /// The accelerator's RTL, Verilated, through the driver.
    Sim(sim::SimConfig),
}

impl DeviceConfig {
    /// The backend's config behind its common interface.
    pub fn backend(&self) -> &dyn BackendConfig {
        match self {
            DeviceConfig::Cpu(c) => c,
            DeviceConfig::Sim(c) => c,
        }
    }

    fn backend_mut(&mut self) -> &mut dyn BackendConfig {
        match self {
            DeviceConfig::Cpu(c) => c,
            DeviceConfig::Sim(c) => c,
        }
    }

    /// The backend's tag.
    pub fn kind(&self) -> &'static str {
        match self {
            DeviceConfig::Cpu(_) => "cpu",
            DeviceConfig::Sim(_) => "sim",
        }
    }

    /// The device's name: the configured one, else `<backend><index>`.
    pub fn name(&self, index: usize) -> String {
        match self.backend().name() {
            Some(name) => name.to_string(),
            None => format!("{}{index}", self.kind()),
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(name) = self.backend().name() {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
            {
                return Err(format!(
                    "name {name:?} must be non-empty ASCII letters, digits or -_.: (it is a metrics label)"
                ));
            }
        }
        if let Some(fault) = self.backend().fault() {
            fault.validate()?;
        }
        self.backend().validate()
    }

    /// Parses a `--device` spec: `<backend>[:key=value,...]`, e.g. `cpu`,
    /// `cpu:name=bad,threads=2,fault_flip_bit=14,fault_every=3`, `sim:rows=2,cols=3`.
    pub fn parse_spec(spec: &str) -> Result<Self, String> {
        let (kind, rest) = spec.split_once(':').unwrap_or((spec, ""));
        let mut config = match kind {
            "cpu" => DeviceConfig::Cpu(cpu::CpuConfig::default()),
            "sim" => DeviceConfig::Sim(sim::SimConfig::default()),
            "vfio" | "serial" | "gpu" => {
                return Err(format!(
                    "backend {kind:?} is not available in this build yet; available: cpu, sim"
                ))
            }
            other => {
                return Err(format!(
                    "unknown backend {other:?} in {spec:?}; available: cpu, sim"
                ))
            }
        };
        for pair in rest.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} in {spec:?} is not key=value"))?;
            config.backend_mut().set(key.trim(), value.trim())?;
        }
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_into_configs() {
        let config = DeviceConfig::parse_spec("cpu").unwrap();
        assert_eq!(config.name(3), "cpu3");
        let config =
            DeviceConfig::parse_spec("cpu:name=bad,threads=2,fault_flip_bit=14,fault_every=3")
                .unwrap();
        assert_eq!(config.name(0), "bad");
        let fault = config.backend().fault().unwrap();
        assert_eq!((fault.flip_bit, fault.every), (Some(14), 3));
        let config = DeviceConfig::parse_spec("sim:rows=2,cols=3,kdepth=16").unwrap();
        assert_eq!((config.kind(), config.name(1)), ("sim", "sim1".to_string()));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, needle) in [
            ("tpu", "unknown backend"),
            ("cpu:threads", "key=value"),
            ("cpu:colour=red", "colour"),
            ("cpu:threads=0", "threads"),
            ("cpu:name=a b", "name"),
            ("cpu:fault_every=0,fault_flip_bit=1", "fault"),
            ("gpu", "not available"),
            ("sim:kdepth=17", "kdepth"),
            ("sim:rtl_faults=x", "config file"),
        ] {
            let err = DeviceConfig::parse_spec(spec).unwrap_err();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }

    #[test]
    fn config_tables_parse() {
        #[derive(Deserialize)]
        struct File {
            device: Vec<DeviceConfig>,
        }
        let file: File = toml::from_str(
            r#"
            [[device]]
            backend = "cpu"
            name = "cpu-a"
            threads = 2
            [device.fault]
            flip_bit = 14
            every = 5
            "#,
        )
        .unwrap();
        assert_eq!(file.device[0].name(0), "cpu-a");
        file.device[0].validate().unwrap();
    }
}
