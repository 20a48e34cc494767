//! The PoCForge accelerator as a simulated device: emit its Verilog for a configuration
//! (`hdl::rtl::emit`), build it with Verilator (cached), and wire it up as a [`SimDevice`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdl::rtl::{emit, HdlConfig};

use crate::device::{SimDevice, SimDeviceConfig};
use crate::error::SimError;
use crate::fault::{self, FaultSpec, SignalFault};
use crate::hier::Hierarchy;
use crate::memory::MemoryConfig;
use crate::model::{Model, ModelOptions, VerilatedLibrary};
use crate::verilate::{BuildOptions, BuildReport};

/// What to build.
#[derive(Clone, Debug, Default)]
pub struct DesignOptions {
    /// The accelerator's parameters.
    pub config: HdlConfig,
    /// Compile VCD tracing in.
    pub trace: bool,
    /// Faults to inject ([`crate::fault`]); their signals are made writable in the build.
    pub faults: Vec<FaultSpec>,
    /// Build cache folder; `None` for the default.
    pub cache_dir: Option<PathBuf>,
}

/// A built accelerator design, ready to instantiate as devices.
#[derive(Debug)]
pub struct Design {
    /// Its parameters.
    pub config: HdlConfig,
    /// The Verilated library.
    pub library: Arc<VerilatedLibrary>,
    /// What the Verilator build did (cache hit or not, time).
    pub build: BuildReport,
    /// Time spent elaborating and emitting the Verilog.
    pub emit_time: Duration,
    /// Size of the emitted Verilog in bytes.
    pub verilog_bytes: usize,
    /// The resolved faults every device of this design gets.
    pub faults: Vec<SignalFault>,
}

impl Design {
    /// Emits, resolves the faults against the emitted hierarchy, and builds (or finds in the
    /// cache) the library.
    pub fn build(options: &DesignOptions) -> Result<Design, SimError> {
        let started = Instant::now();
        let verilog =
            emit::verilog(&options.config).map_err(|e| SimError::Config(e.to_string()))?;
        let emit_time = started.elapsed();
        let mut faults = Vec::new();
        let mut public_rw = Vec::new();
        if !options.faults.is_empty() {
            let hierarchy =
                Hierarchy::parse(&verilog, emit::TOP_MODULE).map_err(SimError::Config)?;
            let (rows, cols) = (options.config.rows as u32, options.config.cols as u32);
            for spec in &options.faults {
                let resolved =
                    fault::resolve(spec, &hierarchy, rows, cols).map_err(|e| SimError::Fault {
                        message: format!(
                            "{e}\nvalid targets of this design:\n{}",
                            fault::targets(&hierarchy, rows, cols)
                        ),
                    })?;
                faults.push(resolved.fault);
                public_rw.push(resolved.public);
            }
        }
        let build_options = BuildOptions {
            trace: options.trace,
            cache_dir: options.cache_dir.clone(),
            public_rw,
            ..BuildOptions::default()
        };
        let (library, build) = VerilatedLibrary::build(&verilog, emit::TOP_MODULE, &build_options)?;
        Ok(Design {
            config: options.config.clone(),
            library,
            build,
            emit_time,
            verilog_bytes: verilog.len(),
            faults,
        })
    }

    /// A short name: `sim:8x8`.
    pub fn name(&self) -> String {
        format!("sim:{}x{}", self.config.rows, self.config.cols)
    }

    /// A fresh device of this design with `memory` on its AXI port, tracing to `trace`.
    pub fn device(
        &self,
        memory: MemoryConfig,
        trace: Option<PathBuf>,
    ) -> Result<SimDevice, SimError> {
        let model = Model::new(
            &self.library,
            ModelOptions {
                trace,
                faults: self.faults.clone(),
                ..ModelOptions::default()
            },
        )?;
        SimDevice::new(
            model,
            SimDeviceConfig {
                name: self.name(),
                memory,
                ..SimDeviceConfig::default()
            },
        )
    }
}
