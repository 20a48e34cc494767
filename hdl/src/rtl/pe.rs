//! The processing element: one multiply-accumulate per cycle, output stationary, with L
//! accumulations interleaved round-robin so that the fused adder can be pipelined.
//!
//! ```text
//! cycle 0      a_in, b_in, ctl_in ──► input registers (forwarded right/down: a_out, b_out, ctl_out)
//! cycles 1..4  M0..M3 (super::mul): decode, normalise operands, multiply, normalise product
//! cycle 5      A1: acc_in = first ? chain[L−1] : acc   (and on `first` the chain swaps, below)
//! cycles 5..   A1 A2 B1 B2 C D E F (super::fadd) in L register stages ──► acc
//! ```
//!
//! **Interleaving.** The adder is cut into L pipeline stages (L = 1, 2, 4 or 8), so its result
//! for the step entering at cycle t comes back as `acc` at cycle t + L, exactly when the same
//! slot's next step enters. The accumulators are therefore the values in flight in the adder:
//! slot s (0..L) owns the steps entering at cycles ≡ s (mod L), and every slot sees its own
//! steps in k order, one rounding each — the contract's order (docs/numerics.md §5). A cycle
//! without a valid step passes its accumulator through unchanged, so the controller may pause
//! between whole rounds of L cycles. Where the registers sit for each L is [`stage_mask`].
//!
//! **Init and drain share one chain.** Each PE holds an L-entry chain of 32-bit registers
//! (`sh0..sh{L−1}`). The step that starts a new tile in slot s (`first`) takes its start value
//! from the chain's last entry and pushes the slot's finished result (the accumulator coming
//! round) into the first entry, rotating the chain: after the L first steps of a round the chain
//! holds the L results of the previous tiles, in place of the L start values of the new ones.
//! Between rounds the controller shifts the chains down the columns (`sh_shift`, R·L shifts):
//! results leave at the bottom, start values for the next tiles enter at the top. A first step
//! marked `l` raises `captured` one cycle after its swap; the controller marks only the last
//! step of the flush round, so the bottom-right PE's `captured` says that the results of every
//! PE are in its chain. The controller never shifts a chain while a PE of its column can swap.

use rust_hdl::prelude::*;

use super::fadd::{AddAlign, AddDecode, AddLzc, AddPack, AddRound, AddShift, AddSum, AddSwap};
use super::mul::{MulAlign, MulDecode, MulNorm, MulProd};

/// Bit `k` of the mask: a pipeline register after fused-adder stage `k` (A1, A2, B1, B2, C, D,
/// E; the register after F is the accumulator and always present). `None` for an unsupported
/// interleave factor.
pub const fn stage_mask(interleave: usize) -> Option<u64> {
    match interleave {
        1 => Some(0),
        // A1..B2 | C..F
        2 => Some(0b000_1000),
        // A1 A2 | B1 B2 | C D | E F
        4 => Some(0b010_1010),
        // one stage each
        8 => Some(0b111_1111),
        _ => None,
    }
}

/// Interleave factors the PE can be built with.
pub const INTERLEAVES: [usize; 4] = [1, 2, 4, 8];

/// Cycles from the PE's inputs to the adder's first stage (input register and M0..M3).
pub const MUL_LATENCY: usize = 5;

/// Bit positions in the 5-bit step control bundle that travels with the operands.
pub mod ctl {
    /// The step carries a product (otherwise the accumulator passes unchanged).
    pub const VALID: usize = 0;
    /// The step starts a tile: the accumulator starts from the chain (swap).
    pub const FIRST: usize = 1;
    /// Marks a first step whose swap raises `captured` (the controller marks only the last
    /// slot's step of the flush round, whose arrival it waits for).
    pub const MARK: usize = 2;
    /// Precision code, 2 bits (`super::mul::PREC_*`).
    pub const PREC: usize = 3;
}

