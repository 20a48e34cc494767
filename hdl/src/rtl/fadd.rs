//! The accumulation half of a processing element: the contract's fused add
//! `acc' = RNE_f32(acc + p)` (docs/numerics.md §2) and the int8 wrap-around add, cut into eight
//! combinational stages so that it can run as an L-deep pipeline around the accumulation loop.
//!
//! The loop `acc' = f(acc, p)` cannot be pipelined for one accumulator, but a processing
//! element that interleaves L independent accumulations round-robin (see [`super::pe`]) feeds
//! the adder a new accumulation every cycle while each accumulator comes round again only every
//! L cycles: an adder of L pipeline stages then closes the loop exactly in time. Every
//! accumulator still sees its products in k order, one rounding per step, so the bits are those
//! of the single-cycle adder (and of `golden::numerics::mac::exact`).
//!
//! ```text
//! A1 AddDecode  accumulator decode, exponent compare, int8 sum and the special results
//! A2 AddSwap    order the operands by exponent; saturate the distance; coarse alignment
//!               shift (multiples of 8) and the sticky bit of what it shifts out
//! B1 AddAlign   fine alignment shift (0..7) and the sticky bit of what it shifts out
//! B2 AddSum     52-bit add or subtract of magnitudes; the marker that clamps C's count
//! C  AddLzc     shift = min(leading zeros, distance to the subnormal exponent) as one
//!               log-depth leading-zero count (a marker bit stops it at the distance)
//! D  AddShift   result exponent and overflow; coarse normalisation shift
//! E  AddRound   fine normalisation shift; round-to-nearest-even decision
//! F  AddPack    exponent + significand + rounding carry (the carry ripples into the exponent
//!               and into infinity); overflow, sign, exact zero, specials → the new accumulator
//! ```
//!
//! Why 52 bits suffice: when the smaller operand is shifted so far that bits fall off the window
//! (exponent difference ≥ 28), the larger operand is either normalised (so the sum's leading one
//! is at most one place lower and the rounding point is ≥ 24 places above the sticky bit) or the
//! accumulator is subnormal or zero (so the rounding quantum is fixed at 2^-149, 27 places above
//! the sticky bit). Cancellation beyond one place only happens for exponent differences ≤ 1,
//! where both operands fit the window and the sum is exact.
//!
//! Exponents are `tb = t + 127` for the power of two 2^t of an operand's leading significand
//! position: f32's biased exponent, so that a subnormal or zero accumulator has tb = 1 (t = −126)
//! and `tb` is also the normalisation shift that brings a result down to the subnormal exponent.
//! The multiplier delivers the product's `tb` as a 12-bit two's complement number (tiny products
//! of subnormal operands lie below f32's range); the accumulator's is its exponent field, so A1
//! compares them with one subtract and no bias arithmetic. The int8
//! sum, the special results (NaN, infinities, zero products) and the unchanged accumulator of a
//! bubble (no valid step) are decided in A1 and carried to F as `alt` with a `use_alt` flag.
//!
//! Bundles between the stages (bit ranges, least significant first):
//!
//! | bundle | layout |
//! |---|---|
//! | A1 → A2 (126) | `a_sig[23:0] a_neg[24] p_sig[46:25] p_sign[47] big_is_p[48] d_ap[59:49] a_tb[70:60] alt[102:71] use_alt[103] d_pa[114:104] p_tb[125:115]` |
//! | A2 → B1 (126) | `big24[23:0] lit_c[75:24] dc_lo[78:76] sticky[79] big_neg[80] lit_neg[81] tb[92:82] alt[124:93] use_alt[125]` |
//! | B1 → B2 (122) | `big24[23:0] lit_w[75:24] big_neg[76] lit_neg[77] tb[88:78] alt[120:89] use_alt[121]` |
//! | B2 → C (149) | `mag[51:0] r_neg[52] tb[63:53] alt[95:64] use_alt[96] marker[148:97]` |
//! | C → D (103) | `mag[51:0] shift[57:52] tb[67:58] r_neg[68] mag_zero[69] alt[101:70] use_alt[102]` |
//! | D → E (101) | `normc[51:0] sh_lo[54:52] eb[64:55] ovf[65] r_neg[66] mag_zero[67] alt[99:68] use_alt[100]` |
//! | E → F (71) | `sig24[23:0] round_up[24] eb[34:25] ovf[35] r_neg[36] mag_zero[37] alt[69:38] use_alt[70]` |

