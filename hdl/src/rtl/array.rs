//! The output-stationary systolic array with its operand buffers, skew registers, init staging
//! and drain multiplexer: everything whose shape depends on the array size R×C.
//!
//! ```text
//!            B bank 0   B bank 1  …  B bank C−1        (k-indexed RAMs, read at step_addr)
//!               │          │+1 reg     │+(C−1) regs     (skew: column j delayed j cycles)
//! A bank 0 ─► PE(0,0) ─► PE(0,1) ─► … PE(0,C−1)        (A read at step_addr_a: slot, k)
//! A bank 1 ─+1─► PE(1,0) ─► …                           (row i delayed i cycles, with ctl)
//!   …            │ b and the init/drain chain (sh) run down the columns
//! A bank R−1 ─► PE(R−1,0) … PE(R−1,C−1) ─► out_data (4 of the bottom row's chain ends)
//! ```
//!
//! Each PE interleaves L accumulations ([`super::pe`]): a tile is `R·L` rows by `C` columns,
//! PE row `i` slot `s` computing tile row `(R−1−i)·L + s`.
//!
//! The operand buffers are double-buffered (the top address bit is the half) and written a
//! beat at a time, so that loading the next chunk overlaps computing this one at the bus rate:
//!
//! - A bank `i` is 128 bits wide and holds the L A rows of PE row `i` as the bytes of memory:
//!   slot `s`'s row of a chunk starts at word `half·2^(AW−1) + s·2^(AW−4)` (room for `2^(AW−1)`
//!   k steps of two bytes), one 16-byte beat per word. A step reads word `step_addr_a` and
//!   picks the element at byte `step_lane` (int8 in the low byte, high byte zero).
//! - B bank `j` is 16 bits wide, one element per k step at `half·2^(AW−1) + k`. A B row of the
//!   tile arrives as beats: word `b_wword` of the row writes every bank whose element it holds
//!   (bank `j` holds byte `j·eb` of the row), all at address `b_waddr`, in one cycle.
//!
//! The chains of a column, `R·L` entries long, take start values from the staging row at the
//! top and give results at the bottom in the same order: shift `n` moves out the result of
//! tile row `n` and (after `R·L` shifts) has moved in the start value written to the staging
//! row before shift `n`.
//!
//! The size is a run-time parameter (`rows`, `cols`), not a const generic: rust-hdl's `#[hdl_gen]`
//! cannot index two-dimensional block arrays, so this block's wiring is written once as a list of
//! connections ([`ArrayCore::wires`]) that both the simulation (`update`) and the Verilog
//! (`hdl`) are generated from. The only behaviour outside that list is the small logic in
//! `update`/`hdl` that mirror each other line by line (marked `// mirror:`).

use rust_hdl::prelude::*;

use super::pe::Pe;

