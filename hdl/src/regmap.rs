//! The accelerator's register map: the one source of truth for the RTL register file,
//! `docs/registers.md` and the driver's constants.
//!
//! Every register is declared once, in the [`regmap!`] invocation below, which expands to
//!
//! - a constant per register offset (`regmap::DOORBELL`, …) and a module per register with a
//!   [`Field`] constant per field (`regmap::fields::STATUS::QUEUE_FREE`, …);
//! - the table [`REGISTERS`] with access type, reset value and description of every register and
//!   field, from which `hdl regs --markdown` writes `docs/registers.md`.
//!
//! The RTL register file (`rtl::regfile`) decodes addresses and packs fields with these same
//! constants; the `driver` crate depends on `hdl` with `default-features = false`, which builds
//! this module alone (no rust-hdl). The GEMM descriptor encoding ([`Precision`](PrecisionCode),
//! [`OutputCode`], [`ErrorCode`]) lives here too, so that the simulator and the driver program
//! descriptors from the same definitions the hardware decodes them with.

/// How software may access a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read only; writes are ignored.
    Ro,
    /// Read/write.
    Rw,
    /// Read; writing a 1 to a bit clears it (writing 0 leaves it).
    W1c,
    /// Write only (a strobe); reads return 0.
    Wo,
}

impl Access {
    /// The short name used in `docs/registers.md`.
    pub const fn name(self) -> &'static str {
        match self {
            Access::Ro => "RO",
            Access::Rw => "RW",
            Access::W1c => "W1C",
            Access::Wo => "WO",
        }
    }
}

/// A bit field inside a 32-bit register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Field name (upper case, as in the documentation).
    pub name: &'static str,
    /// Least significant bit.
    pub lsb: u32,
    /// Width in bits (1..=32).
    pub width: u32,
    /// What the field means.
    pub description: &'static str,
}

impl Field {
    /// The field's bits in place (`width` ones shifted to `lsb`).
    pub const fn mask(self) -> u32 {
        if self.width >= 32 {
            u32::MAX
        } else {
            ((1u32 << self.width) - 1) << self.lsb
        }
    }

    /// The largest value the field can hold.
    pub const fn max(self) -> u32 {
        self.mask() >> self.lsb
    }

    /// Extracts this field's value from a register value.
    pub const fn get(self, register: u32) -> u32 {
        (register & self.mask()) >> self.lsb
    }

    /// Returns `register` with this field replaced by `value` (excess high bits are dropped).
    pub const fn set(self, register: u32, value: u32) -> u32 {
        (register & !self.mask()) | ((value << self.lsb) & self.mask())
    }

    /// `value` placed in this field of an otherwise-zero register.
    pub const fn encode(self, value: u32) -> u32 {
        self.set(0, value)
    }
}

/// The reset value of a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reset {
    /// A fixed value.
    Value(u32),
    /// A value fixed at elaboration from the build configuration (array size, bus width, …).
    Config,
}

/// One 32-bit register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Register {
    /// Register name (upper case).
    pub name: &'static str,
    /// Byte offset from the register port's base; always a multiple of 4.
    pub offset: u32,
    /// Software access.
    pub access: Access,
    /// Value after reset.
    pub reset: Reset,
    /// What the register is for.
    pub description: &'static str,
    /// Its fields (empty means the whole 32-bit word is one value).
    pub fields: &'static [Field],
}

