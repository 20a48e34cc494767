//! Connecting [`super::AxiMemory`] to a model's AXI4 master ports.

use super::{MasterSignals, SlaveSignals};
use crate::error::SimError;
use crate::model::{InputPort, Model, OutputPort, PortHandle};

/// The AXI4 master ports of a design (prefix + lowercase standard names, no IDs):
/// master outputs `araddr arlen arvalid rready awaddr awlen awvalid wdata wstrb wlast wvalid
/// bready`, master inputs `arready rvalid rdata rresp rlast awready wready bvalid bresp`.
#[derive(Clone, Copy, Debug)]
pub struct AxiPorts {
    araddr: OutputPort,
    arlen: OutputPort,
    arvalid: OutputPort,
    rready: OutputPort,
    awaddr: OutputPort,
    awlen: OutputPort,
    awvalid: OutputPort,
    wdata: OutputPort,
    wstrb: OutputPort,
    wlast: OutputPort,
    wvalid: OutputPort,
    bready: OutputPort,
    arready: InputPort,
    rvalid: InputPort,
    rdata: InputPort,
    rresp: InputPort,
    rlast: InputPort,
    awready: InputPort,
    wready: InputPort,
    bvalid: InputPort,
    bresp: InputPort,
    data_bytes: usize,
    addr_bits: u32,
}

impl AxiPorts {
    /// Looks the ports up as `<prefix><name>` (the accelerator uses the prefix `axi$`) and checks
    /// their widths: 1-bit handshakes, 2-bit responses, 8-bit lengths (or narrower), addresses of
    /// up to 64 bits, data of 8…1024 bits (a power of two) with one strobe per byte.
    pub fn bind(model: &Model, prefix: &str) -> Result<Self, SimError> {
        let out = |name: &str| model.output(&format!("{prefix}{name}"));
        let inp = |name: &str| model.input(&format!("{prefix}{name}"));
        let ports = Self {
            araddr: out("araddr")?,
            arlen: out("arlen")?,
            arvalid: out("arvalid")?,
            rready: out("rready")?,
            awaddr: out("awaddr")?,
            awlen: out("awlen")?,
            awvalid: out("awvalid")?,
            wdata: out("wdata")?,
            wstrb: out("wstrb")?,
            wlast: out("wlast")?,
            wvalid: out("wvalid")?,
            bready: out("bready")?,
            arready: inp("arready")?,
            rvalid: inp("rvalid")?,
            rdata: inp("rdata")?,
            rresp: inp("rresp")?,
            rlast: inp("rlast")?,
            awready: inp("awready")?,
            wready: inp("wready")?,
            bvalid: inp("bvalid")?,
            bresp: inp("bresp")?,
            data_bytes: 0,
            addr_bits: 0,
        };
        let width_error = |name: &str, width: u32, expected: &str| SimError::PortWidth {
            name: format!("{prefix}{name}"),
            width,
            expected: expected.to_owned(),
        };
        let one_bit: [(&str, u32); 12] = [
            ("arvalid", ports.arvalid.width()),
            ("rready", ports.rready.width()),
            ("awvalid", ports.awvalid.width()),
            ("wlast", ports.wlast.width()),
            ("wvalid", ports.wvalid.width()),
            ("bready", ports.bready.width()),
            ("arready", ports.arready.width()),
            ("rvalid", ports.rvalid.width()),
            ("rlast", ports.rlast.width()),
            ("awready", ports.awready.width()),
            ("wready", ports.wready.width()),
            ("bvalid", ports.bvalid.width()),
        ];
        for (name, width) in one_bit {
            if width != 1 {
                return Err(width_error(name, width, "a handshake signal has 1 bit"));
            }
        }
        for (name, width) in [
            ("rresp", ports.rresp.width()),
            ("bresp", ports.bresp.width()),
        ] {
            if width != 2 {
                return Err(width_error(name, width, "AXI responses have 2 bits"));
            }
        }
        for (name, width) in [
            ("arlen", ports.arlen.width()),
            ("awlen", ports.awlen.width()),
        ] {
            if width > 8 {
                return Err(width_error(
                    name,
                    width,
                    "AXI4 burst lengths have at most 8 bits",
                ));
            }
        }
        let addr_bits = ports.araddr.width();
        if addr_bits > 64 || ports.awaddr.width() != addr_bits {
            return Err(width_error(
                "awaddr",
                ports.awaddr.width(),
                &format!("both address ports must have the same width of at most 64 bits (araddr has {addr_bits})"),
            ));
        }
        let data_bits = ports.wdata.width();
        if !(8..=1024).contains(&data_bits)
            || !data_bits.is_power_of_two()
            || ports.rdata.width() != data_bits
        {
            return Err(width_error(
                "wdata",
                data_bits,
                &format!(
                    "data ports must be equally wide, a power of two from 8 to 1024 bits (rdata has {})",
                    ports.rdata.width()
                ),
            ));
        }
        if ports.wstrb.width() != data_bits / 8 {
            return Err(width_error(
                "wstrb",
                ports.wstrb.width(),
                &format!("it needs one bit per data byte ({})", data_bits / 8),
            ));
        }
        Ok(Self {
            data_bytes: (data_bits / 8) as usize,
            addr_bits,
            ..ports
        })
    }

    /// Bytes per data beat.
    pub fn data_bytes(&self) -> usize {
        self.data_bytes
    }

    /// Width of the address ports.
    pub fn addr_bits(&self) -> u32 {
        self.addr_bits
    }

    /// Drives the slave's outputs into the model.
    pub fn drive(&self, model: &mut Model, slave: &SlaveSignals) {
        model.set(self.arready, u64::from(slave.arready));
        model.set(self.rvalid, u64::from(slave.rvalid));
        model.set_bytes(self.rdata, &slave.rdata);
        model.set(self.rresp, u64::from(slave.rresp));
        model.set(self.rlast, u64::from(slave.rlast));
        model.set(self.awready, u64::from(slave.awready));
        model.set(self.wready, u64::from(slave.wready));
        model.set(self.bvalid, u64::from(slave.bvalid));
        model.set(self.bresp, u64::from(slave.bresp));
    }

    /// Reads the master's outputs from the model (settling it first).
    pub fn sample(&self, model: &mut Model, master: &mut MasterSignals) {
        // Payloads are read only when valid: each read is a call into the model.
        master.arvalid = model.get(self.arvalid) != 0;
        if master.arvalid {
            master.araddr = model.get(self.araddr);
            master.arlen = model.get(self.arlen) as u8;
        }
        master.rready = model.get(self.rready) != 0;
        master.awvalid = model.get(self.awvalid) != 0;
        if master.awvalid {
            master.awaddr = model.get(self.awaddr);
            master.awlen = model.get(self.awlen) as u8;
        }
        master.wvalid = model.get(self.wvalid) != 0;
        if master.wvalid {
            master.wdata.resize(self.data_bytes, 0);
            model.get_bytes(self.wdata, &mut master.wdata);
            master.wstrb = model.get_u128(self.wstrb);
            master.wlast = model.get(self.wlast) != 0;
        }
        master.bready = model.get(self.bready) != 0;
    }
}