/// The array, its A/B operand buffers and the edge logic, for `rows × cols` PEs and operand
/// buffers of `2^AW` words (two halves of `2^(AW−1)` k steps).
#[derive(LogicBlock)]
pub struct ArrayCore<const AW: usize> {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset.
    pub reset: Signal<In, Bit>,
    /// Precision code of the running GEMM.
    pub prec: Signal<In, Bits<2>>,
    /// Precision code of the B rows being written (the loader may be a GEMM ahead of the
    /// steps, and int8 and 16-bit rows are laid out differently in the banks).
    pub wprec: Signal<In, Bits<2>>,
    /// Write one 16-byte word of A (into bank `a_wsel` at word `a_waddr`).
    pub a_we: Signal<In, Bit>,
    /// A bank (PE row) to write.
    pub a_wsel: Signal<In, Bits<8>>,
    /// Word address to write (half, slot, word of the row).
    pub a_waddr: Signal<In, Bits<AW>>,
    /// The word: 16 bytes of an A row, lowest address in the low byte.
    pub a_wdata: Signal<In, Bits<128>>,
    /// Write word `b_wword` of a B row into every bank whose element it holds.
    pub b_we: Signal<In, Bit>,
    /// Which 16-byte word of the tile's B row this is (bank `j` takes word `j·eb / 16`).
    pub b_wword: Signal<In, Bits<8>>,
    /// k address to write (half, k).
    pub b_waddr: Signal<In, Bits<AW>>,
    /// The word: 16 bytes of a B row, lowest address in the low byte.
    pub b_wdata: Signal<In, Bits<128>>,
    /// Issue one k step of one slot (read every bank and feed the array).
    pub step: Signal<In, Bit>,
    /// The slot's step is the first of a tile: its accumulator starts from the chain and the
    /// previous tile's result enters the chain (also without `step`, to flush the results).
    pub step_first: Signal<In, Bit>,
    /// Marks the last slot's step of the flush round: `done` rises when it reached every PE.
    /// Only that round may be marked, or `done` would not say which round arrived.
    pub step_mark: Signal<In, Bit>,
    /// Address of the step in the B buffers (half, k).
    pub step_addr: Signal<In, Bits<AW>>,
    /// Word address of the step in the A buffers (half, slot, word holding k).
    pub step_addr_a: Signal<In, Bits<AW>>,
    /// Byte of that word where the step's A element starts.
    pub step_lane: Signal<In, Bits<4>>,
    /// Write one init value into the staging row (column `ci_wsel`).
    pub ci_we: Signal<In, Bit>,
    /// Staging column to write.
    pub ci_wsel: Signal<In, Bits<8>>,
    /// Init value (i32 or f32 bits).
    pub ci_wdata: Signal<In, Bits<32>>,
    /// Shift the chains down by one entry: the staging row enters at the top, the bottom
    /// entries leave.
    pub sh_shift: Signal<In, Bit>,
    /// First of the four bottom-row columns whose chain ends appear on `out_data`.
    pub out_sel: Signal<In, Bits<8>>,
    /// Chain ends of PE(R−1, out_sel + q) in bits `32q..32q+31` for q = 0..3 (zero past the
    /// last column): the drain converts and writes four results per cycle.
    pub out_data: Signal<Out, Bits<128>>,
    /// The last PE (R−1, C−1) swapped a marked step one cycle ago: the round reached every PE.
    pub done: Signal<Out, Bit>,
    pes: Vec<Pe>,
    a_banks: Vec<RAM<Bits<128>, AW>>,
    b_banks: Vec<RAM<Bits<16>, AW>>,
    a_pick: Vec<LaneSelect>,
    step_vfl: DFF<Bits<5>>,
    lane_q: DFF<Bits<4>>,
    a_skew: Vec<DFF<Bits<16>>>,
    vfl_skew: Vec<DFF<Bits<5>>>,
    b_skew: Vec<DFF<Bits<16>>>,
    stage: Vec<DFF<Bits<32>>>,
    _rows: usize,
    _cols: usize,
}

/// A signal of the array block, named as in the generated Verilog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sig {
    /// Row `i`'s A operand at the array edge.
    RowA(usize),
    /// Row `i`'s step control ([`super::pe::ctl`]) at the array edge.
    RowVfl(usize),
    /// Column `j`'s B operand at the array edge.
    ColB(usize),
}

impl<const AW: usize> ArrayCore<AW> {
    /// An array of `rows × cols` PEs (each 1..=255) interleaving `interleave` accumulations.
    pub fn new(rows: usize, cols: usize, interleave: usize) -> Self {
        assert!(
            (1..=255).contains(&rows) && (1..=255).contains(&cols),
            "array size {rows}×{cols} out of range (1..=255 each)"
        );
        let tri = |n: usize| n * (n - 1) / 2;
        Self {
            clock: Default::default(),
            reset: Default::default(),
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
            out_data: Default::default(),
            done: Default::default(),
            pes: (0..rows * cols).map(|_| Pe::new(interleave)).collect(),
            a_banks: (0..rows).map(|_| RAM::default()).collect(),
            b_banks: (0..cols).map(|_| RAM::default()).collect(),
            a_pick: (0..rows).map(|_| LaneSelect::default()).collect(),
            step_vfl: Default::default(),
            lane_q: Default::default(),
            a_skew: (0..tri(rows)).map(|_| DFF::default()).collect(),
            vfl_skew: (0..tri(rows)).map(|_| DFF::default()).collect(),
            b_skew: (0..tri(cols)).map(|_| DFF::default()).collect(),
            stage: (0..cols).map(|_| DFF::default()).collect(),
            _rows: rows,
            _cols: cols,
        }
    }