/// Declares the register map once and expands it into offset constants, field constants and
/// the [`REGISTERS`] table.
macro_rules! regmap {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident @ $offset:literal : $access:ident, $reset:expr, $desc:literal
        { $( $fname:ident [$lsb:literal, $width:literal] $fdesc:literal ),* $(,)? }
    )*) => {
        $(
            $(#[doc = $doc])*
            #[doc = concat!("\n\nByte offset of `", stringify!($name), "`: ", $desc)]
            pub const $name: u32 = $offset;
        )*

        /// Field constants, one module per register (`fields::STATUS::BUSY`).
        #[allow(non_snake_case)]
        pub mod fields {
            $(
                #[doc = concat!("Fields of `", stringify!($name), "`.")]
                pub mod $name {
                    #[allow(unused_imports)]
                    use super::super::Field;
                    $(
                        #[doc = $fdesc]
                        pub const $fname: Field = Field {
                            name: stringify!($fname),
                            lsb: $lsb,
                            width: $width,
                            description: $fdesc,
                        };
                    )*
                }
            )*
        }

        /// Every register, in offset order.
        pub const REGISTERS: &[Register] = &[
            $(
                Register {
                    name: stringify!($name),
                    offset: $offset,
                    access: Access::$access,
                    reset: $reset,
                    description: $desc,
                    fields: &[$(fields::$name::$fname),*],
                },
            )*
        ];
    };
}

