//! The multiply-accumulate datapath of a processing element, split at its pipeline register.
//!
//! [`MulStage`] decodes the two 16-bit operands (int8, bf16 or fp16), multiplies them on one
//! 16×16 multiplier and normalises the exact floating product (leading one at bit 21). It lies
//! outside the accumulation loop, so it may take a cycle of its own.
//!
//! [`FusedAdd`] is the accumulation loop: `acc' = acc + p` with wrap-around for int8, and for the
//! floating precisions the contract's fused add (docs/numerics.md §2): the exact product is
//! aligned against the binary32 accumulator in a 52-bit window (24 bits of the larger operand,
//! 26 guard bits and a sticky bit), added or subtracted, normalised by a logarithmic shifter,
//! and rounded once to nearest-even, keeping subnormals and overflowing to infinity.
//!
//! Why 52 bits suffice: when the smaller operand is shifted so far that bits fall off the window
//! (exponent difference ≥ 28), the larger operand is either normalised (so the sum's leading one
//! is at most one place lower and the rounding point is ≥ 24 places above the sticky bit) or the
//! accumulator is subnormal or zero (so the rounding quantum is fixed at 2^-149, 27 places above
//! the sticky bit). Cancellation beyond one place only happens for exponent differences ≤ 1,
//! where both operands fit the window and the sum is exact. The tests compare against
//! `golden::numerics::mac::exact` on corner and random operands.
//!
//! Exponents are carried as unsigned 11-bit numbers with an offset of 512 (`t + 512` for the
//! power of two of an operand's leading significand position), so no signed arithmetic is needed.

use rust_hdl::prelude::*;

/// Precision code of int8 GEMMs (same encoding as `regmap::PrecisionCode`).
pub const PREC_INT8: u64 = 0;
/// Precision code of bf16 GEMMs.
pub const PREC_BF16: u64 = 1;
/// Precision code of fp16 GEMMs.
pub const PREC_FP16: u64 = 2;

/// Operand decode, one 16×16 multiply, and product normalisation (combinational).
#[derive(LogicBlock, Default)]
pub struct MulStage {
    /// Precision code (`PREC_*`).
    pub prec: Signal<In, Bits<2>>,
    /// Raw operand from A (int8 in the low byte, or bf16/fp16 bits).
    pub a: Signal<In, Bits<16>>,
    /// Raw operand from B.
    pub b: Signal<In, Bits<16>>,
    /// int8 product, sign-extended to 32 bits.
    pub p_int: Signal<Out, Bits<32>>,
    /// Floating product significand, normalised so that bit 21 is the leading one (if non-zero).
    pub p_sig: Signal<Out, Bits<22>>,
    /// Power of two of `p_sig` bit 21, plus 512.
    pub p_exp: Signal<Out, Bits<11>>,
    /// Sign of the product.
    pub p_sign: Signal<Out, Bit>,
    /// The floating product is zero (meaningful only when neither NaN nor infinite).
    pub p_zero: Signal<Out, Bit>,
    /// The floating product is infinite (meaningful only when not NaN).
    pub p_inf: Signal<Out, Bit>,
    /// The floating product is NaN (a NaN operand, or ∞·0).
    pub p_nan: Signal<Out, Bit>,
    a_raw: Signal<Local, Bits<11>>,
    b_raw: Signal<Local, Bits<11>>,
    a_e: Signal<Local, Bits<11>>,
    b_e: Signal<Local, Bits<11>>,
    a_ones: Signal<Local, Bit>,
    b_ones: Signal<Local, Bit>,
    a_fz: Signal<Local, Bit>,
    b_fz: Signal<Local, Bit>,
    a_neg: Signal<Local, Bit>,
    b_neg: Signal<Local, Bit>,
    a_zero: Signal<Local, Bit>,
    b_zero: Signal<Local, Bit>,
    a_inf: Signal<Local, Bit>,
    b_inf: Signal<Local, Bit>,
    a_nan: Signal<Local, Bit>,
    b_nan: Signal<Local, Bit>,
    mul_a: Signal<Local, Bits<16>>,
    mul_b: Signal<Local, Bits<16>>,
    prod: Signal<Local, Bits<32>>,
    n0: Signal<Local, Bits<22>>,
    n1: Signal<Local, Bits<22>>,
    n2: Signal<Local, Bits<22>>,
    n3: Signal<Local, Bits<22>>,
    n4: Signal<Local, Bits<22>>,
    z16: Signal<Local, Bits<11>>,
    z8: Signal<Local, Bits<11>>,
    z4: Signal<Local, Bits<11>>,
    z2: Signal<Local, Bits<11>>,
    z1: Signal<Local, Bits<11>>,
    exp_offset: Signal<Local, Bits<11>>,
}