    /// Index of skew register `t` (0-based) of lane `lane` in a triangular skew bank: lane `n`
    /// has `n` registers.
    fn skew_index(lane: usize, t: usize) -> usize {
        lane * (lane - 1) / 2 + t
    }

    /// The Verilog name of an edge signal.
    fn name(&self, s: Sig) -> String {
        match s {
            Sig::RowA(0) => "a_pick$0$elem".into(),
            Sig::RowA(i) => format!("a_skew${}$q", Self::skew_index(i, i - 1)),
            Sig::RowVfl(0) => "step_vfl$q".into(),
            Sig::RowVfl(i) => format!("vfl_skew${}$q", Self::skew_index(i, i - 1)),
            Sig::ColB(0) => "b_banks$0$read_data".into(),
            Sig::ColB(j) => format!("b_skew${}$q", Self::skew_index(j, j - 1)),
        }
    }

    fn value_a(&self, s: Sig) -> Bits<16> {
        match s {
            Sig::RowA(0) => self.a_pick[0].elem.val(),
            Sig::RowA(i) => self.a_skew[Self::skew_index(i, i - 1)].q.val(),
            Sig::ColB(0) => self.b_banks[0].read_data.val(),
            Sig::ColB(j) => self.b_skew[Self::skew_index(j, j - 1)].q.val(),
            Sig::RowVfl(_) => unreachable!("flags are not operands"),
        }
    }

    fn value_vfl(&self, i: usize) -> Bits<5> {
        if i == 0 {
            self.step_vfl.q.val()
        } else {
            self.vfl_skew[Self::skew_index(i, i - 1)].q.val()
        }
    }

    /// The PE index of row `i`, column `j`.
    fn pe(&self, i: usize, j: usize) -> usize {
        i * self._cols + j
    }

    /// The array's point-to-point wiring as (destination, source) Verilog names; `update`
    /// applies the same connections to the simulation model (see `apply_wires`).
    fn wires(&self) -> Vec<(String, String)> {
        let (r, c) = (self._rows, self._cols);
        let mut w = Vec::new();
        for i in 0..r {
            for j in 0..c {
                let p = format!("pes${}", self.pe(i, j));
                let (a, vfl) = if j == 0 {
                    (self.name(Sig::RowA(i)), self.name(Sig::RowVfl(i)))
                } else {
                    let left = format!("pes${}", self.pe(i, j - 1));
                    w.push((format!("{p}$a_in"), format!("{left}$a_out")));
                    w.push((format!("{p}$ctl_in"), format!("{left}$ctl_out")));
                    (String::new(), String::new())
                };
                if j == 0 {
                    w.push((format!("{p}$a_in"), a));
                    w.push((format!("{p}$ctl_in"), vfl));
                }
                if i == 0 {
                    w.push((format!("{p}$b_in"), self.name(Sig::ColB(j))));
                    w.push((format!("{p}$sh_in"), format!("stage${j}$q")));
                } else {
                    let up = format!("pes${}", self.pe(i - 1, j));
                    w.push((format!("{p}$b_in"), format!("{up}$b_out")));
                    w.push((format!("{p}$sh_in"), format!("{up}$sh_out")));
                }
                for (port, src) in [
                    ("clock", "clock"),
                    ("reset", "reset"),
                    ("sh_shift", "sh_shift"),
                ] {
                    w.push((format!("{p}${port}"), src.into()));
                }
            }
        }
        w
    }

