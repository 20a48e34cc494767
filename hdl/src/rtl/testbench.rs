//! A minimal cycle driver for unit tests: settle combinational logic, pulse the clock.
//!
//! rust-hdl's `Simulation` runs testbenches on threads with message passing, which costs more
//! than the blocks under test; for single-clock blocks driving the signals directly is simpler
//! and several times faster.

use rust_hdl::prelude::*;

/// Propagates signal changes until nothing changes (panics on a combinational loop, which is
/// a broken design, not bad input).
pub fn settle<B: Block>(uut: &mut B) {
    assert!(
        simulate(uut, 10_000),
        "the circuit did not settle (combinational loop?)"
    );
}

/// One full clock cycle: settle the inputs, rising edge, settle, falling edge, settle.
pub fn tick<B: Block>(uut: &mut B, clock: impl Fn(&mut B) -> &mut Signal<In, Clock>) {
    settle(uut);
    clock(uut).next = Clock::from(true);
    settle(uut);
    clock(uut).next = Clock::from(false);
    settle(uut);
}
