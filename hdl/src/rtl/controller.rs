//! The controller: takes descriptors from the command queue, validates them, tiles the GEMM
//! onto the array and sequences the DMA engines, the array and the drain.
//!
//! Each PE interleaves L accumulations ([`super::pe`]), so a tile has `R·L` rows: tile row `t`
//! is computed by PE row `R−1−t/L` in slot `t mod L`. For every output tile (`i0`, `j0`) of
//! `R·L`×C (clipped at the matrix edge to `rv`×`cv`):
//!
//! 1. **init**: `R·L` chain shifts move `+0`, or the tile's rows of C (accumulate), tile row 0
//!    first, into the PEs' chains;
//! 2. for every chunk of at most `K_DEPTH / L` k steps: **load** the chunk of the tile's A rows
//!    (A bank `R−1−t/L`, slot `t mod L`) and B rows (B bank `j` ← tile column `j`), then
//!    **compute**: one round of L slot steps per k step, `first` on k = 0 (the start values
//!    leave the chains); the accumulators stay in the PEs between chunks, so k stays
//!    ascending across chunks;
//! 3. **flush**: one round of `first` steps without products swaps the results into the chains;
//! 4. **drain**: once the flush round reached the last PE (its last step is the only marked
//!    step, so `core_done` cannot come from the k = 0 round), `rv` chain shifts bring out tile
//!    rows 0, 1, … at the bottom, each converted and written to D.
//!
//! Rounds start only when the free-running phase counter `ph` (cycle mod L) is 0, so every
//! pause between rounds is a whole number of rounds and each accumulation keeps its slot.
//!
//! Rows and columns outside the matrix are computed on stale buffer contents and never
//! written. Descriptor errors (docs/registers.md, "Error codes") are found before any memory
//! access; DMA response errors abort the descriptor after the transfer in flight. Either way
//! the descriptor retires with IRQ_STATUS.ERROR and the controller returns to idle.

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
    Setup,
    TileStart,
    InitZero,
    InitShiftZ,
    InitRead,
    InitWait,
    InitShift,
    LoadSetup,
    LoadA,
    LoadAWait,
    LoadANext,
    LoadB,
    LoadBWait,
    LoadBNext,
    Compute,
    ChunkEnd,
    Flush,
    WaitCapture,
    Drain,
    DrainWait,
    DrainShift,
    NextTile,
    AdvanceRows,
    Finish,
    Fail,
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
    /// Operand buffer depth in k steps.
    pub kdepth: Constant<Bits<32>>,
    /// log2 of `kdepth`.
    pub kaw: Constant<Bits<5>>,
    /// Precisions built in (bit p = precision code p).
    pub prec_mask: Constant<Bits<16>>,
    /// L − 1 (L: accumulations interleaved per PE).
    pub ilv_last: Constant<Bits<8>>,
    /// log2 L.
    pub lgl: Constant<Bits<3>>,
    /// k steps per chunk: `kdepth / L`.
    pub kcap: Constant<Bits<32>>,
    /// log2 of `kcap`.
    pub kcaw: Constant<Bits<5>>,
    /// Tile rows: R · L.
    pub trows: Constant<Bits<16>>,
    /// Precision code for the array.
    pub prec: Signal<Out, Bits<2>>,
    /// A buffer write.
    pub a_we: Signal<Out, Bit>,
    /// A bank.
    pub a_wsel: Signal<Out, Bits<8>>,
    /// A k index.
    pub a_waddr: Signal<Out, Bits<16>>,
    /// A element.
    pub a_wdata: Signal<Out, Bits<16>>,
    /// B buffer write.
    pub b_we: Signal<Out, Bit>,
    /// B bank.
    pub b_wsel: Signal<Out, Bits<8>>,
    /// B k index.
    pub b_waddr: Signal<Out, Bits<16>>,
    /// B element.
    pub b_wdata: Signal<Out, Bits<16>>,
    /// Issue a k step.
    pub step: Signal<Out, Bit>,
    /// First k step.
    pub step_first: Signal<Out, Bit>,
    /// Marks the last slot's step of the flush round (the array's `done` answers it).
    pub step_mark: Signal<Out, Bit>,
    /// B buffer index of the step (k).
    pub step_addr: Signal<Out, Bits<16>>,
    /// A buffer index of the step (slot · K_DEPTH / L + k).
    pub step_addr_a: Signal<Out, Bits<16>>,
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
    /// The array captured the tile.
    pub core_done: Signal<In, Bit>,
    /// Start a DMA read.
    pub rd_start: Signal<Out, Bit>,
    /// DMA read address.
    pub rd_addr: Signal<Out, Bits<32>>,
    /// DMA read element count.
    pub rd_count: Signal<Out, Bits<16>>,
    /// DMA read log2 element size.
    pub rd_esz: Signal<Out, Bits<2>>,
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
    /// Start a DMA write.
    pub wr_start: Signal<Out, Bit>,
    /// DMA write address.
    pub wr_addr: Signal<Out, Bits<32>>,
    /// DMA write element count.
    pub wr_count: Signal<Out, Bits<16>>,
    /// DMA write log2 element size.
    pub wr_esz: Signal<Out, Bits<2>>,
    /// DMA write busy.
    pub wr_busy: Signal<In, Bit>,
    /// DMA write error.
    pub wr_error: Signal<In, Bit>,
    /// Index of the element the DMA write wants next.
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
    i0: DFF<Bits<32>>,
    j0: DFF<Bits<32>>,
    k0: DFF<Bits<32>>,
    t: DFF<Bits<16>>,
    kk: DFF<Bits<16>>,
    sl: DFF<Bits<8>>,
    ph: DFF<Bits<8>>,
    rv: DFF<Bits<16>>,
    cv: DFF<Bits<8>>,
    rvcv: DFF<Bits<32>>,
    kc: DFF<Bits<16>>,
    ptr: DFF<Bits<32>>,
    a_tile: DFF<Bits<32>>,
    c_rowbase: DFF<Bits<32>>,
    d_rowbase: DFF<Bits<32>>,
    d_tile: DFF<Bits<32>>,
    b_kbase: DFF<Bits<32>>,
    n_completed: DFF<Bits<32>>,
    n_errors: DFF<Bits<32>>,
    last_error: DFF<Bits<8>>,
    c_busy: DFF<Bits<32>>,
    c_macs: DFF<Bits<64>>,
    c_read: DFF<Bits<32>>,
    c_write: DFF<Bits<32>>,
    c_other: DFF<Bits<32>>,
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
    m_left: Signal<Local, Bits<32>>,
    n_left: Signal<Local, Bits<32>>,
    k_left: Signal<Local, Bits<32>>,
    rv_new: Signal<Local, Bits<16>>,
    a_bank: Signal<Local, Bits<16>>,
    a_slot: Signal<Local, Bits<16>>,
    first_k: Signal<Local, Bit>,
    go: Signal<Local, Bit>,
    cv_new: Signal<Local, Bits<8>>,
    c_tile_new: Signal<Local, Bits<32>>,
    fail_now: Signal<Local, Bit>,
    irq_done: Signal<Local, Bit>,
}