use rust_hdl::prelude::*;

/// A1: decodes the accumulator, compares exponents, and decides the results that bypass the
/// floating datapath (int8 sum, specials, bubbles).
#[derive(LogicBlock, Default)]
pub struct AddDecode {
    /// The accumulator (i32 or binary32 bits).
    pub acc: Signal<In, Bits<32>>,
    /// The product bundle from [`super::mul::MulNorm`].
    pub p: Signal<In, Bits<71>>,
    /// This step carries a product; otherwise the accumulator passes unchanged.
    pub valid: Signal<In, Bit>,
    /// The A1 → A2 bundle.
    pub o: Signal<Out, Bits<126>>,
    p_sig: Signal<Local, Bits<22>>,
    p_tb: Signal<Local, Bits<12>>,
    p_sign: Signal<Local, Bit>,
    p_zero: Signal<Local, Bit>,
    p_inf: Signal<Local, Bit>,
    p_nan: Signal<Local, Bit>,
    is_int: Signal<Local, Bit>,
    a_e: Signal<Local, Bits<11>>,
    a_fnz: Signal<Local, Bit>,
    a_neg: Signal<Local, Bit>,
    a_nan: Signal<Local, Bit>,
    a_inf: Signal<Local, Bit>,
    a_zero: Signal<Local, Bit>,
    a_sig: Signal<Local, Bits<24>>,
    a_tb: Signal<Local, Bits<12>>,
    d_pt: Signal<Local, Bits<12>>,
    d_tp: Signal<Local, Bits<12>>,
    big_is_p: Signal<Local, Bit>,
    alt: Signal<Local, Bits<32>>,
    use_alt: Signal<Local, Bit>,
}

impl Logic for AddDecode {
    #[hdl_gen]
    fn update(&mut self) {
        self.p_sig.next = self.p.val().get_bits::<22>(0);
        self.p_tb.next = self.p.val().get_bits::<12>(22);
        self.p_sign.next = self.p.val().get_bit(34);
        self.p_zero.next = self.p.val().get_bit(35);
        self.p_inf.next = self.p.val().get_bit(36);
        self.p_nan.next = self.p.val().get_bit(37);
        self.is_int.next = self.p.val().get_bit(38);

        // Accumulator decode. A subnormal or zero accumulator sits at t = −126 (tb = 1) with no
        // implicit bit; a normal one at tb = its biased exponent.
        self.a_neg.next = self.acc.val().get_bit(31);
        self.a_e.next = bit_cast::<11, 8>(self.acc.val().get_bits::<8>(23));
        self.a_fnz.next = self.acc.val().get_bits::<23>(0) != 0;
        self.a_nan.next = (self.a_e.val() == 255) & self.a_fnz.val();
        self.a_inf.next = (self.a_e.val() == 255) & !self.a_fnz.val();
        self.a_zero.next = (self.a_e.val() == 0) & !self.a_fnz.val();
        self.a_sig.next = bit_cast::<24, 23>(self.acc.val().get_bits::<23>(0));
        self.a_tb.next = 1.into();
        if self.a_e.val() != 0 {
            self.a_sig.next = bit_cast::<24, 23>(self.acc.val().get_bits::<23>(0)) | 0x80_0000;
            self.a_tb.next = bit_cast::<12, 11>(self.a_e.val());
        }

        // The operand with the larger leading-position exponent is the "big" one (12-bit two's
        // complement differences: p_tb may be negative). A2 picks the distance and exponent by
        // it, so that the subtract's sign is the last thing this stage computes.
        self.d_pt.next = self.p_tb.val() - self.a_tb.val();
        self.d_tp.next = self.a_tb.val() - self.p_tb.val();
        self.big_is_p.next = self.d_tp.val().get_bit(11); // a_tb < p_tb

        // Results that bypass the floating datapath, in priority order.
        self.use_alt.next = true;
        self.alt.next = self.acc.val();
        if !self.valid.val() {
            self.alt.next = self.acc.val();
        } else if self.is_int.val() {
            self.alt.next = self.acc.val() + self.p.val().get_bits::<32>(39);
        } else if self.a_nan.val()
            | self.p_nan.val()
            | (self.a_inf.val() & self.p_inf.val() & (self.a_neg.val() != self.p_sign.val()))
        {
            self.alt.next = 0x7FC0_0000.into();
        } else if self.a_inf.val() {
            self.alt.next = self.acc.val();
        } else if self.p_inf.val() {
            self.alt.next = 0x7F80_0000.into();
            if self.p_sign.val() {
                self.alt.next = 0xFF80_0000_u64.into();
            }
        } else if self.p_zero.val() {
            self.alt.next = self.acc.val();
            if self.a_zero.val() {
                // (−0) + (−0) = −0; any other zero sum is +0.
                self.alt.next = 0.into();
                if self.a_neg.val() & self.p_sign.val() {
                    self.alt.next = 0x8000_0000_u64.into();
                }
            }
        } else {
            self.use_alt.next = false;
        }

        self.o.next = bit_cast::<126, 24>(self.a_sig.val())
            | (bit_cast::<126, 22>(self.p_sig.val()) << 25)
            | (bit_cast::<126, 11>(self.d_tp.val().get_bits::<11>(0)) << 49)
            | (bit_cast::<126, 11>(self.a_tb.val().get_bits::<11>(0)) << 60)
            | (bit_cast::<126, 32>(self.alt.val()) << 71)
            | (bit_cast::<126, 11>(self.d_pt.val().get_bits::<11>(0)) << 104)
            | (bit_cast::<126, 11>(self.p_tb.val().get_bits::<11>(0)) << 115);
        self.o.next = self.o.val().replace_bit(24, self.a_neg.val());
        self.o.next = self.o.val().replace_bit(47, self.p_sign.val());
        self.o.next = self.o.val().replace_bit(48, self.big_is_p.val());
        self.o.next = self.o.val().replace_bit(103, self.use_alt.val());
    }
}

