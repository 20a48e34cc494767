//! The multiply half of a processing element: four combinational stages, each followed by a
//! pipeline register in the PE. They lie outside the accumulation loop, so they can be
//! pipelined freely; four short stages keep every one of them well inside a 100 MHz cycle.
//!
//! ```text
//! M0 MulDecode  operand fields per precision, specials, effective exponents, leading zeros
//!               of the significands (subnormal operands)
//! M1 MulAlign   normalise both significands (leading one at bit 10); exponent sum
//! M2 MulProd    one 11×11 multiply (rust-hdl's 16×16 multiplier, one DSP); the exponent
//!               minus the normalisation shifts beside it
//! M3 MulNorm    the product of two normalised significands has its leading one at bit 21
//!               or 20: one conditional shift; int8 products get their sign
//! ```
//!
//! Exponents are unsigned 11-bit numbers with an offset of 512 (`t + 512` for the power of two
//! of the product's bit 21), as in the fused adder ([`super::fadd`]).
//!
//! Bundles between the stages (bit ranges, least significant first):
//!
//! | bundle | layout |
//! |---|---|
//! | M0 → M1 (52) | `a_sig[10:0] a_z[14:11] b_sig[25:15] b_z[29:26] a_e[37:30] b_e[45:38] sign[46] zero[47] inf[48] nan[49] is_int[50] fp16[51]` |
//! | M1 → M2 (46) | `a_sig[10:0] b_sig[21:11] e_sum[32:22] sign[33] zero[34] inf[35] nan[36] is_int[37] a_z[41:38] b_z[45:42]` |
//! | M2 → M3 (38) | `prod[21:0] e[32:22] sign[33] zero[34] inf[35] nan[36] is_int[37]` |
//! | M3 → adder (71) | `p_sig[21:0] p_tb[33:22] sign[34] zero[35] inf[36] nan[37] is_int[38] p_int[70:39]` |
//!
//! `p_tb = p_exp − 385` (12-bit two's complement; tiny products make it negative) is the
//! product's exponent in the form the adder compares and normalises with: the distance to the
//! subnormal exponent of f32 (see [`super::fadd`]). Subtracting the bias here, outside the
//! accumulation loop, keeps a carry chain off the adder's first stage.

use rust_hdl::prelude::*;

/// Precision code of int8 GEMMs (same encoding as `regmap::PrecisionCode`).
pub const PREC_INT8: u64 = 0;
/// Precision code of bf16 GEMMs.
pub const PREC_BF16: u64 = 1;
/// Precision code of fp16 GEMMs.
pub const PREC_FP16: u64 = 2;

/// M0: decodes the two raw operands of one precision.
#[derive(LogicBlock, Default)]
pub struct MulDecode {
    /// Precision code (`PREC_*`).
    pub prec: Signal<In, Bits<2>>,
    /// Raw operand from A (int8 in the low byte, or bf16/fp16 bits).
    pub a: Signal<In, Bits<16>>,
    /// Raw operand from B.
    pub b: Signal<In, Bits<16>>,
    /// The M0 → M1 bundle.
    pub o: Signal<Out, Bits<52>>,
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
    a_fsig: Signal<Local, Bits<11>>,
    b_fsig: Signal<Local, Bits<11>>,
    a_sig: Signal<Local, Bits<11>>,
    b_sig: Signal<Local, Bits<11>>,
    a_z: Signal<Local, Bits<4>>,
    b_z: Signal<Local, Bits<4>>,
    is_int: Signal<Local, Bit>,
    p_nan: Signal<Local, Bit>,
}

