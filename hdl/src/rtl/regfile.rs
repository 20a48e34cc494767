//! The register file, generated from the register table in [`crate::regmap`].
//!
//! Every `Rw` register of the table gets a storage register with the table's reset value; the
//! `W1c` register (IRQ_STATUS) is set by event inputs and cleared by writing ones; writes to the
//! `Wo` registers become one-cycle strobes (DOORBELL, PERF_CTRL.CLEAR); `Ro` registers read the
//! configuration constants or the status inputs. Both the simulation (`update`) and the Verilog
//! (`hdl`) are produced by walking [`regmap::REGISTERS`], so adding a register to the table adds
//! it to the hardware (a new read-only register also needs its source in [`RegFile::ro_source`]).
//!
//! Port timing (the `csr$` port of the top level): `addr` is a byte offset; `write` and `read`
//! are one-cycle strobes; `rdata` holds the value read on the cycle after the `read` strobe and
//! keeps it until the next read.

use rust_hdl::prelude::*;

use crate::regmap::{self, Access, Reset};

/// Where a read-only register's value comes from.
enum RoSource {
    /// A constant fixed at elaboration.
    Constant(u32),
    /// One of the status inputs, by port name.
    Input(&'static str),
}

/// The register file.
#[derive(LogicBlock)]
pub struct RegFile {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset.
    pub reset: Signal<In, Bit>,
    /// Register byte offset.
    pub addr: Signal<In, Bits<12>>,
    /// Write data.
    pub wdata: Signal<In, Bits<32>>,
    /// Write strobe.
    pub write: Signal<In, Bit>,
    /// Read strobe.
    pub read: Signal<In, Bit>,
    /// Read data, valid the cycle after `read`.
    pub rdata: Signal<Out, Bits<32>>,
    /// STATUS value.
    pub status: Signal<In, Bits<32>>,
    /// COMPLETED value.
    pub completed: Signal<In, Bits<32>>,
    /// ERRORS value.
    pub errors: Signal<In, Bits<32>>,
    /// PERF_BUSY value.
    pub perf_busy: Signal<In, Bits<32>>,
    /// PERF_MACS_LO value.
    pub perf_macs_lo: Signal<In, Bits<32>>,
    /// PERF_MACS_HI value.
    pub perf_macs_hi: Signal<In, Bits<32>>,
    /// PERF_STALL_READ value.
    pub perf_stall_read: Signal<In, Bits<32>>,
    /// PERF_STALL_WRITE value.
    pub perf_stall_write: Signal<In, Bits<32>>,
    /// PERF_STALL_OTHER value.
    pub perf_stall_other: Signal<In, Bits<32>>,
    /// IRQ_STATUS bits to set this cycle (events win over a simultaneous clear).
    pub irq_set: Signal<In, Bits<32>>,
    /// Interrupt: IRQ_STATUS & IRQ_ENABLE != 0.
    pub irq: Signal<Out, Bit>,
    /// DOORBELL was written.
    pub doorbell: Signal<Out, Bit>,
    /// PERF_CTRL.CLEAR was written with 1.
    pub perf_clear: Signal<Out, Bit>,
    /// The descriptor registers, `regmap::DESCRIPTOR[i]` in bits `32i..32i+32`.
    pub desc: Signal<Out, Bits<576>>,
    rw: Vec<DFF<Bits<32>>>,
    irq_status: DFF<Bits<32>>,
    rdata_r: DFF<Bits<32>>,
    _caps: [u32; 4],
}

impl RegFile {
    /// A register file whose capability registers hold `caps` = [CAP_ARRAY, CAP_PREC, CAP_MEM,
    /// CAP_BUF] (see [`crate::rtl::HdlConfig::capabilities`]).
    pub fn new(caps: [u32; 4]) -> Self {
        let rw_count = Self::rw_registers().count();
        Self {
            clock: Default::default(),
            reset: Default::default(),
            addr: Default::default(),
            wdata: Default::default(),
            write: Default::default(),
            read: Default::default(),
            rdata: Default::default(),
            status: Default::default(),
            completed: Default::default(),
            errors: Default::default(),
            perf_busy: Default::default(),
            perf_macs_lo: Default::default(),
            perf_macs_hi: Default::default(),
            perf_stall_read: Default::default(),
            perf_stall_write: Default::default(),
            perf_stall_other: Default::default(),
            irq_set: Default::default(),
            irq: Default::default(),
            doorbell: Default::default(),
            perf_clear: Default::default(),
            desc: Default::default(),
            rw: (0..rw_count).map(|_| DFF::default()).collect(),
            irq_status: Default::default(),
            rdata_r: Default::default(),
            _caps: caps,
        }
    }