    /// The simulation counterpart of [`wires`](Self::wires).
    fn apply_wires(&mut self) {
        let (r, c) = (self._rows, self._cols);
        for i in 0..r {
            for j in 0..c {
                let n = self.pe(i, j);
                let (a, vfl) = if j == 0 {
                    (self.value_a(Sig::RowA(i)), self.value_vfl(i))
                } else {
                    let left = &self.pes[self.pe(i, j - 1)];
                    (left.a_out.val(), left.ctl_out.val())
                };
                let (b, sh) = if i == 0 {
                    (self.value_a(Sig::ColB(j)), self.stage[j].q.val())
                } else {
                    let up = &self.pes[self.pe(i - 1, j)];
                    (up.b_out.val(), up.sh_out.val())
                };
                let (clock, reset) = (self.clock.val(), self.reset.val());
                let sh_shift = self.sh_shift.val();
                let pe = &mut self.pes[n];
                pe.a_in.next = a;
                pe.ctl_in.next = vfl;
                pe.b_in.next = b;
                pe.sh_in.next = sh;
                pe.clock.next = clock;
                pe.reset.next = reset;
                pe.sh_shift.next = sh_shift;
            }
        }
    }
}

impl<const AW: usize> Logic for ArrayCore<AW> {
    fn update(&mut self) {
        let (r, c) = (self._rows, self._cols);
        let clock = self.clock.val();
        // mirror: A buffers (a word at a time, all read at step_addr_a, the element picked at
        // the registered lane).
        let int8_step = self.step_vfl.q.val().get_bits::<2>(3) == 0;
        for (i, bank) in self.a_banks.iter_mut().enumerate() {
            bank.read_clock.next = clock;
            bank.write_clock.next = clock;
            bank.read_address.next = self.step_addr_a.val();
            bank.write_address.next = self.a_waddr.val();
            bank.write_data.next = self.a_wdata.val();
            bank.write_enable.next = self.a_we.val() && self.a_wsel.val().index() == i;
            let pick = &mut self.a_pick[i];
            pick.word.next = bank.read_data.val();
            pick.lane.next = self.lane_q.q.val();
            pick.int8.next = int8_step;
        }
        self.lane_q.clock.next = clock;
        self.lane_q.d.next = self.step_lane.val();
        // mirror: B buffers (bank j takes its element of B row word b_wword).
        let int8_load = self.wprec.val() == 0;
        for (j, bank) in self.b_banks.iter_mut().enumerate() {
            bank.read_clock.next = clock;
            bank.write_clock.next = clock;
            bank.read_address.next = self.step_addr.val();
            bank.write_address.next = self.b_waddr.val();
            let (word, data) = if int8_load {
                (
                    j >> 4,
                    bit_cast::<16, 8>(self.b_wdata.val().get_bits::<8>(8 * (j & 15))),
                )
            } else {
                (j >> 3, self.b_wdata.val().get_bits::<16>(16 * (j & 7)))
            };
            bank.write_data.next = data;
            bank.write_enable.next = self.b_we.val() && self.b_wword.val().index() == word;
        }
        // mirror: the step control follows the RAM read latency (one cycle).
        self.step_vfl.clock.next = clock;
        let mut vfl = bit_cast::<5, 2>(self.prec.val()) << 3;
        vfl = vfl.replace_bit(0, self.step.val());
        vfl = vfl.replace_bit(1, self.step_first.val());
        vfl = vfl.replace_bit(2, self.step_mark.val());
        self.step_vfl.d.next = if self.reset.val() { 0u64.into() } else { vfl };
        // mirror: skew registers; row i (column j) is delayed by i (j) registers.
        for i in 1..r {
            for t in 0..i {
                let n = Self::skew_index(i, t);
                let (a_src, vfl_src) = if t == 0 {
                    (self.a_pick[i].elem.val(), self.step_vfl.q.val())
                } else {
                    let p = Self::skew_index(i, t - 1);
                    (self.a_skew[p].q.val(), self.vfl_skew[p].q.val())
                };
                self.a_skew[n].clock.next = clock;
                self.a_skew[n].d.next = a_src;
                self.vfl_skew[n].clock.next = clock;
                self.vfl_skew[n].d.next = if self.reset.val() {
                    0u64.into()
                } else {
                    vfl_src
                };
            }
        }
        for j in 1..c {
            for t in 0..j {
                let n = Self::skew_index(j, t);
                let src = if t == 0 {
                    self.b_banks[j].read_data.val()
                } else {
                    self.b_skew[Self::skew_index(j, t - 1)].q.val()
                };
                self.b_skew[n].clock.next = clock;
                self.b_skew[n].d.next = src;
            }
        }
        // mirror: init staging row.
        for j in 0..c {
            self.stage[j].clock.next = clock;
            self.stage[j].d.next = if self.ci_we.val() && self.ci_wsel.val().index() == j {
                self.ci_wdata.val()
            } else {
                self.stage[j].q.val()
            };
        }
        self.apply_wires();
        // mirror: drain multiplexer (four lanes) and tile-captured flag.
        let mut out = Bits::<128>::from(0u64);
        for j in 0..c {
            for q in 0..4.min(j + 1) {
                if self.out_sel.val().index() == j - q {
                    out = out
                        | (bit_cast::<128, 32>(self.pes[self.pe(r - 1, j)].sh_out.val())
                            << ((32 * q) as u64));
                }
            }
        }
        self.out_data.next = out;
        self.done.next = self.pes[self.pe(r - 1, c - 1)].captured.val();
    }

