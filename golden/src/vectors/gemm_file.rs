//! The data files of kind `gemm`: a table of GEMM specs and four concatenated byte streams.
//!
//! One file holds `n` cases as these tensors (all little-endian; `docs/vectors.md` has the
//! byte-level description):
//!
//! | tensor | dtype | shape | content |
//! |---|---|---|---|
//! | `case.category` | U16 | `[n]` | index into the manifest's `categories` |
//! | `gemm.precision` | U8 | `[n]` | [`precision_code`] |
//! | `gemm.shape` | U32 | `[n, 3]` | `M, N, K` |
//! | `gemm.accumulate` | U8 | `[n]` | 1 if the case starts from `C`, else 0 |
//! | `gemm.output` | U8 | `[n]` | [`output_code`] |
//! | `gemm.requant` | I32 | `[n, 3]` | `multiplier, shift, zero_point` (all 0 unless output `i8`) |
//! | `gemm.a` | U8 | `[ΣA]` | every case's `A` (`M×K` operands), in case order |
//! | `gemm.b` | U8 | `[ΣB]` | every case's `B` (`K×N` operands) |
//! | `gemm.c` | U8 | `[ΣC]` | the `C` (`M×N` accumulators) of the accumulating cases only |
//! | `gemm.d` | U8 | `[ΣD]` | every case's expected `D` (`M×N` outputs) |
//!
//! A case's slices follow from the table alone: its `A` starts where the previous cases' `A`s
//! end, and so on. Payloads are raw bytes (not typed tensors) because one file mixes output
//! formats, and every consumer needs the spec to interpret them anyway.

use crate::gemm::GemmSpec;
use crate::numerics::{OutputFormat, Precision, Requant};

use super::container::{TensorFile, TensorOut};

/// Tensor names of a `gemm` data file (the complete set; no other tensor may appear).
pub const TENSORS: [&str; 10] = [
    "case.category",
    "gemm.precision",
    "gemm.shape",
    "gemm.accumulate",
    "gemm.output",
    "gemm.requant",
    "gemm.a",
    "gemm.b",
    "gemm.c",
    "gemm.d",
];

/// The file code of a precision (`gemm.precision`).
pub const fn precision_code(precision: Precision) -> u8 {
    match precision {
        Precision::Int8 => 0,
        Precision::Bf16 => 1,
        Precision::Fp16 => 2,
    }
}

/// The precision of a file code.
pub fn precision_from_code(code: u8) -> Option<Precision> {
    Precision::ALL
        .into_iter()
        .find(|p| precision_code(*p) == code)
}

/// The file code of an output format (`gemm.output`); requantisation parameters are stored
/// separately in `gemm.requant`.
pub const fn output_code(output: OutputFormat) -> u8 {
    match output {
        OutputFormat::F32 => 0,
        OutputFormat::Bf16 => 1,
        OutputFormat::Fp16 => 2,
        OutputFormat::I32 => 3,
        OutputFormat::I8(_) => 4,
    }
}

fn requant_row(output: OutputFormat) -> [i32; 3] {
    match output {
        OutputFormat::I8(r) => [r.multiplier, i32::from(r.shift), i32::from(r.zero_point)],
        _ => [0; 3],
    }
}

fn output_from_row(code: u8, requant: [i32; 3]) -> Result<OutputFormat, String> {
    let plain = |format| {
        if requant == [0; 3] {
            Ok(format)
        } else {
            Err(format!(
                "requant parameters {requant:?} must be all 0 for output code {code}"
            ))
        }
    };
    match code {
        0 => plain(OutputFormat::F32),
        1 => plain(OutputFormat::Bf16),
        2 => plain(OutputFormat::Fp16),
        3 => plain(OutputFormat::I32),
        4 => {
            let [multiplier, shift, zero_point] = requant;
            let shift = u8::try_from(shift)
                .ok()
                .filter(|s| *s <= crate::numerics::requant::MAX_SHIFT)
                .ok_or_else(|| format!("requant shift {shift} is outside 0..=62"))?;
            let zero_point = i8::try_from(zero_point)
                .map_err(|_| format!("requant zero_point {zero_point} is outside -128..=127"))?;
            Ok(OutputFormat::I8(Requant {
                multiplier,
                shift,
                zero_point,
            }))
        }
        other => Err(format!(
            "output code {other} is unknown: expected 0 f32, 1 bf16, 2 fp16, 3 i32, 4 i8"
        )),
    }
}