regmap! {
    ID @ 0x000: Ro, Reset::Value(IDENT), "Identifies a PoCForge accelerator: ASCII `PCFG` (0x50434647)." {}
    VERSION @ 0x004: Ro, Reset::Value(VERSION_VALUE), "Register-map and numeric-contract versions." {
        MINOR [0, 8] "Register-map minor version (compatible additions).",
        MAJOR [8, 8] "Register-map major version (incompatible changes).",
        CONTRACT [16, 8] "Numeric contract version implemented (docs/numerics.md).",
    }
    CAP_ARRAY @ 0x008: Ro, Reset::Config, "Systolic array geometry." {
        ROWS [0, 8] "Array rows R (output-tile rows).",
        COLS [8, 8] "Array columns C (output-tile columns).",
    }
    CAP_PREC @ 0x00C: Ro, Reset::Config, "Precisions built into this instance (1 = supported)." {
        INT8 [0, 1] "int8 × int8 → i32.",
        BF16 [1, 1] "bf16 × bf16 → f32 (fused).",
        FP16 [2, 1] "fp16 × fp16 → f32 (fused).",
    }
    CAP_MEM @ 0x010: Ro, Reset::Config, "Memory port geometry." {
        DATA_BYTES [0, 8] "AXI data width in bytes.",
        ADDR_BITS [8, 8] "AXI address width in bits; address bits above it must be zero.",
        MAX_BURST [16, 9] "Longest burst the DMA issues, in beats (1..=256).",
    }
    CAP_BUF @ 0x014: Ro, Reset::Config, "On-chip buffer sizes." {
        K_DEPTH [0, 16] "Operand buffer depth: k steps held per A/B tile (each buffer is double-buffered).",
        QUEUE_DEPTH [16, 8] "Command queue slots.",
    }
    STATUS @ 0x020: Ro, Reset::Value(0), "Controller state." {
        BUSY [0, 1] "A descriptor is being validated, executed or retired.",
        QUEUE_FREE [8, 8] "Free command-queue slots (a doorbell with 0 free slots is rejected with QUEUE_FULL).",
        LAST_ERROR [16, 8] "Error code of the most recent failed descriptor (ErrorCode; 0 = none since reset).",
    }
    IRQ_ENABLE @ 0x024: Rw, Reset::Value(0), "Interrupt enables: `irq` is high while IRQ_STATUS & IRQ_ENABLE != 0." {
        DONE [0, 1] "Enable the DONE interrupt.",
        ERROR [1, 1] "Enable the ERROR interrupt.",
    }
    IRQ_STATUS @ 0x028: W1c, Reset::Value(0), "Interrupt causes; write 1s to clear." {
        DONE [0, 1] "A descriptor completed successfully.",
        ERROR [1, 1] "A descriptor was rejected or failed (code in STATUS.LAST_ERROR).",
    }
    DOORBELL @ 0x02C: Wo, Reset::Value(0), "Any write pushes the DESC_* registers as one descriptor into the command queue." {}
    COMPLETED @ 0x030: Ro, Reset::Value(0), "Descriptors retired since reset (successful or failed), wrapping." {}
    ERRORS @ 0x034: Ro, Reset::Value(0), "Descriptors that failed since reset, wrapping." {}
    PERF_CTRL @ 0x040: Wo, Reset::Value(0), "Performance counter control." {
        CLEAR [0, 1] "Write 1 to zero every PERF_* counter.",
    }
    PERF_BUSY @ 0x044: Ro, Reset::Value(0), "Cycles with a descriptor in flight." {}
    PERF_MACS_LO @ 0x048: Ro, Reset::Value(0), "Useful MACs issued (M·N·K summed), low 32 bits." {}
    PERF_MACS_HI @ 0x04C: Ro, Reset::Value(0), "Useful MACs issued, high 32 bits." {}
    PERF_STALL_READ @ 0x050: Ro, Reset::Value(0), "Busy cycles in which the array waited for operand reads (DMA read)." {}
    PERF_STALL_WRITE @ 0x054: Ro, Reset::Value(0), "Busy cycles in which the array waited for result drain or DMA writes." {}
    PERF_STALL_OTHER @ 0x058: Ro, Reset::Value(0), "Busy cycles with the array idle for other reasons (validation, pipeline fill/flush, C loading)." {}
    DESC_A_LO @ 0x100: Rw, Reset::Value(0), "Descriptor: byte address of A (M×K operands), low half." {}
    DESC_A_HI @ 0x104: Rw, Reset::Value(0), "Descriptor: byte address of A, high half (must be 0 when CAP_MEM.ADDR_BITS ≤ 32)." {}
    DESC_B_LO @ 0x108: Rw, Reset::Value(0), "Descriptor: byte address of B (K×N operands), low half." {}
    DESC_B_HI @ 0x10C: Rw, Reset::Value(0), "Descriptor: byte address of B, high half." {}
    DESC_C_LO @ 0x110: Rw, Reset::Value(0), "Descriptor: byte address of C (M×N i32/f32 start values, read only when ACCUMULATE), low half." {}
    DESC_C_HI @ 0x114: Rw, Reset::Value(0), "Descriptor: byte address of C, high half." {}
    DESC_D_LO @ 0x118: Rw, Reset::Value(0), "Descriptor: byte address of D (M×N outputs), low half." {}
    DESC_D_HI @ 0x11C: Rw, Reset::Value(0), "Descriptor: byte address of D, high half." {}
    DESC_M @ 0x120: Rw, Reset::Value(0), "Descriptor: M, rows of A, C and D (≥ 1)." {}
    DESC_N @ 0x124: Rw, Reset::Value(0), "Descriptor: N, columns of B, C and D (≥ 1)." {}
    DESC_K @ 0x128: Rw, Reset::Value(0), "Descriptor: K, columns of A and rows of B (≥ 1)." {}
    DESC_LDA @ 0x12C: Rw, Reset::Value(0), "Descriptor: bytes between rows of A (≥ K × operand bytes)." {}
    DESC_LDB @ 0x130: Rw, Reset::Value(0), "Descriptor: bytes between rows of B (≥ N × operand bytes)." {}
    DESC_LDC @ 0x134: Rw, Reset::Value(0), "Descriptor: bytes between rows of C (≥ N × 4; checked only when ACCUMULATE)." {}
    DESC_LDD @ 0x138: Rw, Reset::Value(0), "Descriptor: bytes between rows of D (≥ N × output bytes)." {}
    DESC_FLAGS @ 0x13C: Rw, Reset::Value(0), "Descriptor: precision, output conversion, accumulate." {
        PRECISION [0, 4] "Operand precision (PrecisionCode: 0 int8, 1 bf16, 2 fp16).",
        OUTPUT [4, 4] "Output format (OutputCode: 0 raw accumulator f32/i32, 1 bf16, 2 fp16, 3 i8 requantised).",
        ACCUMULATE [8, 1] "Start every output from C instead of +0.",
    }
    DESC_RQ_MULT @ 0x140: Rw, Reset::Value(0), "Descriptor: requantisation multiplier (i32, two's complement; OUTPUT = i8 only)." {}
    DESC_RQ_SHIFT @ 0x144: Rw, Reset::Value(0), "Descriptor: requantisation shift and zero point (OUTPUT = i8 only)." {
        SHIFT [0, 8] "Right shift 0..=62 (a larger value is the SHIFT_RANGE error).",
        ZERO_POINT [8, 8] "Zero point (i8, two's complement).",
    }
}