    fn connect(&mut self) {
        self.out_data.connect();
        self.done.connect();
        for bank in self.a_banks.iter_mut() {
            bank.read_clock.connect();
            bank.write_clock.connect();
            bank.read_address.connect();
            bank.write_address.connect();
            bank.write_data.connect();
            bank.write_enable.connect();
        }
        for bank in self.b_banks.iter_mut() {
            bank.read_clock.connect();
            bank.write_clock.connect();
            bank.read_address.connect();
            bank.write_address.connect();
            bank.write_data.connect();
            bank.write_enable.connect();
        }
        for pick in self.a_pick.iter_mut() {
            pick.word.connect();
            pick.lane.connect();
            pick.int8.connect();
        }
        self.lane_q.clock.connect();
        self.lane_q.d.connect();
        for d in self.a_skew.iter_mut().chain(self.b_skew.iter_mut()) {
            d.clock.connect();
            d.d.connect();
        }
        for d in self
            .vfl_skew
            .iter_mut()
            .chain(std::iter::once(&mut self.step_vfl))
        {
            d.clock.connect();
            d.d.connect();
        }
        for d in self.stage.iter_mut() {
            d.clock.connect();
            d.d.connect();
        }
        for pe in self.pes.iter_mut() {
            pe.a_in.connect();
            pe.b_in.connect();
            pe.ctl_in.connect();
            pe.sh_in.connect();
            pe.clock.connect();
            pe.reset.connect();
            pe.sh_shift.connect();
        }
    }

