//! The output conversion of docs/numerics.md §6, on one accumulator per cycle (combinational).
//!
//! - f32 raw: NaN → `0x7FC00000`;
//! - f32 → bf16: `(bits + 0x7FFF + bit16) >> 16`, NaN → `0x7FC0`;
//! - f32 → fp16: round to nearest even with subnormals, overflow to ∞, NaN → `0x7E00`;
//! - i32 → i8: `clamp(((acc·mult) + 2^(shift−1)) >> shift + zero_point)`, the 32×32 product
//!   composed from four 16×16 multipliers (rust-hdl's native width).

use rust_hdl::prelude::*;

/// Converts one accumulator to the output format; the result is in the low bytes of `out`.
#[derive(LogicBlock, Default)]
pub struct OutConv {
    /// Output code (regmap `OutputCode`: 0 raw, 1 bf16, 2 fp16, 3 i8).
    pub code: Signal<In, Bits<4>>,
    /// The accumulator is binary32 (floating precision); otherwise i32.
    pub is_float: Signal<In, Bit>,
    /// The accumulator bits.
    pub acc: Signal<In, Bits<32>>,
    /// Requantisation multiplier (i32).
    pub rq_mult: Signal<In, Bits<32>>,
    /// Requantisation shift (0..=62).
    pub rq_shift: Signal<In, Bits<6>>,
    /// Requantisation zero point (i8).
    pub rq_zp: Signal<In, Bits<8>>,
    /// The converted element, zero-extended.
    pub out: Signal<Out, Bits<32>>,
    is_nan: Signal<Local, Bit>,
    raw_f32: Signal<Local, Bits<32>>,
    bf16: Signal<Local, Bits<32>>,
    h_e: Signal<Local, Bits<9>>,
    h_sig: Signal<Local, Bits<32>>,
    h_shift: Signal<Local, Bits<6>>,
    h_kept: Signal<Local, Bits<32>>,
    h_rem_nz: Signal<Local, Bit>,
    h_round: Signal<Local, Bit>,
    h_rsh: Signal<Local, Bits<32>>,
    h_up: Signal<Local, Bits<32>>,
    h_expf: Signal<Local, Bits<32>>,
    h_enc: Signal<Local, Bits<32>>,
    fp16: Signal<Local, Bits<32>>,
    acc_neg: Signal<Local, Bit>,
    mul_neg: Signal<Local, Bit>,
    acc_mag: Signal<Local, Bits<32>>,
    mul_mag: Signal<Local, Bits<32>>,
    pp_ll: Signal<Local, Bits<32>>,
    pp_lh: Signal<Local, Bits<32>>,
    pp_hl: Signal<Local, Bits<32>>,
    pp_hh: Signal<Local, Bits<32>>,
    prod_mag: Signal<Local, Bits<64>>,
    prod: Signal<Local, Bits<64>>,
    biased: Signal<Local, Bits<64>>,
    shifted: Signal<Local, Bits<64>>,
    rounded: Signal<Local, Bits<64>>,
    with_zp: Signal<Local, Bits<64>>,
    i8v: Signal<Local, Bits<32>>,
}