/// The value of [`ID`]: ASCII `PCFG`.
pub const IDENT: u32 = 0x5043_4647;
/// Register-map major version.
pub const VERSION_MAJOR: u32 = 1;
/// Register-map minor version.
pub const VERSION_MINOR: u32 = 0;
/// Numeric contract version implemented (docs/numerics.md).
pub const CONTRACT_VERSION: u32 = 1;
/// The value of [`VERSION`].
pub const VERSION_VALUE: u32 = (CONTRACT_VERSION << 16) | (VERSION_MAJOR << 8) | VERSION_MINOR;

/// The registers that make up one GEMM descriptor, in the order the command queue stores them.
pub const DESCRIPTOR: [u32; 18] = [
    DESC_A_LO,
    DESC_A_HI,
    DESC_B_LO,
    DESC_B_HI,
    DESC_C_LO,
    DESC_C_HI,
    DESC_D_LO,
    DESC_D_HI,
    DESC_M,
    DESC_N,
    DESC_K,
    DESC_LDA,
    DESC_LDB,
    DESC_LDC,
    DESC_LDD,
    DESC_FLAGS,
    DESC_RQ_MULT,
    DESC_RQ_SHIFT,
];

/// Operand precision codes of `DESC_FLAGS.PRECISION`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum PrecisionCode {
    /// int8 × int8 → i32, wrapping.
    Int8 = 0,
    /// bf16 × bf16 → f32, fused.
    Bf16 = 1,
    /// fp16 × fp16 → f32, fused.
    Fp16 = 2,
}

impl PrecisionCode {
    /// Every code, in order.
    pub const ALL: [PrecisionCode; 3] = [Self::Int8, Self::Bf16, Self::Fp16];

    /// Decodes a field value; `None` for a code no build supports.
    pub const fn from_code(code: u32) -> Option<Self> {
        match code {
            0 => Some(Self::Int8),
            1 => Some(Self::Bf16),
            2 => Some(Self::Fp16),
            _ => None,
        }
    }

    /// Operand bytes in memory.
    pub const fn operand_bytes(self) -> u32 {
        match self {
            Self::Int8 => 1,
            Self::Bf16 | Self::Fp16 => 2,
        }
    }

    /// The bit of `CAP_PREC` that says whether it is built in.
    pub const fn capability(self) -> Field {
        match self {
            Self::Int8 => fields::CAP_PREC::INT8,
            Self::Bf16 => fields::CAP_PREC::BF16,
            Self::Fp16 => fields::CAP_PREC::FP16,
        }
    }

    /// The name used by the golden model and the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Int8 => "int8",
            Self::Bf16 => "bf16",
            Self::Fp16 => "fp16",
        }
    }
}

/// Output format codes of `DESC_FLAGS.OUTPUT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum OutputCode {
    /// The accumulator unchanged: f32 (NaN canonicalised) for floating precisions, i32 for int8.
    Raw = 0,
    /// f32 → bf16, round to nearest even (floating precisions only).
    Bf16 = 1,
    /// f32 → fp16, round to nearest even (floating precisions only).
    Fp16 = 2,
    /// i32 → i8 requantised with DESC_RQ_* (int8 only).
    I8 = 3,
}

impl OutputCode {
    /// Decodes a field value; `None` for an unknown code.
    pub const fn from_code(code: u32) -> Option<Self> {
        match code {
            0 => Some(Self::Raw),
            1 => Some(Self::Bf16),
            2 => Some(Self::Fp16),
            3 => Some(Self::I8),
            _ => None,
        }
    }