impl Logic for MulDecode {
    #[hdl_gen]
    fn update(&mut self) {
        // Field extraction per format. Biased exponents become "effective" (0 → 1), so that
        // subnormals and normals share one formula; significands get their implicit bit and are
        // left-aligned to 11 bits (bf16's 8-bit significand is shifted up by 3).
        self.is_int.next = self.prec.val() == 0;
        self.a_neg.next = self.a.val().get_bit(15);
        self.b_neg.next = self.b.val().get_bit(15);
        self.a_zero.next = self.a.val().get_bits::<15>(0) == 0;
        self.b_zero.next = self.b.val().get_bits::<15>(0) == 0;
        if self.prec.val() == 2 {
            // fp16 (PREC_FP16)
            self.a_ones.next = self.a.val().get_bits::<5>(10) == 31;
            self.b_ones.next = self.b.val().get_bits::<5>(10) == 31;
            self.a_fz.next = self.a.val().get_bits::<10>(0) == 0;
            self.b_fz.next = self.b.val().get_bits::<10>(0) == 0;
            self.a_raw.next = bit_cast::<11, 5>(self.a.val().get_bits::<5>(10));
            self.b_raw.next = bit_cast::<11, 5>(self.b.val().get_bits::<5>(10));
            self.a_fsig.next = bit_cast::<11, 10>(self.a.val().get_bits::<10>(0));
            self.b_fsig.next = bit_cast::<11, 10>(self.b.val().get_bits::<10>(0));
            if self.a.val().get_bits::<5>(10) != 0 {
                self.a_fsig.next = bit_cast::<11, 10>(self.a.val().get_bits::<10>(0)) | 0x400;
            }
            if self.b.val().get_bits::<5>(10) != 0 {
                self.b_fsig.next = bit_cast::<11, 10>(self.b.val().get_bits::<10>(0)) | 0x400;
            }
        } else {
            self.a_ones.next = self.a.val().get_bits::<8>(7) == 255;
            self.b_ones.next = self.b.val().get_bits::<8>(7) == 255;
            self.a_fz.next = self.a.val().get_bits::<7>(0) == 0;
            self.b_fz.next = self.b.val().get_bits::<7>(0) == 0;
            self.a_raw.next = bit_cast::<11, 8>(self.a.val().get_bits::<8>(7));
            self.b_raw.next = bit_cast::<11, 8>(self.b.val().get_bits::<8>(7));
            self.a_fsig.next = bit_cast::<11, 7>(self.a.val().get_bits::<7>(0)) << 3;
            self.b_fsig.next = bit_cast::<11, 7>(self.b.val().get_bits::<7>(0)) << 3;
            if self.a.val().get_bits::<8>(7) != 0 {
                self.a_fsig.next = (bit_cast::<11, 7>(self.a.val().get_bits::<7>(0)) << 3) | 0x400;
            }
            if self.b.val().get_bits::<8>(7) != 0 {
                self.b_fsig.next = (bit_cast::<11, 7>(self.b.val().get_bits::<7>(0)) << 3) | 0x400;
            }
        }
        // int8 (PREC_INT8): multiply magnitudes (|−128| = 128 fits), sign afterwards. The
        // negation runs beside the floating significands' leading-zero count, not before it.
        self.a_sig.next = self.a_fsig.val();
        self.b_sig.next = self.b_fsig.val();
        if self.is_int.val() {
            self.a_neg.next = self.a.val().get_bit(7);
            self.b_neg.next = self.b.val().get_bit(7);
            self.a_sig.next = bit_cast::<11, 8>(self.a.val().get_bits::<8>(0));
            self.b_sig.next = bit_cast::<11, 8>(self.b.val().get_bits::<8>(0));
            if self.a.val().get_bit(7) {
                self.a_sig.next = (0x100 - bit_cast::<11, 8>(self.a.val().get_bits::<8>(0))) & 0xFF;
            }
            if self.b.val().get_bit(7) {
                self.b_sig.next = (0x100 - bit_cast::<11, 8>(self.b.val().get_bits::<8>(0))) & 0xFF;
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
        self.p_nan.next = self.a_nan.val()
            | self.b_nan.val()
            | (self.a_inf.val() & self.b_zero.val())
            | (self.a_zero.val() & self.b_inf.val());

        // Leading zeros of the 11-bit significands (non-zero only for subnormal operands; int8
        // magnitudes are not normalised).
        self.a_z.next = 0.into();
        self.b_z.next = 0.into();
        if !self.is_int.val() {
            self.a_z.next = 11.into();
            self.b_z.next = 11.into();
            for i in 0..11 {
                if self.a_fsig.val().get_bit(i) {
                    self.a_z.next = (10 - i).to_bits();
                }
                if self.b_fsig.val().get_bit(i) {
                    self.b_z.next = (10 - i).to_bits();
                }
            }
        }

        self.o.next = bit_cast::<52, 11>(self.a_sig.val())
            | (bit_cast::<52, 4>(self.a_z.val()) << 11)
            | (bit_cast::<52, 11>(self.b_sig.val()) << 15)
            | (bit_cast::<52, 4>(self.b_z.val()) << 26)
            | (bit_cast::<52, 8>(self.a_e.val().get_bits::<8>(0)) << 30)
            | (bit_cast::<52, 8>(self.b_e.val().get_bits::<8>(0)) << 38);
        self.o.next = self
            .o
            .val()
            .replace_bit(46, self.a_neg.val() ^ self.b_neg.val());
        self.o.next = self
            .o
            .val()
            .replace_bit(47, self.a_zero.val() | self.b_zero.val());
        self.o.next = self
            .o
            .val()
            .replace_bit(48, self.a_inf.val() | self.b_inf.val());
        self.o.next = self.o.val().replace_bit(49, self.p_nan.val());
        self.o.next = self.o.val().replace_bit(50, self.is_int.val());
        self.o.next = self.o.val().replace_bit(51, self.prec.val() == 2);
    }
}

/// M1: shifts both significands so that their leading one is at bit 10 (int8 magnitudes pass
/// unchanged) and sums the exponents; the shifts come off the exponent in M2.
#[derive(LogicBlock, Default)]
pub struct MulAlign {
    /// The M0 → M1 bundle.
    pub i: Signal<In, Bits<52>>,
    /// The M1 → M2 bundle.
    pub o: Signal<Out, Bits<46>>,
    a_sig: Signal<Local, Bits<11>>,
    b_sig: Signal<Local, Bits<11>>,
    exp_offset: Signal<Local, Bits<11>>,
    e_sum: Signal<Local, Bits<11>>,
}

impl Logic for MulAlign {
    #[hdl_gen]
    fn update(&mut self) {
        self.a_sig.next = self.i.val().get_bits::<11>(0) << self.i.val().get_bits::<4>(11);
        self.b_sig.next = self.i.val().get_bits::<11>(15) << self.i.val().get_bits::<4>(26);
        // bf16 (and int8, whose exponent is unused): t = E_eff − 127; 512 + ta + tb + 1 =
        // Ea + Eb + 259.
        self.exp_offset.next = 259.into();
        if self.i.val().get_bit(51) {
            // fp16: t = E_eff − 15 for each operand; product bit 21 weighs 2^(ta + tb + 1).
            self.exp_offset.next = 483.into();
        }
        self.e_sum.next = bit_cast::<11, 8>(self.i.val().get_bits::<8>(30))
            + bit_cast::<11, 8>(self.i.val().get_bits::<8>(38))
            + self.exp_offset.val();
        self.o.next = bit_cast::<46, 11>(self.a_sig.val())
            | (bit_cast::<46, 11>(self.b_sig.val()) << 11)
            | (bit_cast::<46, 11>(self.e_sum.val()) << 22)
            | (bit_cast::<46, 5>(self.i.val().get_bits::<5>(46)) << 33)
            | (bit_cast::<46, 4>(self.i.val().get_bits::<4>(11)) << 38)
            | (bit_cast::<46, 4>(self.i.val().get_bits::<4>(26)) << 42);
    }
}

/// M2: the one multiplier (an 11×11 product on rust-hdl's 16×16 multiplier: one DSP block),
/// and beside it the exponent minus the two normalisation shifts.
#[derive(LogicBlock, Default)]
pub struct MulProd {
    /// The M1 → M2 bundle.
    pub i: Signal<In, Bits<46>>,
    /// The M2 → M3 bundle.
    pub o: Signal<Out, Bits<38>>,
    mul_a: Signal<Local, Bits<16>>,
    mul_b: Signal<Local, Bits<16>>,
    prod: Signal<Local, Bits<32>>,
    e: Signal<Local, Bits<11>>,
}

impl Logic for MulProd {
    #[hdl_gen]
    fn update(&mut self) {
        self.mul_a.next = bit_cast::<16, 11>(self.i.val().get_bits::<11>(0));
        self.mul_b.next = bit_cast::<16, 11>(self.i.val().get_bits::<11>(11));
        self.prod.next = self.mul_a.val() * self.mul_b.val();
        self.e.next = self.i.val().get_bits::<11>(22)
            - bit_cast::<11, 4>(self.i.val().get_bits::<4>(38))
            - bit_cast::<11, 4>(self.i.val().get_bits::<4>(42));
        self.o.next = bit_cast::<38, 22>(self.prod.val().get_bits::<22>(0))
            | (bit_cast::<38, 11>(self.e.val()) << 22)
            | (bit_cast::<38, 5>(self.i.val().get_bits::<5>(33)) << 33);
    }
}

/// M3: the product of two normalised significands lies in [2^20, 2^22): shift it left once if
/// bit 21 is clear; the exponent becomes `p_tb`; int8 products become a signed 32-bit value.
#[derive(LogicBlock, Default)]
pub struct MulNorm {
    /// The M2 → M3 bundle.
    pub i: Signal<In, Bits<38>>,
    /// The product bundle for the fused adder.
    pub o: Signal<Out, Bits<71>>,
    prod: Signal<Local, Bits<22>>,
    p_sig: Signal<Local, Bits<22>>,
    p_tb: Signal<Local, Bits<12>>,
    p_int: Signal<Local, Bits<32>>,
}

impl Logic for MulNorm {
    #[hdl_gen]
    fn update(&mut self) {
        self.prod.next = self.i.val().get_bits::<22>(0);
        self.p_sig.next = self.prod.val();
        self.p_tb.next = bit_cast::<12, 11>(self.i.val().get_bits::<11>(22)) - 385;
        if !self.prod.val().get_bit(21) {
            self.p_sig.next = self.prod.val() << 1;
            self.p_tb.next = bit_cast::<12, 11>(self.i.val().get_bits::<11>(22)) - 386;
        }
        self.p_int.next = bit_cast::<32, 22>(self.prod.val());
        if self.i.val().get_bit(33) {
            self.p_int.next = 0 - bit_cast::<32, 22>(self.prod.val());
        }
        self.o.next = bit_cast::<71, 22>(self.p_sig.val())
            | (bit_cast::<71, 12>(self.p_tb.val()) << 22)
            | (bit_cast::<71, 5>(self.i.val().get_bits::<5>(33)) << 34)
            | (bit_cast::<71, 32>(self.p_int.val()) << 39);
    }
}
