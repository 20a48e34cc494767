//! The Icarus Verilog harness on the Rust-HDL test design.

mod common;

use common::accumulator;

const BENCH: &str = r#"
module bench;
    reg clock = 0;
    reg reset = 1;
    reg [31:0] add = 32'd7;
    reg enable = 1;
    reg [127:0] wide = 128'h0000_0001_0000_0000_ffff_ffff_0000_0003;
    wire [31:0] echo;
    wire [31:0] count;
    wire [127:0] total;
    wire [63:0] middle;
    integer cycles;
    integer i;

    top dut(.clock(clock), .reset(reset), .feed$add(add), .feed$enable(enable), .feed$wide(wide),
            .feed$echo(echo), .count(count), .total(total), .middle(middle));

    initial begin
        if (!$value$plusargs("cycles=%d", cycles)) cycles = 1000;
        #5 clock = 1; #5 clock = 0;
        #5 clock = 1; #5 clock = 0;
        reset = 0;
        for (i = 0; i < cycles; i = i + 1) begin
            #5 clock = 1; #5 clock = 0;
        end
        $display("count=%0d", count);
        $display("total=%h", total);
        $display("echo=%0d", echo);
        $display("POCFORGE_CYCLES=%0d", cycles + 2);
        $finish;
    end
endmodule
"#;

#[test]
fn runs_a_bench_and_reports_cycles_per_second() {
    let design = accumulator::verilog();
    let run = sim::icarus::run(
        &[("design.v", &design), ("bench.v", BENCH)],
        "bench",
        &["cycles=3000"],
    )
    .expect("iverilog is installed by scripts/setup");
    assert!(run.stdout.contains("count=21000"), "{}", run.stdout);
    let wide: u128 = 0x0000_0001_0000_0000_ffff_ffff_0000_0003;
    let total = format!("total={:032x}", wide.wrapping_mul(3000));
    assert!(
        run.stdout.contains(&total),
        "{}\nexpected {total}",
        run.stdout
    );
    assert!(run.stdout.contains("echo=8"), "{}", run.stdout);
    assert_eq!(run.cycles, Some(3002));
    let rate = run.cycles_per_second().unwrap();
    assert!(rate > 0.0);
    eprintln!(
        "Icarus: {rate:.0} cycles/s (compile {:?}, run {:?})",
        run.compile_time, run.run_time
    );
}

#[test]
fn failures_are_reported_with_the_compiler_output() {
    let error = sim::icarus::run(
        &[("broken.v", "module broken; wire x = ; endmodule")],
        "broken",
        &[],
    )
    .unwrap_err();
    assert!(error.to_string().contains("iverilog failed"), "{error}");
}