    /// Bytes of one output element.
    pub const fn bytes(self) -> u32 {
        match self {
            Self::Raw => 4,
            Self::Bf16 | Self::Fp16 => 2,
            Self::I8 => 1,
        }
    }

    /// Whether this output may follow a GEMM of `precision`.
    pub const fn valid_for(self, precision: PrecisionCode) -> bool {
        matches!(
            (precision, self),
            (_, Self::Raw)
                | (
                    PrecisionCode::Bf16 | PrecisionCode::Fp16,
                    Self::Bf16 | Self::Fp16
                )
                | (PrecisionCode::Int8, Self::I8)
        )
    }
}

/// Error codes reported in `STATUS.LAST_ERROR` (with IRQ_STATUS.ERROR raised).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ErrorCode {
    /// No error.
    None = 0,
    /// M, N or K is zero.
    ZeroDimension = 1,
    /// PRECISION names a precision this build does not include (see CAP_PREC).
    UnsupportedPrecision = 2,
    /// OUTPUT is unknown or does not fit the precision's accumulator.
    UnsupportedOutput = 3,
    /// An operand's last byte (address + (rows−1)·stride + row bytes − 1) lies beyond the address space.
    AddressOverflow = 4,
    /// A stride is smaller than the row it must hold.
    StrideTooSmall = 5,
    /// Requantisation shift above 62.
    ShiftRange = 6,
    /// The memory answered a read with a non-OKAY response.
    ReadResponse = 7,
    /// The memory answered a write with a non-OKAY response.
    WriteResponse = 8,
    /// DOORBELL was written while the command queue was full (the descriptor was dropped).
    QueueFull = 9,
    /// An address or stride is not a multiple of its element size (2 bytes for bf16/fp16
    /// operands and outputs, 4 for C and f32/i32 outputs).
    Misaligned = 10,
}

impl ErrorCode {
    /// Every code, in order.
    pub const ALL: [ErrorCode; 11] = [
        Self::None,
        Self::ZeroDimension,
        Self::UnsupportedPrecision,
        Self::UnsupportedOutput,
        Self::AddressOverflow,
        Self::StrideTooSmall,
        Self::ShiftRange,
        Self::ReadResponse,
        Self::WriteResponse,
        Self::QueueFull,
        Self::Misaligned,
    ];

    /// Decodes a `STATUS.LAST_ERROR` value.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|e| *e as u32 == code)
    }

    /// What went wrong and what would be right, for messages.
    pub const fn description(self) -> &'static str {
        match self {
            Self::None => "no error",
            Self::ZeroDimension => "M, N or K is 0: every dimension must be at least 1",
            Self::UnsupportedPrecision => {
                "the precision code is unknown or not built into this instance (see CAP_PREC)"
            }
            Self::UnsupportedOutput => {
                "the output code is unknown or does not match the precision (floating: raw/bf16/fp16; int8: raw/i8)"
            }
            Self::AddressOverflow => {
                "an operand extends beyond the address space (address + (rows-1)*stride + row bytes)"
            }
            Self::StrideTooSmall => "a stride is smaller than one row of its matrix",
            Self::ShiftRange => "the requantisation shift is above 62",
            Self::ReadResponse => "the memory returned an error response to a read",
            Self::WriteResponse => "the memory returned an error response to a write",
            Self::QueueFull => "the doorbell was rung while the command queue was full",
            Self::Misaligned => {
                "an address or stride is not a multiple of its element size (2 for bf16/fp16, 4 for C and f32/i32 D)"
            }
        }
    }
}