/// One processing element.
#[derive(LogicBlock)]
pub struct Pe {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset (clears the control flags in flight).
    pub reset: Signal<In, Bit>,
    /// Operand from the left neighbour (A).
    pub a_in: Signal<In, Bits<16>>,
    /// Operand from the upper neighbour (B).
    pub b_in: Signal<In, Bits<16>>,
    /// Step control from the left neighbour (bits: [`ctl`]).
    pub ctl_in: Signal<In, Bits<5>>,
    /// A forwarded to the right neighbour (one cycle later).
    pub a_out: Signal<Out, Bits<16>>,
    /// B forwarded to the lower neighbour.
    pub b_out: Signal<Out, Bits<16>>,
    /// Step control forwarded right.
    pub ctl_out: Signal<Out, Bits<5>>,
    /// Chain input (from the PE above, or the init staging row).
    pub sh_in: Signal<In, Bits<32>>,
    /// Shift the chain (one entry per cycle, down the column).
    pub sh_shift: Signal<In, Bit>,
    /// The chain's last entry (to the PE below, or the drain at the bottom row).
    pub sh_out: Signal<Out, Bits<32>>,
    /// High for one cycle after a marked first step swapped.
    pub captured: Signal<Out, Bit>,
    /// Pipeline register mask of the fused adder ([`stage_mask`]).
    pub regs: Constant<Bits<8>>,
    /// L − 1: the chain entry that meets the adder.
    pub top: Constant<Bits<3>>,
    a_r: DFF<Bits<16>>,
    b_r: DFF<Bits<16>>,
    c_r: DFF<Bits<5>>,
    m0: MulDecode,
    m1: MulAlign,
    m2: MulProd,
    m3: MulNorm,
    rm0: DFF<Bits<52>>,
    rm1: DFF<Bits<46>>,
    rm2: DFF<Bits<38>>,
    rm3: DFF<Bits<71>>,
    cm0: DFF<Bits<5>>,
    cm1: DFF<Bits<5>>,
    cm2: DFF<Bits<5>>,
    cm3: DFF<Bits<5>>,
    s_a1: AddDecode,
    s_a2: AddSwap,
    s_b1: AddAlign,
    s_b2: AddSum,
    s_c: AddLzc,
    s_d: AddShift,
    s_e: AddRound,
    s_f: AddPack,
    r_a1: DFF<Bits<126>>,
    r_a2: DFF<Bits<126>>,
    r_b1: DFF<Bits<122>>,
    r_b2: DFF<Bits<149>>,
    r_c: DFF<Bits<103>>,
    r_d: DFF<Bits<101>>,
    r_e: DFF<Bits<71>>,
    acc: DFF<Bits<32>>,
    sh0: DFF<Bits<32>>,
    sh1: DFF<Bits<32>>,
    sh2: DFF<Bits<32>>,
    sh3: DFF<Bits<32>>,
    sh4: DFF<Bits<32>>,
    sh5: DFF<Bits<32>>,
    sh6: DFF<Bits<32>>,
    sh7: DFF<Bits<32>>,
    cap: DFF<Bit>,
    first_sel: DFF<Bit>,
    chain_top: Signal<Local, Bits<32>>,
    first: Signal<Local, Bit>,
}

impl Pe {
    /// A PE interleaving `interleave` accumulations (one of [`INTERLEAVES`]).
    pub fn new(interleave: usize) -> Self {
        let mask = stage_mask(interleave)
            .unwrap_or_else(|| panic!("interleave {interleave} is not one of {INTERLEAVES:?}"));
        Self {
            clock: Default::default(),
            reset: Default::default(),
            a_in: Default::default(),
            b_in: Default::default(),
            ctl_in: Default::default(),
            a_out: Default::default(),
            b_out: Default::default(),
            ctl_out: Default::default(),
            sh_in: Default::default(),
            sh_shift: Default::default(),
            sh_out: Default::default(),
            captured: Default::default(),
            regs: Constant::new(mask.into()),
            top: Constant::new((interleave as u64 - 1).into()),
            a_r: Default::default(),
            b_r: Default::default(),
            c_r: Default::default(),
            m0: Default::default(),
            m1: Default::default(),
            m2: Default::default(),
            m3: Default::default(),
            rm0: Default::default(),
            rm1: Default::default(),
            rm2: Default::default(),
            rm3: Default::default(),
            cm0: Default::default(),
            cm1: Default::default(),
            cm2: Default::default(),
            cm3: Default::default(),
            s_a1: Default::default(),
            s_a2: Default::default(),
            s_b1: Default::default(),
            s_b2: Default::default(),
            s_c: Default::default(),
            s_d: Default::default(),
            s_e: Default::default(),
            s_f: Default::default(),
            r_a1: Default::default(),
            r_a2: Default::default(),
            r_b1: Default::default(),
            r_b2: Default::default(),
            r_c: Default::default(),
            r_d: Default::default(),
            r_e: Default::default(),
            acc: Default::default(),
            sh0: Default::default(),
            sh1: Default::default(),
            sh2: Default::default(),
            sh3: Default::default(),
            sh4: Default::default(),
            sh5: Default::default(),
            sh6: Default::default(),
            sh7: Default::default(),
            cap: Default::default(),
            first_sel: Default::default(),
            chain_top: Default::default(),
            first: Default::default(),
        }
    }
}

