//! Simulation speed of the accelerator: the Verilated design (driven through the driver, with
//! the Rust AXI memory model) against Icarus Verilog (a Verilog bench with a behavioural AXI
//! memory) on the same GEMM, measured in the same process and minute (the machine may be
//! shared and noisy: compare the ratio).
//!
//!     cargo run -p sim --release --example accel_speed [RxC] [icarus-cycles]
//!
//! Both run one bf16 GEMM of 4× the array size (M = 4R, N = 4C, K = 4·max(R, C)) on the same
//! random operands. The Verilated run is checked against the golden model; Icarus runs the first
//! `icarus-cycles` cycles after the doorbell (default 3000; it is thousands of times slower)
//! and reports its rate over them, with the array busy the whole time as in the Verilated run.

use std::fmt::Write as _;
use std::time::Instant;

use driver::accel::gemm::{GemmJob, GemmRunner};
use driver::Accelerator;
use golden::gemm::{reference, GemmSpec};
use golden::numerics::Precision;
use golden::vectors::generate::random_gemm_inputs;
use hdl::regmap::{self, fields, GemmDescriptor, PrecisionCode};
use hdl::rtl::{emit, HdlConfig};
use sim::accel::{Design, DesignOptions};
use sim::MemoryConfig;

/// Read latency of both memories, in cycles.
const LATENCY: u32 = 20;

