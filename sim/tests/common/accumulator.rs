//! A small Rust-HDL design: a 32-bit counter and a 128-bit accumulator behind a `$`-named
//! interface, with a combinational output. Its Verilog is what the bridge is tested on.

use rust_hdl::prelude::*;

/// The `feed` interface: its ports become `feed$add`, `feed$enable`, `feed$wide`, `feed$echo`.
#[derive(Clone, Debug, Default, LogicInterface)]
pub struct Feed {
    pub add: Signal<In, Bits<32>>,
    pub enable: Signal<In, Bit>,
    pub wide: Signal<In, Bits<128>>,
    /// `add + 1`, combinationally.
    pub echo: Signal<Out, Bits<32>>,
}

#[derive(Clone, Debug, Default, LogicBlock)]
pub struct Accumulator {
    pub clock: Signal<In, Clock>,
    pub reset: Signal<In, Bit>,
    pub feed: Feed,
    /// Sum of `add` over enabled cycles (wrapping at 2^32).
    pub count: Signal<Out, Bits<32>>,
    /// Sum of `wide` over enabled cycles (wrapping at 2^128).
    pub total: Signal<Out, Bits<128>>,
    /// Bits 32..96 of `total`.
    pub middle: Signal<Out, Bits<64>>,
    count_r: DFF<Bits<32>>,
    total_r: DFF<Bits<128>>,
}

impl Logic for Accumulator {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, count_r, total_r);
        if self.reset.val() {
            self.count_r.d.next = 0.into();
            self.total_r.d.next = 0.into();
        } else if self.feed.enable.val() {
            self.count_r.d.next = self.count_r.q.val() + self.feed.add.val();
            self.total_r.d.next = self.total_r.q.val() + self.feed.wide.val();
        }
        self.count.next = self.count_r.q.val();
        self.total.next = self.total_r.q.val();
        self.middle.next = self.total_r.q.val().get_bits::<64>(32);
        self.feed.echo.next = self.feed.add.val() + 1;
    }
}

/// The design's Verilog, as Rust-HDL writes it (top module `top`).
pub fn verilog() -> String {
    let mut uut = Accumulator::default();
    uut.connect_all();
    generate_verilog(&uut)
}

/// The reference behaviour, cycle by cycle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reference {
    pub count: u32,
    pub total: u128,
}

impl Reference {
    pub fn step(&mut self, reset: bool, enable: bool, add: u32, wide: u128) {
        if reset {
            *self = Reference::default();
        } else if enable {
            self.count = self.count.wrapping_add(add);
            self.total = self.total.wrapping_add(wide);
        }
    }
}
