// A minimal Verilator harness for hdl/tests/verilator_sim.rs: an AXI4 memory of the size of
// mem.bin (a power of two, OKAY responses) and a CSR driver that runs a script. Reads: one burst
// at a time, in order. Writes: the address (AW) and data (W) channels are accepted independently
// into queues of WQ_DEPTH entries each (`awready`/`wready` are high while their queue has room),
// so a write engine may send data before, with or after its address and keep several writes
// outstanding; a write is performed once both its address and its data are queued, and its
// response comes on B one cycle later, responses in order. The script:
//   w OFFSET VALUE   write a register
//   r OFFSET         read a register and print "r OFFSET VALUE"
//   wait N           clock until COMPLETED >= N (exit 2 after $VTOP_MAX_CYCLES cycles, default
//                    2,000,000: a hang)
// Memory is loaded from mem.bin and written to out.bin at the end. Usage: vtop DIR
#include "Vtop.h"
#include "verilated.h"
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

static Vtop* t;
static std::vector<uint8_t> mem;
static uint32_t mask = 0;
static bool rburst = false;
static uint32_t raddr = 0, rbeats = 0;
// Write side: queued addresses, queued data beats, and writes performed but not yet answered.
static const size_t WQ_DEPTH = 8;
struct WriteBeat {
    uint8_t bytes[16];
    uint16_t strb;
};
static std::deque<uint32_t> waddrs;
static std::deque<WriteBeat> wbeats;
static size_t wresps = 0;
static uint64_t cycles = 0;

static void cycle() {
    t->axi__024arready = !rburst;
    t->axi__024rvalid = rburst;
    t->axi__024rlast = rburst && rbeats == 1;
    t->axi__024rresp = 0;
    for (int i = 0; i < 4; i++) {
        uint32_t w = 0;
        for (int b = 0; b < 4 && rburst; b++) w |= uint32_t(mem[(raddr + 4 * i + b) & mask]) << (8 * b);
        t->axi__024rdata[i] = w;
    }
    bool awready = waddrs.size() < WQ_DEPTH, wready = wbeats.size() < WQ_DEPTH;
    t->axi__024awready = awready;
    t->axi__024wready = wready;
    t->axi__024bvalid = wresps != 0;
    t->axi__024bresp = 0;
    t->clock = 0;
    t->eval();
    bool arvalid = t->axi__024arvalid, rready = t->axi__024rready, awvalid = t->axi__024awvalid;
    bool wvalid = t->axi__024wvalid, bready = t->axi__024bready;
    uint32_t araddr = t->axi__024araddr, arlen = t->axi__024arlen, awaddr = t->axi__024awaddr;
    WriteBeat beat;
    beat.strb = t->axi__024wstrb;
    for (int i = 0; i < 4; i++)
        for (int b = 0; b < 4; b++) beat.bytes[4 * i + b] = (t->axi__024wdata[i] >> (8 * b)) & 0xFF;
    t->clock = 1;
    t->eval();
    cycles++;
    if (rburst) {
        if (rready) {
            if (--rbeats == 0) rburst = false; else raddr += 16;
        }
    } else if (arvalid) {
        rburst = true; raddr = araddr; rbeats = arlen + 1;
    }
    // The response offered this cycle (the oldest) is taken; then this edge's handshakes; then
    // at most one write whose address and data are both queued is performed (answered from the
    // next cycle on).
    if (wresps != 0 && bready) wresps--;
    if (awvalid && awready) waddrs.push_back(awaddr);
    if (wvalid && wready) wbeats.push_back(beat);
    if (!waddrs.empty() && !wbeats.empty()) {
        uint32_t waddr = waddrs.front();
        const WriteBeat& w = wbeats.front();
        for (int i = 0; i < 16; i++) if (w.strb >> i & 1) mem[(waddr + i) & mask] = w.bytes[i];
        waddrs.pop_front();
        wbeats.pop_front();
        wresps++;
    }
}

static void csr_write(uint32_t off, uint32_t v) {
    t->csr__024addr = off; t->csr__024wdata = v; t->csr__024write = 1;
    cycle();
    t->csr__024write = 0;
}

static uint32_t csr_read(uint32_t off) {
    t->csr__024addr = off; t->csr__024read = 1;
    cycle();
    t->csr__024read = 0;
    t->clock = 0; t->eval();
    return t->csr__024rdata;
}

int main(int argc, char** argv) {
    if (argc < 2) { fprintf(stderr, "usage: vtop DIR\n"); return 1; }
    std::string dir = argv[1];
    FILE* f = fopen((dir + "/mem.bin").c_str(), "rb");
    if (!f) { fprintf(stderr, "cannot read mem.bin\n"); return 1; }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (size < 16 || (size & (size - 1))) { fprintf(stderr, "mem.bin: size %ld is not a power of two\n", size); return 1; }
    mem.resize(size);
    mask = uint32_t(size - 1);
    if (fread(mem.data(), 1, mem.size(), f) != mem.size()) { fprintf(stderr, "cannot read mem.bin\n"); return 1; }
    fclose(f);
    const char* limit_env = getenv("VTOP_MAX_CYCLES");
    uint64_t limit = limit_env ? strtoull(limit_env, nullptr, 10) : 2000000;
    t = new Vtop;
    t->reset = 1; cycle(); cycle(); t->reset = 0;
    FILE* s = fopen((dir + "/script.txt").c_str(), "r");
    if (!s) { fprintf(stderr, "cannot read script.txt\n"); return 1; }
    char cmd[16]; unsigned a, b;
    while (fscanf(s, "%15s", cmd) == 1) {
        if (!strcmp(cmd, "w") && fscanf(s, "%u %u", &a, &b) == 2) csr_write(a, b);
        else if (!strcmp(cmd, "r") && fscanf(s, "%u", &a) == 1) printf("r %u %u\n", a, csr_read(a));
        else if (!strcmp(cmd, "wait") && fscanf(s, "%u", &a) == 1) {
            uint64_t start = cycles;
            while (csr_read(0x030) < a) {
                for (int i = 0; i < 16; i++) cycle();
                if (cycles - start > limit) { fprintf(stderr, "hang\n"); return 2; }
            }
        } else { fprintf(stderr, "bad script command %s\n", cmd); return 1; }
    }
    fclose(s);
    printf("cycles %llu\n", (unsigned long long)cycles);
    FILE* o = fopen((dir + "/out.bin").c_str(), "wb");
    fwrite(mem.data(), 1, mem.size(), o);
    fclose(o);
    delete t;
    return 0;
}