impl Logic for MulStage {
    #[hdl_gen]
    fn update(&mut self) {
        // Field extraction per format. Biased exponents become "effective" (0 → 1), so that
        // subnormals and normals share one formula; significands get their implicit bit and are
        // left-aligned to 11 bits (bf16's 8-bit significand is shifted up by 3).
        self.a_neg.next = self.a.val().get_bit(15);
        self.b_neg.next = self.b.val().get_bit(15);
        if self.prec.val() == 2 {
            // fp16 (PREC_FP16)
            self.a_ones.next = self.a.val().get_bits::<5>(10) == 31;
            self.b_ones.next = self.b.val().get_bits::<5>(10) == 31;
            self.a_fz.next = self.a.val().get_bits::<10>(0) == 0;
            self.b_fz.next = self.b.val().get_bits::<10>(0) == 0;
            self.a_raw.next = bit_cast::<11, 5>(self.a.val().get_bits::<5>(10));
            self.b_raw.next = bit_cast::<11, 5>(self.b.val().get_bits::<5>(10));
            self.a_zero.next = self.a.val().get_bits::<15>(0) == 0;
            self.b_zero.next = self.b.val().get_bits::<15>(0) == 0;
            self.mul_a.next = bit_cast::<16, 10>(self.a.val().get_bits::<10>(0));
            self.mul_b.next = bit_cast::<16, 10>(self.b.val().get_bits::<10>(0));
            if self.a.val().get_bits::<5>(10) != 0 {
                self.mul_a.next = bit_cast::<16, 10>(self.a.val().get_bits::<10>(0)) | 0x400;
            }
            if self.b.val().get_bits::<5>(10) != 0 {
                self.mul_b.next = bit_cast::<16, 10>(self.b.val().get_bits::<10>(0)) | 0x400;
            }
            // t = E_eff − 15 for each operand; product bit 21 weighs 2^(ta + tb + 1).
            self.exp_offset.next = 483.into();
        } else {
            self.a_ones.next = self.a.val().get_bits::<8>(7) == 255;
            self.b_ones.next = self.b.val().get_bits::<8>(7) == 255;
            self.a_fz.next = self.a.val().get_bits::<7>(0) == 0;
            self.b_fz.next = self.b.val().get_bits::<7>(0) == 0;
            self.a_raw.next = bit_cast::<11, 8>(self.a.val().get_bits::<8>(7));
            self.b_raw.next = bit_cast::<11, 8>(self.b.val().get_bits::<8>(7));
            self.a_zero.next = self.a.val().get_bits::<15>(0) == 0;
            self.b_zero.next = self.b.val().get_bits::<15>(0) == 0;
            self.mul_a.next = bit_cast::<16, 7>(self.a.val().get_bits::<7>(0)) << 3;
            self.mul_b.next = bit_cast::<16, 7>(self.b.val().get_bits::<7>(0)) << 3;
            if self.a.val().get_bits::<8>(7) != 0 {
                self.mul_a.next = (bit_cast::<16, 7>(self.a.val().get_bits::<7>(0)) << 3) | 0x400;
            }
            if self.b.val().get_bits::<8>(7) != 0 {
                self.mul_b.next = (bit_cast::<16, 7>(self.b.val().get_bits::<7>(0)) << 3) | 0x400;
            }
            // t = E_eff − 127; 512 + ta + tb + 1 = Ea + Eb + 259.
            self.exp_offset.next = 259.into();
            if self.prec.val() == 0 {
                // int8 (PREC_INT8)
                // int8: multiply magnitudes (|−128| = 128 fits 8 bits), negate afterwards.
                self.a_neg.next = self.a.val().get_bit(7);
                self.b_neg.next = self.b.val().get_bit(7);
                self.mul_a.next = bit_cast::<16, 8>(self.a.val().get_bits::<8>(0));
                self.mul_b.next = bit_cast::<16, 8>(self.b.val().get_bits::<8>(0));
                if self.a.val().get_bit(7) {
                    self.mul_a.next =
                        (0x100 - bit_cast::<16, 8>(self.a.val().get_bits::<8>(0))) & 0xFF;
                }
                if self.b.val().get_bit(7) {
                    self.mul_b.next =
                        (0x100 - bit_cast::<16, 8>(self.b.val().get_bits::<8>(0))) & 0xFF;
                }
            }
        }
        self.a_e.next = self.a_raw.val();
        if self.a_raw.val() == 0 {
            self.a_e.next = 1.into();
        }
        self.b_e.next = self.b_raw.val();
        if self.b_raw.val() == 0 {
            self.b_e.next = 1.into();
        }
        self.a_inf.next = self.a_ones.val() & self.a_fz.val();
        self.b_inf.next = self.b_ones.val() & self.b_fz.val();
        self.a_nan.next = self.a_ones.val() & !self.a_fz.val();
        self.b_nan.next = self.b_ones.val() & !self.b_fz.val();

        // The one multiplier (16×16, as rust-hdl provides).
        self.prod.next = self.mul_a.val() * self.mul_b.val();
        self.p_sign.next = self.a_neg.val() ^ self.b_neg.val();
        self.p_int.next = self.prod.val();
        if self.a_neg.val() ^ self.b_neg.val() {
            self.p_int.next = 0 - self.prod.val();
        }

        // Normalise the 22-bit product with a logarithmic shifter (leading zeros 0..=21).
        self.n0.next = self.prod.val().get_bits::<22>(0);
        self.n1.next = self.n0.val();
        self.z16.next = 0.into();
        if self.n0.val().get_bits::<16>(6) == 0 {
            self.n1.next = self.n0.val() << 16;
            self.z16.next = 16.into();
        }
        self.n2.next = self.n1.val();
        self.z8.next = 0.into();
        if self.n1.val().get_bits::<8>(14) == 0 {
            self.n2.next = self.n1.val() << 8;
            self.z8.next = 8.into();
        }
        self.n3.next = self.n2.val();
        self.z4.next = 0.into();
        if self.n2.val().get_bits::<4>(18) == 0 {
            self.n3.next = self.n2.val() << 4;
            self.z4.next = 4.into();
        }
        self.n4.next = self.n3.val();
        self.z2.next = 0.into();
        if self.n3.val().get_bits::<2>(20) == 0 {
            self.n4.next = self.n3.val() << 2;
            self.z2.next = 2.into();
        }
        self.p_sig.next = self.n4.val();
        self.z1.next = 0.into();
        if !self.n4.val().get_bit(21) {
            self.p_sig.next = self.n4.val() << 1;
            self.z1.next = 1.into();
        }
        self.p_exp.next = self.a_e.val() + self.b_e.val() + self.exp_offset.val()
            - self.z16.val()
            - self.z8.val()
            - self.z4.val()
            - self.z2.val()
            - self.z1.val();

        self.p_zero.next = self.a_zero.val() | self.b_zero.val();
        self.p_inf.next = self.a_inf.val() | self.b_inf.val();
        self.p_nan.next = self.a_nan.val()
            | self.b_nan.val()
            | (self.a_inf.val() & self.b_zero.val())
            | (self.a_zero.val() & self.b_inf.val());
    }
}