/// A2: puts the larger operand first (with its exponent and the distance, both computed in A1
/// for either order), saturates the exponent distance at 56 (everything falls
/// off the 52-bit window from 52 on), shifts the smaller one right by the distance's multiple of
/// 8 and collects the sticky bit of what that coarse shift drops.
///
/// No compare here uses a carry chain: the saturation tests the distance's high bits, and the
/// coarse sticky bit picks one of four prefix ORs of the smaller significand by the multiple of 8
/// (window bit 27 + i is dropped when 27 + i < 8·k: none for k ≤ 3, i < 5, 13, 21 for k = 4, 5,
/// 6, all for k = 7).
#[derive(LogicBlock, Default)]
pub struct AddSwap {
    /// The A1 → A2 bundle.
    pub i: Signal<In, Bits<126>>,
    /// The A2 → B1 bundle.
    pub o: Signal<Out, Bits<126>>,
    a_sig: Signal<Local, Bits<24>>,
    p_sig24: Signal<Local, Bits<24>>,
    exp_diff: Signal<Local, Bits<11>>,
    tb: Signal<Local, Bits<11>>,
    dc: Signal<Local, Bits<6>>,
    k: Signal<Local, Bits<3>>,
    big24: Signal<Local, Bits<24>>,
    lit24: Signal<Local, Bits<24>>,
    big_neg: Signal<Local, Bit>,
    lit_neg: Signal<Local, Bit>,
    lit_c: Signal<Local, Bits<52>>,
    sticky: Signal<Local, Bit>,
}

