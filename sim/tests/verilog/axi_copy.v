// A test-only AXI4 master with the accelerator's top-level interface: it copies BEATS 128-bit
// beats from SRC to DST in bursts of BURST beats (all reads first, into a 64-beat buffer, then
// all writes), applying the byte strobes STRB to every written beat, and raises irq when done.
// It issues read and write bursts back to back without waiting for data, so the memory's
// outstanding-burst limit and latency shape the run time.
//
// Registers (byte offsets, csr$rdata valid the cycle after csr$read):
//   0x00 CTRL    W: bit0 start, bit1 irq enable       R: {irq_en, busy}
//   0x04 STATUS  R: bit0 busy, bit1 done, bit2 read error (SLVERR), bit3 write error
//                W: write 1 to clear bits 1..3 (clearing done drops irq)
//   0x08 SRC     0x0C DST     0x10 BEATS (1..64)   0x14 BURST (1..64)   0x18 STRB (16 bits)
//   0x1C CYCLES  R: cycles the last copy took
//   0x20 ID      R: 0x504f4331
//   0x24 FATAL   W: 0xdead executes $fatal (to test how a failing design is reported)
//   0x28 LOOP    W: bit0 closes a combinational loop (to test Verilator's convergence failure)
//                R: the loop's output
module axi_copy(clock, reset, csr$addr, csr$wdata, csr$write, csr$read, csr$rdata, irq,
    axi$araddr, axi$arlen, axi$arvalid, axi$arready, axi$rdata, axi$rresp, axi$rlast, axi$rvalid,
    axi$rready, axi$awaddr, axi$awlen, axi$awvalid, axi$awready, axi$wdata, axi$wstrb, axi$wlast,
    axi$wvalid, axi$wready, axi$bresp, axi$bvalid, axi$bready);

    input wire clock;
    input wire reset;
    input wire [7:0] csr$addr;
    input wire [31:0] csr$wdata;
    input wire csr$write;
    input wire csr$read;
    output reg [31:0] csr$rdata;
    output wire irq;

    output wire [31:0] axi$araddr;
    output wire [7:0] axi$arlen;
    output wire axi$arvalid;
    input wire axi$arready;
    input wire [127:0] axi$rdata;
    input wire [1:0] axi$rresp;
    input wire axi$rlast;
    input wire axi$rvalid;
    output wire axi$rready;
    output wire [31:0] axi$awaddr;
    output wire [7:0] axi$awlen;
    output wire axi$awvalid;
    input wire axi$awready;
    output wire [127:0] axi$wdata;
    output wire [15:0] axi$wstrb;
    output wire axi$wlast;
    output wire axi$wvalid;
    input wire axi$wready;
    input wire [1:0] axi$bresp;
    input wire axi$bvalid;
    output wire axi$bready;

    localparam IDLE = 2'd0, READ = 2'd1, WRITE = 2'd2;

    reg [31:0] src, dst;
    reg [6:0] beats;
    reg [6:0] burst;
    reg [15:0] strb;
    reg irq_en, done, rd_err, wr_err, loop_en;
    reg [1:0] phase;
    reg [31:0] cycles;
    reg [127:0] buffer [0:63];

    reg [6:0] ar_sent, r_recv;            // beats requested / received
    reg [6:0] aw_sent, w_sent, w_start;   // beats covered by AW / sent on W / first beat of W burst
    reg [6:0] aw_count, b_recv;           // write bursts issued / answered

    wire busy = phase != IDLE;
    assign irq = done & irq_en;

    // A loop through two wires: harmless while loop_en is 0.
    wire loop_a;
    wire loop_b;
    assign loop_a = loop_en & ~loop_b;
    assign loop_b = loop_a;

    // Read address channel.
    wire [6:0] ar_left = beats - ar_sent;
    wire [6:0] ar_beats = (burst < ar_left) ? burst : ar_left;
    assign axi$arvalid = phase == READ && ar_sent != beats;
    assign axi$araddr = src + {21'd0, ar_sent, 4'd0};
    assign axi$arlen = {1'b0, ar_beats - 7'd1};
    assign axi$rready = phase == READ;

    // Write address and data channels.
    wire [6:0] aw_left = beats - aw_sent;
    wire [6:0] aw_beats = (burst < aw_left) ? burst : aw_left;
    assign axi$awvalid = phase == WRITE && aw_sent != beats;
    assign axi$awaddr = dst + {21'd0, aw_sent, 4'd0};
    assign axi$awlen = {1'b0, aw_beats - 7'd1};
    wire [6:0] w_left = beats - w_start;
    wire [6:0] w_len = (burst < w_left) ? burst : w_left;
    assign axi$wvalid = phase == WRITE && w_sent != aw_sent;
    assign axi$wdata = buffer[w_sent[5:0]];
    assign axi$wstrb = strb;
    assign axi$wlast = (w_sent - w_start + 7'd1) == w_len;
    assign axi$bready = phase == WRITE;

    always @(posedge clock) begin
        if (reset) begin
            src <= 0; dst <= 0; beats <= 1; burst <= 1; strb <= 16'hffff;
            irq_en <= 0; done <= 0; rd_err <= 0; wr_err <= 0; loop_en <= 0;
            phase <= IDLE; cycles <= 0; csr$rdata <= 0;
            ar_sent <= 0; r_recv <= 0; aw_sent <= 0; w_sent <= 0; w_start <= 0;
            aw_count <= 0; b_recv <= 0;
        end else begin
            if (busy) cycles <= cycles + 1;

            // Register port.
            if (csr$write) begin
                case (csr$addr)
                    8'h00: begin
                        irq_en <= csr$wdata[1];
                        if (csr$wdata[0] && !busy) begin
                            phase <= READ; done <= 0; cycles <= 0;
                            ar_sent <= 0; r_recv <= 0; aw_sent <= 0; w_sent <= 0; w_start <= 0;
                            aw_count <= 0; b_recv <= 0;
                        end
                    end
                    8'h04: begin
                        if (csr$wdata[1]) done <= 0;
                        if (csr$wdata[2]) rd_err <= 0;
                        if (csr$wdata[3]) wr_err <= 0;
                    end
                    8'h08: src <= csr$wdata;
                    8'h0c: dst <= csr$wdata;
                    8'h10: beats <= csr$wdata[6:0];
                    8'h14: burst <= csr$wdata[6:0];
                    8'h18: strb <= csr$wdata[15:0];
                    8'h24: if (csr$wdata == 32'hdead) $fatal(1, "axi_copy: fatal error requested");
                    8'h28: loop_en <= csr$wdata[0];
                    default: ;
                endcase
            end
            if (csr$read) begin
                case (csr$addr)
                    8'h00: csr$rdata <= {30'd0, irq_en, busy};
                    8'h04: csr$rdata <= {28'd0, wr_err, rd_err, done, busy};
                    8'h08: csr$rdata <= src;
                    8'h0c: csr$rdata <= dst;
                    8'h10: csr$rdata <= {25'd0, beats};
                    8'h14: csr$rdata <= {25'd0, burst};
                    8'h18: csr$rdata <= {16'd0, strb};
                    8'h1c: csr$rdata <= cycles;
                    8'h20: csr$rdata <= 32'h504f4331;
                    8'h28: csr$rdata <= {31'd0, loop_a};
                    default: csr$rdata <= 32'hbad0bad0;
                endcase
            end

            // Reads.
            if (axi$arvalid && axi$arready) ar_sent <= ar_sent + ar_beats;
            if (axi$rvalid && axi$rready) begin
                buffer[r_recv[5:0]] <= axi$rdata;
                if (axi$rresp != 2'b00) rd_err <= 1;
                r_recv <= r_recv + 1;
                if (r_recv + 7'd1 == beats) phase <= WRITE;
            end

            // Writes.
            if (axi$awvalid && axi$awready) begin
                aw_sent <= aw_sent + aw_beats;
                aw_count <= aw_count + 1;
            end
            if (axi$wvalid && axi$wready) begin
                w_sent <= w_sent + 1;
                if (axi$wlast) w_start <= w_sent + 1;
            end
            if (axi$bvalid && axi$bready) begin
                if (axi$bresp != 2'b00) wr_err <= 1;
                b_recv <= b_recv + 1;
                // The last response: every burst issued and answered, every beat sent.
                if (aw_sent == beats && w_sent == beats && b_recv + 7'd1 == aw_count) begin
                    phase <= IDLE;
                    done <= 1;
                end
            end
        end
    end
endmodule