/// Accumulates cases into one `gemm` data file.
#[derive(Default)]
pub struct GemmFileBuilder {
    category: Vec<u16>,
    precision: Vec<u8>,
    shape: Vec<u32>,
    accumulate: Vec<u8>,
    output: Vec<u8>,
    requant: Vec<i32>,
    a: Vec<u8>,
    b: Vec<u8>,
    c: Vec<u8>,
    d: Vec<u8>,
}

impl GemmFileBuilder {
    /// Appends one case. The caller guarantees a valid spec with buffers of the right sizes
    /// (the generator checks them through the GEMM it computes `d` with).
    pub fn push(
        &mut self,
        category: u16,
        spec: &GemmSpec,
        a: &[u8],
        b: &[u8],
        c: Option<&[u8]>,
        d: &[u8],
    ) {
        debug_assert!(spec.check_buffers(a, b, c, d).is_ok());
        let dim = |v: usize| u32::try_from(v).expect("generated dimensions fit in u32");
        self.category.push(category);
        self.precision.push(precision_code(spec.precision));
        self.shape
            .extend_from_slice(&[dim(spec.m), dim(spec.n), dim(spec.k)]);
        self.accumulate.push(u8::from(spec.accumulate));
        self.output.push(output_code(spec.output));
        self.requant.extend_from_slice(&requant_row(spec.output));
        self.a.extend_from_slice(a);
        self.b.extend_from_slice(b);
        if let Some(c) = c {
            self.c.extend_from_slice(c);
        }
        self.d.extend_from_slice(d);
    }

    /// Cases so far.
    pub fn len(&self) -> usize {
        self.category.len()
    }

    /// Whether no case was pushed.
    pub fn is_empty(&self) -> bool {
        self.category.is_empty()
    }

    /// Payload bytes so far (to decide when to start a new file).
    pub fn payload_bytes(&self) -> usize {
        self.a.len() + self.b.len() + self.c.len() + self.d.len()
    }

    /// The tensors of the file.
    pub fn into_tensors(self) -> Vec<TensorOut> {
        let n = self.category.len();
        vec![
            TensorOut::u16s("case.category", &self.category),
            TensorOut::bytes("gemm.precision", self.precision),
            TensorOut::u32s("gemm.shape", vec![n, 3], &self.shape),
            TensorOut::bytes("gemm.accumulate", self.accumulate),
            TensorOut::bytes("gemm.output", self.output),
            TensorOut::i32s("gemm.requant", vec![n, 3], &self.requant),
            TensorOut::bytes("gemm.a", self.a),
            TensorOut::bytes("gemm.b", self.b),
            TensorOut::bytes("gemm.c", self.c),
            TensorOut::bytes("gemm.d", self.d),
        ]
    }
}

/// Byte offsets of one case's four slices in the payload streams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Offsets {
    a: usize,
    b: usize,
    c: usize,
    d: usize,
}

/// A parsed and validated `gemm` data file.
pub struct GemmFile {
    category: Vec<u16>,
    specs: Vec<GemmSpec>,
    /// `offsets[i]` is where case `i` starts; `offsets[n]` is the end of every stream.
    offsets: Vec<Offsets>,
    a: Vec<u8>,
    b: Vec<u8>,
    c: Vec<u8>,
    d: Vec<u8>,
}

