//! The controller: takes descriptors from the command queue, validates them into a FIFO of
//! four, tiles each GEMM onto the array and runs three processes side by side so that the
//! array computes while the operands of the next job arrive and the results of the previous
//! tile leave, across GEMMs as well as within one:
//!
//! - the **loader** reads operand rows a beat at a time into the free halves of the
//!   double-buffered A and B buffers ([`super::array`]), job by job (a job is one tile's chunk
//!   of at most `kdepth` k steps);
//! - the **compute** process issues one round of L slot steps per k step of each loaded job;
//! - the **drain** moves the finished tile out of the chains and the next tile's start values
//!   in while the array computes.
//!
//! Each PE interleaves L accumulations ([`super::pe`]). A GEMM with M ≥ `R·L/2` uses tiles of
//! `R·L` rows and C columns: tile row `t` is computed by PE row `R−1−t/L` in slot `t mod L`.
//! Shorter GEMMs would leave slots idle, so the L slots cover L₁ = L/2^g rows times 2^g
//! *column groups* (g the largest with M ≤ `R·L₁`): slot s of PE row `R−1−p` computes tile row
//! `p·L₁ + s mod L₁` in group `s / L₁`, i.e. tile columns `(s/L₁)·C ..` of a `C·2^g`-wide
//! tile; each group's B block has its own `kdepth/2^g` steps of the buffer half, and the A
//! rows are simply shared by the slots of all groups. Tiles go row-tile-major (`i0` outer,
//! `j0` inner, k chunks innermost). When K fits one buffer half (*resident*), a row tile's A
//! panel is loaded once and reused by all its column tiles, and each tile needs only its
//! K × C block of B: that is what makes the bus keep up with the array (docs/hardware.md,
//! "Bandwidth and utilization"). Otherwise every job loads its A and B chunk; the accumulators
//! stay in the PEs between the chunks of a tile, so k stays ascending.
//!
//! The chains hold one value per tile row and are used only by `first` steps: a tile's first
//! round (k = 0) takes each slot's start value from its chain and pushes the previous tile's
//! result in its place. That round is *marked*; when it has reached the last PE (`core_done`)
//! the drain shifts the chains `R·L` times, writing the previous tile's rows to D and bringing
//! in the next tile's start values (zeros, or its rows of C), and then allows the next marked
//! round (`d_ready`). With one marked round in flight at a time, `core_done` always answers the
//! round the drain waits for.
//!
//! **Streams of GEMMs.** Each process reads the FIFO entry it works on (loader `lp`, compute
//! `cp`, drain start values `ip`, drain results `dop`). The loader goes on to the next GEMM as
//! soon as it has loaded the last job of one. When the drain has brought in a GEMM's last
//! tile and another GEMM is validated, its "in" side goes on to that GEMM's first tile
//! (*chaining*): the compute then runs it right after the last job, its first round swapping
//! the previous GEMM's last results out, and the drain's "out" side follows one GEMM behind.
//! A GEMM retires (COMPLETED, IRQ) when its last tile is written and every write answered.
//! Only when nothing follows does the compute end with a flush round (first steps without
//! products) that swaps the last results out; the drain writes them, and the next GEMM starts
//! afresh with a drain pass that brings in its first tile's start values.
//!
//! Rounds start only when the free-running phase counter `ph` (cycle mod L) is 0, so every
//! pause between rounds is a whole number of rounds and each accumulation keeps its slot.
//!
//! Rows and columns outside the matrix are computed on stale buffer contents and never
//! written. Descriptor errors (docs/registers.md, "Error codes") are found before any memory
//! access, and the descriptor retires with IRQ_STATUS.ERROR in order, after the ones before
//! it. A DMA response error stops every process; after the transfers in flight, every
//! descriptor taken into the FIFO and not yet retired retires with the error (each counts in
//! COMPLETED and ERRORS), and the controller starts afresh with the next one in the queue.

use rust_hdl::prelude::*;

/// Bit offsets of the descriptor fields in the queue entry (`regmap::DESCRIPTOR` order, 32 bits
/// each); a test checks them against the table.
pub mod desc_bits {
    /// DESC_A_LO.
    pub const A: usize = 0;
    /// DESC_A_HI.
    pub const A_HI: usize = 32;
    /// DESC_B_LO.
    pub const B: usize = 64;
    /// DESC_B_HI.
    pub const B_HI: usize = 96;
    /// DESC_C_LO.
    pub const C: usize = 128;
    /// DESC_C_HI.
    pub const C_HI: usize = 160;
    /// DESC_D_LO.
    pub const D: usize = 192;
    /// DESC_D_HI.
    pub const D_HI: usize = 224;
    /// DESC_M.
    pub const M: usize = 256;
    /// DESC_N.
    pub const N: usize = 288;
    /// DESC_K.
    pub const K: usize = 320;
    /// DESC_LDA.
    pub const LDA: usize = 352;
    /// DESC_LDB.
    pub const LDB: usize = 384;
    /// DESC_LDC.
    pub const LDC: usize = 416;
    /// DESC_LDD.
    pub const LDD: usize = 448;
    /// DESC_FLAGS.
    pub const FLAGS: usize = 480;
    /// DESC_RQ_MULT.
    pub const RQ_MULT: usize = 512;
    /// DESC_RQ_SHIFT.
    pub const RQ_SHIFT: usize = 544;
}

#[derive(Copy, Clone, PartialEq, Eq, Debug, LogicState)]
enum State {
    Idle,
    Check,
    VSetup,
    VMul,
    VEnd,
    Push,
    FailWait,
    Fail,
}

/// The loader's states (`Idle` also when the last job is loaded).
#[derive(Copy, Clone, PartialEq, Eq, Debug, LogicState)]
enum LoadState {
    Idle,
    Job,
    AWait,
    BWait,
    BBlock,
    Issue,
    Data,
    Flush,
    Ready,
    Advance,
}

/// The compute process's states (`Idle` also after the flush round).
#[derive(Copy, Clone, PartialEq, Eq, Debug, LogicState)]
enum ComputeState {
    Idle,
    Job,
    Wait,
    Round,
    End,
    FlushWait,
    Flush,
}

/// The drain's states (`Idle` also when the last tile is written).
#[derive(Copy, Clone, PartialEq, Eq, Debug, LogicState)]
enum DrainState {
    Idle,
    Zero,
    Row,
    ReadStart,
    ReadWait,
    WriteWait,
    Next,
    WaitSwap,
    Adv,
}