impl Logic for AddSwap {
    #[hdl_gen]
    fn update(&mut self) {
        self.a_sig.next = self.i.val().get_bits::<24>(0);
        // The product's 22 bits sit two places higher than the accumulator's 24 in the window.
        self.p_sig24.next = bit_cast::<24, 22>(self.i.val().get_bits::<22>(25)) << 2;
        self.exp_diff.next = self.i.val().get_bits::<11>(49);
        self.tb.next = self.i.val().get_bits::<11>(60);
        if self.i.val().get_bit(48) {
            self.exp_diff.next = self.i.val().get_bits::<11>(104);
            self.tb.next = self.i.val().get_bits::<11>(115);
        }
        self.dc.next = self.exp_diff.val().get_bits::<6>(0);
        if (self.exp_diff.val().get_bits::<5>(6) != 0) | (self.exp_diff.val().get_bits::<3>(3) == 7)
        {
            self.dc.next = 56.into();
        }
        self.k.next = self.dc.val().get_bits::<3>(3);
        if self.i.val().get_bit(48) {
            self.big24.next = self.p_sig24.val();
            self.lit24.next = self.a_sig.val();
            self.big_neg.next = self.i.val().get_bit(47);
            self.lit_neg.next = self.i.val().get_bit(24);
        } else {
            self.big24.next = self.a_sig.val();
            self.lit24.next = self.p_sig24.val();
            self.big_neg.next = self.i.val().get_bit(24);
            self.lit_neg.next = self.i.val().get_bit(47);
        }
        // The smaller operand occupies window bits 27..=50; shift by the multiple of 8.
        self.lit_c.next = (bit_cast::<52, 24>(self.lit24.val()) << 27) >> (self.dc.val() & 0x38);
        self.sticky.next = false;
        if self.k.val() == 4 {
            self.sticky.next = self.lit24.val().get_bits::<5>(0) != 0;
        }
        if self.k.val() == 5 {
            self.sticky.next = self.lit24.val().get_bits::<13>(0) != 0;
        }
        if self.k.val() == 6 {
            self.sticky.next = self.lit24.val().get_bits::<21>(0) != 0;
        }
        if self.k.val() == 7 {
            self.sticky.next = self.lit24.val() != 0;
        }
        self.o.next = bit_cast::<126, 24>(self.big24.val())
            | (bit_cast::<126, 52>(self.lit_c.val()) << 24)
            | (bit_cast::<126, 3>(self.dc.val().get_bits::<3>(0)) << 76)
            | (bit_cast::<126, 11>(self.tb.val()) << 82)
            | (bit_cast::<126, 33>(self.i.val().get_bits::<33>(71)) << 93);
        self.o.next = self.o.val().replace_bit(79, self.sticky.val());
        self.o.next = self.o.val().replace_bit(80, self.big_neg.val());
        self.o.next = self.o.val().replace_bit(81, self.lit_neg.val());
    }
}

/// B1: the fine alignment shift (0..=7 places) and the sticky bit: the coarse shift's, or any
/// of the low `dc_lo` bits that this shift drops (found by shifting them up by `7 − dc_lo`,
/// which is `!dc_lo`: no subtract, no compare).
#[derive(LogicBlock, Default)]
pub struct AddAlign {
    /// The A2 → B1 bundle.
    pub i: Signal<In, Bits<126>>,
    /// The B1 → B2 bundle.
    pub o: Signal<Out, Bits<122>>,
    dc_lo: Signal<Local, Bits<3>>,
    lost: Signal<Local, Bits<7>>,
    lit_w: Signal<Local, Bits<52>>,
}

impl Logic for AddAlign {
    #[hdl_gen]
    fn update(&mut self) {
        self.dc_lo.next = self.i.val().get_bits::<3>(76);
        self.lost.next = self.i.val().get_bits::<7>(24) << (!self.dc_lo.val());
        self.lit_w.next = self.i.val().get_bits::<52>(24) >> self.dc_lo.val();
        if self.i.val().get_bit(79) | (self.lost.val() != 0) {
            self.lit_w.next = (self.i.val().get_bits::<52>(24) >> self.dc_lo.val()) | 1;
        }
        self.o.next = bit_cast::<122, 24>(self.i.val().get_bits::<24>(0))
            | (bit_cast::<122, 52>(self.lit_w.val()) << 24)
            | (bit_cast::<122, 2>(self.i.val().get_bits::<2>(80)) << 76)
            | (bit_cast::<122, 11>(self.i.val().get_bits::<11>(82)) << 78)
            | (bit_cast::<122, 33>(self.i.val().get_bits::<33>(93)) << 89);
    }
}

/// B2: adds or subtracts the aligned magnitudes; the result is a non-negative magnitude and a
/// sign. Beside the adder it decodes C's marker bit (window bit `51 − tb`, none for tb ≥ 52),
/// so that C's count starts from registers. (Registering `magnitude | marker` instead put the OR
/// behind the adder's select, on this stage's longest path.)
#[derive(LogicBlock, Default)]
pub struct AddSum {
    /// The B1 → B2 bundle.
    pub i: Signal<In, Bits<122>>,
    /// The B2 → C bundle.
    pub o: Signal<Out, Bits<149>>,
    tb: Signal<Local, Bits<10>>,
    marker: Signal<Local, Bits<52>>,
    big_w: Signal<Local, Bits<52>>,
    lit_w: Signal<Local, Bits<52>>,
    big_neg: Signal<Local, Bit>,
    lit_neg: Signal<Local, Bit>,
    d_bl: Signal<Local, Bits<53>>,
    d_lb: Signal<Local, Bits<52>>,
    mag: Signal<Local, Bits<52>>,
    r_neg: Signal<Local, Bit>,
}