fn bench_verilog(descriptor: &GemmDescriptor, a: &[u8], b: &[u8], cycles: u64) -> String {
    let mut init = String::new();
    for (base, bytes) in [(descriptor.a, a), (descriptor.b, b)] {
        for (i, word) in bytes.chunks(16).enumerate() {
            let mut hex = String::new();
            for byte in word.iter().rev() {
                let _ = write!(hex, "{byte:02x}");
            }
            let _ = writeln!(init, "        mem[{}] = 128'h{hex};", base / 16 + i as u64);
        }
    }
    let mut program = String::new();
    let irqs = fields::IRQ_ENABLE::DONE.encode(1) | fields::IRQ_ENABLE::ERROR.encode(1);
    let _ = writeln!(
        program,
        "        csr_wr({}, 32'h{irqs:x});",
        regmap::IRQ_ENABLE
    );
    for (offset, value) in descriptor.registers() {
        let _ = writeln!(program, "        csr_wr({offset}, 32'h{value:x});");
    }
    let _ = writeln!(program, "        csr_wr({}, 1);", regmap::DOORBELL);
    format!(
        r#"
module bench;
    reg clock = 0;
    reg reset = 1;
    always #5 clock = ~clock;
    reg [11:0] csr_addr = 0; reg [31:0] csr_wdata = 0; reg csr_write = 0; reg csr_read = 0;
    wire [31:0] csr_rdata; wire irq;
    wire [31:0] araddr; wire [7:0] arlen; wire arvalid; wire arready;
    reg [127:0] rdata = 0; reg rlast = 0; reg rvalid = 0; wire rready;
    wire [31:0] awaddr; wire [7:0] awlen; wire awvalid; wire awready;
    wire [127:0] wdata; wire [15:0] wstrb; wire wlast; wire wvalid; wire wready;
    reg bvalid = 0; wire bready;
    reg [127:0] mem [0:65535];
    top dut(.clock(clock), .reset(reset),
        .csr$addr(csr_addr), .csr$wdata(csr_wdata), .csr$write(csr_write), .csr$read(csr_read),
        .csr$rdata(csr_rdata), .irq(irq),
        .axi$araddr(araddr), .axi$arlen(arlen), .axi$arvalid(arvalid), .axi$arready(arready),
        .axi$rdata(rdata), .axi$rresp(2'b00), .axi$rlast(rlast), .axi$rvalid(rvalid), .axi$rready(rready),
        .axi$awaddr(awaddr), .axi$awlen(awlen), .axi$awvalid(awvalid), .axi$awready(awready),
        .axi$wdata(wdata), .axi$wstrb(wstrb), .axi$wlast(wlast), .axi$wvalid(wvalid), .axi$wready(wready),
        .axi$bresp(2'b00), .axi$bvalid(bvalid), .axi$bready(bready));

    // Reads: one burst at a time, {LATENCY} cycles to the first beat, then a beat per cycle.
    reg rd_busy = 0; reg [31:0] rd_addr = 0; reg [8:0] rd_left = 0; integer rd_wait = 0;
    assign arready = !rd_busy;
    always @(posedge clock) begin
        if (rvalid && rready) begin
            rd_left <= rd_left - 1;
            rd_addr <= rd_addr + 16;
            if (rd_left == 1) begin rvalid <= 0; rd_busy <= 0; end
            else begin rdata <= mem[(rd_addr + 16) >> 4]; rlast <= (rd_left == 2); end
        end else if (rd_busy && !rvalid) begin
            if (rd_wait > 0) rd_wait <= rd_wait - 1;
            else begin rvalid <= 1; rdata <= mem[rd_addr >> 4]; rlast <= (rd_left == 1); end
        end
        if (!rd_busy && arvalid) begin
            rd_busy <= 1; rd_addr <= araddr; rd_left <= arlen + 1; rd_wait <= {LATENCY} - 1;
        end
    end

    // Writes: single beats with strobes, answered on B.
    reg aw_got = 0; reg w_got = 0; reg [31:0] w_addr = 0; reg [127:0] w_data = 0;
    reg [15:0] w_strb = 0; reg [127:0] merged; integer lane;
    assign awready = !aw_got && !bvalid;
    assign wready = !w_got && !bvalid;
    always @(posedge clock) begin
        if (awvalid && awready) begin aw_got <= 1; w_addr <= awaddr; end
        if (wvalid && wready) begin w_got <= 1; w_data <= wdata; w_strb <= wstrb; end
        if (aw_got && w_got) begin
            merged = mem[w_addr >> 4];
            for (lane = 0; lane < 16; lane = lane + 1)
                if (w_strb[lane]) merged[8 * lane +: 8] = w_data[8 * lane +: 8];
            mem[w_addr >> 4] <= merged;
            aw_got <= 0; w_got <= 0; bvalid <= 1;
        end
        if (bvalid && bready) bvalid <= 0;
    end

    task csr_wr(input [11:0] a, input [31:0] d);
        begin
            @(negedge clock); csr_addr = a; csr_wdata = d; csr_write = 1;
            @(negedge clock); csr_write = 0;
        end
    endtask

    integer cycles; integer limit;
    initial begin
        if (!$value$plusargs("cycles=%d", limit)) limit = {cycles};
{init}
        repeat (4) @(negedge clock);
        reset = 0;
{program}
        cycles = 0;
        while (cycles < limit && !irq) begin
            @(posedge clock); cycles = cycles + 1;
        end
        $display("irq=%0d", irq);
        $display("POCFORGE_CYCLES=%0d", cycles);
        $finish;
    end
endmodule
"#
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (rows, cols) = match args.next() {
        Some(size) => {
            let (r, c) = size.split_once('x').ok_or("the size is RxC, e.g. 8x8")?;
            (r.parse()?, c.parse()?)
        }
        None => (8, 8),
    };
    let icarus_cycles: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3000);
    let config = HdlConfig {
        rows,
        cols,
        precisions: PrecisionCode::ALL.to_vec(),
        ..HdlConfig::default()
    };
    let (m, n, k) = (4 * rows, 4 * cols, 4 * rows.max(cols));
    let spec = GemmSpec::new(Precision::Bf16, m, n, k);
    let (a, b, _) = random_gemm_inputs(&spec, 42);
    let mut expected = vec![0u8; spec.d_bytes()];
    reference::gemm(&spec, &a, &b, None, &mut expected)?;

    // Verilator, through the driver.
    let design = Design::build(&DesignOptions {
        config: config.clone(),
        ..DesignOptions::default()
    })?;
    println!("verilator build: {}", design.build);
    let memory = MemoryConfig {
        read_latency: LATENCY,
        ..MemoryConfig::default()
    };
    let mut accel = Accelerator::open(design.device(memory, None)?)?;
    let mut runner = GemmRunner::new(1 << 20);
    let mut out = vec![Vec::new()];
    let job = GemmJob {
        spec,
        a: &a,
        b: &b,
        c: None,
    };
    let cycles_before = accel.transport().cycles();
    let started = Instant::now();
    runner.run(&mut accel, &[job], &mut out)?;
    let seconds = started.elapsed().as_secs_f64();
    let verilator_cycles = accel.transport().cycles() - cycles_before;
    let verilator = verilator_cycles as f64 / seconds;
    let perf = accel.perf()?;
    if out[0] != expected {
        return Err("the Verilated GEMM differs from the golden model".into());
    }

    // Icarus, on the same Verilog and operands.
    let verilog = emit::verilog(&config)?;
    let descriptor = GemmDescriptor::dense(
        PrecisionCode::Bf16,
        m as u32,
        n as u32,
        k as u32,
        0,
        1 << 16,
        1 << 18,
    );
    let bench = bench_verilog(&descriptor, &a, &b, icarus_cycles);
    let run = sim::icarus::run(&[("top.v", &verilog), ("bench.v", &bench)], "bench", &[])?;
    let icarus = run
        .cycles_per_second()
        .ok_or("the Icarus bench did not report its cycles")?;

    println!("{rows}×{cols} accelerator, bf16 GEMM {m}×{n}×{k}, read latency {LATENCY}");
    println!(
        "  Verilator: {verilator_cycles} cycles in {seconds:.2} s = {verilator:.0} cycles/s \
         (bit-exact; utilization {:.1} %)",
        100.0 * perf.utilization(accel.capabilities().pes())
    );
    println!(
        "  Icarus:    {} cycles in {:.2} s = {icarus:.0} cycles/s (compile {:.1} s)",
        run.cycles.unwrap_or(0),
        run.run_time.as_secs_f64(),
        run.compile_time.as_secs_f64()
    );
    println!("  ratio Verilator / Icarus: {:.0}×", verilator / icarus);
    Ok(())
}