impl Logic for Pe {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, a_r, b_r, c_r, rm0, rm1, rm2, rm3, cm0, cm1, cm2, cm3, r_a1, r_a2, r_b1,
            r_b2, r_c, r_d, r_e, acc, sh0, sh1, sh2, sh3, sh4, sh5, sh6, sh7, cap, first_sel
        );
        // Input registers, forwarded to the neighbours.
        self.a_r.d.next = self.a_in.val();
        self.b_r.d.next = self.b_in.val();
        self.c_r.d.next = self.ctl_in.val();
        self.a_out.next = self.a_r.q.val();
        self.b_out.next = self.b_r.q.val();
        self.ctl_out.next = self.c_r.q.val();

        // Multiply: four stages, the control bits alongside.
        self.m0.prec.next = self.c_r.q.val().get_bits::<2>(3);
        self.m0.a.next = self.a_r.q.val();
        self.m0.b.next = self.b_r.q.val();
        self.rm0.d.next = self.m0.o.val();
        self.m1.i.next = self.rm0.q.val();
        self.rm1.d.next = self.m1.o.val();
        self.m2.i.next = self.rm1.q.val();
        self.rm2.d.next = self.m2.o.val();
        self.m3.i.next = self.rm2.q.val();
        self.rm3.d.next = self.m3.o.val();
        self.cm0.d.next = self.c_r.q.val();
        self.cm1.d.next = self.cm0.q.val();
        self.cm2.d.next = self.cm1.q.val();
        self.cm3.d.next = self.cm2.q.val();

        // The chain entry that meets the adder.
        self.chain_top.next = self.sh0.q.val();
        if self.top.val() == 1 {
            self.chain_top.next = self.sh1.q.val();
        }
        if self.top.val() == 2 {
            self.chain_top.next = self.sh2.q.val();
        }
        if self.top.val() == 3 {
            self.chain_top.next = self.sh3.q.val();
        }
        if self.top.val() == 4 {
            self.chain_top.next = self.sh4.q.val();
        }
        if self.top.val() == 5 {
            self.chain_top.next = self.sh5.q.val();
        }
        if self.top.val() == 6 {
            self.chain_top.next = self.sh6.q.val();
        }
        if self.top.val() == 7 {
            self.chain_top.next = self.sh7.q.val();
        }
        self.sh_out.next = self.chain_top.val();

        // Accumulate: the eight adder stages, registered where the mask says.
        self.first.next = self.cm3.q.val().get_bit(1);
        // A copy of `first` for the accumulator's input mux, which heads A1's longest path: its
        // own register (no reset: it only picks the start value of a tile) keeps the chain's
        // 8 × 32 enables off that net.
        self.first_sel.d.next = self.cm2.q.val().get_bit(1);
        self.s_a1.acc.next = self.acc.q.val();
        if self.first_sel.q.val() {
            self.s_a1.acc.next = self.chain_top.val();
        }
        self.s_a1.p.next = self.rm3.q.val();
        self.s_a1.valid.next = self.cm3.q.val().get_bit(0);
        self.r_a1.d.next = self.s_a1.o.val();
        self.s_a2.i.next = self.s_a1.o.val();
        if self.regs.val().get_bit(0) {
            self.s_a2.i.next = self.r_a1.q.val();
        }
        self.r_a2.d.next = self.s_a2.o.val();
        self.s_b1.i.next = self.s_a2.o.val();
        if self.regs.val().get_bit(1) {
            self.s_b1.i.next = self.r_a2.q.val();
        }
        self.r_b1.d.next = self.s_b1.o.val();
        self.s_b2.i.next = self.s_b1.o.val();
        if self.regs.val().get_bit(2) {
            self.s_b2.i.next = self.r_b1.q.val();
        }
        self.r_b2.d.next = self.s_b2.o.val();
        self.s_c.i.next = self.s_b2.o.val();
        if self.regs.val().get_bit(3) {
            self.s_c.i.next = self.r_b2.q.val();
        }
        self.r_c.d.next = self.s_c.o.val();
        self.s_d.i.next = self.s_c.o.val();
        if self.regs.val().get_bit(4) {
            self.s_d.i.next = self.r_c.q.val();
        }
        self.r_d.d.next = self.s_d.o.val();
        self.s_e.i.next = self.s_d.o.val();
        if self.regs.val().get_bit(5) {
            self.s_e.i.next = self.r_d.q.val();
        }
        self.r_e.d.next = self.s_e.o.val();
        self.s_f.i.next = self.s_e.o.val();
        if self.regs.val().get_bit(6) {
            self.s_f.i.next = self.r_e.q.val();
        }
        self.acc.d.next = self.s_f.sum.val();

        // The chain: shift down the column, or swap on a first step (never both; the
        // controller guarantees it, and the swap wins).
        if self.sh_shift.val() {
            self.sh0.d.next = self.sh_in.val();
        }
        if self.sh_shift.val() | self.first.val() {
            self.sh1.d.next = self.sh0.q.val();
            self.sh2.d.next = self.sh1.q.val();
            self.sh3.d.next = self.sh2.q.val();
            self.sh4.d.next = self.sh3.q.val();
            self.sh5.d.next = self.sh4.q.val();
            self.sh6.d.next = self.sh5.q.val();
            self.sh7.d.next = self.sh6.q.val();
        }
        if self.first.val() {
            self.sh0.d.next = self.acc.q.val();
        }
        self.cap.d.next = self.first.val() & self.cm3.q.val().get_bit(2);
        self.captured.next = self.cap.q.val();

        if self.reset.val() {
            self.c_r.d.next = 0.into();
            self.cm0.d.next = 0.into();
            self.cm1.d.next = 0.into();
            self.cm2.d.next = 0.into();
            self.cm3.d.next = 0.into();
            self.cap.d.next = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtl::testbench::{settle, tick};
    use golden::numerics::float::{BF16, FP16};
    use golden::numerics::mac;
    use golden::numerics::FloatFormat;
    use rand::{Rng, SeedableRng};

    fn new_pe(interleave: usize) -> Pe {
        let mut pe = Pe::new(interleave);
        pe.connect_all();
        pe.reset.next = true;
        settle(&mut pe);
        tick(&mut pe, |p| &mut p.clock);
        pe.reset.next = false;
        pe
    }

    fn clk(pe: &mut Pe) -> &mut Signal<In, Clock> {
        &mut pe.clock
    }

    fn ctl(prec: u64, valid: bool, first: bool, mark: bool) -> Bits<5> {
        (prec << ctl::PREC
            | u64::from(valid) << ctl::VALID
            | u64::from(first) << ctl::FIRST
            | u64::from(mark) << ctl::MARK)
            .into()
    }

    /// Runs one tile per slot (slot s starts from `inits[s]` and takes `steps[s]`, all of the
    /// same length), with `gap` idle rounds after every round; returns the L results.
    fn run_slots(
        pe: &mut Pe,
        prec: u64,
        inits: &[u32],
        steps: &[Vec<(u16, u16)>],
        gap: usize,
    ) -> Vec<u32> {
        let l = inits.len();
        let k = steps[0].len();
        for &init in inits {
            pe.sh_in.next = u64::from(init).into();
            pe.sh_shift.next = true;
            tick(pe, clk);
        }
        pe.sh_shift.next = false;
        // The rounds, then one flush round (first steps without products) that swaps the
        // results into the chains.
        for kk in 0..=k {
            for (s, slot) in steps.iter().enumerate() {
                let (a, b) = slot.get(kk).copied().unwrap_or((0, 0));
                pe.a_in.next = u64::from(a).into();
                pe.b_in.next = u64::from(b).into();
                pe.ctl_in.next = ctl(prec, kk < k, kk == 0 || kk == k, kk == k && s + 1 == l);
                tick(pe, clk);
            }
            pe.ctl_in.next = ctl(prec, false, false, false);
            // Idle rounds between rounds, not after the flush round (whose swap raises
            // `captured`, checked below).
            if kk < k {
                for _ in 0..gap * l {
                    tick(pe, clk);
                }
            }
        }
        pe.ctl_in.next = ctl(prec, false, false, false);
        let mut captured = false;
        for _ in 0..MUL_LATENCY + 2 {
            tick(pe, clk);
            captured |= pe.captured.val();
        }
        assert!(captured, "the marked swap did not raise `captured`");
        let mut out = Vec::new();
        for _ in 0..l {
            settle(pe);
            out.push(pe.sh_out.val().to_u64() as u32);
            pe.sh_shift.next = true;
            tick(pe, clk);
            pe.sh_shift.next = false;
        }
        out
    }

    fn float_steps(format: FloatFormat, init: u32, steps: &[(u16, u16)]) -> u32 {
        steps.iter().fold(init, |acc, &(a, b)| {
            mac::exact(format, f32::from_bits(acc), u32::from(a), u32::from(b)).to_bits()
        })
    }

    /// Checks single-step cases `(acc, a, b)` in batches of L (one per slot).
    fn check_single(pe: &mut Pe, prec: u64, format: FloatFormat, cases: &[(u32, u16, u16)]) {
        let l = pe.top.val().to_u64() as usize + 1;
        for batch in cases.chunks(l) {
            let mut inits: Vec<u32> = batch.iter().map(|c| c.0).collect();
            let mut steps: Vec<Vec<(u16, u16)>> = batch.iter().map(|c| vec![(c.1, c.2)]).collect();
            while inits.len() < l {
                inits.push(0);
                steps.push(vec![(0, 0)]);
            }
            let got = run_slots(pe, prec, &inits, &steps, 0);
            for (n, &(acc, a, b)) in batch.iter().enumerate() {
                let want = float_steps(format, acc, &[(a, b)]);
                assert_eq!(
                    got[n], want,
                    "{} L={l} acc={acc:#010x} a={a:#06x} b={b:#06x}: got {:#010x} want {want:#010x}",
                    format.name, got[n]
                );
            }
        }
    }

    fn corner_codes(format: FloatFormat) -> Vec<u16> {
        let m = format.mantissa_bits;
        let exps = (1u32 << format.exponent_bits) - 1;
        let mut codes = Vec::new();
        for e in [0, 1, 2, exps / 2, exps / 2 + 1, exps - 2, exps - 1, exps] {
            for frac in [0, 1, (1 << m) - 1, 1 << (m - 1)] {
                for sign in [0, 1 << 15] {
                    codes.push((sign | (e << m) | frac) as u16);
                }
            }
        }
        codes
    }

    fn corner_accs() -> Vec<u32> {
        let mut v: Vec<u32> = [
            0.0f32,
            -0.0,
            1.0,
            -1.0,
            f32::MAX,
            -f32::MAX,
            f32::MIN_POSITIVE,
            16_777_216.0,
            3.0e38,
            1.0e-30,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ]
        .iter()
        .map(|x| x.to_bits())
        .collect();
        v.extend([1, 0x8000_0001, 0x007F_FFFF, 0x7FC0_0001, 0xFFFF_FFFF]);
        v
    }

    fn corner_cases(format: FloatFormat, stride: usize) -> Vec<(u32, u16, u16)> {
        let codes = corner_codes(format);
        let mut cases = Vec::new();
        let mut n = 0usize;
        for &acc in &corner_accs() {
            for &a in &codes {
                for &b in codes.iter().skip(n % stride).step_by(stride) {
                    cases.push((acc, a, b));
                }
                n += 1;
            }
        }
        cases
    }

    #[test]
    fn bf16_corner_operands_match_golden() {
        check_single(&mut new_pe(8), 1, BF16, &corner_cases(BF16, 9));
    }

    #[test]
    fn fp16_corner_operands_match_golden() {
        check_single(&mut new_pe(8), 2, FP16, &corner_cases(FP16, 9));
    }

    #[test]
    fn unpipelined_adder_matches_golden_on_corners() {
        check_single(&mut new_pe(1), 1, BF16, &corner_cases(BF16, 23));
        check_single(&mut new_pe(2), 2, FP16, &corner_cases(FP16, 23));
    }

    /// Accumulators near −a·b (cancellation), near ties and below the accumulator's ulp.
    fn random_cases(format: FloatFormat, count: usize, seed: u64) -> Vec<(u32, u16, u16)> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..count)
            .map(|i| {
                let a: u16 = rng.random();
                let b: u16 = rng.random();
                let p = f64::from(format.decode(a.into())) * f64::from(format.decode(b.into()));
                let acc = match i % 4 {
                    0 => rng.random::<u32>(),
                    1 => ((-p) as f32)
                        .to_bits()
                        .wrapping_add(rng.random_range(0..9u32).wrapping_sub(4)),
                    2 => ((p * f64::from(rng.random_range(1..1u32 << 24))) as f32).to_bits(),
                    _ => (rng.random::<u32>() & 0x807F_FFFF) | (rng.random_range(0..8u32) << 23),
                };
                (acc, a, b)
            })
            .collect()
    }

    fn case_count(quick: usize) -> usize {
        if std::env::var_os("POCFORGE_FULL").is_some() {
            quick * 50
        } else {
            quick
        }
    }

    #[test]
    fn bf16_random_operands_match_golden() {
        check_single(
            &mut new_pe(8),
            1,
            BF16,
            &random_cases(BF16, case_count(2000), 1),
        );
        check_single(
            &mut new_pe(4),
            1,
            BF16,
            &random_cases(BF16, case_count(400), 11),
        );
    }

    #[test]
    fn fp16_random_operands_match_golden() {
        check_single(
            &mut new_pe(8),
            2,
            FP16,
            &random_cases(FP16, case_count(2000), 2),
        );
        check_single(
            &mut new_pe(1),
            2,
            FP16,
            &random_cases(FP16, case_count(400), 12),
        );
    }

    /// Every slot accumulates its own dot product in k order; idle rounds in between change
    /// nothing.
    #[test]
    fn interleaved_dot_products_accumulate_k_ascending() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for l in INTERLEAVES {
            for (prec, format) in [(1, BF16), (2, FP16)] {
                let mut pe = new_pe(l);
                for (len, gap) in [(1usize, 0usize), (2, 1), (5, 0), (17, 2)] {
                    // Small exponents so that the sums cancel and round often.
                    let steps: Vec<Vec<(u16, u16)>> = (0..l)
                        .map(|_| {
                            (0..len)
                                .map(|_| {
                                    let x = format.encode_rne(rng.random_range(-4.0f32..4.0));
                                    let y = format.encode_rne(rng.random_range(-4.0f32..4.0));
                                    (x as u16, y as u16)
                                })
                                .collect()
                        })
                        .collect();
                    let inits: Vec<u32> = (0..l)
                        .map(|_| rng.random_range(-8.0f32..8.0).to_bits())
                        .collect();
                    let got = run_slots(&mut pe, prec, &inits, &steps, gap);
                    for s in 0..l {
                        assert_eq!(
                            got[s],
                            float_steps(format, inits[s], &steps[s]),
                            "L={l} {} K={len} slot {s}",
                            format.name
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn int8_wraps_and_covers_extremes() {
        for l in [8, 1] {
            let mut pe = new_pe(l);
            let extremes = [0u16, 1, 0x7F, 0x80, 0x81, 0xFF];
            let mut cases = Vec::new();
            for &a in &extremes {
                for &b in &extremes {
                    for init in [0u32, 0x7FFF_FFFF, 0x8000_0000, 12345] {
                        cases.push((init, a, b));
                    }
                }
            }
            for batch in cases.chunks(l) {
                let inits: Vec<u32> = (0..l).map(|s| batch.get(s).map_or(0, |c| c.0)).collect();
                let steps: Vec<Vec<(u16, u16)>> = (0..l)
                    .map(|s| vec![batch.get(s).map_or((0, 0), |c| (c.1, c.2))])
                    .collect();
                let got = run_slots(&mut pe, 0, &inits, &steps, 0);
                for (s, &(init, a, b)) in batch.iter().enumerate() {
                    let want = mac::mac_int8(init as i32, a as u8 as i8, b as u8 as i8) as u32;
                    assert_eq!(got[s], want, "L={l} {a:#x}·{b:#x}+{init:#x}");
                }
            }
            let mut rng = rand::rngs::StdRng::seed_from_u64(4);
            let steps: Vec<Vec<(u16, u16)>> = (0..l)
                .map(|_| {
                    (0..20)
                        .map(|_| (rng.random::<u8>().into(), rng.random::<u8>().into()))
                        .collect()
                })
                .collect();
            let got = run_slots(&mut pe, 0, &vec![0; l], &steps, 0);
            for s in 0..l {
                let want = steps[s].iter().fold(0i32, |acc, &(a, b)| {
                    mac::mac_int8(acc, a as u8 as i8, b as u8 as i8)
                });
                assert_eq!(got[s], want as u32, "L={l} slot {s}");
            }
        }
    }

    #[test]
    fn named_corner_cases() {
        let cases: &[(u64, FloatFormat, u32, u16, u16)] = &[
            // Product beyond f32 range that cancels back: 2^64·2^64 − f32::MAX.
            (1, BF16, (-f32::MAX).to_bits(), 0x5F80, 0x5F80),
            // Overflow to +inf, and the boundary just below it.
            (1, BF16, f32::MAX.to_bits(), 0x7F7F, 0x3F80),
            (1, BF16, 0x7F7F_FFFF, 0x6780, 0x3F80),
            // Sticky bits below the accumulator ulp.
            (1, BF16, 16_777_216.0f32.to_bits(), 0x3F81, 0x3F80),
            // Subnormal sums: a tie at half the smallest subnormal.
            (1, BF16, 1, 0x1A00, 0x1A00),
            (1, BF16, 0, 0x1A00, 0x1A00),
            // inf − inf, inf·0, NaN payload.
            (1, BF16, f32::NEG_INFINITY.to_bits(), 0x7F80, 0x3F80),
            (1, BF16, 0, 0x7F80, 0x0000),
            (1, BF16, 0, 0x7FC1, 0x3F80),
            (2, FP16, 0x7FA0_0000, 0x3C00, 0x3C00),
            // −0 cases.
            (1, BF16, 0x8000_0000, 0x8000, 0x3F80),
            (1, BF16, 0x8000_0000, 0x0000, 0x3F80),
            (1, BF16, 1.0f32.to_bits(), 0xBF80, 0x3F80),
            // fp16 subnormal × subnormal, subnormal × normal.
            (2, FP16, 0, 0x0001, 0x0001),
            (2, FP16, 0x8000_0000, 0x8001, 0x0001),
            (2, FP16, 0x3F80_0000, 0x0155, 0x7BFF),
            // bf16 subnormal operands.
            (1, BF16, 0, 0x0001, 0x7F00),
            (1, BF16, 0x0000_0003, 0x0045, 0x8012),
        ];
        for l in INTERLEAVES {
            let mut pe = new_pe(l);
            for &(prec, format, acc, a, b) in cases {
                check_single(&mut pe, prec, format, &[(acc, a, b)]);
            }
        }
    }
}