/// The accumulation loop: `acc + p` (int8, wrapping) or the contract's fused add rounded once
/// to binary32 (combinational).
#[derive(LogicBlock, Default)]
pub struct FusedAdd {
    /// Integer (int8 → i32) accumulation instead of floating.
    pub is_int: Signal<In, Bit>,
    /// The accumulator (i32 or binary32 bits).
    pub acc: Signal<In, Bits<32>>,
    /// int8 product (from [`MulStage`]).
    pub p_int: Signal<In, Bits<32>>,
    /// Normalised floating product significand.
    pub p_sig: Signal<In, Bits<22>>,
    /// Power of two of `p_sig` bit 21, plus 512.
    pub p_exp: Signal<In, Bits<11>>,
    /// Product sign.
    pub p_sign: Signal<In, Bit>,
    /// Product is zero.
    pub p_zero: Signal<In, Bit>,
    /// Product is infinite.
    pub p_inf: Signal<In, Bit>,
    /// Product is NaN.
    pub p_nan: Signal<In, Bit>,
    /// The new accumulator.
    pub sum: Signal<Out, Bits<32>>,
    a_e: Signal<Local, Bits<11>>,
    a_fnz: Signal<Local, Bit>,
    a_neg: Signal<Local, Bit>,
    a_nan: Signal<Local, Bit>,
    a_inf: Signal<Local, Bit>,
    a_zero: Signal<Local, Bit>,
    a_sig: Signal<Local, Bits<24>>,
    tc: Signal<Local, Bits<11>>,
    big_is_p: Signal<Local, Bit>,
    exp_diff: Signal<Local, Bits<11>>,
    dc: Signal<Local, Bits<6>>,
    tx: Signal<Local, Bits<11>>,
    big_w: Signal<Local, Bits<52>>,
    lit_full: Signal<Local, Bits<52>>,
    lit_sh: Signal<Local, Bits<52>>,
    lit_w: Signal<Local, Bits<52>>,
    sticky: Signal<Local, Bit>,
    big_neg: Signal<Local, Bit>,
    lit_neg: Signal<Local, Bit>,
    mag: Signal<Local, Bits<52>>,
    r_neg: Signal<Local, Bit>,
    limit: Signal<Local, Bits<7>>,
    nz0: Signal<Local, Bits<52>>,
    nz1: Signal<Local, Bits<52>>,
    nz2: Signal<Local, Bits<52>>,
    nz3: Signal<Local, Bits<52>>,
    nz4: Signal<Local, Bits<52>>,
    nz5: Signal<Local, Bits<52>>,
    lim1: Signal<Local, Bits<7>>,
    lim2: Signal<Local, Bits<7>>,
    lim3: Signal<Local, Bits<7>>,
    lim4: Signal<Local, Bits<7>>,
    lim5: Signal<Local, Bits<7>>,
    lim6: Signal<Local, Bits<7>>,
    shift: Signal<Local, Bits<6>>,
    norm: Signal<Local, Bits<52>>,
    sig24: Signal<Local, Bits<24>>,
    round_up: Signal<Local, Bits<32>>,
    eb_pre: Signal<Local, Bits<11>>,
    overflow: Signal<Local, Bit>,
    enc: Signal<Local, Bits<32>>,
    fsum: Signal<Local, Bits<32>>,
}