/// One case's view into a [`GemmFile`].
pub struct GemmSlices<'f> {
    /// Category index.
    pub category: u16,
    /// The GEMM.
    pub spec: &'f GemmSpec,
    /// `A`, `M×K` operands.
    pub a: &'f [u8],
    /// `B`, `K×N` operands.
    pub b: &'f [u8],
    /// `C`, `M×N` accumulators, when the case accumulates.
    pub c: Option<&'f [u8]>,
    /// Expected `D`.
    pub d: &'f [u8],
}

impl GemmFile {
    /// Parses a file that must hold exactly `cases` cases with category indices below
    /// `categories`; every inconsistency is reported with the case it concerns.
    pub fn parse(bytes: &[u8], cases: usize, categories: usize) -> Result<GemmFile, String> {
        let file = TensorFile::parse(bytes)?;
        file.require_exactly(&TENSORS)?;
        let n = Some(cases);
        let category = file.u16s("case.category", &[n])?;
        let precision = file.raw("gemm.precision", safetensors::Dtype::U8, &[n])?.0;
        let shape = file.u32s("gemm.shape", &[n, Some(3)])?;
        let accumulate = file.raw("gemm.accumulate", safetensors::Dtype::U8, &[n])?.0;
        let output = file.raw("gemm.output", safetensors::Dtype::U8, &[n])?.0;
        let requant = file.i32s("gemm.requant", &[n, Some(3)])?;
        let (a, b, c, d) = (
            file.bytes("gemm.a")?,
            file.bytes("gemm.b")?,
            file.bytes("gemm.c")?,
            file.bytes("gemm.d")?,
        );
        let mut specs = Vec::with_capacity(cases);
        let mut offsets = Vec::with_capacity(cases + 1);
        let mut at = Offsets::default();
        offsets.push(at);
        for i in 0..cases {
            let bad = |message: String| format!("case #{i} of this file: {message}");
            if usize::from(category[i]) >= categories {
                return Err(bad(format!(
                    "category index {} but the manifest lists {categories} categories",
                    category[i]
                )));
            }
            let precision = precision_from_code(precision[i]).ok_or_else(|| {
                bad(format!(
                    "precision code {} is unknown: expected 0 int8, 1 bf16, 2 fp16",
                    precision[i]
                ))
            })?;
            let accumulate = match accumulate[i] {
                0 => false,
                1 => true,
                other => return Err(bad(format!("accumulate is {other}, expected 0 or 1"))),
            };
            let output = output_from_row(
                output[i],
                [requant[3 * i], requant[3 * i + 1], requant[3 * i + 2]],
            )
            .map_err(bad)?;
            let spec = GemmSpec {
                precision,
                m: shape[3 * i] as usize,
                n: shape[3 * i + 1] as usize,
                k: shape[3 * i + 2] as usize,
                accumulate,
                output,
            };
            spec.validate().map_err(|e| bad(e.to_string()))?;
            let advance = |from: usize, by: usize| {
                from.checked_add(by)
                    .ok_or_else(|| bad("payload offsets overflow".into()))
            };
            at = Offsets {
                a: advance(at.a, spec.a_bytes())?,
                b: advance(at.b, spec.b_bytes())?,
                c: advance(at.c, if accumulate { spec.c_bytes() } else { 0 })?,
                d: advance(at.d, spec.d_bytes())?,
            };
            specs.push(spec);
            offsets.push(at);
        }
        for (name, stream, needed) in [
            ("gemm.a", a, at.a),
            ("gemm.b", b, at.b),
            ("gemm.c", c, at.c),
            ("gemm.d", d, at.d),
        ] {
            if stream.len() != needed {
                return Err(format!(
                    "tensor `{name}` has {} bytes but the case table needs exactly {needed}",
                    stream.len()
                ));
            }
        }
        Ok(GemmFile {
            category,
            specs,
            offsets,
            a: a.to_vec(),
            b: b.to_vec(),
            c: c.to_vec(),
            d: d.to_vec(),
        })
    }