    fn rw_registers() -> impl Iterator<Item = &'static regmap::Register> {
        regmap::REGISTERS.iter().filter(|r| r.access == Access::Rw)
    }

    fn reset_value(r: &regmap::Register) -> u32 {
        match r.reset {
            Reset::Value(v) => v,
            Reset::Config => 0,
        }
    }

    /// The source of every read-only register (panics for a table entry without one: a broken
    /// invariant of this file, caught by the tests).
    fn ro_source(&self, r: &regmap::Register) -> RoSource {
        match r.offset {
            regmap::ID => RoSource::Constant(regmap::IDENT),
            regmap::VERSION => RoSource::Constant(regmap::VERSION_VALUE),
            regmap::CAP_ARRAY => RoSource::Constant(self._caps[0]),
            regmap::CAP_PREC => RoSource::Constant(self._caps[1]),
            regmap::CAP_MEM => RoSource::Constant(self._caps[2]),
            regmap::CAP_BUF => RoSource::Constant(self._caps[3]),
            regmap::STATUS => RoSource::Input("status"),
            regmap::COMPLETED => RoSource::Input("completed"),
            regmap::ERRORS => RoSource::Input("errors"),
            regmap::PERF_BUSY => RoSource::Input("perf_busy"),
            regmap::PERF_MACS_LO => RoSource::Input("perf_macs_lo"),
            regmap::PERF_MACS_HI => RoSource::Input("perf_macs_hi"),
            regmap::PERF_STALL_READ => RoSource::Input("perf_stall_read"),
            regmap::PERF_STALL_WRITE => RoSource::Input("perf_stall_write"),
            regmap::PERF_STALL_OTHER => RoSource::Input("perf_stall_other"),
            _ => panic!(
                "read-only register {} has no source in the register file",
                r.name
            ),
        }
    }

    fn input_value(&self, name: &str) -> Bits<32> {
        match name {
            "status" => self.status.val(),
            "completed" => self.completed.val(),
            "errors" => self.errors.val(),
            "perf_busy" => self.perf_busy.val(),
            "perf_macs_lo" => self.perf_macs_lo.val(),
            "perf_macs_hi" => self.perf_macs_hi.val(),
            "perf_stall_read" => self.perf_stall_read.val(),
            "perf_stall_write" => self.perf_stall_write.val(),
            "perf_stall_other" => self.perf_stall_other.val(),
            _ => unreachable!("unknown status input {name}"),
        }
    }

    /// The defined bits of IRQ_STATUS.
    fn irq_mask() -> u32 {
        regmap::fields::IRQ_STATUS::DONE.mask() | regmap::fields::IRQ_STATUS::ERROR.mask()
    }
}

