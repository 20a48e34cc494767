//! The AXI4 memory model against a real Verilog master (`tests/verilog/axi_copy.v`), through the
//! register-port driver: data, strobes, latency and bandwidth effects on cycle counts, SLVERR.

mod common;

use common::axi_copy::*;
use sim::bench::Clocked;
use sim::memory::Bandwidth;
use sim::{
    AxiMemory, Bench, CsrAddressing, CsrPort, MemoryConfig, MemoryStats, Model, ModelOptions,
};

const SRC_ADDR: u64 = 0x1_0000;
const DST_ADDR: u64 = 0x2_0000;

fn config() -> MemoryConfig {
    MemoryConfig {
        base: 0,
        size: 1 << 20,
        read_latency: 2,
        ..MemoryConfig::default()
    }
}

struct Copy {
    bench: Bench,
    csr: CsrPort,
}

impl Copy {
    fn new(memory: MemoryConfig) -> Self {
        let model = Model::new(&library(), ModelOptions::default()).unwrap();
        let csr = CsrPort::bind(&model, "csr$", CsrAddressing::Byte).unwrap();
        let memory = AxiMemory::new(memory, BEAT).unwrap();
        let mut bench = Bench::new(model, memory, "axi$").unwrap();
        let reset = bench.model_mut().input("reset").unwrap();
        bench.model_mut().set(reset, 1);
        bench.run(3).unwrap();
        bench.model_mut().set(reset, 0);
        Self { bench, csr }
    }

    fn write(&mut self, offset: u64, value: u32) {
        self.csr.write32(&mut self.bench, offset, value).unwrap();
    }

    fn read(&mut self, offset: u64) -> u32 {
        self.csr.read32(&mut self.bench, offset).unwrap()
    }

    /// Runs one copy to completion; returns (STATUS, CYCLES register).
    fn copy(&mut self, src: u64, dst: u64, beats: u32, burst: u32, strb: u32) -> (u32, u32) {
        self.write(SRC, src as u32);
        self.write(DST, dst as u32);
        self.write(BEATS, beats);
        self.write(BURST, burst);
        self.write(STRB, strb);
        self.write(CTRL, CTRL_START | CTRL_IRQ_ENABLE);
        let irq = self.bench.model_mut().output("irq").unwrap();
        let mut waited = 0;
        while self.bench.model_mut().get(irq) == 0 {
            self.bench.step().unwrap();
            waited += 1;
            assert!(waited < 20_000, "the copy did not finish");
        }
        let status = self.read(STATUS);
        let cycles = self.read(CYCLES);
        // Clearing done drops the interrupt.
        self.write(STATUS, STATUS_DONE | STATUS_READ_ERROR | STATUS_WRITE_ERROR);
        self.bench.step().unwrap();
        assert_eq!(self.bench.model_mut().get(irq), 0);
        (status, cycles)
    }

    fn stats(&self) -> MemoryStats {
        self.bench.memory().stats().clone()
    }
}

#[test]
fn registers_follow_the_port_protocol() {
    let mut c = Copy::new(config());
    assert_eq!(c.read(ID), ID_VALUE);
    c.write(SRC, 0xdead_beef);
    assert_eq!(c.read(SRC), 0xdead_beef);
    assert_eq!(c.read(STATUS), 0);
    // A write is one cycle, a read one cycle (rdata is sampled in the next).
    let before = c.bench.model_ref().cycle();
    c.write(DST, 1);
    c.read(DST);
    assert_eq!(c.bench.model_ref().cycle() - before, 2);
}

#[test]
fn a_copy_moves_the_data_in_bursts() {
    let mut c = Copy::new(config());
    let data = pattern(3, 20 * BEAT);
    c.bench.memory_mut().write(SRC_ADDR, &data).unwrap();
    let (status, _) = c.copy(SRC_ADDR, DST_ADDR, 20, 8, 0xffff);
    assert_eq!(status, STATUS_DONE);
    let mut copied = vec![0; data.len()];
    c.bench.memory().read(DST_ADDR, &mut copied).unwrap();
    assert_eq!(copied, data);
    let stats = c.stats();
    // 20 beats in bursts of 8, 8 and 4, each way.
    assert_eq!((stats.read_bursts, stats.write_bursts), (3, 3));
    assert_eq!((stats.read_beats, stats.write_beats), (20, 20));
    assert_eq!((stats.bytes_read, stats.bytes_written), (320, 320));
    assert_eq!(stats.protocol_violations, 0, "{:?}", stats.last_violation);
    assert_eq!((stats.read_errors, stats.write_errors), (0, 0));
    assert!(c.bench.memory().is_idle());
}

