//! The simulated accelerator as a `driver::Transport`.
//!
//! [`SimDevice`] puts a Verilated model with the accelerator's top-level interface (`clock`,
//! `reset`, the register port `csr$…`, the AXI4 master `axi$…`, `irq`) together with an
//! [`AxiMemory`] and offers it to the driver like any other device:
//!
//! - **registers**: each access runs the register-port protocol ([`CsrPort`]), clocking the
//!   design (and the memory) one cycle per strobe;
//! - **DMA memory**: the memory model's storage; an IOVA is a memory-model address; buffers are
//!   carved out of `[memory.base, memory.base + memory.size)` by [`AddressAllocator`]; host reads
//!   and writes go through the memory's side door and take no cycles;
//! - **interrupts**: [`Transport::wait_irq`] clocks the design until `irq` is high or the budget
//!   runs out — simulated time passes only here and during register accesses;
//! - **reset**: `reset` held high for a few cycles. After the design failed (`$finish`,
//!   `$stop`, a Verilator fatal error) the model is dead; `reset` then makes a fresh instance of
//!   the same library (a power cycle; a traced model continues in `<trace>.power-cycle-<n>.vcd`,
//!   keeping the failed run's trace). Memory contents and DMA buffers survive resets.

use std::collections::HashMap;
use std::time::Instant;

use driver::{
    AddressAllocator, DeviceInfo, DeviceKind, DmaBuffer, Iova, IrqEvent, Transport, TransportError,
    WaitBudget,
};

use crate::bench::{Bench, Clocked};
use crate::csr::{CsrAddressing, CsrPort};
use crate::error::SimError;
use crate::memory::{AxiMemory, AxiPorts, MemoryConfig};
use crate::model::{InputPort, Model, OutputPort, PortHandle};

/// How a design is wired up as a device. The defaults are the accelerator's interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimDeviceConfig {
    /// The device's name in [`DeviceInfo`].
    pub name: String,
    /// The memory on the AXI port (also the DMA window).
    pub memory: MemoryConfig,
    /// Prefix of the AXI4 master ports.
    pub axi_prefix: String,
    /// Prefix of the register port.
    pub csr_prefix: String,
    /// Whether `csr$addr` is a byte offset or a word index.
    pub csr_addressing: CsrAddressing,
    /// The synchronous, active-high reset input.
    pub reset_port: String,
    /// The level interrupt output.
    pub irq_port: String,
    /// Cycles `reset` is held high.
    pub reset_cycles: u32,
}

impl Default for SimDeviceConfig {
    fn default() -> Self {
        Self {
            name: "sim".into(),
            memory: MemoryConfig::default(),
            axi_prefix: "axi$".into(),
            csr_prefix: "csr$".into(),
            csr_addressing: CsrAddressing::Byte,
            reset_port: "reset".into(),
            irq_port: "irq".into(),
            reset_cycles: 4,
        }
    }
}

/// Wall-clock limits are checked every this many cycles (reading the clock costs time too).
const WALL_CHECK_INTERVAL: u64 = 256;

/// A Verilated accelerator with its memory, as a driver transport.
#[derive(Debug)]
pub struct SimDevice {
    bench: Bench,
    csr: CsrPort,
    reset: InputPort,
    irq: OutputPort,
    allocator: AddressAllocator,
    /// Live buffers: IOVA → (token, length).
    buffers: HashMap<u64, (u64, u64)>,
    next_token: u64,
    config: SimDeviceConfig,
    /// Why the model is unusable, until the next reset.
    fault: Option<String>,
    /// Fresh model instances made after faults.
    power_cycles: u32,
}

impl SimDevice {
    /// Wires `model` up according to `config` and resets it.
    pub fn new(model: Model, config: SimDeviceConfig) -> Result<Self, SimError> {
        let ports = AxiPorts::bind(&model, &config.axi_prefix)?;
        let memory = AxiMemory::new(config.memory.clone(), ports.data_bytes())?;
        let csr = CsrPort::bind(&model, &config.csr_prefix, config.csr_addressing)?;
        let reset = model.input(&config.reset_port)?;
        let irq = model.output(&config.irq_port)?;
        for (name, width) in [
            (&config.reset_port, reset.width()),
            (&config.irq_port, irq.width()),
        ] {
            if width != 1 {
                return Err(SimError::PortWidth {
                    name: name.clone(),
                    width,
                    expected: "reset and interrupt are single wires".into(),
                });
            }
        }
        let bench = Bench::new(model, memory, &config.axi_prefix)?;
        let allocator = AddressAllocator::new(config.memory.base, config.memory.size);
        let mut device = Self {
            bench,
            csr,
            reset,
            irq,
            allocator,
            buffers: HashMap::new(),
            next_token: 1,
            config,
            fault: None,
            power_cycles: 0,
        };
        device.hardware_reset()?;
        Ok(device)
    }

    /// The model and memory, for direct inspection (ports, statistics, extra cycles).
    pub fn bench(&mut self) -> &mut Bench {
        &mut self.bench
    }

    /// The model and memory, read-only (statistics, fault hits).
    pub fn bench_ref(&self) -> &Bench {
        &self.bench
    }

    /// The memory model.
    pub fn memory(&self) -> &AxiMemory {
        self.bench.memory()
    }

    /// Clock cycles simulated so far (including resets).
    pub fn cycles(&self) -> u64 {
        self.bench.model_ref().cycle()
    }

    /// The configuration.
    pub fn config(&self) -> &SimDeviceConfig {
        &self.config
    }