/// The controller.
#[derive(LogicBlock)]
pub struct Controller {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset.
    pub reset: Signal<In, Bit>,
    /// Head of the command queue.
    pub q_head: Signal<In, Bits<576>>,
    /// The queue is empty.
    pub q_empty: Signal<In, Bit>,
    /// Free queue slots (for STATUS).
    pub q_free: Signal<In, Bits<8>>,
    /// Pop the head.
    pub q_pop: Signal<Out, Bit>,
    /// A doorbell was dropped because the queue was full.
    pub reject: Signal<In, Bit>,
    /// Zero the performance counters.
    pub perf_clear: Signal<In, Bit>,
    /// Array rows R.
    pub rows: Constant<Bits<8>>,
    /// Array columns C.
    pub cols: Constant<Bits<8>>,
    /// k steps per buffer half (a chunk).
    pub kdepth: Constant<Bits<32>>,
    /// log2 of `kdepth`.
    pub kaw: Constant<Bits<5>>,
    /// log2 of the A words per slot and half: `kaw − 3`.
    pub slot_shift: Constant<Bits<5>>,
    /// A B row of C int8 (bit 0) / 16-bit (bit 1) elements is a power-of-two number of
    /// 16-byte words, so a row of several column groups can be loaded in one transfer.
    pub bjoin_ok: Constant<Bits<2>>,
    /// log2 of those words per group, int8.
    pub bjoin_lg8: Constant<Bits<3>>,
    /// log2 of those words per group, 16-bit.
    pub bjoin_lg16: Constant<Bits<3>>,
    /// Precisions built in (bit p = precision code p).
    pub prec_mask: Constant<Bits<16>>,
    /// L − 1 (L: accumulations interleaved per PE).
    pub ilv_last: Constant<Bits<8>>,
    /// log2 L.
    pub lgl: Constant<Bits<3>>,
    /// Tile rows: R · L.
    pub trows: Constant<Bits<16>>,
    /// Precision code of the array's steps (the compute's descriptor).
    pub prec: Signal<Out, Bits<2>>,
    /// Precision code of the B buffer writes (the loader's descriptor, which may be a later one).
    pub wprec: Signal<Out, Bits<2>>,
    /// A buffer word write.
    pub a_we: Signal<Out, Bit>,
    /// A bank.
    pub a_wsel: Signal<Out, Bits<8>>,
    /// A word address (half, slot, word).
    pub a_waddr: Signal<Out, Bits<16>>,
    /// A word (16 bytes of a row).
    pub a_wdata: Signal<Out, Bits<128>>,
    /// B buffer row-word write.
    pub b_we: Signal<Out, Bit>,
    /// Which word of the B row.
    pub b_wword: Signal<Out, Bits<8>>,
    /// B address (half, k).
    pub b_waddr: Signal<Out, Bits<16>>,
    /// B word (16 bytes of a row).
    pub b_wdata: Signal<Out, Bits<128>>,
    /// Issue a k step.
    pub step: Signal<Out, Bit>,
    /// First k step of a tile (or the flush round).
    pub step_first: Signal<Out, Bit>,
    /// Marks the last slot's step of a round that swaps results into the chains (the array's `done` answers it).
    pub step_mark: Signal<Out, Bit>,
    /// B buffer address of the step (half, k).
    pub step_addr: Signal<Out, Bits<16>>,
    /// A buffer word address of the step (half, slot, word holding k).
    pub step_addr_a: Signal<Out, Bits<16>>,
    /// Byte of that word where the element starts.
    pub step_lane: Signal<Out, Bits<4>>,
    /// Init staging write.
    pub ci_we: Signal<Out, Bit>,
    /// Init staging column.
    pub ci_wsel: Signal<Out, Bits<8>>,
    /// Init value.
    pub ci_wdata: Signal<Out, Bits<32>>,
    /// Shift the init/drain chains.
    pub sh_shift: Signal<Out, Bit>,
    /// Bottom-row column to output.
    pub out_sel: Signal<Out, Bits<8>>,
    /// A marked round reached the last PE.
    pub core_done: Signal<In, Bit>,
    /// Start a DMA read.
    pub rd_start: Signal<Out, Bit>,
    /// DMA read address.
    pub rd_addr: Signal<Out, Bits<32>>,
    /// DMA read element count.
    pub rd_count: Signal<Out, Bits<16>>,
    /// DMA read log2 element size.
    pub rd_esz: Signal<Out, Bits<2>>,
    /// DMA read hands out beats (operand rows) instead of elements.
    pub rd_raw: Signal<Out, Bit>,
    /// DMA read rows (raw mode).
    pub rd_rows: Signal<Out, Bits<16>>,
    /// DMA read row stride in bytes (raw mode).
    pub rd_stride: Signal<Out, Bits<32>>,
    /// The loader takes a beat this cycle (raw mode).
    pub rd_beat_ready: Signal<Out, Bit>,
    /// DMA read busy.
    pub rd_busy: Signal<In, Bit>,
    /// DMA read error.
    pub rd_error: Signal<In, Bit>,
    /// DMA read element valid.
    pub rd_valid: Signal<In, Bit>,
    /// DMA read element.
    pub rd_data: Signal<In, Bits<32>>,
    /// DMA read element index.
    pub rd_index: Signal<In, Bits<16>>,
    /// DMA read beat valid (raw mode).
    pub rd_beat_valid: Signal<In, Bit>,
    /// DMA read beat (raw mode).
    pub rd_beat_data: Signal<In, Bits<128>>,
    /// Start a DMA write.
    pub wr_start: Signal<Out, Bit>,
    /// DMA write address.
    pub wr_addr: Signal<Out, Bits<32>>,
    /// DMA write element count.
    pub wr_count: Signal<Out, Bits<16>>,
    /// DMA write log2 element size.
    pub wr_esz: Signal<Out, Bits<2>>,
    /// DMA write: the current row's elements are still being taken.
    pub wr_busy: Signal<In, Bit>,
    /// DMA write can take the next row's start.
    pub wr_can_start: Signal<In, Bit>,
    /// DMA write: nothing queued or unanswered.
    pub wr_idle: Signal<In, Bit>,
    /// DMA write: some write since `wr_clear_error` was answered with an error (sticky).
    pub wr_error: Signal<In, Bit>,
    /// Clear the DMA write's sticky error (at each descriptor's start).
    pub wr_clear_error: Signal<Out, Bit>,
    /// Index of the first of the four elements the DMA write wants next.
    pub wr_index: Signal<In, Bits<16>>,
    /// Output conversion code.
    pub oc_code: Signal<Out, Bits<4>>,
    /// Accumulator is floating.
    pub oc_float: Signal<Out, Bit>,
    /// Requant multiplier.
    pub rq_mult: Signal<Out, Bits<32>>,
    /// Requant shift.
    pub rq_shift: Signal<Out, Bits<6>>,
    /// Requant zero point.
    pub rq_zp: Signal<Out, Bits<8>>,
    /// STATUS register value.
    pub status: Signal<Out, Bits<32>>,
    /// COMPLETED register value.
    pub completed: Signal<Out, Bits<32>>,
    /// ERRORS register value.
    pub errors: Signal<Out, Bits<32>>,
    /// PERF_BUSY.
    pub perf_busy: Signal<Out, Bits<32>>,
    /// PERF_MACS_LO.
    pub perf_macs_lo: Signal<Out, Bits<32>>,
    /// PERF_MACS_HI.
    pub perf_macs_hi: Signal<Out, Bits<32>>,
    /// PERF_STALL_READ.
    pub perf_stall_read: Signal<Out, Bits<32>>,
    /// PERF_STALL_WRITE.
    pub perf_stall_write: Signal<Out, Bits<32>>,
    /// PERF_STALL_OTHER.
    pub perf_stall_other: Signal<Out, Bits<32>>,
    /// IRQ_STATUS bits to set (bit 0 DONE, bit 1 ERROR).
    pub irq_set: Signal<Out, Bits<32>>,
    state: DFF<State>,
    dsc: DFF<Bits<576>>,
    code: DFF<Bits<8>>,
    vop: DFF<Bits<2>>,
    mul_a: DFF<Bits<64>>,
    mul_b: DFF<Bits<32>>,
    mul_acc: DFF<Bits<64>>,
    ph: DFF<Bits<8>>,
    abort: DFF<Bit>,
    rd_owner: DFF<Bit>,
    n_completed: DFF<Bits<32>>,
    n_errors: DFF<Bits<32>>,
    last_error: DFF<Bits<8>>,
    c_busy: DFF<Bits<32>>,
    c_macs: DFF<Bits<64>>,
    c_read: DFF<Bits<32>>,
    c_write: DFF<Bits<32>>,
    c_other: DFF<Bits<32>>,
    ls: DFF<LoadState>,
    li0: DFF<Bits<32>>,
    lj0: DFF<Bits<32>>,
    lk0: DFF<Bits<32>>,
    l_njob: DFF<Bits<32>>,
    l_nready: DFF<Bits<32>>,
    l_afirst: DFF<Bits<32>>,
    l_ahalf: DFF<Bit>,
    l_t: DFF<Bits<16>>,
    l_ptr: DFF<Bits<32>>,
    l_arow0: DFF<Bits<32>>,
    l_bk0: DFF<Bits<32>>,
    l_rv: DFF<Bits<16>>,
    l_cv: DFF<Bits<16>>,
    l_kc: DFF<Bits<16>>,
    l_anew: DFF<Bit>,
    l_isa: DFF<Bit>,
    l_off: DFF<Bits<4>>,
    l_bi: DFF<Bits<16>>,
    l_prev: DFF<Bits<128>>,
    l_s2: DFF<Bits<8>>,
    l_bcol: DFF<Bits<32>>,
    cs: DFF<ComputeState>,
    ci0: DFF<Bits<32>>,
    cj0: DFF<Bits<32>>,
    ck0: DFF<Bits<32>>,
    c_ndone: DFF<Bits<32>>,
    c_ahalf: DFF<Bit>,
    c_bhalf: DFF<Bit>,
    c_kc: DFF<Bits<16>>,
    c_first: DFF<Bit>,
    c_kk: DFF<Bits<16>>,
    c_sl: DFF<Bits<8>>,
    c_rvcv: DFF<Bits<32>>,
    dst: DFF<DrainState>,
    d_ready: DFF<Bit>,
    d_nstep: DFF<Bits<2>>,
    d_n: DFF<Bits<16>>,
    di_i0: DFF<Bits<32>>,
    di_j0: DFF<Bits<32>>,
    di_base: DFF<Bits<32>>,
    di_ptr: DFF<Bits<32>>,
    di_end: DFF<Bit>,
    do_i0: DFF<Bits<32>>,
    do_j0: DFF<Bits<32>>,
    do_base: DFF<Bits<32>>,
    do_ptr: DFF<Bits<32>>,
    di_gptr: DFF<Bits<32>>,
    do_gptr: DFF<Bits<32>>,
    e0: DFF<Bits<576>>,
    e1: DFF<Bits<576>>,
    e2: DFF<Bits<576>>,
    e3: DFF<Bits<576>>,
    eg0: DFF<Bits<3>>,
    eg1: DFF<Bits<3>>,
    eg2: DFF<Bits<3>>,
    eg3: DFF<Bits<3>>,
    wp: DFF<Bits<3>>,
    rp: DFF<Bits<3>>,
    lp: DFF<Bits<3>>,
    cp: DFF<Bits<3>>,
    ip: DFF<Bits<3>>,
    dop: DFF<Bits<3>>,
    ret_pend: DFF<Bit>,
    d_chained: DFF<Bits<2>>,
    d_newin: DFF<Bit>,
    d_newout: DFF<Bit>,
    di_col: DFF<Bits<16>>,
    do_col: DFF<Bits<16>>,
    l_dsc: Signal<Local, Bits<576>>,
    l_g: Signal<Local, Bits<3>>,
    l_trows: Signal<Local, Bits<16>>,
    l_tcols: Signal<Local, Bits<16>>,
    l_lgl1: Signal<Local, Bits<3>>,
    l_l1mask: Signal<Local, Bits<8>>,
    lf_m: Signal<Local, Bits<32>>,
    lf_n: Signal<Local, Bits<32>>,
    c_dsc: Signal<Local, Bits<576>>,
    c_g: Signal<Local, Bits<3>>,
    c_trows: Signal<Local, Bits<16>>,
    c_tcols: Signal<Local, Bits<16>>,
    c_lgl1: Signal<Local, Bits<3>>,
    c_l1mask: Signal<Local, Bits<8>>,
    cf_m: Signal<Local, Bits<32>>,
    cf_n: Signal<Local, Bits<32>>,
    i_dsc: Signal<Local, Bits<576>>,
    i_g: Signal<Local, Bits<3>>,
    i_trows: Signal<Local, Bits<16>>,
    i_tcols: Signal<Local, Bits<16>>,
    i_lgl1: Signal<Local, Bits<3>>,
    i_l1mask: Signal<Local, Bits<8>>,
    if_m: Signal<Local, Bits<32>>,
    if_n: Signal<Local, Bits<32>>,
    o_dsc: Signal<Local, Bits<576>>,
    o_g: Signal<Local, Bits<3>>,
    o_trows: Signal<Local, Bits<16>>,
    o_tcols: Signal<Local, Bits<16>>,
    o_lgl1: Signal<Local, Bits<3>>,
    o_l1mask: Signal<Local, Bits<8>>,
    of_m: Signal<Local, Bits<32>>,
    of_n: Signal<Local, Bits<32>>,
    lf_k: Signal<Local, Bits<32>>,
    l_kchunk: Signal<Local, Bits<32>>,
    l_kclg: Signal<Local, Bits<5>>,
    l_resident: Signal<Local, Bit>,
    l_esz: Signal<Local, Bits<2>>,
    l_prec: Signal<Local, Bits<2>>,
    cf_k: Signal<Local, Bits<32>>,
    c_kchunk: Signal<Local, Bits<32>>,
    c_kclg: Signal<Local, Bits<5>>,
    c_resident: Signal<Local, Bit>,
    c_esz: Signal<Local, Bits<2>>,
    c_prec: Signal<Local, Bits<2>>,
    lf_a: Signal<Local, Bits<32>>,
    lf_b: Signal<Local, Bits<32>>,
    lf_lda: Signal<Local, Bits<32>>,
    lf_ldb: Signal<Local, Bits<32>>,
    if_c: Signal<Local, Bits<32>>,
    if_ldc: Signal<Local, Bits<32>>,
    if_acc: Signal<Local, Bit>,
    of_d: Signal<Local, Bits<32>>,
    of_ldd: Signal<Local, Bits<32>>,
    o_osz: Signal<Local, Bits<2>>,
    o_out: Signal<Local, Bits<4>>,
    di_s1: Signal<Local, Bits<8>>,
    do_s1: Signal<Local, Bits<8>>,
    di_r: Signal<Local, Bits<16>>,
    do_r: Signal<Local, Bits<16>>,
    di_gend: Signal<Local, Bit>,
    do_gend: Signal<Local, Bit>,
    nfifo: Signal<Local, Bits<3>>,
    ip_next: Signal<Local, Bits<3>>,
    room: Signal<Local, Bit>,
    l_has: Signal<Local, Bit>,
    c_has: Signal<Local, Bit>,
    i_has: Signal<Local, Bit>,
    abort_done: Signal<Local, Bit>,
    busy_any: Signal<Local, Bit>,
    n_abort: Signal<Local, Bits<32>>,
    f_a: Signal<Local, Bits<32>>,
    f_b: Signal<Local, Bits<32>>,
    f_c: Signal<Local, Bits<32>>,
    f_d: Signal<Local, Bits<32>>,
    f_m: Signal<Local, Bits<32>>,
    f_n: Signal<Local, Bits<32>>,
    f_k: Signal<Local, Bits<32>>,
    f_lda: Signal<Local, Bits<32>>,
    f_ldb: Signal<Local, Bits<32>>,
    f_ldc: Signal<Local, Bits<32>>,
    f_ldd: Signal<Local, Bits<32>>,
    f_prec: Signal<Local, Bits<4>>,
    f_out: Signal<Local, Bits<4>>,
    f_acc: Signal<Local, Bit>,
    f_shift: Signal<Local, Bits<8>>,
    f_hi_nz: Signal<Local, Bit>,
    esz: Signal<Local, Bits<2>>,
    osz: Signal<Local, Bits<2>>,
    a_row: Signal<Local, Bits<64>>,
    b_row: Signal<Local, Bits<64>>,
    c_row: Signal<Local, Bits<64>>,
    d_row: Signal<Local, Bits<64>>,
    or_ab: Signal<Local, Bits<32>>,
    or_c: Signal<Local, Bits<32>>,
    or_d: Signal<Local, Bits<32>>,
    misaligned: Signal<Local, Bit>,
    short_stride: Signal<Local, Bit>,
    out_ok: Signal<Local, Bit>,
    chk: Signal<Local, Bits<8>>,
    op_rows: Signal<Local, Bits<32>>,
    op_stride: Signal<Local, Bits<32>>,
    op_base: Signal<Local, Bits<64>>,
    op_rowbytes: Signal<Local, Bits<64>>,
    op_end: Signal<Local, Bits<64>>,
    g_new: Signal<Local, Bits<3>>,
    l_bnleft: Signal<Local, Bits<32>>,
    c_s2: Signal<Local, Bits<8>>,
    d_s: Signal<Local, Bits<8>>,
    di_ncol: Signal<Local, Bits<32>>,
    do_ncol: Signal<Local, Bits<32>>,
    di_gcv: Signal<Local, Bits<8>>,
    do_gcv: Signal<Local, Bits<8>>,
    l_mleft: Signal<Local, Bits<32>>,
    l_nleft: Signal<Local, Bits<32>>,
    l_kleft: Signal<Local, Bits<32>>,
    l_rv_new: Signal<Local, Bits<16>>,
    l_cv_new: Signal<Local, Bits<16>>,
    l_bjoin: Signal<Local, Bit>,
    l_wlg: Signal<Local, Bits<3>>,
    l_wgrp: Signal<Local, Bits<16>>,
    l_wwig: Signal<Local, Bits<16>>,
    l_kc_new: Signal<Local, Bits<16>>,
    l_req: Signal<Local, Bit>,
    l_raddr: Signal<Local, Bits<32>>,
    l_rcount: Signal<Local, Bits<16>>,
    l_words: Signal<Local, Bits<16>>,
    l_rrows: Signal<Local, Bits<16>>,
    l_rstride: Signal<Local, Bits<32>>,
    l_bytes: Signal<Local, Bits<16>>,
    l_beats: Signal<Local, Bits<16>>,
    l_row_end: Signal<Local, Bit>,
    l_flush: Signal<Local, Bit>,
    l_next_row: Signal<Local, Bits<32>>,
    l_beat_ready: Signal<Local, Bit>,
    l_cur: Signal<Local, Bits<128>>,
    l_cat: Signal<Local, Bits<256>>,
    l_offbits: Signal<Local, Bits<9>>,
    l_shifted: Signal<Local, Bits<256>>,
    l_fun: Signal<Local, Bits<128>>,
    l_wword: Signal<Local, Bits<16>>,
    l_wdata: Signal<Local, Bits<128>>,
    l_wr: Signal<Local, Bit>,
    l_a_slot: Signal<Local, Bits<16>>,
    l_a_bank: Signal<Local, Bits<16>>,
    l_aoff: Signal<Local, Bits<16>>,
    l_boff: Signal<Local, Bits<16>>,
    c_aoff: Signal<Local, Bits<16>>,
    c_boff: Signal<Local, Bits<16>>,
    c_mleft: Signal<Local, Bits<32>>,
    c_nleft: Signal<Local, Bits<32>>,
    c_kleft: Signal<Local, Bits<32>>,
    c_rv_new: Signal<Local, Bits<16>>,
    c_cv_new: Signal<Local, Bits<16>>,
    c_kc_new: Signal<Local, Bits<16>>,
    job_ready: Signal<Local, Bit>,
    c_swap: Signal<Local, Bit>,
    go: Signal<Local, Bit>,
    c_kbyte: Signal<Local, Bits<16>>,
    di_mleft: Signal<Local, Bits<32>>,
    di_nleft: Signal<Local, Bits<32>>,
    di_rv: Signal<Local, Bits<16>>,
    do_mleft: Signal<Local, Bits<32>>,
    do_nleft: Signal<Local, Bits<32>>,
    do_rv: Signal<Local, Bits<16>>,
    d_out: Signal<Local, Bit>,
    d_hold: Signal<Local, Bit>,
    chain_inc: Signal<Local, Bit>,
    chain_dec: Signal<Local, Bit>,
    dcode: DFF<Bits<8>>,
    d_need_read: Signal<Local, Bit>,
    d_need_write: Signal<Local, Bit>,
    d_req: Signal<Local, Bit>,
    grant_l: Signal<Local, Bit>,
    grant_d: Signal<Local, Bit>,
    fail_now: Signal<Local, Bit>,
    irq_done: Signal<Local, Bit>,
}