impl Logic for AddSum {
    #[hdl_gen]
    fn update(&mut self) {
        self.big_w.next = bit_cast::<52, 24>(self.i.val().get_bits::<24>(0)) << 27;
        self.lit_w.next = self.i.val().get_bits::<52>(24);
        self.big_neg.next = self.i.val().get_bit(76);
        self.lit_neg.next = self.i.val().get_bit(77);
        // Both differences at once; the borrow of big − lit says which one is the magnitude
        // (no separate 52-bit compare ahead of the select).
        self.d_bl.next =
            bit_cast::<53, 52>(self.big_w.val()) - bit_cast::<53, 52>(self.lit_w.val());
        self.d_lb.next = self.lit_w.val() - self.big_w.val();
        self.r_neg.next = self.big_neg.val();
        if self.big_neg.val() == self.lit_neg.val() {
            self.mag.next = self.big_w.val() + self.lit_w.val();
        } else if self.d_bl.val().get_bit(52) {
            self.mag.next = self.d_lb.val();
            self.r_neg.next = self.lit_neg.val();
        } else {
            self.mag.next = self.d_bl.val().get_bits::<52>(0);
        }
        // tb ≥ 1 always; a tb of 52 or more never limits the count.
        self.tb.next = self.i.val().get_bits::<10>(78);
        self.marker.next = 0.into();
        for i in 0..52 {
            if self.tb.val().index() == 51 - i {
                self.marker.next = self.marker.val().replace_bit(i, true);
            }
        }
        self.o.next = bit_cast::<149, 52>(self.mag.val())
            | (bit_cast::<149, 11>(self.i.val().get_bits::<11>(78)) << 53)
            | (bit_cast::<149, 33>(self.i.val().get_bits::<33>(89)) << 64)
            | (bit_cast::<149, 52>(self.marker.val()) << 97);
        self.o.next = self.o.val().replace_bit(52, self.r_neg.val());
    }
}

/// C: the normalisation shift `min(leading zeros, tb)` (`tb`: the shift that puts the result at
/// the subnormal exponent t = −126) as one leading-zero count of `magnitude | marker`: B2's
/// marker bit at window bit `51 − tb` stops the count at `tb`, so the clamp costs no compare and no mux after the count.
/// The count is a log-depth tree (nibbles, then pairs of groups).
#[derive(LogicBlock, Default)]
pub struct AddLzc {
    /// The B2 → C bundle.
    pub i: Signal<In, Bits<149>>,
    /// The C → D bundle.
    pub o: Signal<Out, Bits<103>>,
    x: Signal<Local, Bits<64>>,
    z1: Signal<Local, Bits<16>>,
    c1: Signal<Local, Bits<32>>,
    z2: Signal<Local, Bits<8>>,
    c2: Signal<Local, Bits<24>>,
    z3: Signal<Local, Bits<4>>,
    c3: Signal<Local, Bits<16>>,
    z4: Signal<Local, Bits<2>>,
    c4: Signal<Local, Bits<10>>,
    lz: Signal<Local, Bits<6>>,
}