    /// Holds `reset` high for the configured number of cycles.
    fn hardware_reset(&mut self) -> Result<(), SimError> {
        let model = self.bench.model_mut();
        self.csr.idle(model);
        model.set(self.reset, 1);
        self.bench.memory_mut().reset_bus();
        for _ in 0..self.config.reset_cycles.max(1) {
            self.bench.step()?;
        }
        self.bench.model_mut().set(self.reset, 0);
        Ok(())
    }

    /// Turns a simulation error into a transport error, remembering faults of the model.
    fn fail(&mut self, error: SimError) -> TransportError {
        match error {
            SimError::Transport(error) => error,
            other => {
                let detail = other.to_string();
                if matches!(
                    other,
                    SimError::Finished { .. }
                        | SimError::DesignError { .. }
                        | SimError::Broken { .. }
                ) {
                    self.fault = Some(detail.clone());
                }
                TransportError::DeviceFault {
                    device: self.config.name.clone(),
                    detail,
                }
            }
        }
    }

    fn check_alive(&self) -> Result<(), TransportError> {
        match &self.fault {
            Some(fault) => Err(TransportError::DeviceFault {
                device: self.config.name.clone(),
                detail: format!("the model failed earlier ({fault})"),
            }),
            None => Ok(()),
        }
    }

    /// The device address of `offset` bytes into a live buffer of ours.
    fn locate(&self, buffer: &DmaBuffer, offset: u64, len: usize) -> Result<u64, TransportError> {
        let iova = buffer.iova();
        match self.buffers.get(&iova.get()) {
            Some(&(token, _)) if token == buffer.token() => {}
            _ => return Err(TransportError::UnknownBuffer { iova }),
        }
        buffer.check_range(offset, len as u64)?;
        Ok(iova.get() + offset)
    }
}

impl Transport for SimDevice {
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            name: self.config.name.clone(),
            kind: DeviceKind::Simulator,
            register_bytes: self.csr.register_bytes(),
            dma_base: Iova::new(self.config.memory.base),
            dma_bytes: self.config.memory.size,
            clock_hz: None,
        }
    }

    fn read32(&mut self, offset: u64) -> Result<u32, TransportError> {
        self.check_alive()?;
        let csr = self.csr;
        csr.read32(&mut self.bench, offset)
            .map_err(|e| self.fail(e))
    }

    fn write32(&mut self, offset: u64, value: u32) -> Result<(), TransportError> {
        self.check_alive()?;
        let csr = self.csr;
        csr.write32(&mut self.bench, offset, value)
            .map_err(|e| self.fail(e))
    }

    fn alloc_dma(&mut self, len: u64, align: u64) -> Result<DmaBuffer, TransportError> {
        let address = self.allocator.allocate(len, align)?;
        let token = self.next_token;
        self.next_token += 1;
        self.buffers.insert(address, (token, len));
        Ok(DmaBuffer::new(Iova::new(address), len, token))
    }

    fn free_dma(&mut self, buffer: DmaBuffer) -> Result<(), TransportError> {
        let iova = buffer.iova();
        match self.buffers.get(&iova.get()) {
            Some(&(token, _)) if token == buffer.token() => {}
            _ => return Err(TransportError::UnknownBuffer { iova }),
        }
        self.buffers.remove(&iova.get());
        self.allocator.free(iova.get())?;
        Ok(())
    }

    fn write_dma(
        &mut self,
        buffer: &DmaBuffer,
        offset: u64,
        data: &[u8],
    ) -> Result<(), TransportError> {
        let address = self.locate(buffer, offset, data.len())?;
        self.bench
            .memory_mut()
            .write(address, data)
            .map_err(|e| self.fail(e))
    }

    fn read_dma(
        &mut self,
        buffer: &DmaBuffer,
        offset: u64,
        out: &mut [u8],
    ) -> Result<(), TransportError> {
        let address = self.locate(buffer, offset, out.len())?;
        self.bench
            .memory()
            .read(address, out)
            .map_err(|e| self.fail(e))
    }

    fn wait_irq(&mut self, budget: WaitBudget) -> Result<IrqEvent, TransportError> {
        if budget.cycles.is_none() && budget.wall.is_none() {
            return Err(TransportError::NoWaitBudget);
        }
        self.check_alive()?;
        let started = Instant::now();
        let mut waited: u64 = 0;
        loop {
            if self.bench.model_mut().get(self.irq) != 0 {
                return Ok(IrqEvent {
                    cycles: Some(waited),
                    elapsed: started.elapsed(),
                });
            }
            let out_of_cycles = budget.cycles.is_some_and(|limit| waited >= limit);
            let out_of_time = waited.is_multiple_of(WALL_CHECK_INTERVAL)
                && budget.wall.is_some_and(|limit| started.elapsed() >= limit);
            if out_of_cycles || out_of_time {
                return Err(TransportError::Timeout {
                    budget,
                    waited_cycles: Some(waited),
                    elapsed: started.elapsed(),
                });
            }
            if let Err(error) = self.bench.step() {
                return Err(self.fail(error));
            }
            waited += 1;
        }
    }

    fn reset(&mut self) -> Result<(), TransportError> {
        if self.fault.is_some() {
            self.power_cycles += 1;
            let old = self.bench.model_ref();
            let mut options = old.options().clone();
            // The failed run's trace is kept; the new instance traces into a file of its own.
            if let Some(path) = &options.trace {
                let stem = path
                    .file_stem()
                    .map_or("trace".into(), |s| s.to_string_lossy().into_owned());
                let name = format!("{stem}.power-cycle-{}.vcd", self.power_cycles);
                options.trace = Some(path.with_file_name(name));
            }
            let fresh = Model::new(old.library(), options).map_err(|e| self.fail(e))?;
            drop(self.bench.replace_model(fresh).map_err(|e| self.fail(e))?);
            self.fault = None;
        }
        self.hardware_reset().map_err(|e| self.fail(e))
    }
}