/// Whether a row of `bytes` bytes is a power-of-two number (up to 128) of 16-byte words.
fn words_pow2(bytes: usize) -> bool {
    bytes.is_multiple_of(16) && (bytes / 16).is_power_of_two() && bytes / 16 <= 128
}

impl Controller {
    /// A controller for an `rows × cols` array of PEs interleaving `interleave` accumulations,
    /// with buffer halves of `2^kaw` k steps (`kaw` ≥ 4) and the precisions in `prec_mask`
    /// (bit p = precision code p).
    pub fn new(rows: usize, cols: usize, kaw: usize, interleave: usize, prec_mask: u32) -> Self {
        assert!(
            interleave.is_power_of_two() && interleave <= 8 && kaw >= 4,
            "interleave {interleave} with buffer depth 2^{kaw}"
        );
        let lgl = interleave.trailing_zeros() as usize;
        Self {
            clock: Default::default(),
            reset: Default::default(),
            q_head: Default::default(),
            q_empty: Default::default(),
            q_free: Default::default(),
            q_pop: Default::default(),
            reject: Default::default(),
            perf_clear: Default::default(),
            rows: Constant::new((rows as u64).into()),
            cols: Constant::new((cols as u64).into()),
            kdepth: Constant::new((1u64 << kaw).into()),
            kaw: Constant::new((kaw as u64).into()),
            slot_shift: Constant::new(((kaw - 3) as u64).into()),
            bjoin_ok: Constant::new(
                (u64::from(words_pow2(cols)) | u64::from(words_pow2(2 * cols)) << 1).into(),
            ),
            bjoin_lg8: Constant::new(u64::from((cols / 16).max(1).trailing_zeros()).into()),
            bjoin_lg16: Constant::new(u64::from((2 * cols / 16).max(1).trailing_zeros()).into()),
            prec_mask: Constant::new(u64::from(prec_mask).into()),
            ilv_last: Constant::new((interleave as u64 - 1).into()),
            lgl: Constant::new((lgl as u64).into()),
            trows: Constant::new(((rows * interleave) as u64).into()),
            prec: Default::default(),
            wprec: Default::default(),
            a_we: Default::default(),
            a_wsel: Default::default(),
            a_waddr: Default::default(),
            a_wdata: Default::default(),
            b_we: Default::default(),
            b_wword: Default::default(),
            b_waddr: Default::default(),
            b_wdata: Default::default(),
            step: Default::default(),
            step_first: Default::default(),
            step_mark: Default::default(),
            step_addr: Default::default(),
            step_addr_a: Default::default(),
            step_lane: Default::default(),
            ci_we: Default::default(),
            ci_wsel: Default::default(),
            ci_wdata: Default::default(),
            sh_shift: Default::default(),
            out_sel: Default::default(),
            core_done: Default::default(),
            rd_start: Default::default(),
            rd_addr: Default::default(),
            rd_count: Default::default(),
            rd_esz: Default::default(),
            rd_raw: Default::default(),
            rd_rows: Default::default(),
            rd_stride: Default::default(),
            rd_beat_ready: Default::default(),
            rd_busy: Default::default(),
            rd_error: Default::default(),
            rd_valid: Default::default(),
            rd_data: Default::default(),
            rd_index: Default::default(),
            rd_beat_valid: Default::default(),
            rd_beat_data: Default::default(),
            wr_start: Default::default(),
            wr_addr: Default::default(),
            wr_count: Default::default(),
            wr_esz: Default::default(),
            wr_busy: Default::default(),
            wr_can_start: Default::default(),
            wr_idle: Default::default(),
            wr_error: Default::default(),
            wr_clear_error: Default::default(),
            wr_index: Default::default(),
            oc_code: Default::default(),
            oc_float: Default::default(),
            rq_mult: Default::default(),
            rq_shift: Default::default(),
            rq_zp: Default::default(),
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
            state: Default::default(),
            dsc: Default::default(),
            code: Default::default(),
            vop: Default::default(),
            mul_a: Default::default(),
            mul_b: Default::default(),
            mul_acc: Default::default(),
            ph: Default::default(),
            abort: Default::default(),
            rd_owner: Default::default(),
            n_completed: Default::default(),
            n_errors: Default::default(),
            last_error: Default::default(),
            c_busy: Default::default(),
            c_macs: Default::default(),
            c_read: Default::default(),
            c_write: Default::default(),
            c_other: Default::default(),
            ls: Default::default(),
            li0: Default::default(),
            lj0: Default::default(),
            lk0: Default::default(),
            l_njob: Default::default(),
            l_nready: Default::default(),
            l_afirst: Default::default(),
            l_ahalf: Default::default(),
            l_t: Default::default(),
            l_ptr: Default::default(),
            l_arow0: Default::default(),
            l_bk0: Default::default(),
            l_rv: Default::default(),
            l_cv: Default::default(),
            l_kc: Default::default(),
            l_anew: Default::default(),
            l_isa: Default::default(),
            l_off: Default::default(),
            l_bi: Default::default(),
            l_prev: Default::default(),
            l_s2: Default::default(),
            l_bcol: Default::default(),
            cs: Default::default(),
            ci0: Default::default(),
            cj0: Default::default(),
            ck0: Default::default(),
            c_ndone: Default::default(),
            c_ahalf: Default::default(),
            c_bhalf: Default::default(),
            c_kc: Default::default(),
            c_first: Default::default(),
            c_kk: Default::default(),
            c_sl: Default::default(),
            c_rvcv: Default::default(),
            dst: Default::default(),
            d_ready: Default::default(),
            d_nstep: Default::default(),
            d_n: Default::default(),
            di_i0: Default::default(),
            di_j0: Default::default(),
            di_base: Default::default(),
            di_ptr: Default::default(),
            di_end: Default::default(),
            do_i0: Default::default(),
            do_j0: Default::default(),
            do_base: Default::default(),
            do_ptr: Default::default(),
            di_gptr: Default::default(),
            do_gptr: Default::default(),
            e0: Default::default(),
            e1: Default::default(),
            e2: Default::default(),
            e3: Default::default(),
            eg0: Default::default(),
            eg1: Default::default(),
            eg2: Default::default(),
            eg3: Default::default(),
            wp: Default::default(),
            rp: Default::default(),
            lp: Default::default(),
            cp: Default::default(),
            ip: Default::default(),
            dop: Default::default(),
            ret_pend: Default::default(),
            d_chained: Default::default(),
            d_newin: Default::default(),
            d_newout: Default::default(),
            di_col: Default::default(),
            do_col: Default::default(),
            l_dsc: Default::default(),
            l_g: Default::default(),
            l_trows: Default::default(),
            l_tcols: Default::default(),
            l_lgl1: Default::default(),
            l_l1mask: Default::default(),
            lf_m: Default::default(),
            lf_n: Default::default(),
            c_dsc: Default::default(),
            c_g: Default::default(),
            c_trows: Default::default(),
            c_tcols: Default::default(),
            c_lgl1: Default::default(),
            c_l1mask: Default::default(),
            cf_m: Default::default(),
            cf_n: Default::default(),
            i_dsc: Default::default(),
            i_g: Default::default(),
            i_trows: Default::default(),
            i_tcols: Default::default(),
            i_lgl1: Default::default(),
            i_l1mask: Default::default(),
            if_m: Default::default(),
            if_n: Default::default(),
            o_dsc: Default::default(),
            o_g: Default::default(),
            o_trows: Default::default(),
            o_tcols: Default::default(),
            o_lgl1: Default::default(),
            o_l1mask: Default::default(),
            of_m: Default::default(),
            of_n: Default::default(),
            lf_k: Default::default(),
            l_kchunk: Default::default(),
            l_kclg: Default::default(),
            l_resident: Default::default(),
            l_esz: Default::default(),
            l_prec: Default::default(),
            cf_k: Default::default(),
            c_kchunk: Default::default(),
            c_kclg: Default::default(),
            c_resident: Default::default(),
            c_esz: Default::default(),
            c_prec: Default::default(),
            lf_a: Default::default(),
            lf_b: Default::default(),
            lf_lda: Default::default(),
            lf_ldb: Default::default(),
            if_c: Default::default(),
            if_ldc: Default::default(),
            if_acc: Default::default(),
            of_d: Default::default(),
            of_ldd: Default::default(),
            o_osz: Default::default(),
            o_out: Default::default(),
            di_s1: Default::default(),
            do_s1: Default::default(),
            di_r: Default::default(),
            do_r: Default::default(),
            di_gend: Default::default(),
            do_gend: Default::default(),
            nfifo: Default::default(),
            ip_next: Default::default(),
            room: Default::default(),
            l_has: Default::default(),
            c_has: Default::default(),
            i_has: Default::default(),
            abort_done: Default::default(),
            busy_any: Default::default(),
            n_abort: Default::default(),
            f_a: Default::default(),
            f_b: Default::default(),
            f_c: Default::default(),
            f_d: Default::default(),
            f_m: Default::default(),
            f_n: Default::default(),
            f_k: Default::default(),
            f_lda: Default::default(),
            f_ldb: Default::default(),
            f_ldc: Default::default(),
            f_ldd: Default::default(),
            f_prec: Default::default(),
            f_out: Default::default(),
            f_acc: Default::default(),
            f_shift: Default::default(),
            f_hi_nz: Default::default(),
            esz: Default::default(),
            osz: Default::default(),
            a_row: Default::default(),
            b_row: Default::default(),
            c_row: Default::default(),
            d_row: Default::default(),
            or_ab: Default::default(),
            or_c: Default::default(),
            or_d: Default::default(),
            misaligned: Default::default(),
            short_stride: Default::default(),
            out_ok: Default::default(),
            chk: Default::default(),
            op_rows: Default::default(),
            op_stride: Default::default(),
            op_base: Default::default(),
            op_rowbytes: Default::default(),
            op_end: Default::default(),
            g_new: Default::default(),
            l_bnleft: Default::default(),
            c_s2: Default::default(),
            d_s: Default::default(),
            di_ncol: Default::default(),
            do_ncol: Default::default(),
            di_gcv: Default::default(),
            do_gcv: Default::default(),
            l_mleft: Default::default(),
            l_nleft: Default::default(),
            l_kleft: Default::default(),
            l_rv_new: Default::default(),
            l_cv_new: Default::default(),
            l_bjoin: Default::default(),
            l_wlg: Default::default(),
            l_wgrp: Default::default(),
            l_wwig: Default::default(),
            l_kc_new: Default::default(),
            l_req: Default::default(),
            l_raddr: Default::default(),
            l_rcount: Default::default(),
            l_words: Default::default(),
            l_rrows: Default::default(),
            l_rstride: Default::default(),
            l_bytes: Default::default(),
            l_beats: Default::default(),
            l_row_end: Default::default(),
            l_flush: Default::default(),
            l_next_row: Default::default(),
            l_beat_ready: Default::default(),
            l_cur: Default::default(),
            l_cat: Default::default(),
            l_offbits: Default::default(),
            l_shifted: Default::default(),
            l_fun: Default::default(),
            l_wword: Default::default(),
            l_wdata: Default::default(),
            l_wr: Default::default(),
            l_a_slot: Default::default(),
            l_a_bank: Default::default(),
            l_aoff: Default::default(),
            l_boff: Default::default(),
            c_aoff: Default::default(),
            c_boff: Default::default(),
            c_mleft: Default::default(),
            c_nleft: Default::default(),
            c_kleft: Default::default(),
            c_rv_new: Default::default(),
            c_cv_new: Default::default(),
            c_kc_new: Default::default(),
            job_ready: Default::default(),
            c_swap: Default::default(),
            go: Default::default(),
            c_kbyte: Default::default(),
            di_mleft: Default::default(),
            di_nleft: Default::default(),
            di_rv: Default::default(),
            do_mleft: Default::default(),
            do_nleft: Default::default(),
            do_rv: Default::default(),
            d_out: Default::default(),
            d_hold: Default::default(),
            chain_inc: Default::default(),
            chain_dec: Default::default(),
            dcode: Default::default(),
            d_need_read: Default::default(),
            d_need_write: Default::default(),
            d_req: Default::default(),
            grant_l: Default::default(),
            grant_d: Default::default(),
            fail_now: Default::default(),
            irq_done: Default::default(),
        }
    }
}