impl Logic for FusedAdd {
    #[hdl_gen]
    fn update(&mut self) {
        // Accumulator decode.
        self.a_neg.next = self.acc.val().get_bit(31);
        self.a_e.next = bit_cast::<11, 8>(self.acc.val().get_bits::<8>(23));
        self.a_fnz.next = self.acc.val().get_bits::<23>(0) != 0;
        self.a_nan.next = (self.a_e.val() == 255) & self.a_fnz.val();
        self.a_inf.next = (self.a_e.val() == 255) & !self.a_fnz.val();
        self.a_zero.next = (self.a_e.val() == 0) & !self.a_fnz.val();
        self.a_sig.next = bit_cast::<24, 23>(self.acc.val().get_bits::<23>(0));
        // A subnormal or zero accumulator sits at t = −126 (offset: 386) with no implicit bit.
        self.tc.next = 386.into();
        if self.a_e.val() != 0 {
            self.a_sig.next = bit_cast::<24, 23>(self.acc.val().get_bits::<23>(0)) | 0x80_0000;
            self.tc.next = self.a_e.val() + 385;
        }

        // Order the operands by leading-position exponent; align the other one.
        self.big_is_p.next = self.p_exp.val() > self.tc.val();
        if self.big_is_p.val() {
            self.exp_diff.next = self.p_exp.val() - self.tc.val();
            self.tx.next = self.p_exp.val();
            self.big_w.next = bit_cast::<52, 22>(self.p_sig.val()) << 29;
            self.lit_full.next = bit_cast::<52, 24>(self.a_sig.val()) << 27;
            self.big_neg.next = self.p_sign.val();
            self.lit_neg.next = self.a_neg.val();
        } else {
            self.exp_diff.next = self.tc.val() - self.p_exp.val();
            self.tx.next = self.tc.val();
            self.big_w.next = bit_cast::<52, 24>(self.a_sig.val()) << 27;
            self.lit_full.next = bit_cast::<52, 22>(self.p_sig.val()) << 29;
            self.big_neg.next = self.a_neg.val();
            self.lit_neg.next = self.p_sign.val();
        }
        self.dc.next = self.exp_diff.val().get_bits::<6>(0);
        if self.exp_diff.val() > 52 {
            self.dc.next = 52.into();
        }
        self.lit_sh.next = self.lit_full.val() >> self.dc.val();
        // Sticky: any set bit below the shift distance (bit i is lost when i < dc). Only bits
        // 27..=50 of lit_full can be set. A flat OR of per-bit tests, no carry chain.
        self.sticky.next = false;
        for i in 27..51 {
            if self.lit_full.val().get_bit(i) & (self.dc.val().index() > i) {
                self.sticky.next = true;
            }
        }
        self.lit_w.next = self.lit_sh.val();
        if self.sticky.val() {
            self.lit_w.next = self.lit_sh.val() | 1;
        }

        // Add or subtract magnitudes; the result is a non-negative magnitude and a sign.
        self.r_neg.next = self.big_neg.val();
        if self.big_neg.val() == self.lit_neg.val() {
            self.mag.next = self.big_w.val() + self.lit_w.val();
        } else if self.lit_w.val() > self.big_w.val() {
            self.mag.next = self.lit_w.val() - self.big_w.val();
            self.r_neg.next = self.lit_neg.val();
        } else {
            self.mag.next = self.big_w.val() - self.lit_w.val();
        }

        // Normalise: shift left by min(leading zeros, limit), where the limit keeps the exponent
        // at or above the subnormal one (t = −126, offset 386). A logarithmic shifter takes
        // 32, 16, …, 1 places whenever those top bits are zero and the remaining limit allows it
        // (the greedy choice builds min(lz, limit) bit by bit).
        self.limit.next = 63.into();
        if self.tx.val() < 448 {
            self.limit.next = bit_cast::<7, 11>(self.tx.val() - 385);
        }
        self.nz0.next = self.mag.val();
        self.nz1.next = self.nz0.val();
        self.lim1.next = self.limit.val();
        if (self.nz0.val().get_bits::<32>(20) == 0) & (self.limit.val() >= 32) {
            self.nz1.next = self.nz0.val() << 32;
            self.lim1.next = self.limit.val() - 32;
        }
        self.nz2.next = self.nz1.val();
        self.lim2.next = self.lim1.val();
        if (self.nz1.val().get_bits::<16>(36) == 0) & (self.lim1.val() >= 16) {
            self.nz2.next = self.nz1.val() << 16;
            self.lim2.next = self.lim1.val() - 16;
        }
        self.nz3.next = self.nz2.val();
        self.lim3.next = self.lim2.val();
        if (self.nz2.val().get_bits::<8>(44) == 0) & (self.lim2.val() >= 8) {
            self.nz3.next = self.nz2.val() << 8;
            self.lim3.next = self.lim2.val() - 8;
        }
        self.nz4.next = self.nz3.val();
        self.lim4.next = self.lim3.val();
        if (self.nz3.val().get_bits::<4>(48) == 0) & (self.lim3.val() >= 4) {
            self.nz4.next = self.nz3.val() << 4;
            self.lim4.next = self.lim3.val() - 4;
        }
        self.nz5.next = self.nz4.val();
        self.lim5.next = self.lim4.val();
        if (self.nz4.val().get_bits::<2>(50) == 0) & (self.lim4.val() >= 2) {
            self.nz5.next = self.nz4.val() << 2;
            self.lim5.next = self.lim4.val() - 2;
        }
        self.norm.next = self.nz5.val();
        self.lim6.next = self.lim5.val();
        if !self.nz5.val().get_bit(51) & (self.lim5.val() >= 1) {
            self.norm.next = self.nz5.val() << 1;
            self.lim6.next = self.lim5.val() - 1;
        }
        self.shift.next = bit_cast::<6, 7>(self.limit.val() - self.lim6.val());

        // Round to nearest even at bit 28; bits 26..0 are sticky.
        self.sig24.next = self.norm.val().get_bits::<24>(28);
        self.round_up.next = 0.into();
        if self.norm.val().get_bit(27)
            & ((self.norm.val().get_bits::<27>(0) != 0) | self.norm.val().get_bit(28))
        {
            self.round_up.next = 1.into();
        }
        self.eb_pre.next = 0.into();
        self.overflow.next = false;
        if self.norm.val().get_bit(51) {
            self.eb_pre.next = self.tx.val() - 385 - bit_cast::<11, 6>(self.shift.val());
            self.overflow.next = self.tx.val() >= (bit_cast::<11, 6>(self.shift.val()) + 639);
        }
        // Exponent field minus one plus the significand with its implicit bit: a rounding carry
        // ripples into the exponent (and into the infinity encoding at the top).
        self.enc.next = (bit_cast::<32, 11>(self.eb_pre.val()) << 23)
            + bit_cast::<32, 24>(self.sig24.val())
            + self.round_up.val();
        if self.overflow.val() {
            self.enc.next = 0x7F80_0000.into();
        }
        self.fsum.next = self.enc.val() & 0x7FFF_FFFF;
        if self.r_neg.val() {
            self.fsum.next = self.enc.val() | 0x8000_0000_u64;
        }
        if self.mag.val() == 0 {
            self.fsum.next = 0.into(); // exact cancellation: +0
        }

        // Specials, in priority order.
        if self.is_int.val() {
            self.sum.next = self.acc.val() + self.p_int.val();
        } else if self.a_nan.val()
            | self.p_nan.val()
            | (self.a_inf.val() & self.p_inf.val() & (self.a_neg.val() != self.p_sign.val()))
        {
            self.sum.next = 0x7FC0_0000.into();
        } else if self.a_inf.val() {
            self.sum.next = self.acc.val();
        } else if self.p_inf.val() {
            self.sum.next = 0x7F80_0000.into();
            if self.p_sign.val() {
                self.sum.next = 0xFF80_0000_u64.into();
            }
        } else if self.p_zero.val() {
            self.sum.next = self.acc.val();
            if self.a_zero.val() {
                // (−0) + (−0) = −0; any other zero sum is +0.
                self.sum.next = 0.into();
                if self.a_neg.val() & self.p_sign.val() {
                    self.sum.next = 0x8000_0000_u64.into();
                }
            }
        } else {
            self.sum.next = self.fsum.val();
        }
    }
}
