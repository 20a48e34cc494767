//! `i32 → i8` requantisation: a fixed-point scale, one rounding, saturation.

use std::fmt;

/// Parameters of the `i32 → i8` output conversion.
///
/// The real scale is `multiplier × 2^-shift`. For an accumulator `acc` the output is
///
/// ```text
/// p = acc × multiplier                          (exact, in 64 bits)
/// r = (p + 2^(shift-1)) >> shift                (shift > 0; arithmetic shift = floor)
///   = p                                         (shift = 0)
/// y = clamp(r + zero_point, -128, 127)
/// ```
///
/// so the rounding is *round half up* (ties toward +∞), which is one adder and a shifter in
/// hardware. `shift` is at most 62: then every intermediate fits in `i64` without overflow
/// (`|p| ≤ 2^62`, `p + 2^61 < 2^63`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Requant {
    /// Signed fixed-point multiplier.
    pub multiplier: i32,
    /// Right shift applied after the multiplication, `0..=62`.
    pub shift: u8,
    /// Added after the shift, before saturation.
    pub zero_point: i8,
}

/// The largest allowed [`Requant::shift`].
pub const MAX_SHIFT: u8 = 62;

/// A [`Requant`] whose shift is out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("requantisation shift {0} is out of range: it must be between 0 and 62")]
pub struct ShiftOutOfRange(pub u8);

impl Requant {
    /// The identity-like requantisation: saturate `acc` to `i8` (multiplier 1, shift 0).
    pub const SATURATE: Requant = Requant {
        multiplier: 1,
        shift: 0,
        zero_point: 0,
    };

    /// Checks that the parameters are inside the contract.
    pub fn validate(&self) -> Result<(), ShiftOutOfRange> {
        if self.shift > MAX_SHIFT {
            Err(ShiftOutOfRange(self.shift))
        } else {
            Ok(())
        }
    }

    /// Applies the conversion to one accumulator value.
    ///
    /// # Panics
    /// If `shift` is above [`MAX_SHIFT`]; call [`validate`](Self::validate) on untrusted input.
    pub fn apply(&self, acc: i32) -> i8 {
        assert!(self.shift <= MAX_SHIFT, "requant shift {} > 62", self.shift);
        let product = i64::from(acc) * i64::from(self.multiplier);
        let rounded = if self.shift == 0 {
            product
        } else {
            (product + (1i64 << (self.shift - 1))) >> self.shift
        };
        (rounded + i64::from(self.zero_point)).clamp(-128, 127) as i8
    }
}

impl fmt::Display for Requant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "multiplier={},shift={},zero_point={}",
            self.multiplier, self.shift, self.zero_point
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rq(multiplier: i32, shift: u8, zero_point: i8) -> Requant {
        Requant {
            multiplier,
            shift,
            zero_point,
        }
    }

    #[test]
    fn saturates_both_ways() {
        assert_eq!(Requant::SATURATE.apply(1000), 127);
        assert_eq!(Requant::SATURATE.apply(-1000), -128);
        assert_eq!(Requant::SATURATE.apply(-7), -7);
        assert_eq!(Requant::SATURATE.apply(i32::MIN), -128);
    }

    #[test]
    fn rounds_half_up() {
        // scale 1/2: 3/2 = 1.5 -> 2, -3/2 = -1.5 -> -1, 5/2 -> 3, -5/2 -> -2
        let half = rq(1, 1, 0);
        assert_eq!(half.apply(3), 2);
        assert_eq!(half.apply(-3), -1);
        assert_eq!(half.apply(5), 3);
        assert_eq!(half.apply(-5), -2);
        assert_eq!(half.apply(-4), -2);
    }

    #[test]
    fn zero_point_is_added_before_saturation() {
        assert_eq!(rq(1, 0, 10).apply(120), 127);
        assert_eq!(rq(1, 0, -10).apply(-120), -128);
        assert_eq!(rq(1, 0, -10).apply(100), 90);
    }

    #[test]
    fn extreme_parameters_do_not_overflow() {
        let r = rq(i32::MIN, MAX_SHIFT, 0);
        assert_eq!(r.apply(i32::MIN), 1); // 2^62 / 2^62
        assert_eq!(r.apply(i32::MAX), -1); // -(2^62 - 2^31) / 2^62 ≈ -0.99999999953 -> rounds to -1
        assert_eq!(rq(i32::MAX, 0, 0).apply(i32::MAX), 127);
    }

    #[test]
    fn shift_is_validated() {
        assert!(rq(1, 62, 0).validate().is_ok());
        let err = rq(1, 63, 0).validate().unwrap_err().to_string();
        assert!(
            err.contains("63") && err.contains("between 0 and 62"),
            "{err}"
        );
    }
}