/// One GEMM descriptor in software form: what the driver writes into the `DESC_*` registers.
///
/// Addresses are byte addresses (split into `_LO`/`_HI` halves); strides are bytes between rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmDescriptor {
    /// Address of A (M×K operands).
    pub a: u64,
    /// Address of B (K×N operands).
    pub b: u64,
    /// Address of C (M×N i32/f32 start values; read only when `accumulate`).
    pub c: u64,
    /// Address of D (M×N outputs).
    pub d: u64,
    /// Rows of A, C and D.
    pub m: u32,
    /// Columns of B, C and D.
    pub n: u32,
    /// Columns of A, rows of B.
    pub k: u32,
    /// Bytes between rows of A.
    pub lda: u32,
    /// Bytes between rows of B.
    pub ldb: u32,
    /// Bytes between rows of C.
    pub ldc: u32,
    /// Bytes between rows of D.
    pub ldd: u32,
    /// Operand precision.
    pub precision: PrecisionCode,
    /// Output format.
    pub output: OutputCode,
    /// Start from C instead of +0.
    pub accumulate: bool,
    /// Requantisation multiplier (`OutputCode::I8` only).
    pub rq_multiplier: i32,
    /// Requantisation shift 0..=62 (`OutputCode::I8` only).
    pub rq_shift: u8,
    /// Requantisation zero point (`OutputCode::I8` only).
    pub rq_zero_point: i8,
}

impl GemmDescriptor {
    /// A dense (unpadded) GEMM with the raw accumulator as output.
    pub fn dense(precision: PrecisionCode, m: u32, n: u32, k: u32, a: u64, b: u64, d: u64) -> Self {
        let eb = precision.operand_bytes();
        GemmDescriptor {
            a,
            b,
            c: 0,
            d,
            m,
            n,
            k,
            lda: k.saturating_mul(eb),
            ldb: n.saturating_mul(eb),
            ldc: n.saturating_mul(4),
            ldd: n.saturating_mul(OutputCode::Raw.bytes()),
            precision,
            output: OutputCode::Raw,
            accumulate: false,
            rq_multiplier: 1,
            rq_shift: 0,
            rq_zero_point: 0,
        }
    }

    /// The `DESC_*` register values in [`DESCRIPTOR`] order.
    pub fn registers(&self) -> [(u32, u32); 18] {
        let lo = |x: u64| x as u32;
        let hi = |x: u64| (x >> 32) as u32;
        let flags = fields::DESC_FLAGS::PRECISION.encode(self.precision as u32)
            | fields::DESC_FLAGS::OUTPUT.encode(self.output as u32)
            | fields::DESC_FLAGS::ACCUMULATE.encode(u32::from(self.accumulate));
        let rq = fields::DESC_RQ_SHIFT::SHIFT.encode(u32::from(self.rq_shift))
            | fields::DESC_RQ_SHIFT::ZERO_POINT.encode(u32::from(self.rq_zero_point as u8));
        [
            (DESC_A_LO, lo(self.a)),
            (DESC_A_HI, hi(self.a)),
            (DESC_B_LO, lo(self.b)),
            (DESC_B_HI, hi(self.b)),
            (DESC_C_LO, lo(self.c)),
            (DESC_C_HI, hi(self.c)),
            (DESC_D_LO, lo(self.d)),
            (DESC_D_HI, hi(self.d)),
            (DESC_M, self.m),
            (DESC_N, self.n),
            (DESC_K, self.k),
            (DESC_LDA, self.lda),
            (DESC_LDB, self.ldb),
            (DESC_LDC, self.ldc),
            (DESC_LDD, self.ldd),
            (DESC_FLAGS, flags),
            (DESC_RQ_MULT, self.rq_multiplier as u32),
            (DESC_RQ_SHIFT, rq),
        ]
    }

    /// The register writes that submit this descriptor: every `DESC_*` register, then DOORBELL.
    pub fn writes(&self) -> Vec<(u32, u32)> {
        let mut w = self.registers().to_vec();
        w.push((DOORBELL, 1));
        w
    }
}