    /// Number of cases.
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// Case `i` of this file (`i < len()`).
    pub fn case(&self, i: usize) -> GemmSlices<'_> {
        let (from, to) = (self.offsets[i], self.offsets[i + 1]);
        let spec = &self.specs[i];
        GemmSlices {
            category: self.category[i],
            spec,
            a: &self.a[from.a..to.a],
            b: &self.b[from.b..to.b],
            c: spec.accumulate.then(|| &self.c[from.c..to.c]),
            d: &self.d[from.d..to.d],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::container;
    use std::collections::BTreeMap;

    fn two_cases() -> GemmFileBuilder {
        let mut builder = GemmFileBuilder::default();
        let spec = GemmSpec::new(Precision::Bf16, 1, 2, 3);
        builder.push(1, &spec, &[1; 6], &[2; 12], None, &[3; 8]);
        let mut spec = GemmSpec::new(Precision::Int8, 2, 1, 1);
        spec.accumulate = true;
        spec.output = OutputFormat::I8(Requant {
            multiplier: -7,
            shift: 62,
            zero_point: -128,
        });
        builder.push(0, &spec, &[4; 2], &[5; 1], Some(&[6; 8]), &[7; 2]);
        builder
    }

    #[test]
    fn round_trips_cases() {
        let bytes = container::write(two_cases().into_tensors(), &BTreeMap::new());
        let file = GemmFile::parse(&bytes, 2, 2).unwrap();
        let first = file.case(0);
        assert_eq!((first.category, first.spec.m, first.spec.k), (1, 1, 3));
        assert_eq!(
            (first.a, first.b, first.c, first.d),
            (&[1u8; 6][..], &[2u8; 12][..], None, &[3u8; 8][..])
        );
        let second = file.case(1);
        assert!(second.spec.accumulate);
        assert_eq!(second.c, Some(&[6u8; 8][..]));
        assert_eq!(second.d, &[7, 7]);
        assert!(
            matches!(second.spec.output, OutputFormat::I8(r) if r.multiplier == -7 && r.shift == 62)
        );
    }

    #[test]
    fn inconsistent_tables_are_rejected() {
        let bytes = container::write(two_cases().into_tensors(), &BTreeMap::new());
        let err = GemmFile::parse(&bytes, 3, 2).err().unwrap();
        assert!(err.contains("shape"), "{err}");
        let err = GemmFile::parse(&bytes, 2, 1).err().unwrap();
        assert!(
            err.contains("case #0") && err.contains("category index 1"),
            "{err}"
        );
        // A payload that does not match the table.
        let mut tensors = two_cases().into_tensors();
        tensors
            .iter_mut()
            .find(|t| t.name == "gemm.d")
            .unwrap()
            .data
            .push(0);
        let last = tensors.iter_mut().find(|t| t.name == "gemm.d").unwrap();
        last.shape = vec![last.data.len()];
        let bytes = container::write(tensors, &BTreeMap::new());
        let err = GemmFile::parse(&bytes, 2, 2).err().unwrap();
        assert!(
            err.contains("`gemm.d` has 11 bytes") && err.contains("exactly 10"),
            "{err}"
        );
    }

    #[test]
    fn codes_are_stable() {
        // These numbers are part of the file format; changing them breaks every suite on disk.
        assert_eq!(Precision::ALL.map(precision_code), [0, 1, 2]);
        let outputs = [
            OutputFormat::F32,
            OutputFormat::Bf16,
            OutputFormat::Fp16,
            OutputFormat::I32,
            OutputFormat::I8(Requant::SATURATE),
        ];
        assert_eq!(outputs.map(output_code), [0, 1, 2, 3, 4]);
        assert!(output_from_row(5, [0; 3]).is_err());
        assert!(output_from_row(4, [1, 63, 0]).is_err());
        assert!(output_from_row(4, [1, 0, 128]).is_err());
        assert!(output_from_row(0, [1, 0, 0]).is_err());
    }
}