impl Logic for Controller {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            state,
            dsc,
            code,
            vop,
            mul_a,
            mul_b,
            mul_acc,
            ph,
            abort,
            rd_owner,
            n_completed,
            n_errors,
            last_error,
            c_busy,
            c_macs,
            c_read,
            c_write,
            c_other,
            ls,
            li0,
            lj0,
            lk0,
            l_njob,
            l_nready,
            l_afirst,
            l_ahalf,
            l_t,
            l_ptr,
            l_arow0,
            l_bk0,
            l_rv,
            l_cv,
            l_kc,
            l_anew,
            l_isa,
            l_off,
            l_bi,
            l_prev,
            l_s2,
            l_bcol,
            cs,
            ci0,
            cj0,
            ck0,
            c_ndone,
            c_ahalf,
            c_bhalf,
            c_kc,
            c_first,
            c_kk,
            c_sl,
            c_rvcv,
            dst,
            d_ready,
            d_nstep,
            d_n,
            di_i0,
            di_j0,
            di_base,
            di_ptr,
            di_end,
            do_i0,
            do_j0,
            do_base,
            do_ptr,
            di_gptr,
            do_gptr,
            di_col,
            do_col,
            dcode,
            e0,
            e1,
            e2,
            e3,
            eg0,
            eg1,
            eg2,
            eg3,
            wp,
            rp,
            lp,
            cp,
            ip,
            dop,
            ret_pend,
            d_chained,
            d_newin,
            d_newout
        );
        // Descriptor fields (offsets: desc_bits, checked against regmap::DESCRIPTOR by a test).
        self.f_a.next = self.dsc.q.val().get_bits::<32>(0);
        self.f_b.next = self.dsc.q.val().get_bits::<32>(64);
        self.f_c.next = self.dsc.q.val().get_bits::<32>(128);
        self.f_d.next = self.dsc.q.val().get_bits::<32>(192);
        self.f_hi_nz.next = (self.dsc.q.val().get_bits::<32>(32) != 0)
            | (self.dsc.q.val().get_bits::<32>(96) != 0)
            | (self.dsc.q.val().get_bits::<32>(224) != 0)
            | (self.dsc.q.val().get_bit(488) & (self.dsc.q.val().get_bits::<32>(160) != 0));
        self.f_m.next = self.dsc.q.val().get_bits::<32>(256);
        self.f_n.next = self.dsc.q.val().get_bits::<32>(288);
        self.f_k.next = self.dsc.q.val().get_bits::<32>(320);
        self.f_lda.next = self.dsc.q.val().get_bits::<32>(352);
        self.f_ldb.next = self.dsc.q.val().get_bits::<32>(384);
        self.f_ldc.next = self.dsc.q.val().get_bits::<32>(416);
        self.f_ldd.next = self.dsc.q.val().get_bits::<32>(448);
        // DESC_FLAGS: PRECISION [3:0], OUTPUT [7:4], ACCUMULATE [8].
        self.f_prec.next = self.dsc.q.val().get_bits::<4>(480);
        self.f_out.next = self.dsc.q.val().get_bits::<4>(484);
        self.f_acc.next = self.dsc.q.val().get_bit(488);
        // DESC_RQ_SHIFT: SHIFT [7:0], ZERO_POINT [15:8].
        self.f_shift.next = self.dsc.q.val().get_bits::<8>(544);

        // Element sizes (log2): operands 1 or 2 bytes; outputs 4 (raw), 2 (bf16/fp16), 1 (i8).
        self.esz.next = 1.into();
        if self.f_prec.val() == 0 {
            self.esz.next = 0.into();
        }
        self.osz.next = 2.into();
        if (self.f_out.val() == 1) | (self.f_out.val() == 2) {
            self.osz.next = 1.into();
        } else if self.f_out.val() == 3 {
            self.osz.next = 0.into();
        }
        self.a_row.next = bit_cast::<64, 32>(self.f_k.val()) << self.esz.val();
        self.b_row.next = bit_cast::<64, 32>(self.f_n.val()) << self.esz.val();
        self.c_row.next = bit_cast::<64, 32>(self.f_n.val()) << 2;
        self.d_row.next = bit_cast::<64, 32>(self.f_n.val()) << self.osz.val();

        // Descriptor checks; later assignments have priority.
        self.or_ab.next = self.f_a.val() | self.f_b.val() | self.f_lda.val() | self.f_ldb.val();
        self.or_c.next = self.f_c.val() | self.f_ldc.val();
        self.or_d.next = self.f_d.val() | self.f_ldd.val();
        self.misaligned.next = false;
        if (self.esz.val() == 1) & self.or_ab.val().get_bit(0) {
            self.misaligned.next = true;
        }
        if self.f_acc.val() & (self.or_c.val().get_bits::<2>(0) != 0) {
            self.misaligned.next = true;
        }
        if (self.osz.val() == 1) & self.or_d.val().get_bit(0) {
            self.misaligned.next = true;
        }
        if (self.osz.val() == 2) & (self.or_d.val().get_bits::<2>(0) != 0) {
            self.misaligned.next = true;
        }
        self.short_stride.next = (bit_cast::<64, 32>(self.f_lda.val()) < self.a_row.val())
            | (bit_cast::<64, 32>(self.f_ldb.val()) < self.b_row.val())
            | (bit_cast::<64, 32>(self.f_ldd.val()) < self.d_row.val())
            | (self.f_acc.val() & (bit_cast::<64, 32>(self.f_ldc.val()) < self.c_row.val()));
        self.out_ok.next = (self.f_out.val() == 0) | (self.f_out.val() == 3);
        if self.f_prec.val() != 0 {
            self.out_ok.next = self.f_out.val() < 3;
        }
        self.chk.next = 0.into();
        if self.f_hi_nz.val() {
            self.chk.next = 4.into(); // AddressOverflow
        }
        if self.misaligned.val() {
            self.chk.next = 10.into(); // Misaligned
        }
        if self.short_stride.val() {
            self.chk.next = 5.into(); // StrideTooSmall
        }
        if (self.f_out.val() == 3) & (self.f_shift.val() > 62) {
            self.chk.next = 6.into(); // ShiftRange
        }
        if !self.out_ok.val() {
            self.chk.next = 3.into(); // UnsupportedOutput
        }
        if (self.f_prec.val() > 2) | !self.prec_mask.val().get_bit(self.f_prec.val().index()) {
            self.chk.next = 2.into(); // UnsupportedPrecision
        }
        if (self.f_m.val() == 0) | (self.f_n.val() == 0) | (self.f_k.val() == 0) {
            self.chk.next = 1.into(); // ZeroDimension
        }

        // The operand whose extent is being checked (vop 0..3 = A, B, C, D).
        self.op_rows.next = self.f_m.val() - 1;
        self.op_stride.next = self.f_lda.val();
        self.op_base.next = bit_cast::<64, 32>(self.f_a.val());
        self.op_rowbytes.next = self.a_row.val();
        if self.vop.q.val() == 1 {
            self.op_rows.next = self.f_k.val() - 1;
            self.op_stride.next = self.f_ldb.val();
            self.op_base.next = bit_cast::<64, 32>(self.f_b.val());
            self.op_rowbytes.next = self.b_row.val();
        } else if self.vop.q.val() == 2 {
            self.op_stride.next = self.f_ldc.val();
            self.op_base.next = bit_cast::<64, 32>(self.f_c.val());
            self.op_rowbytes.next = self.c_row.val();
        } else if self.vop.q.val() == 3 {
            self.op_stride.next = self.f_ldd.val();
            self.op_base.next = bit_cast::<64, 32>(self.f_d.val());
            self.op_rowbytes.next = self.d_row.val();
        }
        self.op_end.next = self.op_base.val() + self.mul_acc.q.val() + self.op_rowbytes.val() - 1;

        // ------------------------------------------------------------------------------------
        // Shared geometry. The L slots of a PE cover L₁ = L/2^g tile rows times 2^g column
        // groups (slot s: row s mod L₁, group s / L₁), so that a tile is `R·L₁ × C·2^g`: g is
        // the largest that still fits all M rows into one row tile, so that short GEMMs use
        // every slot. Group q's B block sits `q·kchunk` into the buffer half, so chunks are
        // `kchunk = kdepth/2^g` k steps. A GEMM is *resident* when all of K fits a chunk: each
        // row tile's A panel is then loaded once and reused by every column tile; otherwise
        // every tile runs in chunks, each with its own A and B loads.
        self.g_new.next = 0.into();
        if (self.lgl.val() >= 1) & (self.f_m.val() <= bit_cast::<32, 16>(self.trows.val() >> 1)) {
            self.g_new.next = 1.into();
        }
        if (self.lgl.val() >= 2) & (self.f_m.val() <= bit_cast::<32, 16>(self.trows.val() >> 2)) {
            self.g_new.next = 2.into();
        }
        if (self.lgl.val() >= 3) & (self.f_m.val() <= bit_cast::<32, 16>(self.trows.val() >> 3)) {
            self.g_new.next = 3.into();
        }

        // ------------------------------------------------------------------------------------
        // The descriptor FIFO: validated descriptors (with their g) in entries e0..e3 from the
        // retire pointer `rp` to the write pointer `wp` (pointers count mod 8, entries mod 4).
        // Each process reads the entry it works on: the loader at `lp`, the compute at `cp`,
        // the drain's start values at `ip` and its results at `dop`; they move on in this
        // order, so that the next GEMM's loads, rounds and start values overlap the previous
        // GEMM's last tiles and results.
        // Pointer arithmetic goes through 3-bit signals: in the Verilog, `ip + 1 != wp` would
        // be evaluated 32 bits wide and never wrap.
        self.nfifo.next = self.wp.q.val() - self.rp.q.val();
        self.ip_next.next = self.ip.q.val() + 1;
        self.room.next = self.nfifo.val() < 4;
        self.l_has.next = self.lp.q.val() != self.wp.q.val();
        self.c_has.next = self.cp.q.val() != self.wp.q.val();
        self.i_has.next = self.ip.q.val() != self.wp.q.val();
        // One selection per reader, written out (`#[hdl_gen]` has no loops or functions);
        // synthesis keeps only the fields each reader uses.
        self.l_dsc.next = self.e0.q.val();
        self.l_g.next = self.eg0.q.val();
        if self.lp.q.val().get_bits::<2>(0) == 1 {
            self.l_dsc.next = self.e1.q.val();
            self.l_g.next = self.eg1.q.val();
        }
        if self.lp.q.val().get_bits::<2>(0) == 2 {
            self.l_dsc.next = self.e2.q.val();
            self.l_g.next = self.eg2.q.val();
        }
        if self.lp.q.val().get_bits::<2>(0) == 3 {
            self.l_dsc.next = self.e3.q.val();
            self.l_g.next = self.eg3.q.val();
        }
        self.lf_m.next = self.l_dsc.val().get_bits::<32>(256);
        self.lf_n.next = self.l_dsc.val().get_bits::<32>(288);
        self.l_trows.next = self.trows.val() >> self.l_g.val();
        self.l_tcols.next = bit_cast::<16, 8>(self.cols.val()) << self.l_g.val();
        self.l_lgl1.next = self.lgl.val() - self.l_g.val();
        self.l_l1mask.next = self.ilv_last.val() >> self.l_g.val();
        self.c_dsc.next = self.e0.q.val();
        self.c_g.next = self.eg0.q.val();
        if self.cp.q.val().get_bits::<2>(0) == 1 {
            self.c_dsc.next = self.e1.q.val();
            self.c_g.next = self.eg1.q.val();
        }
        if self.cp.q.val().get_bits::<2>(0) == 2 {
            self.c_dsc.next = self.e2.q.val();
            self.c_g.next = self.eg2.q.val();
        }
        if self.cp.q.val().get_bits::<2>(0) == 3 {
            self.c_dsc.next = self.e3.q.val();
            self.c_g.next = self.eg3.q.val();
        }
        self.cf_m.next = self.c_dsc.val().get_bits::<32>(256);
        self.cf_n.next = self.c_dsc.val().get_bits::<32>(288);
        self.c_trows.next = self.trows.val() >> self.c_g.val();
        self.c_tcols.next = bit_cast::<16, 8>(self.cols.val()) << self.c_g.val();
        self.c_lgl1.next = self.lgl.val() - self.c_g.val();
        self.c_l1mask.next = self.ilv_last.val() >> self.c_g.val();
        self.i_dsc.next = self.e0.q.val();
        self.i_g.next = self.eg0.q.val();
        if self.ip.q.val().get_bits::<2>(0) == 1 {
            self.i_dsc.next = self.e1.q.val();
            self.i_g.next = self.eg1.q.val();
        }
        if self.ip.q.val().get_bits::<2>(0) == 2 {
            self.i_dsc.next = self.e2.q.val();
            self.i_g.next = self.eg2.q.val();
        }
        if self.ip.q.val().get_bits::<2>(0) == 3 {
            self.i_dsc.next = self.e3.q.val();
            self.i_g.next = self.eg3.q.val();
        }
        self.if_m.next = self.i_dsc.val().get_bits::<32>(256);
        self.if_n.next = self.i_dsc.val().get_bits::<32>(288);
        self.i_trows.next = self.trows.val() >> self.i_g.val();
        self.i_tcols.next = bit_cast::<16, 8>(self.cols.val()) << self.i_g.val();
        self.i_lgl1.next = self.lgl.val() - self.i_g.val();
        self.i_l1mask.next = self.ilv_last.val() >> self.i_g.val();
        self.o_dsc.next = self.e0.q.val();
        self.o_g.next = self.eg0.q.val();
        if self.dop.q.val().get_bits::<2>(0) == 1 {
            self.o_dsc.next = self.e1.q.val();
            self.o_g.next = self.eg1.q.val();
        }
        if self.dop.q.val().get_bits::<2>(0) == 2 {
            self.o_dsc.next = self.e2.q.val();
            self.o_g.next = self.eg2.q.val();
        }
        if self.dop.q.val().get_bits::<2>(0) == 3 {
            self.o_dsc.next = self.e3.q.val();
            self.o_g.next = self.eg3.q.val();
        }
        self.of_m.next = self.o_dsc.val().get_bits::<32>(256);
        self.of_n.next = self.o_dsc.val().get_bits::<32>(288);
        self.o_trows.next = self.trows.val() >> self.o_g.val();
        self.o_tcols.next = bit_cast::<16, 8>(self.cols.val()) << self.o_g.val();
        self.o_lgl1.next = self.lgl.val() - self.o_g.val();
        self.o_l1mask.next = self.ilv_last.val() >> self.o_g.val();
        self.lf_k.next = self.l_dsc.val().get_bits::<32>(320);
        self.l_prec.next = self.l_dsc.val().get_bits::<2>(480);
        self.l_esz.next = 1.into();
        if self.l_prec.val() == 0 {
            self.l_esz.next = 0.into();
        }
        self.l_kchunk.next = self.kdepth.val() >> self.l_g.val();
        self.l_kclg.next = self.kaw.val() - bit_cast::<5, 3>(self.l_g.val());
        self.l_resident.next = self.lf_k.val() <= self.l_kchunk.val();
        self.cf_k.next = self.c_dsc.val().get_bits::<32>(320);
        self.c_prec.next = self.c_dsc.val().get_bits::<2>(480);
        self.c_esz.next = 1.into();
        if self.c_prec.val() == 0 {
            self.c_esz.next = 0.into();
        }
        self.c_kchunk.next = self.kdepth.val() >> self.c_g.val();
        self.c_kclg.next = self.kaw.val() - bit_cast::<5, 3>(self.c_g.val());
        self.c_resident.next = self.cf_k.val() <= self.c_kchunk.val();
        self.lf_a.next = self.l_dsc.val().get_bits::<32>(0);
        self.lf_b.next = self.l_dsc.val().get_bits::<32>(64);
        self.lf_lda.next = self.l_dsc.val().get_bits::<32>(352);
        self.lf_ldb.next = self.l_dsc.val().get_bits::<32>(384);
        self.if_c.next = self.i_dsc.val().get_bits::<32>(128);
        self.if_ldc.next = self.i_dsc.val().get_bits::<32>(416);
        self.if_acc.next = self.i_dsc.val().get_bit(488);
        self.of_d.next = self.o_dsc.val().get_bits::<32>(192);
        self.of_ldd.next = self.o_dsc.val().get_bits::<32>(448);
        self.o_out.next = self.o_dsc.val().get_bits::<4>(484);
        self.o_osz.next = 2.into();
        if (self.o_out.val() == 1) | (self.o_out.val() == 2) {
            self.o_osz.next = 1.into();
        } else if self.o_out.val() == 3 {
            self.o_osz.next = 0.into();
        }
        // The results leaving are converted as their descriptor says; the array's steps run
        // at the compute's precision, B is written at the loader's.
        self.oc_code.next = self.o_out.val();
        self.oc_float.next = self.o_dsc.val().get_bits::<4>(480) != 0;
        self.rq_mult.next = self.o_dsc.val().get_bits::<32>(512);
        self.rq_shift.next = self.o_dsc.val().get_bits::<6>(544);
        self.rq_zp.next = self.o_dsc.val().get_bits::<8>(552);
        self.prec.next = self.c_prec.val();
        self.wprec.next = self.l_prec.val();
        // A round starts only at phase 0 of the free-running slot counter.
        self.ph.d.next = self.ph.q.val() + 1;
        if self.ph.q.val() == self.ilv_last.val() {
            self.ph.d.next = 0.into();
        }

        // Defaults for the strobes.
        self.q_pop.next = false;
        self.step.next = false;
        self.step_first.next = false;
        self.step_mark.next = false;
        self.ci_we.next = false;
        self.ci_wsel.next = self.rd_index.val().get_bits::<8>(0);
        self.ci_wdata.next = self.rd_data.val();
        self.sh_shift.next = false;
        self.out_sel.next = self.wr_index.val().get_bits::<8>(0);
        self.wr_start.next = false;
        self.wr_clear_error.next = false;
        self.wr_esz.next = self.o_osz.val();
        self.fail_now.next = false;
        self.irq_done.next = false;
        self.chain_inc.next = false;
        self.chain_dec.next = false;

        // ------------------------------------------------------------------------------------
        // Loader: fills buffer halves job by job (job = tile × chunk, in the compute order).
        // A new A panel (every job when chunked, each row tile's first job when resident) goes
        // to the other A half once the jobs of the panel before the current one are done; it
        // is loaded first, as early as that allows, because it is the long transfer. Then job
        // n's B goes to half n mod 2 once job n − 2 is done.
        self.l_mleft.next = self.lf_m.val() - self.li0.q.val();
        self.l_nleft.next = self.lf_n.val() - self.lj0.q.val();
        self.l_kleft.next = self.lf_k.val() - self.lk0.q.val();
        self.l_rv_new.next = self.l_trows.val();
        if self.l_mleft.val() < bit_cast::<32, 16>(self.l_trows.val()) {
            self.l_rv_new.next = self.l_mleft.val().get_bits::<16>(0);
        }
        // The columns of the B block being loaded: one group's C, or, when a group's row is
        // a power-of-two number of whole 16-byte words (*joined*), the whole tile's row in one
        // transfer, word w going to group w / (words per group). Joined rows save the extra
        // beat that each group's row costs when rows start inside a beat.
        self.l_bjoin.next = (self.l_g.val() != 0) & self.bjoin_ok.val().get_bit(1);
        self.l_wlg.next = self.bjoin_lg16.val();
        if self.l_esz.val() == 0 {
            self.l_bjoin.next = (self.l_g.val() != 0) & self.bjoin_ok.val().get_bit(0);
            self.l_wlg.next = self.bjoin_lg8.val();
        }
        self.l_bnleft.next = self.lf_n.val() - self.l_bcol.q.val();
        self.l_cv_new.next = bit_cast::<16, 8>(self.cols.val());
        if self.l_bjoin.val() {
            self.l_cv_new.next = self.l_tcols.val();
        }
        if self.l_bnleft.val() < bit_cast::<32, 16>(self.l_cv_new.val()) {
            self.l_cv_new.next = self.l_bnleft.val().get_bits::<16>(0);
        }
        self.l_kc_new.next = self.l_kchunk.val().get_bits::<16>(0);
        if self.l_kleft.val() < self.l_kchunk.val() {
            self.l_kc_new.next = self.l_kleft.val().get_bits::<16>(0);
        }
        // A row of the transfer in flight: words of 16 bytes, realigned from the beats. With
        // the row starting at byte `l_off` of its first beat, word w is bytes
        // l_off + 16w .. l_off + 16w + 15, taken from beats w and w + 1.
        self.l_beat_ready.next = false;
        self.l_req.next = false;
        self.l_raddr.next = self.l_ptr.q.val();
        self.l_rcount.next = self.l_cv.q.val();
        self.l_rrows.next = self.l_kc.q.val();
        self.l_rstride.next = self.lf_ldb.val();
        if self.l_isa.q.val() {
            self.l_rcount.next = self.l_kc.q.val();
            self.l_rrows.next = self.l_rv.q.val();
            self.l_rstride.next = self.lf_lda.val();
        }
        self.l_bytes.next = self.l_rcount.val() << self.l_esz.val();
        self.l_words.next = (self.l_bytes.val() + 15) >> 4;
        self.l_beats.next = (bit_cast::<16, 4>(self.l_off.q.val()) + self.l_bytes.val() + 15) >> 4;
        self.l_row_end.next = self.l_bi.q.val() + 1 == self.l_beats.val();
        self.l_flush.next = (self.l_off.q.val() != 0) & (self.l_beats.val() == self.l_words.val());
        self.l_next_row.next = self.l_ptr.q.val() + self.l_rstride.val();
        self.l_cur.next = self.rd_beat_data.val();
        if self.ls.q.val() == LoadState::Flush {
            self.l_cur.next = 0.into();
        }
        self.l_cat.next = (bit_cast::<256, 128>(self.l_cur.val()) << 128)
            | bit_cast::<256, 128>(self.l_prev.q.val());
        self.l_offbits.next = bit_cast::<9, 4>(self.l_off.q.val()) << 3;
        self.l_shifted.next = self.l_cat.val() >> self.l_offbits.val();
        self.l_fun.next = self.l_shifted.val().get_bits::<128>(0);
        self.l_wr.next = false;
        self.l_wword.next = self.l_bi.q.val() - 1;
        self.l_wdata.next = self.l_fun.val();
        if self.l_off.q.val() == 0 {
            self.l_wword.next = self.l_bi.q.val();
            self.l_wdata.next = self.rd_beat_data.val();
        }
        if self.ls.q.val() == LoadState::Data {
            self.l_wr.next = self.rd_beat_valid.val()
                & ((self.l_off.q.val() == 0) | (self.l_bi.q.val() != 0))
                & !self.rd_owner.q.val();
        }
        if self.ls.q.val() == LoadState::Flush {
            self.l_wr.next = true;
            self.l_wword.next = self.l_bi.q.val() - 1;
            self.l_wdata.next = self.l_fun.val();
        }
        // The upper buffer half starts at `kdepth`.
        self.l_aoff.next = 0.into();
        if self.l_ahalf.q.val() {
            self.l_aoff.next = self.kdepth.val().get_bits::<16>(0);
        }
        self.l_boff.next = 0.into();
        if self.l_njob.q.val().get_bit(0) {
            self.l_boff.next = self.kdepth.val().get_bits::<16>(0);
        }
        self.c_aoff.next = 0.into();
        if self.c_ahalf.q.val() {
            self.c_aoff.next = self.kdepth.val().get_bits::<16>(0);
        }
        self.c_boff.next = 0.into();
        if self.c_bhalf.q.val() {
            self.c_boff.next = self.kdepth.val().get_bits::<16>(0);
        }
        self.a_we.next = self.l_wr.val() & self.l_isa.q.val();
        self.b_we.next = self.l_wr.val() & !self.l_isa.q.val();
        self.l_a_bank.next = self.l_t.q.val() >> self.l_lgl1.val();
        self.l_a_slot.next = self.l_t.q.val() & bit_cast::<16, 8>(self.l_l1mask.val());
        self.a_wsel.next = self.rows.val() - 1 - self.l_a_bank.val().get_bits::<8>(0);
        self.a_waddr.next =
            self.l_aoff.val() | (self.l_a_slot.val() << self.slot_shift.val()) | self.l_wword.val();
        self.a_wdata.next = self.l_wdata.val();
        self.l_wgrp.next = bit_cast::<16, 8>(self.l_s2.q.val());
        self.l_wwig.next = self.l_wword.val();
        if self.l_bjoin.val() {
            self.l_wgrp.next = self.l_wword.val() >> self.l_wlg.val();
            self.l_wwig.next =
                self.l_wword.val() & ((bit_cast::<16, 1>(1.into()) << self.l_wlg.val()) - 1);
        }
        self.b_wword.next = self.l_wwig.val().get_bits::<8>(0);
        self.b_waddr.next =
            self.l_boff.val() | (self.l_wgrp.val() << self.l_kclg.val()) | self.l_t.q.val();
        self.b_wdata.next = self.l_wdata.val();

        match self.ls.q.val() {
            LoadState::Idle => {
                if self.l_has.val() & !self.abort.q.val() {
                    // The next validated GEMM (possibly while the last one still computes).
                    self.li0.d.next = 0.into();
                    self.lj0.d.next = 0.into();
                    self.lk0.d.next = 0.into();
                    self.l_arow0.d.next = self.lf_a.val();
                    self.l_bk0.d.next = self.lf_b.val();
                    self.ls.d.next = LoadState::Job;
                }
            }
            LoadState::Job => {
                self.l_rv.d.next = self.l_rv_new.val();
                self.l_kc.d.next = self.l_kc_new.val();
                self.l_anew.d.next = !self.l_resident.val() | (self.lj0.q.val() == 0);
                self.ls.d.next = LoadState::AWait;
            }
            LoadState::AWait => {
                if !self.l_anew.q.val() {
                    self.ls.d.next = LoadState::BWait;
                } else if self.c_ndone.q.val() >= self.l_afirst.q.val() {
                    // Every job of the panel before the current one is done: its half is free.
                    self.l_ahalf.d.next = !self.l_ahalf.q.val();
                    self.l_afirst.d.next = self.l_njob.q.val();
                    self.l_isa.d.next = true;
                    self.l_t.d.next = 0.into();
                    self.l_ptr.d.next =
                        self.l_arow0.q.val() + (self.lk0.q.val() << self.l_esz.val());
                    self.ls.d.next = LoadState::Issue;
                }
            }
            LoadState::BWait => {
                // Job n − 2 used this half.
                if self.c_ndone.q.val() + 1 >= self.l_njob.q.val() {
                    self.l_isa.d.next = false;
                    self.l_s2.d.next = 0.into();
                    self.l_bcol.d.next = self.lj0.q.val();
                    self.ls.d.next = LoadState::BBlock;
                }
            }
            LoadState::BBlock => {
                // The B block of column group l_s2: kc rows of C columns from l_bcol on.
                self.l_cv.d.next = self.l_cv_new.val();
                self.l_t.d.next = 0.into();
                self.l_ptr.d.next = self.l_bk0.q.val() + (self.l_bcol.q.val() << self.l_esz.val());
                self.ls.d.next = LoadState::Issue;
            }
            LoadState::Issue => {
                // The A panel's rows, or the chunk's kc rows of the tile's B columns, in one
                // transfer.
                self.l_req.next = true;
                if self.grant_l.val() {
                    self.l_off.d.next = self.l_ptr.q.val().get_bits::<4>(0);
                    self.l_bi.d.next = 0.into();
                    self.ls.d.next = LoadState::Data;
                }
            }
            LoadState::Data => {
                self.l_beat_ready.next = true;
                if self.rd_beat_valid.val() {
                    self.l_prev.d.next = self.rd_beat_data.val();
                    self.l_bi.d.next = self.l_bi.q.val() + 1;
                    if self.l_row_end.val() {
                        if self.l_flush.val() {
                            self.ls.d.next = LoadState::Flush;
                        } else {
                            self.l_bi.d.next = 0.into();
                            self.l_t.d.next = self.l_t.q.val() + 1;
                            self.l_ptr.d.next = self.l_next_row.val();
                            self.l_off.d.next = self.l_next_row.val().get_bits::<4>(0);
                        }
                    }
                } else if !self.rd_busy.val() {
                    self.ls.d.next = LoadState::Ready;
                    if self.l_isa.q.val() {
                        self.ls.d.next = LoadState::BWait;
                    } else if !self.l_bjoin.val()
                        & (self.l_s2.q.val() != self.ilv_last.val() >> self.l_lgl1.val())
                        & (self.l_bnleft.val() > bit_cast::<32, 8>(self.cols.val()))
                    {
                        // The next column group's block (none for groups right of N).
                        self.l_s2.d.next = self.l_s2.q.val() + 1;
                        self.l_bcol.d.next =
                            self.l_bcol.q.val() + bit_cast::<32, 8>(self.cols.val());
                        self.ls.d.next = LoadState::BBlock;
                    }
                }
            }
            LoadState::Flush => {
                // The row's last word lies in its last beat alone (the data channel waits).
                self.l_bi.d.next = 0.into();
                self.l_t.d.next = self.l_t.q.val() + 1;
                self.l_ptr.d.next = self.l_next_row.val();
                self.l_off.d.next = self.l_next_row.val().get_bits::<4>(0);
                self.ls.d.next = LoadState::Data;
            }
            LoadState::Ready => {
                // Job loaded; advance k, then columns, then row tiles.
                self.l_nready.d.next = self.l_njob.q.val() + 1;
                self.l_njob.d.next = self.l_njob.q.val() + 1;
                self.ls.d.next = LoadState::Job;
                if bit_cast::<32, 16>(self.l_kc.q.val()) != self.l_kleft.val() {
                    self.lk0.d.next = self.lk0.q.val() + self.l_kchunk.val();
                    self.l_bk0.d.next =
                        self.l_bk0.q.val() + (self.lf_ldb.val() << self.l_kclg.val());
                } else {
                    self.lk0.d.next = 0.into();
                    self.l_bk0.d.next = self.lf_b.val();
                    if self.l_nleft.val() > bit_cast::<32, 16>(self.l_tcols.val()) {
                        self.lj0.d.next = self.lj0.q.val() + bit_cast::<32, 16>(self.l_tcols.val());
                    } else {
                        self.lj0.d.next = 0.into();
                        self.li0.d.next = self.li0.q.val() + bit_cast::<32, 16>(self.l_trows.val());
                        self.l_t.d.next = 0.into();
                        self.ls.d.next = LoadState::Advance;
                        if self.l_mleft.val() <= bit_cast::<32, 16>(self.l_trows.val()) {
                            self.lp.d.next = self.lp.q.val() + 1;
                            self.ls.d.next = LoadState::Idle;
                        }
                    }
                }
            }
            LoadState::Advance => {
                // The next row tile's A rows start R·L₁ rows further (adds, not a multiply).
                self.l_arow0.d.next = self.l_arow0.q.val() + self.lf_lda.val();
                self.l_t.d.next = self.l_t.q.val() + 1;
                if self.l_t.q.val() + 1 == self.l_trows.val() {
                    self.ls.d.next = LoadState::Job;
                }
            }
            _ => {
                self.ls.d.next = LoadState::Idle;
            }
        }

        // ------------------------------------------------------------------------------------
        // Compute: runs the loaded jobs in order, one round of L slot steps per k step. A
        // tile's first round is marked: it swaps the previous tile's results into the chains,
        // so it waits until the drain has emptied them and filled them with this tile's start
        // values (`d_ready`). After the last job a flush round swaps the last results in.
        self.c_mleft.next = self.cf_m.val() - self.ci0.q.val();
        self.c_nleft.next = self.cf_n.val() - self.cj0.q.val();
        self.c_kleft.next = self.cf_k.val() - self.ck0.q.val();
        self.c_rv_new.next = self.c_trows.val();
        if self.c_mleft.val() < bit_cast::<32, 16>(self.c_trows.val()) {
            self.c_rv_new.next = self.c_mleft.val().get_bits::<16>(0);
        }
        self.c_cv_new.next = self.c_tcols.val();
        if self.c_nleft.val() < bit_cast::<32, 16>(self.c_tcols.val()) {
            self.c_cv_new.next = self.c_nleft.val().get_bits::<16>(0);
        }
        self.c_kc_new.next = self.c_kchunk.val().get_bits::<16>(0);
        if self.c_kleft.val() < self.c_kchunk.val() {
            self.c_kc_new.next = self.c_kleft.val().get_bits::<16>(0);
        }
        self.job_ready.next = self.l_nready.q.val() > self.c_ndone.q.val();
        self.c_swap.next = self.c_first.q.val() & (self.c_kk.q.val() == 0);
        self.go.next = (self.c_sl.q.val() != 0) | (self.ph.q.val() == 0);
        self.c_kbyte.next = self.c_kk.q.val() << self.c_esz.val();
        // Slot s reads A row s mod L₁ and the B block of column group s / L₁.
        self.c_s2.next = self.c_sl.q.val() >> self.c_lgl1.val();
        self.step_addr.next = self.c_boff.val()
            | (bit_cast::<16, 8>(self.c_s2.val()) << self.c_kclg.val())
            | self.c_kk.q.val();
        self.step_addr_a.next = self.c_aoff.val()
            | (bit_cast::<16, 8>(self.c_sl.q.val() & self.c_l1mask.val()) << self.slot_shift.val())
            | (self.c_kbyte.val() >> 4);
        self.step_lane.next = self.c_kbyte.val().get_bits::<4>(0);

        match self.cs.q.val() {
            ComputeState::Idle => {
                if self.c_has.val() & !self.abort.q.val() {
                    self.ci0.d.next = 0.into();
                    self.cj0.d.next = 0.into();
                    self.ck0.d.next = 0.into();
                    self.cs.d.next = ComputeState::Job;
                }
            }
            ComputeState::Job => {
                self.c_kc.d.next = self.c_kc_new.val();
                self.c_first.d.next = self.ck0.q.val() == 0;
                self.c_rvcv.d.next = self.c_rv_new.val() * self.c_cv_new.val();
                if !self.c_resident.val() | (self.cj0.q.val() == 0) {
                    self.c_ahalf.d.next = !self.c_ahalf.q.val();
                }
                self.c_kk.d.next = 0.into();
                self.c_sl.d.next = 0.into();
                self.cs.d.next = ComputeState::Wait;
            }
            ComputeState::Wait => {
                if self.job_ready.val() & (!self.c_first.q.val() | self.d_ready.q.val()) {
                    self.cs.d.next = ComputeState::Round;
                }
            }
            ComputeState::Round => {
                if self.go.val() {
                    self.step.next = true;
                    self.step_first.next = self.c_swap.val();
                    self.step_mark.next =
                        self.c_swap.val() & (self.c_sl.q.val() == self.ilv_last.val());
                    if self.c_swap.val() & (self.c_sl.q.val() == 0) {
                        self.d_ready.d.next = false;
                    }
                    self.c_sl.d.next = self.c_sl.q.val() + 1;
                    if self.c_sl.q.val() == self.ilv_last.val() {
                        self.c_sl.d.next = 0.into();
                        self.c_kk.d.next = self.c_kk.q.val() + 1;
                        if self.c_kk.q.val() + 1 == self.c_kc.q.val() {
                            self.cs.d.next = ComputeState::End;
                        }
                    }
                }
            }
            ComputeState::End => {
                self.c_ndone.d.next = self.c_ndone.q.val() + 1;
                self.c_bhalf.d.next = !self.c_bhalf.q.val();
                self.cs.d.next = ComputeState::Job;
                if bit_cast::<32, 16>(self.c_kc.q.val()) != self.c_kleft.val() {
                    self.ck0.d.next = self.ck0.q.val() + self.c_kchunk.val();
                } else {
                    self.ck0.d.next = 0.into();
                    if self.c_nleft.val() > bit_cast::<32, 16>(self.c_tcols.val()) {
                        self.cj0.d.next = self.cj0.q.val() + bit_cast::<32, 16>(self.c_tcols.val());
                    } else {
                        self.cj0.d.next = 0.into();
                        self.ci0.d.next = self.ci0.q.val() + bit_cast::<32, 16>(self.c_trows.val());
                        if self.c_mleft.val() <= bit_cast::<32, 16>(self.c_trows.val()) {
                            self.cs.d.next = ComputeState::FlushWait;
                        }
                    }
                }
            }
            ComputeState::FlushWait => {
                // The GEMM's last job is done. Once the drain has passed the tile after its
                // last one: if that is the next GEMM's first tile, run it (its first round
                // swaps this GEMM's last results out); otherwise flush them out.
                if self.d_ready.q.val() {
                    self.cs.d.next = ComputeState::Flush;
                    if self.d_chained.q.val() != 0 {
                        self.chain_dec.next = true;
                        self.cp.d.next = self.cp.q.val() + 1;
                        self.ci0.d.next = 0.into();
                        self.cj0.d.next = 0.into();
                        self.ck0.d.next = 0.into();
                        self.cs.d.next = ComputeState::Job;
                    }
                }
            }
            ComputeState::Flush => {
                // A round of first steps without products: the results enter the chains.
                if self.go.val() {
                    self.step_first.next = true;
                    self.step_mark.next = self.c_sl.q.val() == self.ilv_last.val();
                    if self.c_sl.q.val() == 0 {
                        self.d_ready.d.next = false;
                    }
                    self.c_sl.d.next = self.c_sl.q.val() + 1;
                    if self.c_sl.q.val() == self.ilv_last.val() {
                        self.c_sl.d.next = 0.into();
                        self.cp.d.next = self.cp.q.val() + 1;
                        self.cs.d.next = ComputeState::Idle;
                    }
                }
            }
            _ => {
                self.cs.d.next = ComputeState::Idle;
            }
        }

        // ------------------------------------------------------------------------------------
        // Drain: after each marked round has reached every PE (`core_done`), R·L chain shifts
        // write the tile before it (rows < its rv, converted) to D and bring in the start values
        // of the tile after it (zeros, or its rows of C read into the staging row). A first
        // pass before any round brings in tile 0's start values. Tile "in" is the tile whose
        // start values enter; tile "out" the one whose results leave (from the third pass on:
        // the first swap returns the chains' old contents).
        self.di_mleft.next = self.if_m.val() - self.di_i0.q.val();
        self.di_nleft.next = self.if_n.val() - self.di_j0.q.val();
        self.di_rv.next = self.i_trows.val();
        if self.di_mleft.val() < bit_cast::<32, 16>(self.i_trows.val()) {
            self.di_rv.next = self.di_mleft.val().get_bits::<16>(0);
        }
        self.do_mleft.next = self.of_m.val() - self.do_i0.q.val();
        self.do_nleft.next = self.of_n.val() - self.do_j0.q.val();
        self.do_rv.next = self.o_trows.val();
        if self.do_mleft.val() < bit_cast::<32, 16>(self.o_trows.val()) {
            self.do_rv.next = self.do_mleft.val().get_bits::<16>(0);
        }
        // Shift n carries slot s = n mod L of PE row R−1−n/L: tile row (n/L)·L₁ + s mod L₁,
        // columns from (s / L₁)·C of its group (di_col, do_col: the two tiles may belong to
        // GEMMs with different g). Row pointers run down the L₁ rows of each group and back
        // to the group's first row for the next group.
        self.d_s.next = self.d_n.q.val().get_bits::<8>(0) & self.ilv_last.val();
        self.di_s1.next = self.d_s.val() & self.i_l1mask.val();
        self.do_s1.next = self.d_s.val() & self.o_l1mask.val();
        self.di_r.next = ((self.d_n.q.val() >> self.lgl.val()) << self.i_lgl1.val())
            | bit_cast::<16, 8>(self.di_s1.val());
        self.do_r.next = ((self.d_n.q.val() >> self.lgl.val()) << self.o_lgl1.val())
            | bit_cast::<16, 8>(self.do_s1.val());
        self.di_gend.next = self.di_s1.val() == self.i_l1mask.val();
        self.do_gend.next = self.do_s1.val() == self.o_l1mask.val();
        self.di_ncol.next = self.di_nleft.val() - bit_cast::<32, 16>(self.di_col.q.val());
        self.do_ncol.next = self.do_nleft.val() - bit_cast::<32, 16>(self.do_col.q.val());
        self.di_gcv.next = self.cols.val();
        if self.di_ncol.val() < bit_cast::<32, 8>(self.cols.val()) {
            self.di_gcv.next = self.di_ncol.val().get_bits::<8>(0);
        }
        self.do_gcv.next = self.cols.val();
        if self.do_ncol.val() < bit_cast::<32, 8>(self.cols.val()) {
            self.do_gcv.next = self.do_ncol.val().get_bits::<8>(0);
        }
        self.d_out.next = self.d_nstep.q.val() == 2;
        self.d_hold.next = self.d_out.val()
            & self.ret_pend.q.val()
            & (self.do_nleft.val() <= bit_cast::<32, 16>(self.o_tcols.val()))
            & (self.do_mleft.val() <= bit_cast::<32, 16>(self.o_trows.val()));
        self.d_need_read.next = self.if_acc.val()
            & !self.di_end.q.val()
            & (self.di_r.val() < self.di_rv.val())
            & (bit_cast::<32, 16>(self.di_col.q.val()) < self.di_nleft.val());
        self.d_need_write.next = self.d_out.val()
            & (self.do_r.val() < self.do_rv.val())
            & (bit_cast::<32, 16>(self.do_col.q.val()) < self.do_nleft.val());
        self.d_req.next = false;
        self.wr_addr.next = self.do_ptr.q.val()
            + ((self.do_j0.q.val() + bit_cast::<32, 16>(self.do_col.q.val())) << self.o_osz.val());
        self.wr_count.next = bit_cast::<16, 8>(self.do_gcv.val());

        match self.dst.q.val() {
            DrainState::Idle => {
                // A fresh start (nothing in flight): a first pass brings in the start values
                // of the GEMM's first tile, then two swaps pass before results leave.
                if self.i_has.val() & !self.abort.q.val() {
                    self.d_nstep.d.next = 0.into();
                    self.d_n.d.next = 0.into();
                    self.di_end.d.next = false;
                    self.di_i0.d.next = 0.into();
                    self.di_j0.d.next = 0.into();
                    self.di_base.d.next = self.if_c.val();
                    self.di_ptr.d.next = self.if_c.val();
                    self.di_gptr.d.next = self.if_c.val();
                    self.di_col.d.next = 0.into();
                    self.do_i0.d.next = 0.into();
                    self.do_j0.d.next = 0.into();
                    self.do_base.d.next = self.of_d.val();
                    self.do_ptr.d.next = self.of_d.val();
                    self.do_gptr.d.next = self.of_d.val();
                    self.do_col.d.next = 0.into();
                    self.dst.d.next = DrainState::Row;
                    if !self.if_acc.val() {
                        self.dst.d.next = DrainState::Zero;
                    }
                }
            }
            DrainState::Zero => {
                // Zero start values for GEMMs without C: clear the staging row once.
                self.ci_we.next = true;
                self.ci_wsel.next = self.d_n.q.val().get_bits::<8>(0);
                self.ci_wdata.next = 0.into();
                self.d_n.d.next = self.d_n.q.val() + 1;
                if self.d_n.q.val() + 1 == bit_cast::<16, 8>(self.cols.val()) {
                    self.d_n.d.next = 0.into();
                    self.dst.d.next = DrainState::WaitSwap;
                    if self.d_nstep.q.val() == 0 {
                        self.dst.d.next = DrainState::Row;
                    }
                }
            }
            DrainState::Row => {
                // Start the row's write and its start-value read together, once the write
                // engine has taken the previous row (its beats may still be on the way).
                if !self.d_need_write.val() | self.wr_can_start.val() {
                    self.wr_start.next = self.d_need_write.val();
                    self.d_req.next = self.d_need_read.val();
                    self.dst.d.next = DrainState::WriteWait;
                    if self.grant_d.val() {
                        self.dst.d.next = DrainState::ReadWait;
                    } else if self.d_need_read.val() {
                        self.dst.d.next = DrainState::ReadStart;
                    }
                }
            }
            DrainState::ReadStart => {
                // The loader had the read engine.
                self.d_req.next = true;
                if self.grant_d.val() {
                    self.dst.d.next = DrainState::ReadWait;
                }
            }
            DrainState::ReadWait => {
                self.ci_we.next = self.rd_valid.val() & self.rd_owner.q.val();
                if !self.rd_busy.val() {
                    self.dst.d.next = DrainState::WriteWait;
                    if self.rd_error.val() {
                        self.dcode.d.next = 7.into(); // ReadResponse
                        self.abort.d.next = true;
                    }
                }
            }
            DrainState::WriteWait => {
                // Row taken by the write engine (and its successor's start value staged):
                // shift, already in the cycle the engine takes the row's last group. Write
                // responses are checked as they come (below).
                if !self.wr_busy.val() | self.wr_can_start.val() {
                    self.sh_shift.next = true;
                    self.di_ptr.d.next = self.di_ptr.q.val() + self.if_ldc.val();
                    self.do_ptr.d.next = self.do_ptr.q.val() + self.of_ldd.val();
                    if self.di_gend.val() {
                        if self.d_s.val() == self.ilv_last.val() {
                            // The last group: on to the next L₁ rows.
                            self.di_col.d.next = 0.into();
                            self.di_gptr.d.next = self.di_ptr.q.val() + self.if_ldc.val();
                        } else {
                            // The same rows, the next group's columns.
                            self.di_col.d.next =
                                self.di_col.q.val() + bit_cast::<16, 8>(self.cols.val());
                            self.di_ptr.d.next = self.di_gptr.q.val();
                        }
                    }
                    if self.do_gend.val() {
                        if self.d_s.val() == self.ilv_last.val() {
                            self.do_col.d.next = 0.into();
                            self.do_gptr.d.next = self.do_ptr.q.val() + self.of_ldd.val();
                        } else {
                            self.do_col.d.next =
                                self.do_col.q.val() + bit_cast::<16, 8>(self.cols.val());
                            self.do_ptr.d.next = self.do_gptr.q.val();
                        }
                    }
                    self.d_n.d.next = self.d_n.q.val() + 1;
                    self.dst.d.next = DrainState::Row;
                    if self.d_n.q.val() + 1 == self.trows.val() {
                        self.dst.d.next = DrainState::Next;
                    }
                }
            }
            DrainState::Next => {
                // Advance both tiles; the row pointers ran R·L₁ rows, to the next row tile.
                // Past its GEMM's last tile the "in" side goes on to the next GEMM's first
                // tile if one is validated (the compute then runs it without a flush round),
                // and the "out" side retires its GEMM once every write is answered (waiting
                // here while the previous retirement is pending).
                if !self.d_hold.val() {
                    self.d_n.d.next = 0.into();
                    self.d_ready.d.next = true;
                    self.dst.d.next = DrainState::WaitSwap;
                    if self.d_nstep.q.val() != 2 {
                        self.d_nstep.d.next = self.d_nstep.q.val() + 1;
                    }
                    if !self.di_end.q.val() {
                        if self.di_nleft.val() > bit_cast::<32, 16>(self.i_tcols.val()) {
                            self.di_j0.d.next =
                                self.di_j0.q.val() + bit_cast::<32, 16>(self.i_tcols.val());
                            self.di_ptr.d.next = self.di_base.q.val();
                            self.di_gptr.d.next = self.di_base.q.val();
                        } else {
                            self.di_j0.d.next = 0.into();
                            self.di_i0.d.next =
                                self.di_i0.q.val() + bit_cast::<32, 16>(self.i_trows.val());
                            self.di_base.d.next = self.di_ptr.q.val();
                            if self.di_mleft.val() <= bit_cast::<32, 16>(self.i_trows.val()) {
                                if self.ip_next.val() != self.wp.q.val() {
                                    self.ip.d.next = self.ip.q.val() + 1;
                                    self.d_newin.d.next = true;
                                    self.chain_inc.next = true;
                                    self.dst.d.next = DrainState::Adv;
                                } else {
                                    self.di_end.d.next = true;
                                }
                            }
                        }
                    }
                    if self.d_out.val() {
                        if self.do_nleft.val() > bit_cast::<32, 16>(self.o_tcols.val()) {
                            self.do_j0.d.next =
                                self.do_j0.q.val() + bit_cast::<32, 16>(self.o_tcols.val());
                            self.do_ptr.d.next = self.do_base.q.val();
                            self.do_gptr.d.next = self.do_base.q.val();
                        } else {
                            self.do_j0.d.next = 0.into();
                            self.do_i0.d.next =
                                self.do_i0.q.val() + bit_cast::<32, 16>(self.o_trows.val());
                            self.do_base.d.next = self.do_ptr.q.val();
                            if self.do_mleft.val() <= bit_cast::<32, 16>(self.o_trows.val()) {
                                // The GEMM's last tile is out: retire it once its writes are
                                // answered (the previous retirement must be done).
                                self.ret_pend.d.next = true;
                                self.dop.d.next = self.dop.q.val() + 1;
                                if self.ip.q.val() == self.dop.q.val() {
                                    // Nothing follows: the pipeline is empty.
                                    self.ip.d.next = self.ip.q.val() + 1;
                                    self.d_ready.d.next = false;
                                    self.dst.d.next = DrainState::Idle;
                                } else {
                                    self.d_newout.d.next = true;
                                    self.dst.d.next = DrainState::Adv;
                                }
                            }
                        }
                    } else {
                        self.do_ptr.d.next = self.do_base.q.val();
                        self.do_gptr.d.next = self.do_base.q.val();
                    }
                }
            }
            DrainState::Adv => {
                // A tile of another GEMM enters or leaves: its pointers from its descriptor.
                self.d_newin.d.next = false;
                self.d_newout.d.next = false;
                self.dst.d.next = DrainState::WaitSwap;
                if self.d_newin.q.val() {
                    self.di_i0.d.next = 0.into();
                    self.di_j0.d.next = 0.into();
                    self.di_base.d.next = self.if_c.val();
                    self.di_ptr.d.next = self.if_c.val();
                    self.di_gptr.d.next = self.if_c.val();
                    self.di_col.d.next = 0.into();
                    if !self.if_acc.val() {
                        self.dst.d.next = DrainState::Zero;
                    }
                }
                if self.d_newout.q.val() {
                    self.do_i0.d.next = 0.into();
                    self.do_j0.d.next = 0.into();
                    self.do_base.d.next = self.of_d.val();
                    self.do_ptr.d.next = self.of_d.val();
                    self.do_gptr.d.next = self.of_d.val();
                    self.do_col.d.next = 0.into();
                }
            }
            DrainState::WaitSwap => {
                if self.core_done.val() {
                    self.dst.d.next = DrainState::Row;
                }
            }
            _ => {
                self.dst.d.next = DrainState::Idle;
            }
        }

        // The read engine: the drain's C rows before the loader's operand rows.
        self.grant_d.next = self.d_req.val() & !self.rd_busy.val();
        self.grant_l.next = self.l_req.val() & !self.rd_busy.val() & !self.d_req.val();
        self.rd_start.next = self.grant_d.val() | self.grant_l.val();
        self.rd_addr.next = self.l_raddr.val();
        self.rd_count.next = self.l_rcount.val();
        self.rd_esz.next = self.l_esz.val();
        self.rd_raw.next = true;
        self.rd_rows.next = self.l_rrows.val();
        self.rd_stride.next = self.l_rstride.val();
        self.rd_beat_ready.next = self.l_beat_ready.val();
        if self.d_req.val() {
            self.rd_addr.next = self.di_ptr.q.val()
                + ((self.di_j0.q.val() + bit_cast::<32, 16>(self.di_col.q.val())) << 2);
            self.rd_count.next = bit_cast::<16, 8>(self.di_gcv.val());
            self.rd_esz.next = 2.into();
            self.rd_raw.next = false;
        }
        if self.grant_d.val() {
            self.rd_owner.d.next = true;
        }
        if self.grant_l.val() {
            self.rd_owner.d.next = false;
        }

        // Chained GEMMs announced by the drain and taken by the compute (a count: the drain
        // may announce the one after next before the compute has taken the next).
        if self.chain_inc.val() & !self.chain_dec.val() {
            self.d_chained.d.next = self.d_chained.q.val() + 1;
        }
        if self.chain_dec.val() & !self.chain_inc.val() {
            self.d_chained.d.next = self.d_chained.q.val() - 1;
        }

        // ------------------------------------------------------------------------------------
        // Validation: take a descriptor from the queue, check it, and append it to the FIFO
        // (the processes pick it up from there). A malformed one retires in order: once every
        // descriptor before it has.
        match self.state.q.val() {
            State::Idle => {
                if !self.q_empty.val() {
                    self.q_pop.next = true;
                    self.dsc.d.next = self.q_head.val();
                    self.state.d.next = State::Check;
                }
            }
            State::Check => {
                self.code.d.next = self.chk.val();
                self.vop.d.next = 0.into();
                self.state.d.next = State::VSetup;
                if self.chk.val() != 0 {
                    self.state.d.next = State::FailWait;
                }
            }
            State::VSetup => {
                self.mul_a.d.next = bit_cast::<64, 32>(self.op_rows.val());
                self.mul_b.d.next = self.op_stride.val();
                self.mul_acc.d.next = 0.into();
                self.state.d.next = State::VMul;
            }
            State::VMul => {
                // Shift-and-add multiply: (rows − 1) × stride, one bit per cycle.
                if self.mul_b.q.val() == 0 {
                    self.state.d.next = State::VEnd;
                } else {
                    if self.mul_b.q.val().get_bit(0) {
                        self.mul_acc.d.next = self.mul_acc.q.val() + self.mul_a.q.val();
                    }
                    self.mul_a.d.next = self.mul_a.q.val() << 1;
                    self.mul_b.d.next = self.mul_b.q.val() >> 1;
                }
            }
            State::VEnd => {
                if (self.mul_acc.q.val().get_bits::<32>(32) != 0)
                    | (self.op_end.val().get_bits::<32>(32) != 0)
                {
                    self.code.d.next = 4.into(); // AddressOverflow
                    self.state.d.next = State::FailWait;
                } else if self.vop.q.val() == 3 {
                    self.state.d.next = State::Push;
                } else {
                    self.vop.d.next = self.vop.q.val() + 1;
                    if (self.vop.q.val() == 1) & !self.f_acc.val() {
                        self.vop.d.next = 3.into(); // C is not read
                    }
                    self.state.d.next = State::VSetup;
                }
            }
            State::Push => {
                if self.room.val() & !self.abort.q.val() {
                    if self.wp.q.val().get_bits::<2>(0) == 0 {
                        self.e0.d.next = self.dsc.q.val();
                        self.eg0.d.next = self.g_new.val();
                    }
                    if self.wp.q.val().get_bits::<2>(0) == 1 {
                        self.e1.d.next = self.dsc.q.val();
                        self.eg1.d.next = self.g_new.val();
                    }
                    if self.wp.q.val().get_bits::<2>(0) == 2 {
                        self.e2.d.next = self.dsc.q.val();
                        self.eg2.d.next = self.g_new.val();
                    }
                    if self.wp.q.val().get_bits::<2>(0) == 3 {
                        self.e3.d.next = self.dsc.q.val();
                        self.eg3.d.next = self.g_new.val();
                    }
                    self.wp.d.next = self.wp.q.val() + 1;
                    self.state.d.next = State::Idle;
                }
            }
            State::FailWait => {
                if (self.rp.q.val() == self.wp.q.val())
                    & !self.ret_pend.q.val()
                    & !self.abort.q.val()
                {
                    self.state.d.next = State::Fail;
                }
            }
            State::Fail => {
                self.fail_now.next = true;
                self.state.d.next = State::Idle;
            }
            _ => {
                self.state.d.next = State::Idle;
            }
        }
        // Transfer errors: a loader transfer that ended in an error response, or any write
        // answered with one (the drain's C reads are checked in its ReadWait).
        if (self.ls.q.val() == LoadState::Data) & !self.rd_busy.val() & self.rd_error.val() {
            self.dcode.d.next = 7.into(); // ReadResponse
            self.abort.d.next = true;
        }
        if self.wr_error.val() & !self.abort.q.val() {
            self.dcode.d.next = 8.into(); // WriteResponse
            self.abort.d.next = true;
        }
        // Retirement: the drain wrote a GEMM's last tile; once every write is answered it is
        // done.
        if self.ret_pend.q.val() & self.wr_idle.val() & !self.wr_error.val() & !self.abort.q.val() {
            self.irq_done.next = true;
            self.ret_pend.d.next = false;
            self.rp.d.next = self.rp.q.val() + 1;
        }
        // An abort stops every process, lets the transfers in flight finish, and then retires
        // every descriptor taken from the queue (validated and not yet retired) with the error.
        self.abort_done.next = self.abort.q.val() & !self.rd_busy.val() & self.wr_idle.val();
        self.n_abort.next = bit_cast::<32, 3>(self.nfifo.val());
        if self.abort.q.val() {
            self.ls.d.next = LoadState::Idle;
            self.cs.d.next = ComputeState::Idle;
            self.dst.d.next = DrainState::Idle;
        }
        if self.abort_done.val() {
            self.abort.d.next = false;
            self.wr_clear_error.next = true;
            self.rp.d.next = self.wp.q.val();
            self.lp.d.next = self.wp.q.val();
            self.cp.d.next = self.wp.q.val();
            self.ip.d.next = self.wp.q.val();
            self.dop.d.next = self.wp.q.val();
        }
        if self.abort_done.val() | self.reset.val() {
            self.ret_pend.d.next = false;
            self.d_chained.d.next = 0.into();
            self.d_newin.d.next = false;
            self.d_newout.d.next = false;
            self.d_ready.d.next = false;
            self.l_njob.d.next = 0.into();
            self.l_nready.d.next = 0.into();
            self.l_afirst.d.next = 0.into();
            self.l_ahalf.d.next = true;
            self.c_ndone.d.next = 0.into();
            self.c_ahalf.d.next = true;
            self.c_bhalf.d.next = false;
        }

        // Retirement counts, errors and interrupts.
        self.irq_set.next = 0.into();
        if self.irq_done.val() {
            self.irq_set.next = 1.into();
        }
        if self.fail_now.val()
            | self.reject.val()
            | (self.abort_done.val() & (self.n_abort.val() != 0))
        {
            self.irq_set.next = 2.into();
        }
        if self.irq_done.val() | self.fail_now.val() {
            self.n_completed.d.next = self.n_completed.q.val() + 1;
        }
        if self.abort_done.val() {
            self.n_completed.d.next = self.n_completed.q.val() + self.n_abort.val();
        }
        if self.fail_now.val() {
            self.last_error.d.next = self.code.q.val();
            self.n_errors.d.next = self.n_errors.q.val() + 1;
        }
        if self.abort_done.val() & (self.n_abort.val() != 0) {
            self.last_error.d.next = self.dcode.q.val();
            self.n_errors.d.next = self.n_errors.q.val() + self.n_abort.val();
        }
        if self.reject.val() {
            self.last_error.d.next = 9.into(); // QueueFull
            self.n_errors.d.next = self.n_errors.q.val() + 1;
            if self.fail_now.val() {
                self.n_errors.d.next = self.n_errors.q.val() + 2;
            }
            if self.abort_done.val() {
                self.n_errors.d.next = self.n_errors.q.val() + self.n_abort.val() + 1;
            }
        }
        self.busy_any.next = (self.state.q.val() != State::Idle)
            | (self.rp.q.val() != self.wp.q.val())
            | self.abort.q.val();

        // Performance counters: every busy cycle is a product round's cycle, or the array
        // waiting for operands (read), for the drain (write), or for anything else.
        if self.busy_any.val() {
            self.c_busy.d.next = self.c_busy.q.val() + 1;
            if (self.cs.q.val() == ComputeState::Round) & self.go.val() {
                // rv·cv useful MACs per k step (once per round).
                if self.c_sl.q.val() == self.ilv_last.val() {
                    self.c_macs.d.next =
                        self.c_macs.q.val() + bit_cast::<64, 32>(self.c_rvcv.q.val());
                }
            } else if (self.cs.q.val() == ComputeState::Wait) & !self.job_ready.val() {
                self.c_read.d.next = self.c_read.q.val() + 1;
            } else if ((self.cs.q.val() == ComputeState::Wait)
                & self.c_first.q.val()
                & !self.d_ready.q.val())
                | (self.cs.q.val() == ComputeState::FlushWait)
                | ((self.cs.q.val() == ComputeState::Idle) & (self.dst.q.val() != DrainState::Idle))
            {
                self.c_write.d.next = self.c_write.q.val() + 1;
            } else {
                self.c_other.d.next = self.c_other.q.val() + 1;
            }
        }
        if self.perf_clear.val() {
            self.c_busy.d.next = 0.into();
            self.c_macs.d.next = 0.into();
            self.c_read.d.next = 0.into();
            self.c_write.d.next = 0.into();
            self.c_other.d.next = 0.into();
        }
        self.status.next = (bit_cast::<32, 8>(self.last_error.q.val()) << 16)
            | (bit_cast::<32, 8>(self.q_free.val()) << 8);
        if self.busy_any.val() {
            self.status.next = (bit_cast::<32, 8>(self.last_error.q.val()) << 16)
                | (bit_cast::<32, 8>(self.q_free.val()) << 8)
                | 1;
        }
        self.completed.next = self.n_completed.q.val();
        self.errors.next = self.n_errors.q.val();
        self.perf_busy.next = self.c_busy.q.val();
        self.perf_macs_lo.next = self.c_macs.q.val().get_bits::<32>(0);
        self.perf_macs_hi.next = self.c_macs.q.val().get_bits::<32>(32);
        self.perf_stall_read.next = self.c_read.q.val();
        self.perf_stall_write.next = self.c_write.q.val();
        self.perf_stall_other.next = self.c_other.q.val();

        if self.reset.val() {
            self.state.d.next = State::Idle;
            self.wp.d.next = 0.into();
            self.rp.d.next = 0.into();
            self.lp.d.next = 0.into();
            self.cp.d.next = 0.into();
            self.ip.d.next = 0.into();
            self.dop.d.next = 0.into();
            self.wr_clear_error.next = true;
            self.ls.d.next = LoadState::Idle;
            self.cs.d.next = ComputeState::Idle;
            self.dst.d.next = DrainState::Idle;
            self.d_ready.d.next = false;
            self.abort.d.next = false;
            self.ph.d.next = 0.into();
            self.c_sl.d.next = 0.into();
            self.n_completed.d.next = 0.into();
            self.n_errors.d.next = 0.into();
            self.last_error.d.next = 0.into();
            self.c_busy.d.next = 0.into();
            self.c_macs.d.next = 0.into();
            self.c_read.d.next = 0.into();
            self.c_write.d.next = 0.into();
            self.c_other.d.next = 0.into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::desc_bits;
    use crate::regmap::{self, fields};

    #[test]
    fn descriptor_bit_offsets_follow_the_table() {
        let pos = |reg: u32| 32 * regmap::DESCRIPTOR.iter().position(|r| *r == reg).unwrap();
        assert_eq!(desc_bits::A, pos(regmap::DESC_A_LO));
        assert_eq!(desc_bits::A_HI, pos(regmap::DESC_A_HI));
        assert_eq!(desc_bits::B, pos(regmap::DESC_B_LO));
        assert_eq!(desc_bits::B_HI, pos(regmap::DESC_B_HI));
        assert_eq!(desc_bits::C, pos(regmap::DESC_C_LO));
        assert_eq!(desc_bits::C_HI, pos(regmap::DESC_C_HI));
        assert_eq!(desc_bits::D, pos(regmap::DESC_D_LO));
        assert_eq!(desc_bits::D_HI, pos(regmap::DESC_D_HI));
        assert_eq!(desc_bits::M, pos(regmap::DESC_M));
        assert_eq!(desc_bits::N, pos(regmap::DESC_N));
        assert_eq!(desc_bits::K, pos(regmap::DESC_K));
        assert_eq!(desc_bits::LDA, pos(regmap::DESC_LDA));
        assert_eq!(desc_bits::LDB, pos(regmap::DESC_LDB));
        assert_eq!(desc_bits::LDC, pos(regmap::DESC_LDC));
        assert_eq!(desc_bits::LDD, pos(regmap::DESC_LDD));
        assert_eq!(desc_bits::FLAGS, pos(regmap::DESC_FLAGS));
        assert_eq!(desc_bits::RQ_MULT, pos(regmap::DESC_RQ_MULT));
        assert_eq!(desc_bits::RQ_SHIFT, pos(regmap::DESC_RQ_SHIFT));
        // The literal field positions in `update` (480, 484, 488, 544, 552).
        assert_eq!(
            desc_bits::FLAGS + fields::DESC_FLAGS::PRECISION.lsb as usize,
            480
        );
        assert_eq!(fields::DESC_FLAGS::PRECISION.width, 4);
        assert_eq!(
            desc_bits::FLAGS + fields::DESC_FLAGS::OUTPUT.lsb as usize,
            484
        );
        assert_eq!(
            desc_bits::FLAGS + fields::DESC_FLAGS::ACCUMULATE.lsb as usize,
            488
        );
        assert_eq!(
            desc_bits::RQ_SHIFT + fields::DESC_RQ_SHIFT::SHIFT.lsb as usize,
            544
        );
        assert_eq!(
            desc_bits::RQ_SHIFT + fields::DESC_RQ_SHIFT::ZERO_POINT.lsb as usize,
            552
        );
        // The IRQ bits and STATUS layout used in `update`.
        assert_eq!(fields::IRQ_STATUS::DONE.mask(), 1);
        assert_eq!(fields::IRQ_STATUS::ERROR.mask(), 2);
        assert_eq!(fields::STATUS::BUSY.mask(), 1);
        assert_eq!(fields::STATUS::QUEUE_FREE.lsb, 8);
        assert_eq!(fields::STATUS::LAST_ERROR.lsb, 16);
        // The error codes used as literals.
        use regmap::ErrorCode::*;
        let codes = [
            (ZeroDimension, 1),
            (UnsupportedPrecision, 2),
            (UnsupportedOutput, 3),
            (AddressOverflow, 4),
            (StrideTooSmall, 5),
            (ShiftRange, 6),
            (ReadResponse, 7),
            (WriteResponse, 8),
            (QueueFull, 9),
            (Misaligned, 10),
        ];
        for (code, value) in codes {
            assert_eq!(code as u32, value);
        }
    }
}