impl Logic for RegFile {
    fn update(&mut self) {
        let clock = self.clock.val();
        let addr = self.addr.val().to_u64() as u32;
        let wr = self.write.val();
        let wdata = self.wdata.val();
        let reset = self.reset.val();
        for (slot, r) in Self::rw_registers().enumerate() {
            let dff = &mut self.rw[slot];
            dff.clock.next = clock;
            dff.d.next = if reset {
                u64::from(Self::reset_value(r)).into()
            } else if wr && addr == r.offset {
                wdata
            } else {
                dff.q.val()
            };
        }
        let clear = if wr && addr == regmap::IRQ_STATUS {
            wdata
        } else {
            Bits::from(0u64)
        };
        self.irq_status.clock.next = clock;
        self.irq_status.d.next = if reset {
            0u64.into()
        } else {
            ((self.irq_status.q.val() & !clear) | self.irq_set.val()) & u64::from(Self::irq_mask())
        };
        self.doorbell.next = wr && addr == regmap::DOORBELL;
        self.perf_clear.next = wr
            && addr == regmap::PERF_CTRL
            && regmap::fields::PERF_CTRL::CLEAR.get(wdata.to_u64() as u32) == 1;
        let enable = Self::rw_registers()
            .position(|r| r.offset == regmap::IRQ_ENABLE)
            .expect("IRQ_ENABLE is read/write");
        self.irq.next = (self.irq_status.q.val() & self.rw[enable].q.val()).any();
        // Read multiplexer.
        let mut value = Bits::<32>::from(0u64);
        let mut slot = 0;
        for r in regmap::REGISTERS {
            let v = match r.access {
                Access::Rw => {
                    slot += 1;
                    self.rw[slot - 1].q.val()
                }
                Access::W1c => self.irq_status.q.val(),
                Access::Wo => Bits::from(0u64),
                Access::Ro => match self.ro_source(r) {
                    RoSource::Constant(c) => u64::from(c).into(),
                    RoSource::Input(name) => self.input_value(name),
                },
            };
            if addr == r.offset {
                value = v;
            }
        }
        self.rdata_r.clock.next = clock;
        self.rdata_r.d.next = if self.read.val() {
            value
        } else {
            self.rdata_r.q.val()
        };
        self.rdata.next = self.rdata_r.q.val();
        // The descriptor, in DESCRIPTOR order.
        let mut desc = Bits::<576>::from(0u64);
        for (i, off) in regmap::DESCRIPTOR.iter().enumerate() {
            let slot = Self::rw_registers()
                .position(|r| r.offset == *off)
                .expect("descriptor registers are read/write");
            desc = desc | (bit_cast::<576, 32>(self.rw[slot].q.val()) << (32 * i as u64));
        }
        self.desc.next = desc;
    }

    fn connect(&mut self) {
        self.rdata.connect();
        self.irq.connect();
        self.doorbell.connect();
        self.perf_clear.connect();
        self.desc.connect();
        for d in self
            .rw
            .iter_mut()
            .chain([&mut self.irq_status, &mut self.rdata_r])
        {
            d.clock.connect();
            d.d.connect();
        }
    }