impl Controller {
    /// A controller for an `rows × cols` array of PEs interleaving `interleave` accumulations,
    /// with operand buffers of `2^kaw` k steps and the precisions in `prec_mask` (bit p =
    /// precision code p).
    pub fn new(rows: usize, cols: usize, kaw: usize, interleave: usize, prec_mask: u32) -> Self {
        assert!(
            interleave.is_power_of_two() && interleave <= 8 && (1usize << kaw) >= interleave,
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
            prec_mask: Constant::new(u64::from(prec_mask).into()),
            ilv_last: Constant::new((interleave as u64 - 1).into()),
            lgl: Constant::new((lgl as u64).into()),
            kcap: Constant::new((1u64 << (kaw - lgl)).into()),
            kcaw: Constant::new(((kaw - lgl) as u64).into()),
            trows: Constant::new(((rows * interleave) as u64).into()),
            prec: Default::default(),
            a_we: Default::default(),
            a_wsel: Default::default(),
            a_waddr: Default::default(),
            a_wdata: Default::default(),
            b_we: Default::default(),
            b_wsel: Default::default(),
            b_waddr: Default::default(),
            b_wdata: Default::default(),
            step: Default::default(),
            step_first: Default::default(),
            step_mark: Default::default(),
            step_addr: Default::default(),
            step_addr_a: Default::default(),
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
            rd_busy: Default::default(),
            rd_error: Default::default(),
            rd_valid: Default::default(),
            rd_data: Default::default(),
            rd_index: Default::default(),
            wr_start: Default::default(),
            wr_addr: Default::default(),
            wr_count: Default::default(),
            wr_esz: Default::default(),
            wr_busy: Default::default(),
            wr_error: Default::default(),
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
            i0: Default::default(),
            j0: Default::default(),
            k0: Default::default(),
            t: Default::default(),
            kk: Default::default(),
            sl: Default::default(),
            ph: Default::default(),
            rv: Default::default(),
            cv: Default::default(),
            rvcv: Default::default(),
            kc: Default::default(),
            ptr: Default::default(),
            a_tile: Default::default(),
            c_rowbase: Default::default(),
            d_rowbase: Default::default(),
            d_tile: Default::default(),
            b_kbase: Default::default(),
            n_completed: Default::default(),
            n_errors: Default::default(),
            last_error: Default::default(),
            c_busy: Default::default(),
            c_macs: Default::default(),
            c_read: Default::default(),
            c_write: Default::default(),
            c_other: Default::default(),
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
            m_left: Default::default(),
            n_left: Default::default(),
            k_left: Default::default(),
            rv_new: Default::default(),
            a_bank: Default::default(),
            a_slot: Default::default(),
            first_k: Default::default(),
            go: Default::default(),
            cv_new: Default::default(),
            c_tile_new: Default::default(),
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
            i0,
            j0,
            k0,
            t,
            kk,
            sl,
            ph,
            rv,
            cv,
            rvcv,
            kc,
            ptr,
            a_tile,
            c_rowbase,
            d_rowbase,
            d_tile,
            b_kbase,
            n_completed,
            n_errors,
            last_error,
            c_busy,
            c_macs,
            c_read,
            c_write,
            c_other
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
        self.rq_mult.next = self.dsc.q.val().get_bits::<32>(512);
        self.rq_shift.next = self.dsc.q.val().get_bits::<6>(544);
        self.rq_zp.next = self.dsc.q.val().get_bits::<8>(552);
        self.oc_code.next = self.f_out.val();
        self.oc_float.next = self.f_prec.val() != 0;
        self.prec.next = self.f_prec.val().get_bits::<2>(0);

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

        // Tile geometry.
        self.m_left.next = self.f_m.val() - self.i0.q.val();
        self.n_left.next = self.f_n.val() - self.j0.q.val();
        self.k_left.next = self.f_k.val() - self.k0.q.val();
        self.rv_new.next = self.trows.val();
        if self.m_left.val() < bit_cast::<32, 16>(self.trows.val()) {
            self.rv_new.next = self.m_left.val().get_bits::<16>(0);
        }
        self.cv_new.next = self.cols.val();
        if self.n_left.val() < bit_cast::<32, 8>(self.cols.val()) {
            self.cv_new.next = self.n_left.val().get_bits::<8>(0);
        }
        self.c_tile_new.next = self.c_rowbase.q.val() + (self.j0.q.val() << 2);

        // Defaults for the strobes.
        self.q_pop.next = false;
        self.a_we.next = false;
        self.a_bank.next = self.t.q.val() >> self.lgl.val();
        self.a_slot.next = self.t.q.val() & bit_cast::<16, 8>(self.ilv_last.val());
        self.a_wsel.next = self.rows.val() - 1 - self.a_bank.val().get_bits::<8>(0);
        self.a_waddr.next = (self.a_slot.val() << self.kcaw.val()) | self.rd_index.val();
        self.a_wdata.next = self.rd_data.val().get_bits::<16>(0);
        self.b_we.next = false;
        self.b_wsel.next = self.rd_index.val().get_bits::<8>(0);
        self.b_waddr.next = self.kk.q.val();
        self.b_wdata.next = self.rd_data.val().get_bits::<16>(0);
        self.step.next = false;
        self.step_first.next = false;
        self.step_mark.next = false;
        self.step_addr.next = self.kk.q.val();
        self.step_addr_a.next =
            (bit_cast::<16, 8>(self.sl.q.val()) << self.kcaw.val()) | self.kk.q.val();
        self.first_k.next = (self.k0.q.val() == 0) & (self.kk.q.val() == 0);
        // A round starts only at phase 0 of the free-running slot counter.
        self.go.next = (self.sl.q.val() != 0) | (self.ph.q.val() == 0);
        self.ph.d.next = self.ph.q.val() + 1;
        if self.ph.q.val() == self.ilv_last.val() {
            self.ph.d.next = 0.into();
        }
        self.ci_we.next = false;
        self.ci_wsel.next = self.rd_index.val().get_bits::<8>(0);
        self.ci_wdata.next = self.rd_data.val();
        self.sh_shift.next = false;
        self.out_sel.next = self.wr_index.val().get_bits::<8>(0);
        self.rd_start.next = false;
        self.rd_addr.next = self.ptr.q.val();
        self.rd_count.next = bit_cast::<16, 8>(self.cv.q.val());
        self.rd_esz.next = self.esz.val();
        self.wr_start.next = false;
        self.wr_addr.next = self.ptr.q.val();
        self.wr_count.next = bit_cast::<16, 8>(self.cv.q.val());
        self.wr_esz.next = self.osz.val();
        self.fail_now.next = false;
        self.irq_done.next = false;

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
                    self.state.d.next = State::Fail;
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
                    self.state.d.next = State::Fail;
                } else if self.vop.q.val() == 3 {
                    self.state.d.next = State::Setup;
                } else {
                    self.vop.d.next = self.vop.q.val() + 1;
                    if (self.vop.q.val() == 1) & !self.f_acc.val() {
                        self.vop.d.next = 3.into(); // C is not read
                    }
                    self.state.d.next = State::VSetup;
                }
            }
            State::Setup => {
                self.i0.d.next = 0.into();
                self.j0.d.next = 0.into();
                self.a_tile.d.next = self.f_a.val();
                self.c_rowbase.d.next = self.f_c.val();
                self.d_rowbase.d.next = self.f_d.val();
                self.state.d.next = State::TileStart;
            }
            State::TileStart => {
                self.rv.d.next = self.rv_new.val();
                self.cv.d.next = self.cv_new.val();
                self.rvcv.d.next = self.rv_new.val() * bit_cast::<16, 8>(self.cv_new.val());
                self.d_tile.d.next = self.d_rowbase.q.val() + (self.j0.q.val() << self.osz.val());
                self.b_kbase.d.next = self.f_b.val() + (self.j0.q.val() << self.esz.val());
                self.k0.d.next = 0.into();
                self.t.d.next = 0.into();
                self.sl.d.next = 0.into();
                self.ptr.d.next = self.c_tile_new.val();
                self.state.d.next = State::InitZero;
                if self.f_acc.val() {
                    self.state.d.next = State::InitRead;
                }
            }
            State::InitZero => {
                self.ci_we.next = true;
                self.ci_wsel.next = self.t.q.val().get_bits::<8>(0);
                self.ci_wdata.next = 0.into();
                self.t.d.next = self.t.q.val() + 1;
                if self.t.q.val() + 1 == bit_cast::<16, 8>(self.cols.val()) {
                    self.t.d.next = 0.into();
                    self.state.d.next = State::InitShiftZ;
                }
            }
            State::InitShiftZ => {
                self.sh_shift.next = true;
                self.t.d.next = self.t.q.val() + 1;
                if self.t.q.val() + 1 == self.trows.val() {
                    self.state.d.next = State::LoadSetup;
                }
            }
            State::InitRead => {
                self.state.d.next = State::InitShift;
                if self.t.q.val() < self.rv.q.val() {
                    self.rd_start.next = true;
                    self.rd_esz.next = 2.into();
                    self.state.d.next = State::InitWait;
                }
            }
            State::InitWait => {
                self.ci_we.next = self.rd_valid.val();
                if !self.rd_busy.val() {
                    self.state.d.next = State::InitShift;
                    if self.rd_error.val() {
                        self.code.d.next = 7.into(); // ReadResponse
                        self.state.d.next = State::Fail;
                    }
                }
            }
            State::InitShift => {
                self.sh_shift.next = true;
                self.ptr.d.next = self.ptr.q.val() + self.f_ldc.val();
                self.t.d.next = self.t.q.val() + 1;
                self.state.d.next = State::InitRead;
                if self.t.q.val() + 1 == self.trows.val() {
                    self.state.d.next = State::LoadSetup;
                }
            }
            State::LoadSetup => {
                self.kc.d.next = self.kcap.val().get_bits::<16>(0);
                if self.k_left.val() < self.kcap.val() {
                    self.kc.d.next = self.k_left.val().get_bits::<16>(0);
                }
                self.t.d.next = 0.into();
                self.ptr.d.next = self.a_tile.q.val() + (self.k0.q.val() << self.esz.val());
                self.state.d.next = State::LoadA;
            }
            State::LoadA => {
                self.rd_start.next = true;
                self.rd_count.next = self.kc.q.val();
                self.state.d.next = State::LoadAWait;
            }
            State::LoadAWait => {
                self.a_we.next = self.rd_valid.val();
                if !self.rd_busy.val() {
                    self.state.d.next = State::LoadANext;
                    if self.rd_error.val() {
                        self.code.d.next = 7.into(); // ReadResponse
                        self.state.d.next = State::Fail;
                    }
                }
            }
            State::LoadANext => {
                self.ptr.d.next = self.ptr.q.val() + self.f_lda.val();
                self.t.d.next = self.t.q.val() + 1;
                self.state.d.next = State::LoadA;
                if self.t.q.val() + 1 == self.rv.q.val() {
                    self.kk.d.next = 0.into();
                    self.ptr.d.next = self.b_kbase.q.val();
                    self.state.d.next = State::LoadB;
                }
            }
            State::LoadB => {
                self.rd_start.next = true;
                self.state.d.next = State::LoadBWait;
            }
            State::LoadBWait => {
                self.b_we.next = self.rd_valid.val();
                if !self.rd_busy.val() {
                    self.state.d.next = State::LoadBNext;
                    if self.rd_error.val() {
                        self.code.d.next = 7.into(); // ReadResponse
                        self.state.d.next = State::Fail;
                    }
                }
            }
            State::LoadBNext => {
                self.ptr.d.next = self.ptr.q.val() + self.f_ldb.val();
                self.kk.d.next = self.kk.q.val() + 1;
                self.state.d.next = State::LoadB;
                if self.kk.q.val() + 1 == self.kc.q.val() {
                    self.kk.d.next = 0.into();
                    self.state.d.next = State::Compute;
                }
            }
            State::Compute => {
                // One round: slot sl's step of k index kk.
                if self.go.val() {
                    self.step.next = true;
                    // The k = 0 round swaps too, but is not marked: only the flush round
                    // may raise `core_done` (see WaitCapture).
                    self.step_first.next = self.first_k.val();
                    self.sl.d.next = self.sl.q.val() + 1;
                    if self.sl.q.val() == self.ilv_last.val() {
                        self.sl.d.next = 0.into();
                        self.kk.d.next = self.kk.q.val() + 1;
                        if self.kk.q.val() + 1 == self.kc.q.val() {
                            self.state.d.next = State::ChunkEnd;
                        }
                    }
                }
            }
            State::ChunkEnd => {
                self.k0.d.next = self.k0.q.val() + bit_cast::<32, 16>(self.kc.q.val());
                self.b_kbase.d.next = self.b_kbase.q.val() + (self.f_ldb.val() << self.kcaw.val());
                self.state.d.next = State::LoadSetup;
                if bit_cast::<32, 16>(self.kc.q.val()) == self.k_left.val() {
                    self.state.d.next = State::Flush;
                }
            }
            State::Flush => {
                // A round of first steps without products: the results enter the chains.
                if self.go.val() {
                    self.step_first.next = true;
                    self.step_mark.next = self.sl.q.val() == self.ilv_last.val();
                    self.sl.d.next = self.sl.q.val() + 1;
                    if self.sl.q.val() == self.ilv_last.val() {
                        self.sl.d.next = 0.into();
                        self.state.d.next = State::WaitCapture;
                    }
                }
            }
            State::WaitCapture => {
                // `core_done` is the flush round's mark reaching the last PE: no other round is
                // marked. (When the k = 0 round was marked too, its pulse, R + C + 5 cycles
                // after its issue, arrived in this state whenever R + C + 4 ≥ (K + 1)·L, e.g.
                // K = 1 on 8×8 with L = 8, and the drain read the chains before the flush
                // round's swaps.)
                if self.core_done.val() {
                    self.t.d.next = 0.into();
                    self.ptr.d.next = self.d_tile.q.val();
                    self.state.d.next = State::Drain;
                }
            }
            State::Drain => {
                self.wr_start.next = true;
                self.state.d.next = State::DrainWait;
            }
            State::DrainWait => {
                if !self.wr_busy.val() {
                    self.state.d.next = State::DrainShift;
                    if self.wr_error.val() {
                        self.code.d.next = 8.into(); // WriteResponse
                        self.state.d.next = State::Fail;
                    }
                }
            }
            State::DrainShift => {
                self.sh_shift.next = true;
                self.ptr.d.next = self.ptr.q.val() + self.f_ldd.val();
                self.t.d.next = self.t.q.val() + 1;
                self.state.d.next = State::Drain;
                if self.t.q.val() + 1 == self.rv.q.val() {
                    self.state.d.next = State::NextTile;
                }
            }
            State::NextTile => {
                self.t.d.next = 0.into();
                self.j0.d.next = self.j0.q.val() + bit_cast::<32, 8>(self.cols.val());
                self.state.d.next = State::TileStart;
                if self.n_left.val() <= bit_cast::<32, 8>(self.cols.val()) {
                    self.j0.d.next = 0.into();
                    self.i0.d.next = self.i0.q.val() + bit_cast::<32, 16>(self.trows.val());
                    self.state.d.next = State::AdvanceRows;
                    if self.m_left.val() <= bit_cast::<32, 16>(self.trows.val()) {
                        self.state.d.next = State::Finish;
                    }
                }
            }
            State::AdvanceRows => {
                self.a_tile.d.next = self.a_tile.q.val() + self.f_lda.val();
                self.c_rowbase.d.next = self.c_rowbase.q.val() + self.f_ldc.val();
                self.d_rowbase.d.next = self.d_rowbase.q.val() + self.f_ldd.val();
                self.t.d.next = self.t.q.val() + 1;
                if self.t.q.val() + 1 == self.trows.val() {
                    self.t.d.next = 0.into();
                    self.state.d.next = State::TileStart;
                }
            }
            State::Finish => {
                self.irq_done.next = true;
                self.state.d.next = State::Idle;
            }
            State::Fail => {
                self.fail_now.next = true;
                self.state.d.next = State::Idle;
            }
            _ => {
                self.state.d.next = State::Idle;
            }
        }
        if self.state.q.val() == State::InitWait {
            self.rd_esz.next = 2.into();
        }

        // Retirement, errors and interrupts.
        self.irq_set.next = 0.into();
        if self.irq_done.val() {
            self.irq_set.next = 1.into();
        }
        if self.fail_now.val() | self.reject.val() {
            self.irq_set.next = 2.into();
        }
        if self.irq_done.val() | self.fail_now.val() {
            self.n_completed.d.next = self.n_completed.q.val() + 1;
        }
        if self.fail_now.val() {
            self.last_error.d.next = self.code.q.val();
            self.n_errors.d.next = self.n_errors.q.val() + 1;
        }
        if self.reject.val() {
            self.last_error.d.next = 9.into(); // QueueFull
            self.n_errors.d.next = self.n_errors.q.val() + 1;
            if self.fail_now.val() {
                self.n_errors.d.next = self.n_errors.q.val() + 2;
            }
        }

        // Performance counters.
        if self.state.q.val() != State::Idle {
            self.c_busy.d.next = self.c_busy.q.val() + 1;
            if (self.state.q.val() == State::InitRead)
                | (self.state.q.val() == State::InitWait)
                | (self.state.q.val() == State::InitShift)
                | (self.state.q.val() == State::InitZero)
                | (self.state.q.val() == State::InitShiftZ)
                | (self.state.q.val() == State::LoadSetup)
                | (self.state.q.val() == State::LoadA)
                | (self.state.q.val() == State::LoadAWait)
                | (self.state.q.val() == State::LoadANext)
                | (self.state.q.val() == State::LoadB)
                | (self.state.q.val() == State::LoadBWait)
                | (self.state.q.val() == State::LoadBNext)
            {
                self.c_read.d.next = self.c_read.q.val() + 1;
            } else if (self.state.q.val() == State::WaitCapture)
                | (self.state.q.val() == State::Drain)
                | (self.state.q.val() == State::DrainWait)
                | (self.state.q.val() == State::DrainShift)
            {
                self.c_write.d.next = self.c_write.q.val() + 1;
            } else if self.state.q.val() == State::Compute {
                // rv·cv useful MACs per k step (once per round).
                if self.go.val() & (self.sl.q.val() == self.ilv_last.val()) {
                    self.c_macs.d.next =
                        self.c_macs.q.val() + bit_cast::<64, 32>(self.rvcv.q.val());
                }
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
        if self.state.q.val() != State::Idle {
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
            self.ph.d.next = 0.into();
            self.sl.d.next = 0.into();
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
