//! The host side of the accelerator's register port.
//!
//! The protocol (fixed with the RTL): inputs `csr$addr`, `csr$wdata[31:0]`, `csr$write` (a
//! one-cycle strobe), `csr$read` (a one-cycle strobe); output `csr$rdata[31:0]`, valid in the
//! cycle after the read strobe. A write therefore takes one cycle, a read one cycle plus the
//! sample of `rdata` in the following one. Each access clocks whatever it is given
//! ([`Clocked`]): a bare model, or a [`crate::Bench`] whose memory keeps serving DMA meanwhile.

use driver::transport::check_register_offset;

use crate::bench::Clocked;
use crate::error::SimError;
use crate::model::{InputPort, Model, OutputPort, PortHandle};

/// How `csr$addr` counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsrAddressing {
    /// `addr` is the byte offset (multiples of 4).
    Byte,
    /// `addr` is the word index (byte offset / 4).
    Word,
}

/// The register port of a design.
#[derive(Clone, Copy, Debug)]
pub struct CsrPort {
    addr: InputPort,
    wdata: InputPort,
    write: InputPort,
    read: InputPort,
    rdata: OutputPort,
    addressing: CsrAddressing,
    register_bytes: u64,
}

impl CsrPort {
    /// Looks the ports up as `<prefix>addr`, `<prefix>wdata`, … (the accelerator uses `csr$`).
    pub fn bind(model: &Model, prefix: &str, addressing: CsrAddressing) -> Result<Self, SimError> {
        let addr = model.input(&format!("{prefix}addr"))?;
        let wdata = model.input(&format!("{prefix}wdata"))?;
        let write = model.input(&format!("{prefix}write"))?;
        let read = model.input(&format!("{prefix}read"))?;
        let rdata = model.output(&format!("{prefix}rdata"))?;
        for (name, port, width) in [
            ("wdata", wdata.width(), 32),
            ("write", write.width(), 1),
            ("read", read.width(), 1),
        ] {
            if port != width {
                return Err(SimError::PortWidth {
                    name: format!("{prefix}{name}"),
                    width: port,
                    expected: format!("the register port protocol has {width}"),
                });
            }
        }
        if rdata.width() != 32 {
            return Err(SimError::PortWidth {
                name: format!("{prefix}rdata"),
                width: rdata.width(),
                expected: "the register port protocol has 32".into(),
            });
        }
        if addr.width() > 40 {
            return Err(SimError::PortWidth {
                name: format!("{prefix}addr"),
                width: addr.width(),
                expected: "a register space of at most 2^40 bytes".into(),
            });
        }
        let register_bytes = match addressing {
            CsrAddressing::Byte => 1u64 << addr.width(),
            CsrAddressing::Word => 4u64 << addr.width(),
        };
        Ok(Self {
            addr,
            wdata,
            write,
            read,
            rdata,
            addressing,
            register_bytes,
        })
    }

    /// Size of the register space in bytes (what `csr$addr` can reach).
    pub fn register_bytes(&self) -> u64 {
        self.register_bytes
    }

    fn address(&self, offset: u64) -> Result<u64, SimError> {
        check_register_offset(offset, self.register_bytes)?;
        Ok(match self.addressing {
            CsrAddressing::Byte => offset,
            CsrAddressing::Word => offset / 4,
        })
    }

    /// Writes the register at byte `offset` (one cycle).
    pub fn write32(
        &self,
        target: &mut impl Clocked,
        offset: u64,
        value: u32,
    ) -> Result<(), SimError> {
        let addr = self.address(offset)?;
        let model = target.model();
        model.set(self.addr, addr);
        model.set(self.wdata, u64::from(value));
        model.set(self.write, 1);
        let result = target.step();
        target.model().set(self.write, 0);
        result
    }

    /// Reads the register at byte `offset` (the strobe cycle; `rdata` is sampled in the next).
    pub fn read32(&self, target: &mut impl Clocked, offset: u64) -> Result<u32, SimError> {
        let addr = self.address(offset)?;
        let model = target.model();
        model.set(self.addr, addr);
        model.set(self.read, 1);
        let result = target.step();
        let model = target.model();
        model.set(self.read, 0);
        result?;
        Ok(model.get(self.rdata) as u32)
    }

    /// Drives the port idle (no strobes), e.g. after a reset.
    pub fn idle(&self, model: &mut Model) {
        model.set(self.write, 0);
        model.set(self.read, 0);
    }
}
