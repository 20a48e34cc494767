//! A model and the memory it talks to, clocked together.
//!
//! Every cycle of a [`Bench`]:
//! 1. the memory's outputs for the cycle ([`AxiMemory::present`]) are driven into the model;
//! 2. the model settles, and the master's outputs are sampled;
//! 3. the clock rises ([`Model::tick`]);
//! 4. the memory performs the handshakes it saw in step 2 ([`AxiMemory::clock`]).
//!
//! Inputs the caller sets between cycles (register port, reset) are applied in the same cycle.

use crate::error::SimError;
use crate::memory::{AxiMemory, AxiPorts, MasterSignals};
use crate::model::Model;

/// Something that advances one clock cycle at a time: a bare [`Model`], or a [`Bench`].
pub trait Clocked {
    /// The model, to set and read ports between cycles.
    fn model(&mut self) -> &mut Model;
    /// Runs one clock cycle (for a bench: with the memory serving the AXI port).
    fn step(&mut self) -> Result<(), SimError>;
}

impl Clocked for Model {
    fn model(&mut self) -> &mut Model {
        self
    }
    fn step(&mut self) -> Result<(), SimError> {
        self.tick()
    }
}

/// A Verilated design with an AXI4 memory on its master port.
#[derive(Debug)]
pub struct Bench {
    model: Model,
    memory: AxiMemory,
    ports: AxiPorts,
    master: MasterSignals,
}

impl Bench {
    /// Connects `memory` to the model's AXI master ports (names `<axi_prefix>araddr`, …).
    pub fn new(model: Model, memory: AxiMemory, axi_prefix: &str) -> Result<Self, SimError> {
        let ports = AxiPorts::bind(&model, axi_prefix)?;
        if ports.data_bytes() != memory.data_bytes() {
            return Err(SimError::Config(format!(
                "the memory has {}-byte beats but the design's AXI data ports have {} bytes",
                memory.data_bytes(),
                ports.data_bytes()
            )));
        }
        let config = memory.config();
        let end = config.base + config.size; // no overflow: AxiMemory::new checked it
        if ports.addr_bits() < 64 && end > 1u64 << ports.addr_bits() {
            return Err(SimError::Config(format!(
                "the memory ends at {end:#x}, beyond the {}-bit AXI address space of the design",
                ports.addr_bits()
            )));
        }
        Ok(Self {
            model,
            memory,
            ports,
            master: MasterSignals::default(),
        })
    }

    /// The model.
    pub fn model_mut(&mut self) -> &mut Model {
        &mut self.model
    }

    /// The model, read-only.
    pub fn model_ref(&self) -> &Model {
        &self.model
    }

    /// Replaces the model by a fresh instance of the same design (a power cycle), keeping the
    /// memory and its contents; bursts in flight are forgotten. Returns the old model.
    pub fn replace_model(&mut self, model: Model) -> Result<Model, SimError> {
        if !std::sync::Arc::ptr_eq(model.library(), self.model.library()) {
            return Err(SimError::Config(
                "a bench's model can only be replaced by an instance of the same library".into(),
            ));
        }
        self.memory.reset_bus();
        Ok(std::mem::replace(&mut self.model, model))
    }

    /// The memory.
    pub fn memory(&self) -> &AxiMemory {
        &self.memory
    }

    /// The memory, for host access.
    pub fn memory_mut(&mut self) -> &mut AxiMemory {
        &mut self.memory
    }

    /// Runs `cycles` cycles.
    pub fn run(&mut self, cycles: u64) -> Result<(), SimError> {
        for _ in 0..cycles {
            self.step()?;
        }
        Ok(())
    }
}

impl Clocked for Bench {
    fn model(&mut self) -> &mut Model {
        &mut self.model
    }

    fn step(&mut self) -> Result<(), SimError> {
        let slave = self.memory.present();
        self.ports.drive(&mut self.model, slave);
        self.ports.sample(&mut self.model, &mut self.master);
        self.model.tick()?;
        self.memory.clock(&self.master);
        Ok(())
    }
}
