//! The device's identity and capabilities, decoded from its ID, VERSION and CAP_* registers.

use hdl::regmap::{self, fields, PrecisionCode};

use super::error::DriverError;

/// What one accelerator instance offers, as its registers describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Register-map major version.
    pub version_major: u32,
    /// Register-map minor version.
    pub version_minor: u32,
    /// Numeric contract version (docs/numerics.md).
    pub contract: u32,
    /// Array rows R (an output tile has R rows).
    pub rows: u32,
    /// Array columns C.
    pub cols: u32,
    /// Precisions built in.
    pub precisions: Vec<PrecisionCode>,
    /// Bytes per memory-bus beat.
    pub data_bytes: u32,
    /// Width of device addresses in bits.
    pub addr_bits: u32,
    /// Longest read burst in beats.
    pub max_burst: u32,
    /// k steps the operand buffers hold.
    pub kdepth: u32,
    /// Command-queue slots: descriptors that may wait behind the running one.
    pub queue_depth: u32,
}

impl Capabilities {
    /// Decodes the registers `ID`, `VERSION`, `CAP_ARRAY`, `CAP_PREC`, `CAP_MEM`, `CAP_BUF` and
    /// checks that this driver can use the device.
    pub fn decode(
        id: u32,
        version: u32,
        cap_array: u32,
        cap_prec: u32,
        cap_mem: u32,
        cap_buf: u32,
    ) -> Result<Self, DriverError> {
        if id != regmap::IDENT {
            return Err(DriverError::NotAnAccelerator {
                found: id,
                expected: regmap::IDENT,
            });
        }
        let major = fields::VERSION::MAJOR.get(version);
        let minor = fields::VERSION::MINOR.get(version);
        let contract = fields::VERSION::CONTRACT.get(version);
        if major != regmap::VERSION_MAJOR || contract != regmap::CONTRACT_VERSION {
            return Err(DriverError::IncompatibleVersion {
                major,
                minor,
                contract,
                expected_major: regmap::VERSION_MAJOR,
                expected_contract: regmap::CONTRACT_VERSION,
            });
        }
        let caps = Capabilities {
            version_major: major,
            version_minor: minor,
            contract,
            rows: fields::CAP_ARRAY::ROWS.get(cap_array),
            cols: fields::CAP_ARRAY::COLS.get(cap_array),
            precisions: PrecisionCode::ALL
                .into_iter()
                .filter(|p| p.capability().get(cap_prec) == 1)
                .collect(),
            data_bytes: fields::CAP_MEM::DATA_BYTES.get(cap_mem),
            addr_bits: fields::CAP_MEM::ADDR_BITS.get(cap_mem),
            max_burst: fields::CAP_MEM::MAX_BURST.get(cap_mem),
            kdepth: fields::CAP_BUF::K_DEPTH.get(cap_buf),
            queue_depth: fields::CAP_BUF::QUEUE_DEPTH.get(cap_buf),
        };
        let bad = |reason: String| Err(DriverError::BadCapabilities { reason });
        if caps.rows == 0 || caps.cols == 0 {
            return bad(format!("a {}×{} array", caps.rows, caps.cols));
        }
        if caps.precisions.is_empty() {
            return bad(format!("no precision built in (CAP_PREC = {cap_prec:#x})"));
        }
        if caps.queue_depth == 0 {
            return bad("a command queue of 0 slots".into());
        }
        if !(1..=64).contains(&caps.addr_bits) {
            return bad(format!("{}-bit device addresses", caps.addr_bits));
        }
        if caps.data_bytes == 0 || caps.kdepth == 0 {
            return bad(format!(
                "a {}-byte bus and {}-step operand buffers",
                caps.data_bytes, caps.kdepth
            ));
        }
        Ok(caps)
    }

    /// Whether `precision` is built in.
    pub fn supports(&self, precision: PrecisionCode) -> bool {
        self.precisions.contains(&precision)
    }

    /// Size of the device address space in bytes (2^addr_bits, saturating at `u64::MAX`).
    pub fn address_space(&self) -> u128 {
        1u128 << self.addr_bits
    }

    /// Processing elements in the array.
    pub fn pes(&self) -> u64 {
        u64::from(self.rows) * u64::from(self.cols)
    }

    /// The precisions as names (`int8,bf16`), for messages.
    pub fn precision_names(&self) -> String {
        self.precisions
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl std::fmt::Display for Capabilities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}×{} array, {}, k depth {}, queue {}, {}-byte bus, {}-bit addresses, bursts of {} \
             (register map {}.{}, contract {})",
            self.rows,
            self.cols,
            self.precision_names(),
            self.kdepth,
            self.queue_depth,
            self.data_bytes,
            self.addr_bits,
            self.max_burst,
            self.version_major,
            self.version_minor,
            self.contract
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registers() -> (u32, u32, u32, u32, u32, u32) {
        let array = fields::CAP_ARRAY::ROWS.encode(8) | fields::CAP_ARRAY::COLS.encode(4);
        let prec = fields::CAP_PREC::INT8.encode(1) | fields::CAP_PREC::FP16.encode(1);
        let mem = fields::CAP_MEM::DATA_BYTES.encode(16)
            | fields::CAP_MEM::ADDR_BITS.encode(32)
            | fields::CAP_MEM::MAX_BURST.encode(16);
        let buf = fields::CAP_BUF::K_DEPTH.encode(64) | fields::CAP_BUF::QUEUE_DEPTH.encode(4);
        (regmap::IDENT, regmap::VERSION_VALUE, array, prec, mem, buf)
    }

    #[test]
    fn decodes_every_field() {
        let (id, v, a, p, m, b) = registers();
        let caps = Capabilities::decode(id, v, a, p, m, b).unwrap();
        assert_eq!((caps.rows, caps.cols), (8, 4));
        assert_eq!(
            caps.precisions,
            vec![PrecisionCode::Int8, PrecisionCode::Fp16]
        );
        assert!(!caps.supports(PrecisionCode::Bf16));
        assert_eq!(
            (caps.data_bytes, caps.addr_bits, caps.max_burst),
            (16, 32, 16)
        );
        assert_eq!((caps.kdepth, caps.queue_depth), (64, 4));
        assert_eq!(caps.pes(), 32);
        assert!(caps.to_string().contains("8×4 array, int8,fp16"), "{caps}");
    }

    #[test]
    fn refuses_foreign_devices_and_versions() {
        let (_, v, a, p, m, b) = registers();
        let err = Capabilities::decode(0xdead_beef, v, a, p, m, b).unwrap_err();
        assert!(err.to_string().contains("0xdeadbeef"), "{err}");
        let (id, _, a, p, m, b) = registers();
        let newer = fields::VERSION::MAJOR.set(regmap::VERSION_VALUE, regmap::VERSION_MAJOR + 1);
        let err = Capabilities::decode(id, newer, a, p, m, b).unwrap_err();
        assert!(
            matches!(err, DriverError::IncompatibleVersion { .. }),
            "{err}"
        );
        // A newer minor version is compatible (additions only).
        let minor = fields::VERSION::MINOR.set(regmap::VERSION_VALUE, 7);
        assert!(Capabilities::decode(id, minor, a, p, m, b).is_ok());
        let (id, v, a, _, m, b) = registers();
        let err = Capabilities::decode(id, v, a, 0, m, b).unwrap_err();
        assert!(err.to_string().contains("no precision"), "{err}");
    }
}