    fn hdl(&self) -> Verilog {
        use std::fmt::Write;
        let mut s = String::from("always @(*) begin\n");
        for (slot, r) in Self::rw_registers().enumerate() {
            let _ = writeln!(s, "    rw${slot}$clock = clock;");
            let _ = writeln!(
                s,
                "    rw${slot}$d = reset ? 32'h{:08x} : ((write & (addr == 12'h{:03x})) ? wdata : rw${slot}$q);",
                Self::reset_value(r),
                r.offset
            );
        }
        let _ = writeln!(s, "    irq_status$clock = clock;");
        let _ = writeln!(
            s,
            "    irq_status$d = reset ? 32'h0 : (((irq_status$q & ~((write & (addr == 12'h{:03x})) ? wdata : 32'h0)) | irq_set) & 32'h{:08x});",
            regmap::IRQ_STATUS,
            Self::irq_mask()
        );
        let _ = writeln!(
            s,
            "    doorbell = write & (addr == 12'h{:03x});",
            regmap::DOORBELL
        );
        let _ = writeln!(
            s,
            "    perf_clear = write & (addr == 12'h{:03x}) & wdata[{}];",
            regmap::PERF_CTRL,
            regmap::fields::PERF_CTRL::CLEAR.lsb
        );
        let enable = Self::rw_registers()
            .position(|r| r.offset == regmap::IRQ_ENABLE)
            .expect("IRQ_ENABLE is read/write");
        let _ = writeln!(s, "    irq = |(irq_status$q & rw${enable}$q);");
        let _ = writeln!(s, "    rdata_r$clock = clock;");
        let _ = writeln!(s, "    rdata_r$d = rdata_r$q;");
        let _ = writeln!(s, "    if (read) begin");
        let _ = writeln!(s, "        case (addr)");
        let mut slot = 0;
        for r in regmap::REGISTERS {
            let v = match r.access {
                Access::Rw => {
                    slot += 1;
                    format!("rw${}$q", slot - 1)
                }
                Access::W1c => "irq_status$q".into(),
                Access::Wo => "32'h0".into(),
                Access::Ro => match self.ro_source(r) {
                    RoSource::Constant(c) => format!("32'h{c:08x}"),
                    RoSource::Input(name) => name.into(),
                },
            };
            let _ = writeln!(s, "            12'h{:03x}: rdata_r$d = {v};", r.offset);
        }
        let _ = writeln!(s, "            default: rdata_r$d = 32'h0;");
        let _ = writeln!(s, "        endcase");
        let _ = writeln!(s, "    end");
        let _ = writeln!(s, "    rdata = rdata_r$q;");
        let parts: Vec<String> = regmap::DESCRIPTOR
            .iter()
            .rev()
            .map(|off| {
                let slot = Self::rw_registers()
                    .position(|r| r.offset == *off)
                    .expect("descriptor registers are read/write");
                format!("rw${slot}$q")
            })
            .collect();
        let _ = writeln!(s, "    desc = {{{}}};", parts.join(", "));
        s.push_str("end\n");
        Verilog::Custom(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtl::testbench::tick;

    fn regs() -> RegFile {
        let mut r = RegFile::new([0x0404, 7, 0x0010_2010, 64]);
        r.connect_all();
        r.reset.next = true;
        tick(&mut r, |r| &mut r.clock);
        r.reset.next = false;
        r
    }

    fn write(r: &mut RegFile, addr: u32, value: u32) {
        r.addr.next = u64::from(addr).into();
        r.wdata.next = u64::from(value).into();
        r.write.next = true;
        tick(r, |r| &mut r.clock);
        r.write.next = false;
    }

    fn read(r: &mut RegFile, addr: u32) -> u32 {
        r.addr.next = u64::from(addr).into();
        r.read.next = true;
        tick(r, |r| &mut r.clock);
        r.read.next = false;
        r.rdata.val().to_u64() as u32
    }

    #[test]
    fn every_table_register_decodes() {
        let mut r = regs();
        assert_eq!(read(&mut r, regmap::ID), regmap::IDENT);
        assert_eq!(read(&mut r, regmap::VERSION), regmap::VERSION_VALUE);
        assert_eq!(read(&mut r, regmap::CAP_ARRAY), 0x0404);
        for reg in regmap::REGISTERS.iter().filter(|x| x.access == Access::Rw) {
            write(&mut r, reg.offset, 0xA5A5_0000 ^ reg.offset);
            assert_eq!(
                read(&mut r, reg.offset),
                0xA5A5_0000 ^ reg.offset,
                "{}",
                reg.name
            );
        }
        // Every RO register has a source (ro_source panics otherwise).
        for reg in regmap::REGISTERS {
            read(&mut r, reg.offset);
        }
        let desc = r.desc.val();
        for (i, off) in regmap::DESCRIPTOR.iter().enumerate() {
            assert_eq!(
                desc.get_bits::<32>(32 * i).to_u64() as u32,
                0xA5A5_0000 ^ off
            );
        }
    }

    #[test]
    fn irq_status_is_write_one_to_clear_and_gates_irq() {
        let mut r = regs();
        r.irq_set.next = 3u64.into();
        tick(&mut r, |r| &mut r.clock);
        r.irq_set.next = 0u64.into();
        assert!(!r.irq.val(), "no interrupt while disabled");
        write(&mut r, regmap::IRQ_ENABLE, 2);
        tick(&mut r, |r| &mut r.clock);
        assert!(r.irq.val());
        write(&mut r, regmap::IRQ_STATUS, 2);
        tick(&mut r, |r| &mut r.clock);
        assert!(!r.irq.val());
        assert_eq!(read(&mut r, regmap::IRQ_STATUS), 1, "DONE stays set");
    }

    #[test]
    fn doorbell_and_perf_clear_are_strobes() {
        let mut r = regs();
        r.addr.next = u64::from(regmap::DOORBELL).into();
        r.write.next = true;
        crate::rtl::testbench::settle(&mut r);
        assert!(r.doorbell.val());
        r.write.next = false;
        crate::rtl::testbench::settle(&mut r);
        assert!(!r.doorbell.val());
        assert_eq!(read(&mut r, regmap::DOORBELL), 0);
    }
}
