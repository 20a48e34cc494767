//! The processing element: one multiply-accumulate per cycle, output stationary.
//!
//! Pipeline (one k step enters per cycle):
//!
//! ```text
//! cycle 0   a_in, b_in, v/f/l_in  ──► input registers (also forwarded right/down: a_out, b_out)
//! cycle 1   MulStage (decode, 16×16 multiply, normalise)  ──► product registers
//! cycle 2   FusedAdd(first ? init : acc, product)  ──► acc (and, on the last step, the drain register)
//! ```
//!
//! `v` marks a valid k step, `f` the first step of a tile (the accumulator starts from the
//! init register, which holds `+0` or the tile's `C` value), `l` the last (the rounded sum is
//! captured into the drain register, from which it shifts out down its column while the next
//! tile accumulates). Two shift chains run through every column: `ci_*` loads init values, `sh_*`
//! drains results. The controller guarantees that a chain never shifts while a PE of the column
//! still needs the value it holds (see `docs/hardware.md`).

use rust_hdl::prelude::*;

use super::mac::{FusedAdd, MulStage};

/// One processing element.
#[derive(LogicBlock, Default)]
pub struct Pe {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset (clears the valid flags).
    pub reset: Signal<In, Bit>,
    /// Precision code of the running GEMM (static while it runs).
    pub prec: Signal<In, Bits<2>>,
    /// Operand from the left neighbour (A).
    pub a_in: Signal<In, Bits<16>>,
    /// Operand from the upper neighbour (B).
    pub b_in: Signal<In, Bits<16>>,
    /// This k step is valid.
    pub v_in: Signal<In, Bit>,
    /// First k step of a tile.
    pub f_in: Signal<In, Bit>,
    /// Last k step of a tile.
    pub l_in: Signal<In, Bit>,
    /// A forwarded to the right neighbour (one cycle later).
    pub a_out: Signal<Out, Bits<16>>,
    /// B forwarded to the lower neighbour.
    pub b_out: Signal<Out, Bits<16>>,
    /// Valid flag forwarded right.
    pub v_out: Signal<Out, Bit>,
    /// First flag forwarded right.
    pub f_out: Signal<Out, Bit>,
    /// Last flag forwarded right.
    pub l_out: Signal<Out, Bit>,
    /// Init chain input (from the PE above).
    pub ci_in: Signal<In, Bits<32>>,
    /// Shift the init chain.
    pub ci_shift: Signal<In, Bit>,
    /// This PE's init register (to the PE below).
    pub ci_out: Signal<Out, Bits<32>>,
    /// Drain chain input (from the PE above).
    pub sh_in: Signal<In, Bits<32>>,
    /// Shift the drain chain.
    pub sh_shift: Signal<In, Bit>,
    /// This PE's drain register (to the PE below).
    pub sh_out: Signal<Out, Bits<32>>,
    /// High for one cycle after a result was captured into the drain register.
    pub captured: Signal<Out, Bit>,
    a_r: DFF<Bits<16>>,
    b_r: DFF<Bits<16>>,
    v_r: DFF<Bit>,
    f_r: DFF<Bit>,
    l_r: DFF<Bit>,
    m_int: DFF<Bits<32>>,
    m_sig: DFF<Bits<22>>,
    m_exp: DFF<Bits<11>>,
    m_sign: DFF<Bit>,
    m_zero: DFF<Bit>,
    m_inf: DFF<Bit>,
    m_nan: DFF<Bit>,
    m_v: DFF<Bit>,
    m_f: DFF<Bit>,
    m_l: DFF<Bit>,
    acc: DFF<Bits<32>>,
    ci: DFF<Bits<32>>,
    sh: DFF<Bits<32>>,
    cap: DFF<Bit>,
    mul: MulStage,
    add: FusedAdd,
}

