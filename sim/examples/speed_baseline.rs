//! Simulation speed: the Verilated model against Icarus Verilog on the same design, measured in
//! the same process and minute (the machine may be shared and noisy: compare ratios).
//!
//!     cargo run -p sim --release --example speed_baseline [cycles]
//!
//! Designs: the Rust-HDL accumulator of the tests (a 32-bit and a 128-bit adder), and the
//! hand-written AXI4 copy master with the memory model (which adds the per-cycle cost of the
//! AXI slave and the port traffic). The accelerator integration repeats this on the accelerator,
//! where issue 5 asks for Verilator ≥ 50× Icarus.

#[path = "../tests/common/accumulator.rs"]
#[allow(dead_code)]
mod accumulator;

use std::time::Instant;

use sim::{
    AxiMemory, Bench, BuildOptions, CsrAddressing, CsrPort, MemoryConfig, Model, ModelOptions,
    VerilatedLibrary,
};

const ICARUS_BENCH: &str = r#"
module bench;
    reg clock = 0;
    reg reset = 1;
    reg [31:0] add = 32'd7;
    reg enable = 1;
    reg [127:0] wide = 128'h0000_0001_0000_0000_ffff_ffff_0000_0003;
    wire [31:0] echo, count;
    wire [127:0] total;
    wire [63:0] middle;
    integer cycles, i;
    top dut(.clock(clock), .reset(reset), .feed$add(add), .feed$enable(enable), .feed$wide(wide),
            .feed$echo(echo), .count(count), .total(total), .middle(middle));
    initial begin
        if (!$value$plusargs("cycles=%d", cycles)) cycles = 1000;
        reset = 0;
        for (i = 0; i < cycles; i = i + 1) begin
            #5 clock = 1; #5 clock = 0;
        end
        $display("count=%0d", count);
        $display("POCFORGE_CYCLES=%0d", cycles);
        $finish;
    end
endmodule
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cycles: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(500_000);
    let verilog = accumulator::verilog();

    let (library, report) = VerilatedLibrary::build(&verilog, "top", &BuildOptions::default())?;
    println!("build: {report}");

    // Verilator, clock loop inside the library (inputs held).
    let mut model = Model::new(&library, ModelOptions::default())?;
    let enable = model.input("feed$enable")?;
    let add = model.input("feed$add")?;
    let count = model.output("count")?;
    model.set(enable, 1);
    model.set(add, 7);
    let started = Instant::now();
    model.run(cycles)?;
    let verilator_held = cycles as f64 / started.elapsed().as_secs_f64();
    assert_eq!(model.get(count), (7 * cycles) & 0xffff_ffff);

    // Verilator, driven from Rust every cycle (set an input, tick, read an output).
    let mut model = Model::new(&library, ModelOptions::default())?;
    model.set(enable, 1);
    let started = Instant::now();
    let mut sum = 0u64;
    for i in 0..cycles {
        model.set(add, i & 0xff);
        model.tick()?;
        sum = sum.wrapping_add(model.get(count));
    }
    let verilator_driven = cycles as f64 / started.elapsed().as_secs_f64();
    std::hint::black_box(sum);

    // Icarus on the same Verilog.
    let plusarg = format!("cycles={cycles}");
    let run = sim::icarus::run(
        &[("design.v", &verilog), ("bench.v", ICARUS_BENCH)],
        "bench",
        &[&plusarg],
    )?;
    let icarus = run
        .cycles_per_second()
        .ok_or("the Icarus bench did not report its cycles")?;

    // The AXI copy master with the memory model, copying 64 beats over and over.
    let (copy_library, _) = VerilatedLibrary::build(
        include_str!("../tests/verilog/axi_copy.v"),
        "axi_copy",
        &BuildOptions::default(),
    )?;
    let model = Model::new(&copy_library, ModelOptions::default())?;
    let csr = CsrPort::bind(&model, "csr$", CsrAddressing::Byte)?;
    let memory = AxiMemory::new(
        MemoryConfig {
            read_latency: 4,
            ..MemoryConfig::default()
        },
        16,
    )?;
    let mut bench = Bench::new(model, memory, "axi$")?;
    for (offset, value) in [
        (0x08, 0x1000),
        (0x0c, 0x8000),
        (0x10, 64),
        (0x14, 16),
        (0x18, 0xffff),
    ] {
        csr.write32(&mut bench, offset, value)?;
    }
    let bench_cycles = (cycles / 4).max(10_000);
    let started = Instant::now();
    let mut copies = 0;
    while bench.model_mut().cycle() < bench_cycles {
        csr.write32(&mut bench, 0x00, 1)?;
        while csr.read32(&mut bench, 0x04)? & 1 == 1 {
            bench.run(32)?;
        }
        copies += 1;
    }
    let bench_rate = bench.model_mut().cycle() as f64 / started.elapsed().as_secs_f64();
    let stats = bench.memory().stats();

    println!("cycles simulated per second ({cycles} cycles):");
    println!("  Verilator, inputs held:            {verilator_held:>12.0}");
    println!("  Verilator, driven every cycle:     {verilator_driven:>12.0}");
    println!("  Icarus Verilog (vvp):              {icarus:>12.0}");
    println!(
        "  ratio held / Icarus:               {:>12.1}x",
        verilator_held / icarus
    );
    println!(
        "  ratio driven / Icarus:             {:>12.1}x",
        verilator_driven / icarus
    );
    println!(
        "  AXI copy master + memory model:    {bench_rate:>12.0}  ({copies} copies, {} beats, {} busy cycles)",
        stats.read_beats + stats.write_beats,
        stats.busy_cycles
    );
    Ok(())
}
