//! Independent checks that directed cases really are what their category claims (a "tie" is
//! exactly halfway between two `f32` values, and so on), using exact big-integer arithmetic.

use num_bigint::BigInt;
use num_traits::{Signed, Zero};

use crate::numerics::float::{Class, FloatFormat, F32};
use crate::numerics::Precision;
use crate::vectors::prng::SplitMix64;

use super::mac::MacSource;
use super::{GemmInputs, GemmSource};

/// Where the exact result of one MAC falls relative to the `f32` grid.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Position {
    /// Exactly an `f32` value (or zero).
    Exact,
    /// Exactly halfway between two neighbours (or at `2^128 − 2^103`).
    Tie,
    /// Anywhere else.
    Between,
}

const GRID: i32 = -300;

fn grid(negative: bool, significand: u64, exponent: i32) -> BigInt {
    let v = BigInt::from(significand) << (exponent - GRID) as usize;
    if negative {
        -v
    } else {
        v
    }
}

/// The position of `acc + a·b` for finite inputs; `None` when any input is not finite.
pub fn position(format: FloatFormat, acc: u32, a: u32, b: u32) -> Option<Position> {
    let (Class::Finite(x), Class::Finite(y), Class::Finite(c)) =
        (format.classify(a), format.classify(b), F32.classify(acc))
    else {
        return None;
    };
    let sum = grid(c.negative, c.significand, c.exponent)
        + grid(
            x.negative ^ y.negative,
            x.significand * y.significand,
            x.exponent + y.exponent,
        );
    if sum.is_zero() {
        return Some(Position::Exact);
    }
    let magnitude = sum.abs();
    let top = magnitude.bits() as i32 - 1 + GRID;
    let quantum = top.max(-126) - 23;
    let drop = (quantum - GRID) as usize;
    let remainder = &magnitude - ((&magnitude >> drop) << drop);
    let half = BigInt::from(1) << (drop - 1);
    Some(if remainder.is_zero() {
        Position::Exact
    } else if remainder == half {
        Position::Tie
    } else {
        Position::Between
    })
}

fn directed(precision: Precision) -> Vec<GemmInputs> {
    let source = MacSource::new(precision, &mut SplitMix64::for_directed(1, "test"));
    (0..source.directed_count())
        .map(|i| source.case(i, &mut SplitMix64::new(i)))
        .collect()
}

fn single_mac(case: &GemmInputs) -> (u32, u32, u32) {
    assert_eq!(case.spec.k, 1, "{case:?}");
    let read16 = |bytes: &[u8]| u32::from(u16::from_le_bytes([bytes[0], bytes[1]]));
    let acc = case
        .c
        .as_ref()
        .map_or(0, |c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    (acc, read16(&case.a), read16(&case.b))
}

#[test]
fn ties_are_ties_and_sticky_cases_are_not() {
    for precision in [Precision::Bf16, Precision::Fp16] {
        let format = precision.operand_format().unwrap();
        let cases = directed(precision);
        let mut counts = [0usize; 2];
        for case in &cases {
            let expect = match case.category {
                "tie" => Position::Tie,
                "sticky" => Position::Between,
                _ => continue,
            };
            let (acc, a, b) = single_mac(case);
            assert_eq!(
                position(format, acc, a, b),
                Some(expect),
                "{precision} {} acc={acc:#010x} a={a:#06x} b={b:#06x}",
                case.category
            );
            counts[usize::from(expect == Position::Between)] += 1;
        }
        assert!(
            counts[0] >= 150 && counts[1] >= 150,
            "{precision}: {counts:?}"
        );
    }
}

#[test]
fn ties_cover_many_exponents_both_parities_and_signs() {
    let mut exponents = std::collections::BTreeSet::new();
    let mut kinds = std::collections::BTreeSet::new();
    for case in directed(Precision::Bf16)
        .iter()
        .filter(|c| c.category == "tie")
    {
        let (acc, a, b) = single_mac(case);
        exponents.insert(acc >> 23 & 0xFF);
        let product_negative = ((a ^ b) >> 15) & 1;
        kinds.insert((acc & 1, acc >> 31, product_negative));
    }
    assert!(exponents.len() > 200, "{}", exponents.len());
    assert_eq!(kinds.len(), 8, "{kinds:?}");
}

#[test]
fn subnormal_products_land_below_the_normal_range() {
    let format = crate::numerics::float::BF16;
    for case in directed(Precision::Bf16)
        .iter()
        .filter(|c| c.category == "subnormal-product" && c.c.is_none())
    {
        let (_, a, b) = single_mac(case);
        let p = f64::from(format.decode(a)) * f64::from(format.decode(b));
        assert!(p.abs() <= 2f64.powi(-126), "{p:e}");
    }
}

#[test]
fn beyond_range_products_really_leave_f32() {
    let format = crate::numerics::float::BF16;
    let mut n = 0;
    for case in directed(Precision::Bf16)
        .iter()
        .filter(|c| c.category == "beyond-f32-range" && c.spec.k == 1)
    {
        let (_, a, b) = single_mac(case);
        let p = f64::from(format.decode(a)) * f64::from(format.decode(b));
        assert!(p.abs() >= 2f64.powi(128), "{p:e}");
        n += 1;
    }
    assert!(n >= 20);
}