#[test]
fn byte_strobes_select_the_lanes_written() {
    let mut c = Copy::new(config());
    let data = pattern(9, 4 * BEAT);
    c.bench.memory_mut().write(SRC_ADDR, &data).unwrap();
    c.bench
        .memory_mut()
        .write(DST_ADDR, &[0xee; 4 * BEAT])
        .unwrap();
    let strb = 0b1000_0000_0000_0101u32;
    let (status, _) = c.copy(SRC_ADDR, DST_ADDR, 4, 4, strb);
    assert_eq!(status, STATUS_DONE);
    let mut copied = vec![0; data.len()];
    c.bench.memory().read(DST_ADDR, &mut copied).unwrap();
    for (i, (&got, &src)) in copied.iter().zip(&data).enumerate() {
        let lane = i % BEAT;
        let expected = if strb >> lane & 1 == 1 { src } else { 0xee };
        assert_eq!(got, expected, "byte {i} (lane {lane})");
    }
    assert_eq!(c.stats().bytes_written, 4 * 3);
}

/// Cycles a 24-beat copy in bursts of 8 takes with this memory.
fn copy_cycles(memory: MemoryConfig) -> u32 {
    let mut c = Copy::new(memory);
    let (status, cycles) = c.copy(SRC_ADDR, DST_ADDR, 24, 8, 0xffff);
    assert_eq!(status, STATUS_DONE);
    cycles
}

#[test]
fn read_latency_costs_once_per_burst_without_overlap_and_once_with_it() {
    let serial = |latency| MemoryConfig {
        read_latency: latency,
        max_outstanding_reads: 1,
        ..config()
    };
    let overlapped = |latency| MemoryConfig {
        read_latency: latency,
        max_outstanding_reads: 8,
        ..config()
    };
    // One read burst at a time: each of the 3 bursts waits the full latency.
    assert_eq!(copy_cycles(serial(32)) - copy_cycles(serial(2)), 3 * 30);
    // Bursts in flight together: the latency is paid once.
    assert_eq!(copy_cycles(overlapped(32)) - copy_cycles(overlapped(2)), 30);
}

#[test]
fn bandwidth_limits_slow_the_copy_down() {
    let full = copy_cycles(config());
    let half = copy_cycles(MemoryConfig {
        bandwidth: Bandwidth::BytesPer {
            bytes: 8,
            cycles: 1,
        },
        ..config()
    });
    // 24 beats read and 24 written at one beat per two cycles instead of one per cycle.
    let slower = half - full;
    assert!((40..=52).contains(&slower), "full {full}, half {half}");
}

#[test]
fn reads_outside_the_memory_get_slverr() {
    let mut c = Copy::new(MemoryConfig {
        size: 0x2_1000,
        ..config()
    });
    c.bench
        .memory_mut()
        .write(DST_ADDR, &[0x77; 2 * BEAT])
        .unwrap();
    // The source is beyond the end of the memory; the copy still completes, with an error.
    let (status, _) = c.copy(0x8_0000, DST_ADDR, 2, 2, 0xffff);
    assert_eq!(status, STATUS_DONE | STATUS_READ_ERROR);
    let mut copied = [0xffu8; 2 * BEAT];
    c.bench.memory().read(DST_ADDR, &mut copied).unwrap();
    assert_eq!(copied, [0; 2 * BEAT], "SLVERR beats carry zeros");
    assert_eq!(c.stats().read_errors, 1);
    // Writing outside is refused the same way.
    let (status, _) = c.copy(DST_ADDR, 0x8_0000, 2, 1, 0xffff);
    assert_eq!(status, STATUS_DONE | STATUS_WRITE_ERROR);
    assert_eq!(c.stats().write_errors, 2);
    assert_eq!(c.stats().protocol_violations, 0);
}

#[test]
fn a_burst_across_4k_is_refused_and_reported() {
    let mut c = Copy::new(config());
    // Four beats from 0xfe0 reach 0x101f.
    let (status, _) = c.copy(0xfe0, DST_ADDR, 4, 4, 0xffff);
    assert_eq!(status, STATUS_DONE | STATUS_READ_ERROR);
    let stats = c.stats();
    assert_eq!(stats.protocol_violations, 1);
    assert!(stats.last_violation.unwrap().contains("4 KiB"));
}
