//! The hand-written AXI4 copy master (`tests/verilog/axi_copy.v`), built once per test binary.

use std::sync::{Arc, OnceLock};

use sim::{BuildOptions, VerilatedLibrary};

pub const VERILOG: &str = include_str!("../verilog/axi_copy.v");

pub const CTRL: u64 = 0x00;
pub const STATUS: u64 = 0x04;
pub const SRC: u64 = 0x08;
pub const DST: u64 = 0x0c;
pub const BEATS: u64 = 0x10;
pub const BURST: u64 = 0x14;
pub const STRB: u64 = 0x18;
pub const CYCLES: u64 = 0x1c;
pub const ID: u64 = 0x20;
pub const FATAL: u64 = 0x24;
pub const LOOP: u64 = 0x28;

pub const CTRL_START: u32 = 1;
pub const CTRL_IRQ_ENABLE: u32 = 2;
pub const STATUS_BUSY: u32 = 1;
pub const STATUS_DONE: u32 = 2;
pub const STATUS_READ_ERROR: u32 = 4;
pub const STATUS_WRITE_ERROR: u32 = 8;
pub const ID_VALUE: u32 = 0x504f_4331;

/// Bytes per AXI beat of this design.
pub const BEAT: usize = 16;

/// The library (default cache, with tracing), built on first use.
pub fn library() -> Arc<VerilatedLibrary> {
    static LIBRARY: OnceLock<Arc<VerilatedLibrary>> = OnceLock::new();
    LIBRARY
        .get_or_init(|| {
            let options = BuildOptions {
                trace: true,
                ..BuildOptions::default()
            };
            let (library, report) =
                VerilatedLibrary::build(VERILOG, "axi_copy", &options).expect("build axi_copy");
            eprintln!("{report}");
            library
        })
        .clone()
}

/// Bytes that differ at every position, so misplaced data shows.
pub fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}