impl Logic for OutConv {
    #[hdl_gen]
    fn update(&mut self) {
        self.is_nan.next =
            (self.acc.val().get_bits::<8>(23) == 255) & (self.acc.val().get_bits::<23>(0) != 0);
        // f32 (canonical NaN).
        self.raw_f32.next = self.acc.val();
        if self.is_nan.val() {
            self.raw_f32.next = 0x7FC0_0000.into();
        }
        // bf16: the classic carry trick (overflow rounds into the infinity encoding).
        self.bf16.next =
            (self.acc.val() + 0x7FFF + bit_cast::<32, 1>(self.acc.val().get_bits::<1>(16))) >> 16;
        if self.is_nan.val() {
            self.bf16.next = 0x7FC0.into();
        }
        // fp16: keep 11 significant bits of the 24-bit significand (fewer for subnormal results).
        self.h_e.next = bit_cast::<9, 8>(self.acc.val().get_bits::<8>(23));
        self.h_sig.next = bit_cast::<32, 23>(self.acc.val().get_bits::<23>(0)) | 0x80_0000;
        if self.h_e.val() == 0 {
            self.h_sig.next = bit_cast::<32, 23>(self.acc.val().get_bits::<23>(0));
        }
        // Normal fp16 needs E ≥ −14, i.e. biased f32 exponent ≥ 113: drop 13 bits; each binade
        // lower drops one more (capped: beyond 26 everything is below half the smallest subnormal).
        self.h_shift.next = 13.into();
        if self.h_e.val() < 113 {
            self.h_shift.next = 26.into();
            if self.h_e.val() > 100 {
                self.h_shift.next = bit_cast::<6, 9>(126 - self.h_e.val());
            }
        }
        self.h_kept.next = self.h_sig.val() >> self.h_shift.val();
        self.h_rsh.next = self.h_sig.val() >> (self.h_shift.val() - 1);
        self.h_round.next = self.h_rsh.val().get_bit(0);
        self.h_rem_nz.next = (self.h_sig.val()
            & ((bit_cast::<32, 1>(1.into()) << (self.h_shift.val() - 1)) - 1))
            != 0;
        self.h_up.next = 0.into();
        if self.h_round.val() & (self.h_rem_nz.val() | self.h_kept.val().get_bit(0)) {
            self.h_up.next = 1.into();
        }
        // Exponent field minus one (the kept significand carries the implicit bit).
        self.h_expf.next = 0.into();
        if self.h_e.val() >= 113 {
            self.h_expf.next = bit_cast::<32, 9>(self.h_e.val() - 113) << 10;
        }
        self.h_enc.next = self.h_expf.val() + self.h_kept.val() + self.h_up.val();
        if self.h_e.val() > 142 {
            self.h_enc.next = 0x7C00.into(); // |x| ≥ 2^16: infinity (f32 infinity included)
        }
        self.fp16.next =
            self.h_enc.val() | (bit_cast::<32, 1>(self.acc.val().get_bits::<1>(31)) << 15);
        if self.is_nan.val() {
            self.fp16.next = 0x7E00.into();
        }

        // i8 requantisation: 64-bit signed product from four 16×16 unsigned partial products.
        self.acc_neg.next = self.acc.val().get_bit(31);
        self.mul_neg.next = self.rq_mult.val().get_bit(31);
        self.acc_mag.next = self.acc.val();
        if self.acc.val().get_bit(31) {
            self.acc_mag.next = 0 - self.acc.val();
        }
        self.mul_mag.next = self.rq_mult.val();
        if self.rq_mult.val().get_bit(31) {
            self.mul_mag.next = 0 - self.rq_mult.val();
        }
        self.pp_ll.next =
            self.acc_mag.val().get_bits::<16>(0) * self.mul_mag.val().get_bits::<16>(0);
        self.pp_lh.next =
            self.acc_mag.val().get_bits::<16>(0) * self.mul_mag.val().get_bits::<16>(16);
        self.pp_hl.next =
            self.acc_mag.val().get_bits::<16>(16) * self.mul_mag.val().get_bits::<16>(0);
        self.pp_hh.next =
            self.acc_mag.val().get_bits::<16>(16) * self.mul_mag.val().get_bits::<16>(16);
        self.prod_mag.next = bit_cast::<64, 32>(self.pp_ll.val())
            + (bit_cast::<64, 32>(self.pp_lh.val()) << 16)
            + (bit_cast::<64, 32>(self.pp_hl.val()) << 16)
            + (bit_cast::<64, 32>(self.pp_hh.val()) << 32);
        self.prod.next = self.prod_mag.val();
        if self.acc_neg.val() ^ self.mul_neg.val() {
            self.prod.next = 0 - self.prod_mag.val();
        }
        self.biased.next = self.prod.val();
        if self.rq_shift.val() != 0 {
            self.biased.next =
                self.prod.val() + (bit_cast::<64, 1>(1.into()) << (self.rq_shift.val() - 1));
        }
        // Arithmetic shift right: logical shift, then the sign copied into the vacated bits.
        self.shifted.next = self.biased.val() >> self.rq_shift.val();
        self.rounded.next = self.shifted.val();
        if self.biased.val().get_bit(63) {
            self.rounded.next = self.shifted.val()
                | !(bit_cast::<64, 64>(0xFFFF_FFFF_FFFF_FFFF_u64.into()) >> self.rq_shift.val());
        }
        self.with_zp.next = self.rounded.val() + bit_cast::<64, 8>(self.rq_zp.val());
        if self.rq_zp.val().get_bit(7) {
            self.with_zp.next = self.rounded.val()
                + (bit_cast::<64, 8>(self.rq_zp.val()) | 0xFFFF_FFFF_FFFF_FF00_u64);
        }
        self.i8v.next = bit_cast::<32, 8>(self.with_zp.val().get_bits::<8>(0));
        if self.with_zp.val().get_bit(63) {
            if self.with_zp.val() < 0xFFFF_FFFF_FFFF_FF80_u64 {
                self.i8v.next = 0x80.into();
            }
        } else if self.with_zp.val() > 127 {
            self.i8v.next = 0x7F.into();
        }

        self.out.next = self.acc.val();
        if self.is_float.val() {
            self.out.next = self.raw_f32.val();
            if self.code.val() == 1 {
                self.out.next = self.bf16.val();
            } else if self.code.val() == 2 {
                self.out.next = self.fp16.val();
            }
        } else if self.code.val() == 3 {
            self.out.next = self.i8v.val();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtl::testbench::settle;
    use golden::gemm::write_output;
    use golden::numerics::{OutputFormat, Requant};
    use rand::{Rng, SeedableRng};

    fn convert(uut: &mut OutConv, code: u64, is_float: bool, acc: u32, rq: Requant) -> u32 {
        uut.code.next = code.into();
        uut.is_float.next = is_float;
        uut.acc.next = u64::from(acc).into();
        uut.rq_mult.next = u64::from(rq.multiplier as u32).into();
        uut.rq_shift.next = u64::from(rq.shift).into();
        uut.rq_zp.next = u64::from(rq.zero_point as u8).into();
        settle(uut);
        uut.out.val().to_u64() as u32
    }

    fn golden(format: OutputFormat, acc: u32) -> u32 {
        let mut buf = [0u8; 4];
        write_output(format, acc, &mut buf[..format.bytes()]);
        u32::from_le_bytes(buf)
    }

    #[test]
    fn float_outputs_match_golden() {
        let mut uut = OutConv::default();
        uut.connect_all();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut accs: Vec<u32> = vec![
            0,
            0x8000_0000,
            0x7F80_0000,
            0xFF80_0000,
            0x7FC0_0001,
            0xFFFF_FFFF,
            1,
            0x8000_0001,
            0x7F7F_FFFF,
            0x477F_F000,
            0x477F_EFFF,
            0x477F_F001,
            0x3880_0000,
            0x3800_0000,
            0x3300_0000,
            0x3300_0001,
            0x32FF_FFFF,
            0x387F_E000,
            0x33C0_0000,
            0x7F7F_8000,
        ];
        accs.extend((0..3000).map(|_| rng.random::<u32>()));
        accs.extend(
            (0..2000).map(|_| {
                (rng.random::<u32>() & 0x81FF_FFFF) | (rng.random_range(96u32..146) << 23)
            }),
        );
        for acc in accs {
            for (code, format) in [
                (0, OutputFormat::F32),
                (1, OutputFormat::Bf16),
                (2, OutputFormat::Fp16),
            ] {
                let got = convert(&mut uut, code, true, acc, Requant::SATURATE);
                assert_eq!(got, golden(format, acc), "{format} of {acc:#010x}");
            }
        }
    }

    #[test]
    fn int_outputs_match_golden() {
        let mut uut = OutConv::default();
        uut.connect_all();
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let mut cases = vec![
            (i32::MIN, i32::MIN, 62u8, -128i8),
            (i32::MAX, i32::MIN, 0, 0),
            (3, 1, 1, 0),
            (-3, 1, 1, 0),
            (5, -7, 3, 127),
        ];
        cases.extend((0..3000).map(|_| {
            (
                rng.random::<i32>() >> rng.random_range(0..31),
                rng.random::<i32>(),
                rng.random_range(0..=62),
                rng.random::<i8>(),
            )
        }));
        for (acc, multiplier, shift, zero_point) in cases {
            let rq = Requant {
                multiplier,
                shift,
                zero_point,
            };
            assert_eq!(convert(&mut uut, 0, false, acc as u32, rq), acc as u32);
            let got = convert(&mut uut, 3, false, acc as u32, rq);
            assert_eq!(
                got,
                golden(OutputFormat::I8(rq), acc as u32),
                "{acc} with {rq}"
            );
        }
    }
}