impl Logic for AddLzc {
    #[hdl_gen]
    fn update(&mut self) {
        // The magnitude with its marker at the top of 64 bits, ones below: the count stops at
        // 52.
        self.x.next =
            (bit_cast::<64, 52>(self.i.val().get_bits::<52>(0) | self.i.val().get_bits::<52>(97))
                << 12)
                | 0xFFF;
        // Level 1: nibble n (n = 0 is the most significant): all-zero flag and 2-bit count.
        self.z1.next = 0.into();
        self.c1.next = 0.into();
        for n in 0..16 {
            if self.x.val().get_bits::<4>(60 - 4 * n) == 0 {
                self.z1.next = self.z1.val().replace_bit(n, true);
            }
            if !self.x.val().get_bit(63 - 4 * n) {
                if self.x.val().get_bit(62 - 4 * n) {
                    self.c1.next = self.c1.val().replace_bit(2 * n, true);
                } else if self.x.val().get_bit(61 - 4 * n) {
                    self.c1.next = self.c1.val().replace_bit(2 * n + 1, true);
                } else {
                    self.c1.next = self.c1.val().replace_bit(2 * n, true);
                    self.c1.next = self.c1.val().replace_bit(2 * n + 1, true);
                }
            }
        }
        // Level 2: bytes (3-bit counts).
        self.z2.next = 0.into();
        self.c2.next = 0.into();
        for n in 0..8 {
            self.z2.next = self.z2.val().replace_bit(
                n,
                self.z1.val().get_bit(2 * n) & self.z1.val().get_bit(2 * n + 1),
            );
            if self.z1.val().get_bit(2 * n) {
                self.c2.next = self.c2.val().replace_bit(3 * n + 2, true);
                self.c2.next = self
                    .c2
                    .val()
                    .replace_bit(3 * n, self.c1.val().get_bit(4 * n + 2));
                self.c2.next = self
                    .c2
                    .val()
                    .replace_bit(3 * n + 1, self.c1.val().get_bit(4 * n + 3));
            } else {
                self.c2.next = self
                    .c2
                    .val()
                    .replace_bit(3 * n, self.c1.val().get_bit(4 * n));
                self.c2.next = self
                    .c2
                    .val()
                    .replace_bit(3 * n + 1, self.c1.val().get_bit(4 * n + 1));
            }
        }
        // Level 3: 16-bit groups (4-bit counts).
        self.z3.next = 0.into();
        self.c3.next = 0.into();
        for n in 0..4 {
            self.z3.next = self.z3.val().replace_bit(
                n,
                self.z2.val().get_bit(2 * n) & self.z2.val().get_bit(2 * n + 1),
            );
            if self.z2.val().get_bit(2 * n) {
                self.c3.next = self.c3.val().replace_bit(4 * n + 3, true);
                for b in 0..3 {
                    self.c3.next = self
                        .c3
                        .val()
                        .replace_bit(4 * n + b, self.c2.val().get_bit(6 * n + 3 + b));
                }
            } else {
                for b in 0..3 {
                    self.c3.next = self
                        .c3
                        .val()
                        .replace_bit(4 * n + b, self.c2.val().get_bit(6 * n + b));
                }
            }
        }
        // Level 4: 32-bit groups (5-bit counts).
        self.z4.next = 0.into();
        self.c4.next = 0.into();
        for n in 0..2 {
            self.z4.next = self.z4.val().replace_bit(
                n,
                self.z3.val().get_bit(2 * n) & self.z3.val().get_bit(2 * n + 1),
            );
            if self.z3.val().get_bit(2 * n) {
                self.c4.next = self.c4.val().replace_bit(5 * n + 4, true);
                for b in 0..4 {
                    self.c4.next = self
                        .c4
                        .val()
                        .replace_bit(5 * n + b, self.c3.val().get_bit(8 * n + 4 + b));
                }
            } else {
                for b in 0..4 {
                    self.c4.next = self
                        .c4
                        .val()
                        .replace_bit(5 * n + b, self.c3.val().get_bit(8 * n + b));
                }
            }
        }
        // Level 5: the whole word (the low half is never all zero: the padding ones).
        self.lz.next = bit_cast::<6, 5>(self.c4.val().get_bits::<5>(0));
        if self.z4.val().get_bit(0) {
            self.lz.next = bit_cast::<6, 5>(self.c4.val().get_bits::<5>(5)) | 32;
        }
        self.o.next = bit_cast::<103, 52>(self.i.val().get_bits::<52>(0))
            | (bit_cast::<103, 6>(self.lz.val()) << 52)
            | (bit_cast::<103, 10>(self.i.val().get_bits::<10>(53)) << 58)
            | (bit_cast::<103, 33>(self.i.val().get_bits::<33>(64)) << 70);
        self.o.next = self.o.val().replace_bit(68, self.i.val().get_bit(52));
        self.o.next = self
            .o
            .val()
            .replace_bit(69, self.i.val().get_bits::<52>(0) == 0);
    }
}