impl Logic for Pe {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, a_r, b_r, v_r, f_r, l_r, m_int, m_sig, m_exp, m_sign, m_zero, m_inf,
            m_nan, m_v, m_f, m_l, acc, ci, sh, cap
        );
        // Stage 0: input registers, forwarded to the neighbours.
        self.a_r.d.next = self.a_in.val();
        self.b_r.d.next = self.b_in.val();
        self.v_r.d.next = self.v_in.val();
        self.f_r.d.next = self.f_in.val();
        self.l_r.d.next = self.l_in.val();
        self.a_out.next = self.a_r.q.val();
        self.b_out.next = self.b_r.q.val();
        self.v_out.next = self.v_r.q.val();
        self.f_out.next = self.f_r.q.val();
        self.l_out.next = self.l_r.q.val();

        // Stage 1: multiply.
        self.mul.prec.next = self.prec.val();
        self.mul.a.next = self.a_r.q.val();
        self.mul.b.next = self.b_r.q.val();
        self.m_int.d.next = self.mul.p_int.val();
        self.m_sig.d.next = self.mul.p_sig.val();
        self.m_exp.d.next = self.mul.p_exp.val();
        self.m_sign.d.next = self.mul.p_sign.val();
        self.m_zero.d.next = self.mul.p_zero.val();
        self.m_inf.d.next = self.mul.p_inf.val();
        self.m_nan.d.next = self.mul.p_nan.val();
        self.m_v.d.next = self.v_r.q.val();
        self.m_f.d.next = self.f_r.q.val();
        self.m_l.d.next = self.l_r.q.val();

        // Stage 2: accumulate.
        self.add.is_int.next = self.prec.val() == 0;
        self.add.acc.next = self.acc.q.val();
        if self.m_f.q.val() {
            self.add.acc.next = self.ci.q.val();
        }
        self.add.p_int.next = self.m_int.q.val();
        self.add.p_sig.next = self.m_sig.q.val();
        self.add.p_exp.next = self.m_exp.q.val();
        self.add.p_sign.next = self.m_sign.q.val();
        self.add.p_zero.next = self.m_zero.q.val();
        self.add.p_inf.next = self.m_inf.q.val();
        self.add.p_nan.next = self.m_nan.q.val();
        if self.m_v.q.val() {
            self.acc.d.next = self.add.sum.val();
        }

        // Init and drain chains; a capture takes precedence over a shift.
        if self.ci_shift.val() {
            self.ci.d.next = self.ci_in.val();
        }
        self.ci_out.next = self.ci.q.val();
        if self.sh_shift.val() {
            self.sh.d.next = self.sh_in.val();
        }
        self.cap.d.next = false;
        if self.m_v.q.val() & self.m_l.q.val() {
            self.sh.d.next = self.add.sum.val();
            self.cap.d.next = true;
        }
        self.sh_out.next = self.sh.q.val();
        self.captured.next = self.cap.q.val();

        if self.reset.val() {
            self.v_r.d.next = false;
            self.m_v.d.next = false;
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

    fn new_pe(prec: u64) -> Pe {
        let mut pe = Pe::default();
        pe.connect_all();
        pe.prec.next = prec.into();
        pe.reset.next = true;
        settle(&mut pe);
        tick(&mut pe, |p| &mut p.clock);
        pe.reset.next = false;
        pe
    }

    /// Runs one tile of `steps` (a, b) through the PE starting from `init`; returns the result.
    fn run_tile(pe: &mut Pe, init: u32, steps: &[(u16, u16)]) -> u32 {
        pe.ci_in.next = u64::from(init).into();
        pe.ci_shift.next = true;
        tick(pe, |p| &mut p.clock);
        pe.ci_shift.next = false;
        for (n, &(a, b)) in steps.iter().enumerate() {
            pe.a_in.next = u64::from(a).into();
            pe.b_in.next = u64::from(b).into();
            pe.v_in.next = true;
            pe.f_in.next = n == 0;
            pe.l_in.next = n + 1 == steps.len();
            tick(pe, |p| &mut p.clock);
        }
        pe.v_in.next = false;
        pe.f_in.next = false;
        pe.l_in.next = false;
        for _ in 0..3 {
            tick(pe, |p| &mut p.clock);
        }
        pe.sh_out.val().to_u64() as u32
    }

    fn float_steps(format: FloatFormat, init: u32, steps: &[(u16, u16)]) -> u32 {
        steps.iter().fold(init, |acc, &(a, b)| {
            mac::exact(format, f32::from_bits(acc), u32::from(a), u32::from(b)).to_bits()
        })
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

    fn check_corners(prec: u64, format: FloatFormat, stride: usize) {
        let mut pe = new_pe(prec);
        let codes = corner_codes(format);
        let mut n = 0usize;
        for &acc in &corner_accs() {
            for &a in &codes {
                for &b in codes.iter().skip(n % stride).step_by(stride) {
                    let want = float_steps(format, acc, &[(a, b)]);
                    let got = run_tile(&mut pe, acc, &[(a, b)]);
                    assert_eq!(
                        got, want,
                        "{} acc={acc:#010x} a={a:#06x} b={b:#06x}: got {got:#010x} want {want:#010x}",
                        format.name
                    );
                }
                n += 1;
            }
        }
    }

    #[test]
    fn bf16_corner_operands_match_golden() {
        check_corners(1, BF16, 9);
    }

    #[test]
    fn fp16_corner_operands_match_golden() {
        check_corners(2, FP16, 9);
    }

    /// Accumulators near −a·b (cancellation), near ties and below the accumulator's ulp.
    fn random_cases(prec: u64, format: FloatFormat, count: usize, seed: u64) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut pe = new_pe(prec);
        for i in 0..count {
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
            let want = float_steps(format, acc, &[(a, b)]);
            let got = run_tile(&mut pe, acc, &[(a, b)]);
            assert_eq!(
                got, want,
                "{} acc={acc:#010x} a={a:#06x} b={b:#06x}: got {got:#010x} want {want:#010x}",
                format.name
            );
        }
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
        random_cases(1, BF16, case_count(1500), 1);
    }

    #[test]
    fn fp16_random_operands_match_golden() {
        random_cases(2, FP16, case_count(1500), 2);
    }

    #[test]
    fn dot_products_accumulate_k_ascending() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for (prec, format) in [(1, BF16), (2, FP16)] {
            let mut pe = new_pe(prec);
            for len in [1usize, 2, 5, 17] {
                // Small exponents so that the sums cancel and round often.
                let steps: Vec<(u16, u16)> = (0..len)
                    .map(|_| {
                        let x = format.encode_rne(rng.random_range(-4.0f32..4.0)) as u16;
                        let y = format.encode_rne(rng.random_range(-4.0f32..4.0)) as u16;
                        (x, y)
                    })
                    .collect();
                let init = rng.random_range(-8.0f32..8.0).to_bits();
                assert_eq!(
                    run_tile(&mut pe, init, &steps),
                    float_steps(format, init, &steps)
                );
            }
        }
    }

    #[test]
    fn int8_wraps_and_covers_extremes() {
        let mut pe = new_pe(0);
        let extremes = [0u16, 1, 0x7F, 0x80, 0x81, 0xFF];
        for &a in &extremes {
            for &b in &extremes {
                for init in [0u32, 0x7FFF_FFFF, 0x8000_0000, 12345] {
                    let want = mac::mac_int8(init as i32, a as u8 as i8, b as u8 as i8) as u32;
                    assert_eq!(
                        run_tile(&mut pe, init, &[(a, b)]),
                        want,
                        "{a:#x}·{b:#x}+{init:#x}"
                    );
                }
            }
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let steps: Vec<(u16, u16)> = (0..20)
            .map(|_| (rng.random::<u8>().into(), rng.random::<u8>().into()))
            .collect();
        let want = steps.iter().fold(0i32, |acc, &(a, b)| {
            mac::mac_int8(acc, a as u8 as i8, b as u8 as i8)
        });
        assert_eq!(run_tile(&mut pe, 0, &steps), want as u32);
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
            // fp16 subnormal × subnormal.
            (2, FP16, 0, 0x0001, 0x0001),
            (2, FP16, 0x8000_0000, 0x8001, 0x0001),
        ];
        for &(prec, format, acc, a, b) in cases {
            let mut pe = new_pe(prec);
            let want = float_steps(format, acc, &[(a, b)]);
            let got = run_tile(&mut pe, acc, &[(a, b)]);
            assert_eq!(
                got, want,
                "{} acc={acc:#010x} a={a:#06x} b={b:#06x}",
                format.name
            );
        }
    }
}