    fn hdl(&self) -> Verilog {
        use std::fmt::Write;
        let (r, c) = (self._rows, self._cols);
        let mut s = String::from("always @(*) begin\n");
        let mut put = |dst: &str, src: &str| {
            let _ = writeln!(s, "    {dst} = {src};");
        };
        for i in 0..r {
            put(&format!("a_banks${i}$read_clock"), "clock");
            put(&format!("a_banks${i}$write_clock"), "clock");
            put(&format!("a_banks${i}$read_address"), "step_addr_a");
            put(&format!("a_banks${i}$write_address"), "a_waddr");
            put(&format!("a_banks${i}$write_data"), "a_wdata");
            put(
                &format!("a_banks${i}$write_enable"),
                &format!("a_we & (a_wsel == 8'd{i})"),
            );
            put(
                &format!("a_pick${i}$word"),
                &format!("a_banks${i}$read_data"),
            );
            put(&format!("a_pick${i}$lane"), "lane_q$q");
            put(&format!("a_pick${i}$int8"), "(step_vfl$q[4:3] == 2'd0)");
        }
        put("lane_q$clock", "clock");
        put("lane_q$d", "step_lane");
        for j in 0..c {
            let (w8, l8, w16, l16) = (j >> 4, 8 * (j & 15), j >> 3, 16 * (j & 7));
            put(&format!("b_banks${j}$read_clock"), "clock");
            put(&format!("b_banks${j}$write_clock"), "clock");
            put(&format!("b_banks${j}$read_address"), "step_addr");
            put(&format!("b_banks${j}$write_address"), "b_waddr");
            put(
                &format!("b_banks${j}$write_data"),
                &format!(
                    "(wprec == 2'd0) ? {{8'h00, b_wdata[{}:{l8}]}} : b_wdata[{}:{l16}]",
                    l8 + 7,
                    l16 + 15
                ),
            );
            put(
                &format!("b_banks${j}$write_enable"),
                &format!("b_we & ((wprec == 2'd0) ? (b_wword == 8'd{w8}) : (b_wword == 8'd{w16}))"),
            );
        }
        put("step_vfl$clock", "clock");
        put(
            "step_vfl$d",
            "reset ? 5'b00000 : {prec, step_mark, step_first, step}",
        );
        for i in 1..r {
            for t in 0..i {
                let n = Self::skew_index(i, t);
                let (a_src, vfl_src) = if t == 0 {
                    (format!("a_pick${i}$elem"), "step_vfl$q".to_string())
                } else {
                    let p = Self::skew_index(i, t - 1);
                    (format!("a_skew${p}$q"), format!("vfl_skew${p}$q"))
                };
                put(&format!("a_skew${n}$clock"), "clock");
                put(&format!("a_skew${n}$d"), &a_src);
                put(&format!("vfl_skew${n}$clock"), "clock");
                put(
                    &format!("vfl_skew${n}$d"),
                    &format!("reset ? 5'b00000 : {vfl_src}"),
                );
            }
        }
        for j in 1..c {
            for t in 0..j {
                let n = Self::skew_index(j, t);
                let src = if t == 0 {
                    format!("b_banks${j}$read_data")
                } else {
                    format!("b_skew${}$q", Self::skew_index(j, t - 1))
                };
                put(&format!("b_skew${n}$clock"), "clock");
                put(&format!("b_skew${n}$d"), &src);
            }
        }
        for j in 0..c {
            put(&format!("stage${j}$clock"), "clock");
            put(
                &format!("stage${j}$d"),
                &format!("(ci_we & (ci_wsel == 8'd{j})) ? ci_wdata : stage${j}$q"),
            );
        }
        for (dst, src) in self.wires() {
            put(&dst, &src);
        }
        put("out_data", "128'h0");
        for j in 0..c {
            for q in 0..4.min(j + 1) {
                let _ = writeln!(
                    s,
                    "    if (out_sel == 8'd{}) out_data[{}:{}] = pes${}$sh_out;",
                    j - q,
                    32 * q + 31,
                    32 * q,
                    self.pe(r - 1, j)
                );
            }
        }
        let _ = writeln!(s, "    done = pes${}$captured;", self.pe(r - 1, c - 1));
        s.push_str("end\n");
        Verilog::Custom(s)
    }
}

/// Picks the A element of a step out of the 16-byte word its bank read: the bytes at `lane`
/// (two for bf16/fp16, one for int8, zero-extended), so that A rows can be written a beat at a
/// time and still be read one element per step.
#[derive(LogicBlock, Default)]
pub struct LaneSelect {
    /// The word the bank read.
    pub word: Signal<In, Bits<128>>,
    /// Byte offset of the element in the word.
    pub lane: Signal<In, Bits<4>>,
    /// The element is one byte (int8).
    pub int8: Signal<In, Bit>,
    /// The element.
    pub elem: Signal<Out, Bits<16>>,
    shift: Signal<Local, Bits<8>>,
    shifted: Signal<Local, Bits<128>>,
}