/// Renders the register map as Markdown (`docs/registers.md` is exactly this text).
pub fn markdown() -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "# Register map\n");
    let _ = writeln!(
        w,
        "Generated by `cargo run -p hdl -- regs --markdown > docs/registers.md` from \
         `hdl/src/regmap.rs`; do not edit by hand (a test fails when this file differs).\n"
    );
    let _ = writeln!(
        w,
        "All registers are 32 bits wide at 32-bit aligned byte offsets of the `csr$` port. \
         Register-map version {VERSION_MAJOR}.{VERSION_MINOR}, numeric contract {CONTRACT_VERSION}.\n"
    );
    let _ = writeln!(w, "## Summary\n");
    let _ = writeln!(w, "| offset | name | access | reset | description |");
    let _ = writeln!(w, "|---|---|---|---|---|");
    for r in REGISTERS {
        let reset = match r.reset {
            Reset::Value(v) => format!("`{v:#010x}`"),
            Reset::Config => "config".to_owned(),
        };
        let _ = writeln!(
            w,
            "| `{:#05x}` | `{}` | {} | {} | {} |",
            r.offset,
            r.name,
            r.access.name(),
            reset,
            r.description
        );
    }
    let _ = writeln!(w, "\n## Fields\n");
    for r in REGISTERS.iter().filter(|r| !r.fields.is_empty()) {
        let _ = writeln!(w, "### `{}` (`{:#05x}`)\n", r.name, r.offset);
        let _ = writeln!(w, "| bits | field | description |");
        let _ = writeln!(w, "|---|---|---|");
        for f in r.fields {
            let bits = if f.width == 1 {
                format!("{}", f.lsb)
            } else {
                format!("{}:{}", f.lsb + f.width - 1, f.lsb)
            };
            let _ = writeln!(w, "| {bits} | `{}` | {} |", f.name, f.description);
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(w, "## Descriptor encodings\n");
    let _ = writeln!(w, "`DESC_FLAGS.PRECISION`:\n");
    let _ = writeln!(w, "| code | precision | operand bytes |");
    let _ = writeln!(w, "|---|---|---|");
    for p in PrecisionCode::ALL {
        let _ = writeln!(w, "| {} | {} | {} |", p as u32, p.name(), p.operand_bytes());
    }
    let _ = writeln!(w, "\n`DESC_FLAGS.OUTPUT`:\n");
    let _ = writeln!(w, "| code | output | bytes | valid for |");
    let _ = writeln!(w, "|---|---|---|---|");
    for (o, name) in [
        (OutputCode::Raw, "raw accumulator (f32 / i32)"),
        (OutputCode::Bf16, "bf16 (RNE)"),
        (OutputCode::Fp16, "fp16 (RNE)"),
        (OutputCode::I8, "i8 (requantised)"),
    ] {
        let valid: Vec<&str> = PrecisionCode::ALL
            .into_iter()
            .filter(|p| o.valid_for(*p))
            .map(PrecisionCode::name)
            .collect();
        let _ = writeln!(
            w,
            "| {} | {name} | {} | {} |",
            o as u32,
            o.bytes(),
            valid.join(", ")
        );
    }
    let _ = writeln!(w, "\n## Error codes (`STATUS.LAST_ERROR`)\n");
    let _ = writeln!(w, "| code | name | meaning |");
    let _ = writeln!(w, "|---|---|---|");
    for e in ErrorCode::ALL {
        let _ = writeln!(w, "| {} | `{:?}` | {} |", e as u32, e, e.description());
    }
    let _ = writeln!(w, "\n## Programming a GEMM\n");
    let _ = writeln!(
        w,
        "1. Read `ID`, `VERSION` and the `CAP_*` registers once to learn R, C, the precisions, the bus \
         width and the queue depth.\n\
         2. Write `IRQ_ENABLE` (e.g. `DONE | ERROR`).\n\
         3. For each GEMM: write the `DESC_*` registers (they keep their values, so only changed ones \
         need writing), then write any value to `DOORBELL`. The descriptor is copied into the command \
         queue at once; `STATUS.QUEUE_FREE` says how many more fit.\n\
         (`regmap::GemmDescriptor::writes()` gives exactly this sequence.)\n\
         4. Wait for `irq` (or poll `COMPLETED`). Each retired descriptor increments `COMPLETED` and \
         sets `IRQ_STATUS.DONE`, or `IRQ_STATUS.ERROR` with the code in `STATUS.LAST_ERROR` (and \
         increments `ERRORS`). Descriptors retire in queue order. Ring several doorbells back to back \
         to let the accelerator overlap each GEMM's start with the previous GEMM's end. A memory \
         error response retires every descriptor already taken from the queue and not yet retired \
         with that error (each counts in `COMPLETED` and `ERRORS`).\n\
         5. Write the bits read from `IRQ_STATUS` back to it to clear them.\n"
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_aligned_unique_and_sorted() {
        for pair in REGISTERS.windows(2) {
            assert!(pair[0].offset < pair[1].offset, "{:?}", pair[1].name);
        }
        for r in REGISTERS {
            assert_eq!(r.offset % 4, 0, "{}", r.name);
            assert!(
                r.offset < 0x400,
                "{} outside the 1 KiB register window",
                r.name
            );
        }
    }

    #[test]
    fn fields_do_not_overlap_and_fit() {
        for r in REGISTERS {
            let mut used = 0u32;
            for f in r.fields {
                assert!(
                    f.width >= 1 && f.lsb + f.width <= 32,
                    "{}.{}",
                    r.name,
                    f.name
                );
                assert_eq!(used & f.mask(), 0, "{}.{} overlaps", r.name, f.name);
                used |= f.mask();
            }
        }
    }

    #[test]
    fn field_helpers_round_trip() {
        let f = fields::STATUS::QUEUE_FREE;
        let v = f.set(0xFFFF_FFFF, 3);
        assert_eq!(f.get(v), 3);
        assert_eq!(v & !f.mask(), !f.mask());
        assert_eq!(f.encode(0x1FF), 0xFF << 8);
    }

    #[test]
    fn descriptor_registers_are_descriptor_registers() {
        for off in DESCRIPTOR {
            let r = REGISTERS.iter().find(|r| r.offset == off).unwrap();
            assert!(r.name.starts_with("DESC_") && r.access == Access::Rw);
        }
    }

    #[test]
    fn output_validity_follows_the_contract() {
        use OutputCode::*;
        assert!(Raw.valid_for(PrecisionCode::Int8) && I8.valid_for(PrecisionCode::Int8));
        assert!(!Bf16.valid_for(PrecisionCode::Int8));
        assert!(Bf16.valid_for(PrecisionCode::Fp16) && !I8.valid_for(PrecisionCode::Bf16));
    }

    #[test]
    fn descriptor_registers_follow_the_table_order() {
        let d = GemmDescriptor {
            output: OutputCode::I8,
            accumulate: true,
            rq_shift: 7,
            rq_zero_point: -2,
            ..GemmDescriptor::dense(PrecisionCode::Int8, 3, 5, 7, 0x1_0000_0010, 0x20, 0x30)
        };
        let regs = d.registers();
        for (i, (off, _)) in regs.iter().enumerate() {
            assert_eq!(*off, DESCRIPTOR[i]);
        }
        assert_eq!(regs[0].1, 0x10);
        assert_eq!(regs[1].1, 1);
        let flags = regs[15].1;
        assert_eq!(fields::DESC_FLAGS::PRECISION.get(flags), 0);
        assert_eq!(fields::DESC_FLAGS::OUTPUT.get(flags), 3);
        assert_eq!(fields::DESC_FLAGS::ACCUMULATE.get(flags), 1);
        assert_eq!(fields::DESC_RQ_SHIFT::ZERO_POINT.get(regs[17].1), 0xFE);
        assert_eq!(d.writes().last(), Some(&(DOORBELL, 1)));
        assert_eq!((d.lda, d.ldb), (7, 5));
    }

    #[test]
    fn committed_registers_md_is_generated() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/registers.md");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == markdown(),
            "docs/registers.md is stale: run `cargo run -p hdl -- regs --markdown > docs/registers.md`"
        );
    }
}
