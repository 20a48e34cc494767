//! The reference GEMM: a triple loop over the contract's exact MAC. Slow, and obviously right.

use super::{read_operand, read_u32, write_output, GemmError, GemmSpec};
use crate::numerics::mac;

/// Computes `D = convert(C + A·B)` one MAC at a time, `k` ascending, with the exact MAC.
///
/// Buffers are dense, row-major and little-endian (see the [module documentation](super)).
pub fn gemm(
    spec: &GemmSpec,
    a: &[u8],
    b: &[u8],
    c: Option<&[u8]>,
    d: &mut [u8],
) -> Result<(), GemmError> {
    spec.check_buffers(a, b, c, d)?;
    let out_bytes = spec.output.bytes();
    for i in 0..spec.m {
        for j in 0..spec.n {
            let mut acc = match c {
                Some(c) => read_u32(c, i * spec.n + j),
                None => 0, // +0 for both i32 and f32
            };
            for kk in 0..spec.k {
                let x = read_operand(spec.precision, a, i * spec.k + kk);
                let y = read_operand(spec.precision, b, kk * spec.n + j);
                acc = mac::reference(spec.precision, acc, x, y);
            }
            let at = (i * spec.n + j) * out_bytes;
            write_output(spec.output, acc, &mut d[at..at + out_bytes]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numerics::{OutputFormat, Precision, Requant};

    fn bf16_bytes(values: &[f32]) -> Vec<u8> {
        values
            .iter()
            .flat_map(|v| crate::numerics::float::f32_to_bf16_rne(*v).to_le_bytes())
            .collect()
    }

    #[test]
    fn small_bf16_product() {
        // [1 2; 3 4] · [5 6; 7 8] = [19 22; 43 50]
        let spec = GemmSpec::new(Precision::Bf16, 2, 2, 2);
        let a = bf16_bytes(&[1.0, 2.0, 3.0, 4.0]);
        let b = bf16_bytes(&[5.0, 6.0, 7.0, 8.0]);
        let mut d = vec![0; spec.d_bytes()];
        gemm(&spec, &a, &b, None, &mut d).unwrap();
        let out: Vec<f32> = (0..4).map(|i| f32::from_bits(read_u32(&d, i))).collect();
        assert_eq!(out, [19.0, 22.0, 43.0, 50.0]);
    }

    #[test]
    fn accumulate_and_requantise_int8() {
        let mut spec = GemmSpec::new(Precision::Int8, 1, 2, 3);
        spec.accumulate = true;
        spec.output = OutputFormat::I8(Requant {
            multiplier: 1,
            shift: 2,
            zero_point: -1,
        });
        let a = [1u8, 2, (-3i8) as u8];
        let b = [10u8, 1, 20, 1, 30, 1]; // rows of B: (10,1) (20,1) (30,1)
        let c: Vec<u8> = [7i32, 1000].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut d = vec![0; 2];
        gemm(&spec, &a, &b, Some(&c), &mut d).unwrap();
        // col 0: 7 + 10 + 40 - 90 = -33 -> (-33 + 2) >> 2 = -8 -> -9
        // col 1: 1000 + 1 + 2 - 3 = 1000 -> 250 -> 249 -> saturates to 127
        assert_eq!(d, [(-9i8) as u8, 127]);
    }

    #[test]
    fn accumulation_order_is_k_ascending() {
        // 2^24 + 1 + 1 depends on order: ((2^24 + 1) + 1) = 2^24 (two ties to even), whereas
        // 2^24 + (1 + 1) would be 2^24 + 2. The contract fixes k ascending.
        let spec = GemmSpec::new(Precision::Bf16, 1, 1, 3);
        let a = bf16_bytes(&[16_777_216.0, 1.0, 1.0]);
        let b = bf16_bytes(&[1.0, 1.0, 1.0]);
        let mut d = vec![0; 4];
        gemm(&spec, &a, &b, None, &mut d).unwrap();
        assert_eq!(f32::from_bits(read_u32(&d, 0)), 16_777_216.0);
    }
}