/// D: the result exponent and overflow from the shift counted in C, and the normalisation
/// shift by its multiple of 8.
///
/// A result that reaches the subnormal exponent needs no flag of its own: its shift is `tb`, so
/// its exponent `tb − shift` is 0, the subnormal encoding (a rounding carry into bit 23 makes it
/// the smallest normal).
#[derive(LogicBlock, Default)]
pub struct AddShift {
    /// The C → D bundle.
    pub i: Signal<In, Bits<103>>,
    /// The D → E bundle.
    pub o: Signal<Out, Bits<101>>,
    shift: Signal<Local, Bits<6>>,
    tb: Signal<Local, Bits<10>>,
    eb: Signal<Local, Bits<10>>,
    ovf: Signal<Local, Bit>,
    normc: Signal<Local, Bits<52>>,
}

impl Logic for AddShift {
    #[hdl_gen]
    fn update(&mut self) {
        self.shift.next = self.i.val().get_bits::<6>(52);
        self.tb.next = self.i.val().get_bits::<10>(58);
        // Biased exponent minus one of a normal result (the significand's implicit bit adds the
        // one back when they are summed in F); 254 or more overflows. (An exact zero may show
        // either; F makes it +0.)
        self.eb.next = self.tb.val() - bit_cast::<10, 6>(self.shift.val());
        self.ovf.next = self.eb.val() >= 254;
        self.normc.next = self.i.val().get_bits::<52>(0) << (self.shift.val() & 0x38);
        self.o.next = bit_cast::<101, 52>(self.normc.val())
            | (bit_cast::<101, 3>(self.shift.val().get_bits::<3>(0)) << 52)
            | (bit_cast::<101, 10>(self.eb.val()) << 55)
            | (bit_cast::<101, 2>(self.i.val().get_bits::<2>(68)) << 66)
            | (bit_cast::<101, 33>(self.i.val().get_bits::<33>(70)) << 68);
        self.o.next = self.o.val().replace_bit(65, self.ovf.val());
    }
}

/// E: the fine normalisation shift and the round-to-nearest-even decision (round bit 27, sticky
/// bits 26..0, last kept bit 28).
#[derive(LogicBlock, Default)]
pub struct AddRound {
    /// The D → E bundle.
    pub i: Signal<In, Bits<101>>,
    /// The E → F bundle.
    pub o: Signal<Out, Bits<71>>,
    norm: Signal<Local, Bits<52>>,
    round_up: Signal<Local, Bit>,
}

impl Logic for AddRound {
    #[hdl_gen]
    fn update(&mut self) {
        self.norm.next = self.i.val().get_bits::<52>(0) << self.i.val().get_bits::<3>(52);
        self.round_up.next = self.norm.val().get_bit(27)
            & ((self.norm.val().get_bits::<27>(0) != 0) | self.norm.val().get_bit(28));
        self.o.next = bit_cast::<71, 24>(self.norm.val().get_bits::<24>(28))
            | (bit_cast::<71, 11>(self.i.val().get_bits::<11>(55)) << 25)
            | (bit_cast::<71, 35>(self.i.val().get_bits::<35>(66)) << 36);
        self.o.next = self.o.val().replace_bit(24, self.round_up.val());
    }
}

/// F: packs exponent and significand, adding the rounding increment (its carry ripples into
/// the exponent, and into the infinity encoding at the top); applies overflow, sign, exact
/// cancellation (+0) and the bypass result.
#[derive(LogicBlock, Default)]
pub struct AddPack {
    /// The E → F bundle.
    pub i: Signal<In, Bits<71>>,
    /// The new accumulator.
    pub sum: Signal<Out, Bits<32>>,
    enc: Signal<Local, Bits<32>>,
    fsum: Signal<Local, Bits<32>>,
}

impl Logic for AddPack {
    #[hdl_gen]
    fn update(&mut self) {
        self.enc.next = (bit_cast::<32, 10>(self.i.val().get_bits::<10>(25)) << 23)
            + bit_cast::<32, 24>(self.i.val().get_bits::<24>(0))
            + bit_cast::<32, 1>(self.i.val().get_bits::<1>(24));
        if self.i.val().get_bit(35) {
            self.enc.next = 0x7F80_0000.into();
        }
        self.fsum.next = self.enc.val() & 0x7FFF_FFFF;
        if self.i.val().get_bit(36) {
            self.fsum.next = self.enc.val() | 0x8000_0000_u64;
        }
        if self.i.val().get_bit(37) {
            self.fsum.next = 0.into(); // exact cancellation: +0
        }
        self.sum.next = self.fsum.val();
        if self.i.val().get_bit(70) {
            self.sum.next = self.i.val().get_bits::<32>(38);
        }
    }
}