impl Logic for LaneSelect {
    #[hdl_gen]
    fn update(&mut self) {
        self.shift.next = bit_cast::<8, 4>(self.lane.val()) << 3;
        self.shifted.next = self.word.val() >> self.shift.val();
        self.elem.next = self.shifted.val().get_bits::<16>(0);
        if self.int8.val() {
            self.elem.next = bit_cast::<16, 8>(self.shifted.val().get_bits::<8>(0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtl::testbench::{settle, tick};
    use golden::gemm::{reference, GemmSpec};
    use golden::numerics::Precision;
    use rand::{Rng, SeedableRng};

    /// Two halves of 16 k steps.
    type Core = ArrayCore<5>;
    const KDEPTH: usize = 16;

    fn clk(core: &mut Core) -> &mut Signal<In, Clock> {
        &mut core.clock
    }

    /// Packs little-endian bytes into 16-byte words (the last one zero-padded).
    fn words(bytes: &[u8]) -> Vec<Bits<128>> {
        bytes
            .chunks(16)
            .map(|c| {
                let mut w = [0u8; 16];
                w[..c.len()].copy_from_slice(c);
                let v = u128::from_le_bytes(w);
                (Bits::<128>::from(v as u64)) | (Bits::<128>::from((v >> 64) as u64) << 64)
            })
            .collect()
    }

    /// Computes one (R·L)×C tile of `A(R·L×K)·B(K×C)` on the core (K ≤ 16) from buffer half
    /// `half` and returns it row-major: tile row `t` is PE row `R−1−t/L`, slot `t mod L`.
    #[allow(clippy::too_many_arguments)]
    fn run(
        core: &mut Core,
        l: usize,
        prec: u64,
        eb: usize,
        half: usize,
        a: &[u16],
        b: &[u16],
        init: &[u32],
        k: usize,
    ) -> Vec<u32> {
        let (r, c) = (core._rows, core._cols);
        let tr = r * l;
        let slot_words = KDEPTH * 2 / 16;
        let elem_bytes = |v: &[u16]| -> Vec<u8> {
            v.iter()
                .flat_map(|x| x.to_le_bytes().into_iter().take(eb))
                .collect()
        };
        core.prec.next = prec.into();
        core.wprec.next = prec.into();
        for t in 0..tr {
            let (bank, slot) = (r - 1 - t / l, t % l);
            for (w, word) in words(&elem_bytes(&a[t * k..][..k])).into_iter().enumerate() {
                core.a_we.next = true;
                core.a_wsel.next = (bank as u64).into();
                core.a_waddr.next = ((half * KDEPTH + slot * slot_words + w) as u64).into();
                core.a_wdata.next = word;
                tick(core, clk);
            }
        }
        core.a_we.next = false;
        for kk in 0..k {
            for (w, word) in words(&elem_bytes(&b[kk * c..][..c]))
                .into_iter()
                .enumerate()
            {
                core.b_we.next = true;
                core.b_wword.next = (w as u64).into();
                core.b_waddr.next = ((half * KDEPTH + kk) as u64).into();
                core.b_wdata.next = word;
                tick(core, clk);
            }
        }
        core.b_we.next = false;
        // Start values: shift n carries tile row n's.
        for t in 0..tr {
            for j in 0..c {
                core.ci_we.next = true;
                core.ci_wsel.next = (j as u64).into();
                core.ci_wdata.next = u64::from(init[t * c + j]).into();
                tick(core, clk);
            }
            core.ci_we.next = false;
            core.sh_shift.next = true;
            tick(core, clk);
            core.sh_shift.next = false;
        }
        // k rounds of L slots, then a flush round (first steps without products) that swaps
        // the results into the chains.
        for kk in 0..=k {
            for s in 0..l {
                let kk_read = kk.min(k - 1);
                core.step.next = kk < k;
                core.step_first.next = kk == 0 || kk == k;
                core.step_mark.next = kk == k && s + 1 == l;
                core.step_addr.next = ((half * KDEPTH + kk_read) as u64).into();
                core.step_addr_a.next =
                    ((half * KDEPTH + s * slot_words + kk_read * eb / 16) as u64).into();
                core.step_lane.next = ((kk_read * eb % 16) as u64).into();
                tick(core, clk);
            }
        }
        core.step.next = false;
        core.step_first.next = false;
        core.step_mark.next = false;
        let mut done = false;
        for _ in 0..r + c + 16 {
            tick(core, clk);
            done |= core.done.val();
        }
        assert!(done, "the flush round never reached the last PE");
        let mut out = vec![0; tr * c];
        for t in 0..tr {
            for j in (0..c).step_by(4) {
                core.out_sel.next = (j as u64).into();
                settle(core);
                let group = core.out_data.val().to_u128();
                for q in 0..4 {
                    let lane = (group >> (32 * q)) as u32;
                    match out.get_mut(t * c + j + q).filter(|_| j + q < c) {
                        Some(v) => *v = lane,
                        None => assert_eq!(lane, 0, "lane {q} past the last column"),
                    }
                }
            }
            core.sh_shift.next = true;
            tick(core, clk);
            core.sh_shift.next = false;
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn check(
        prec: Precision,
        l: usize,
        rows: usize,
        cols: usize,
        k: usize,
        half: usize,
        seed: u64,
    ) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut core = Core::new(rows, cols, l);
        let rows = rows * l;
        core.connect_all();
        core.reset.next = true;
        tick(&mut core, clk);
        core.reset.next = false;
        let code = match prec {
            Precision::Int8 => 0,
            Precision::Bf16 => 1,
            Precision::Fp16 => 2,
        };
        let elem = |rng: &mut rand::rngs::StdRng| -> u16 {
            match prec.operand_format() {
                None => rng.random::<u8>().into(),
                Some(f) => f.encode_rne(rng.random_range(-3.0f32..3.0)) as u16,
            }
        };
        let a: Vec<u16> = (0..rows * k).map(|_| elem(&mut rng)).collect();
        let b: Vec<u16> = (0..k * cols).map(|_| elem(&mut rng)).collect();
        let init: Vec<u32> = (0..rows * cols)
            .map(|_| match prec {
                Precision::Int8 => rng.random::<u32>(),
                _ => rng.random_range(-2.0f32..2.0).to_bits(),
            })
            .collect();
        let eb = prec.operand_bytes();
        let got = run(&mut core, l, code, eb, half, &a, &b, &init, k);
        // The golden reference on the same data.
        let bytes = |v: &[u16]| -> Vec<u8> {
            v.iter()
                .flat_map(|x| {
                    if prec.operand_bytes() == 1 {
                        vec![*x as u8]
                    } else {
                        x.to_le_bytes().to_vec()
                    }
                })
                .collect()
        };
        let mut spec = GemmSpec::new(prec, rows, cols, k);
        spec.accumulate = true;
        let c_bytes: Vec<u8> = init.iter().flat_map(|x| x.to_le_bytes()).collect();
        let mut d = vec![0u8; spec.d_bytes()];
        reference::gemm(&spec, &bytes(&a), &bytes(&b), Some(&c_bytes), &mut d).unwrap();
        let want: Vec<u32> = d
            .chunks(4)
            .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
            .collect();
        assert_eq!(got, want, "{prec} L={l} {rows}×{cols}×{k}");
    }

    #[test]
    fn array_tiles_match_golden() {
        check(Precision::Bf16, 2, 3, 2, 5, 0, 1);
        check(Precision::Fp16, 4, 2, 3, 4, 1, 2);
        check(Precision::Int8, 1, 2, 2, 16, 1, 3);
        check(Precision::Bf16, 8, 1, 1, 2, 0, 4);
        check(Precision::Bf16, 1, 1, 1, 1, 1, 5);
        // B rows of more than one word: 9 bf16 and 17 int8 columns; full 16-step rows.
        check(Precision::Bf16, 2, 1, 9, 16, 1, 6);
        check(Precision::Int8, 1, 2, 17, 16, 0, 7);
    }
}
