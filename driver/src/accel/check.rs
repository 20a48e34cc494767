//! Software validation of a GEMM descriptor against a device's capabilities.
//!
//! The controller validates every descriptor itself (docs/hardware.md, "How a GEMM runs") and
//! retires a bad one with an error code. Checking first in software gives a message that names
//! the field and the value, and keeps malformed work off the device; the hardware check stays the
//! authority (the driver can bypass this one to test it).

use hdl::regmap::{GemmDescriptor, OutputCode};

use super::caps::Capabilities;

/// Why `descriptor` would be refused by a device with `caps`, or `Ok`.
pub fn check_descriptor(caps: &Capabilities, d: &GemmDescriptor) -> Result<(), String> {
    for (name, value) in [("M", d.m), ("N", d.n), ("K", d.k)] {
        if value == 0 {
            return Err(format!("{name} is 0: every dimension must be at least 1"));
        }
    }
    if !caps.supports(d.precision) {
        return Err(format!(
            "precision {} is not built into this device (it has {})",
            d.precision.name(),
            caps.precision_names()
        ));
    }
    if !d.output.valid_for(d.precision) {
        return Err(format!(
            "output {:?} cannot follow {} products (floating: raw/bf16/fp16; int8: raw/i8)",
            d.output,
            d.precision.name()
        ));
    }
    if d.output == OutputCode::I8 && d.rq_shift > 62 {
        return Err(format!("requantisation shift {} is above 62", d.rq_shift));
    }
    let eb = u64::from(d.precision.operand_bytes());
    let ob = u64::from(d.output.bytes());
    let (m, n, k) = (u64::from(d.m), u64::from(d.n), u64::from(d.k));
    let mut operands = vec![
        ("A", d.a, d.lda, m, k * eb, eb),
        ("B", d.b, d.ldb, k, n * eb, eb),
        ("D", d.d, d.ldd, m, n * ob, ob),
    ];
    if d.accumulate {
        operands.push(("C", d.c, d.ldc, m, n * 4, 4));
    }
    for (name, address, stride, rows, row_bytes, element) in operands {
        let stride = u64::from(stride);
        if address % element != 0 || stride % element != 0 {
            return Err(format!(
                "{name} at {address:#x} with row stride {stride} is not aligned to its \
                 {element}-byte elements"
            ));
        }
        if stride < row_bytes {
            return Err(format!(
                "{name}'s row stride {stride} is shorter than its rows of {row_bytes} bytes"
            ));
        }
        let end =
            u128::from(address) + u128::from(rows - 1) * u128::from(stride) + u128::from(row_bytes);
        if end > caps.address_space() {
            return Err(format!(
                "{name} at {address:#x} ends at {end:#x}, beyond the device's {}-bit address space",
                caps.addr_bits
            ));
        }
    }
    Ok(())
}

/// Bytes a matrix of `rows` rows of `row_bytes` bytes, `stride` apart, spans.
pub fn span(rows: u32, stride: u32, row_bytes: u64) -> u64 {
    u64::from(rows.saturating_sub(1)) * u64::from(stride) + row_bytes
}

#[cfg(test)]
mod tests {
    use hdl::regmap::{fields, PrecisionCode};

    use super::*;

    fn caps() -> Capabilities {
        let array = fields::CAP_ARRAY::ROWS.encode(4) | fields::CAP_ARRAY::COLS.encode(4);
        let prec = fields::CAP_PREC::INT8.encode(1) | fields::CAP_PREC::BF16.encode(1);
        let mem = fields::CAP_MEM::DATA_BYTES.encode(16)
            | fields::CAP_MEM::ADDR_BITS.encode(32)
            | fields::CAP_MEM::MAX_BURST.encode(16);
        let buf = fields::CAP_BUF::K_DEPTH.encode(64) | fields::CAP_BUF::QUEUE_DEPTH.encode(4);
        Capabilities::decode(
            hdl::regmap::IDENT,
            hdl::regmap::VERSION_VALUE,
            array,
            prec,
            mem,
            buf,
        )
        .unwrap()
    }

    #[test]
    fn accepts_a_dense_gemm_and_names_each_fault() {
        let caps = caps();
        let good = GemmDescriptor::dense(PrecisionCode::Bf16, 5, 7, 9, 0x1000, 0x2000, 0x3000);
        assert_eq!(check_descriptor(&caps, &good), Ok(()));

        let cases: Vec<(GemmDescriptor, &str)> = vec![
            (GemmDescriptor { k: 0, ..good }, "K is 0"),
            (
                GemmDescriptor {
                    precision: PrecisionCode::Fp16,
                    ..good
                },
                "not built into",
            ),
            (
                GemmDescriptor {
                    output: OutputCode::I8,
                    ..good
                },
                "cannot follow",
            ),
            (GemmDescriptor { a: 0x1001, ..good }, "aligned"),
            (GemmDescriptor { ldb: 12, ..good }, "shorter"),
            (
                GemmDescriptor {
                    d: 0xffff_fff0,
                    ..good
                },
                "beyond",
            ),
            (
                GemmDescriptor {
                    accumulate: true,
                    ldc: 8,
                    ..good
                },
                "C's row stride",
            ),
        ];
        for (d, needle) in cases {
            let err = check_descriptor(&caps, &d).unwrap_err();
            assert!(err.contains(needle), "{needle}: {err}");
        }
        let int8 = GemmDescriptor {
            output: OutputCode::I8,
            rq_shift: 63,
            ..GemmDescriptor::dense(PrecisionCode::Int8, 1, 1, 1, 0, 16, 32)
        };
        assert!(check_descriptor(&caps, &int8).unwrap_err().contains("62"));
    }

    #[test]
    fn spans_count_the_last_row_once() {
        assert_eq!(span(3, 100, 10), 210);
        assert_eq!(span(1, 100, 10), 10);
    }
}
