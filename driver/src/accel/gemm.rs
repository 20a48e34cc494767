//! Contract GEMMs on the accelerator: [`golden::gemm::GemmSpec`] plus operand bytes in, output
//! bytes out.
//!
//! [`GemmRunner`] lays a list of GEMMs out in one device-memory arena (A, B, C and D of each
//! job, 64-byte aligned, dense row-major as the contract stores them), writes one descriptor per
//! job, runs them through [`Accelerator::run`] with several in flight, and reads every D back.
//! Lists larger than the arena run in chunks; a single job larger than the arena grows it.

use golden::gemm::GemmSpec;
use golden::numerics::{OutputFormat, Precision, Requant};
use hdl::regmap::{GemmDescriptor, OutputCode, PrecisionCode};

use super::{Accelerator, DriverError, RunOutcome};
use crate::transport::{DmaBuffer, Transport};

/// Alignment of every operand in the arena.
const ALIGN: u64 = 64;

/// One GEMM to run: `D = convert(C + A·B)` with the contract's dense layouts.
#[derive(Clone, Copy, Debug)]
pub struct GemmJob<'a> {
    /// Precision, shape, accumulate flag and output conversion.
    pub spec: GemmSpec,
    /// `M×K` operands.
    pub a: &'a [u8],
    /// `K×N` operands.
    pub b: &'a [u8],
    /// `M×N` prior accumulators (when `spec.accumulate`).
    pub c: Option<&'a [u8]>,
}

/// The register encodings of a contract precision and output conversion.
pub fn codes(spec: &GemmSpec) -> (PrecisionCode, OutputCode, Requant) {
    let precision = match spec.precision {
        Precision::Int8 => PrecisionCode::Int8,
        Precision::Bf16 => PrecisionCode::Bf16,
        Precision::Fp16 => PrecisionCode::Fp16,
    };
    let (output, requant) = match spec.output {
        OutputFormat::F32 | OutputFormat::I32 => (OutputCode::Raw, Requant::SATURATE),
        OutputFormat::Bf16 => (OutputCode::Bf16, Requant::SATURATE),
        OutputFormat::Fp16 => (OutputCode::Fp16, Requant::SATURATE),
        OutputFormat::I8(rq) => (OutputCode::I8, rq),
    };
    (precision, output, requant)
}

/// Where a job's matrices lie in the arena (byte offsets).
#[derive(Clone, Copy, Debug)]
struct Placement {
    a: u64,
    b: u64,
    c: Option<u64>,
    d: u64,
    d_bytes: usize,
}

fn align_up(x: u64) -> u64 {
    x.div_ceil(ALIGN) * ALIGN
}

/// Checks a job against its spec; returns the bytes of A, B, C and D.
fn job_sizes(index: usize, job: &GemmJob<'_>) -> Result<[u64; 4], DriverError> {
    let invalid = |reason: String| DriverError::InvalidDescriptor { index, reason };
    let spec = &job.spec;
    spec.validate().map_err(|e| invalid(e.to_string()))?;
    for (name, value) in [("M", spec.m), ("N", spec.n), ("K", spec.k)] {
        if u32::try_from(value).is_err() {
            return Err(invalid(format!(
                "{name} = {value} does not fit the 32-bit descriptor register"
            )));
        }
    }
    let eb = spec.precision.operand_bytes();
    let sizes = [
        ("A", spec.m * spec.k * eb, Some(job.a.len())),
        ("B", spec.k * spec.n * eb, Some(job.b.len())),
        (
            "C",
            if spec.accumulate {
                spec.m * spec.n * 4
            } else {
                0
            },
            job.c.map(<[u8]>::len),
        ),
    ];
    for (name, expected, actual) in sizes {
        match (name, actual) {
            ("C", None) if spec.accumulate => {
                return Err(invalid("the GEMM accumulates but no C was given".into()))
            }
            ("C", Some(_)) if !spec.accumulate => {
                return Err(invalid(
                    "C was given but the GEMM does not accumulate".into(),
                ))
            }
            (_, Some(actual)) if actual != expected => {
                return Err(invalid(format!(
                    "{name} has {actual} bytes but a {}×{}×{} {} GEMM needs {expected}",
                    spec.m,
                    spec.n,
                    spec.k,
                    spec.precision.name()
                )))
            }
            _ => {}
        }
    }
    Ok([
        sizes[0].1 as u64,
        sizes[1].1 as u64,
        sizes[2].1 as u64,
        spec.d_bytes() as u64,
    ])
}

/// Runs lists of contract GEMMs through one device-memory arena.
#[derive(Debug)]
pub struct GemmRunner {
    arena: Option<DmaBuffer>,
    capacity: u64,
}

impl GemmRunner {
    /// A runner whose arena holds `capacity` bytes (allocated on first use; grown when one job
    /// needs more).
    pub fn new(capacity: u64) -> Self {
        Self {
            arena: None,
            capacity: capacity.max(ALIGN),
        }
    }

    /// Frees the arena.
    pub fn release<T: Transport>(&mut self, accel: &mut Accelerator<T>) -> Result<(), DriverError> {
        if let Some(arena) = self.arena.take() {
            accel.free(arena)?;
        }
        Ok(())
    }

    /// Runs `jobs` in order; `outputs[i]` receives job `i`'s D (resized to its length).
    /// A failed job is reported with its index in `jobs`.
    pub fn run<T: Transport>(
        &mut self,
        accel: &mut Accelerator<T>,
        jobs: &[GemmJob<'_>],
        outputs: &mut [Vec<u8>],
    ) -> Result<RunOutcome, DriverError> {
        if outputs.len() != jobs.len() {
            return Err(DriverError::Unsupported(format!(
                "{} jobs but {} output slots",
                jobs.len(),
                outputs.len()
            )));
        }
        let sizes = jobs
            .iter()
            .enumerate()
            .map(|(i, job)| job_sizes(i, job))
            .collect::<Result<Vec<_>, _>>()?;
        let mut total = RunOutcome {
            wait_cycles: Some(0),
            ..RunOutcome::default()
        };
        let mut start = 0;
        while start < jobs.len() {
            // Take jobs while they fit; always at least one.
            let mut end = start;
            let mut used = 0u64;
            while end < jobs.len() {
                let need: u64 = sizes[end].iter().map(|&s| align_up(s.max(1))).sum();
                if end > start && used + need > self.capacity {
                    break;
                }
                used += need;
                end += 1;
            }
            let outcome = self
                .run_chunk(
                    accel,
                    &jobs[start..end],
                    &sizes[start..end],
                    &mut outputs[start..end],
                    used,
                )
                .map_err(|e| offset_error(e, start))?;
            total.descriptors += outcome.descriptors;
            total.waits += outcome.waits;
            total.writes_skipped += outcome.writes_skipped;
            total.elapsed += outcome.elapsed;
            total.wait_cycles = match (total.wait_cycles, outcome.wait_cycles) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
            start = end;
        }
        Ok(total)
    }

    fn arena<T: Transport>(
        &mut self,
        accel: &mut Accelerator<T>,
        bytes: u64,
    ) -> Result<&DmaBuffer, DriverError> {
        let too_small = self.arena.as_ref().is_some_and(|a| a.len() < bytes);
        if too_small {
            if let Some(old) = self.arena.take() {
                accel.free(old)?;
            }
        }
        if self.arena.is_none() {
            let len = bytes.max(self.capacity);
            self.arena = Some(accel.alloc(len, 4096)?);
        }
        Ok(self.arena.as_ref().expect("allocated above"))
    }

    fn run_chunk<T: Transport>(
        &mut self,
        accel: &mut Accelerator<T>,
        jobs: &[GemmJob<'_>],
        sizes: &[[u64; 4]],
        outputs: &mut [Vec<u8>],
        bytes: u64,
    ) -> Result<RunOutcome, DriverError> {
        let arena = self.arena(accel, bytes)?;
        let base = arena.iova().get();
        let mut at = 0u64;
        let mut take = |size: u64| {
            let offset = at;
            at += align_up(size.max(1));
            offset
        };
        let placements: Vec<Placement> = jobs
            .iter()
            .zip(sizes)
            .map(|(job, s)| Placement {
                a: take(s[0]),
                b: take(s[1]),
                c: job.spec.accumulate.then(|| take(s[2])),
                d: take(s[3]),
                d_bytes: s[3] as usize,
            })
            .collect();
        let arena = self.arena.as_ref().expect("allocated above");
        let mut descriptors = Vec::with_capacity(jobs.len());
        for (job, p) in jobs.iter().zip(&placements) {
            accel.write(arena, p.a, job.a)?;
            accel.write(arena, p.b, job.b)?;
            if let (Some(c), Some(at)) = (job.c, p.c) {
                accel.write(arena, at, c)?;
            }
            descriptors.push(descriptor(&job.spec, base, p));
        }
        let outcome = accel.run(&descriptors)?;
        for (out, p) in outputs.iter_mut().zip(&placements) {
            out.resize(p.d_bytes, 0);
            accel.read(arena, p.d, out)?;
        }
        Ok(outcome)
    }
}

/// The descriptor of a dense job placed at `base + p`.
fn descriptor(spec: &GemmSpec, base: u64, p: &Placement) -> GemmDescriptor {
    let (precision, output, rq) = codes(spec);
    // Sizes were checked to fit 32 bits (job_sizes); strides of dense rows likewise fit
    // unless a dimension is close to 2^32, which the device's address check then refuses.
    let eb = precision.operand_bytes();
    let (m, n, k) = (spec.m as u32, spec.n as u32, spec.k as u32);
    GemmDescriptor {
        a: base + p.a,
        b: base + p.b,
        c: p.c.map_or(0, |c| base + c),
        d: base + p.d,
        m,
        n,
        k,
        lda: k.saturating_mul(eb),
        ldb: n.saturating_mul(eb),
        ldc: n.saturating_mul(4),
        ldd: n.saturating_mul(output.bytes()),
        precision,
        output,
        accumulate: spec.accumulate,
        rq_multiplier: rq.multiplier,
        rq_shift: rq.shift,
        rq_zero_point: rq.zero_point,
    }
}

/// Shifts descriptor positions in an error by `offset` (chunk → whole list).
fn offset_error(error: DriverError, offset: usize) -> DriverError {
    match error {
        DriverError::InvalidDescriptor { index, reason } => DriverError::InvalidDescriptor {
            index: index + offset,
            reason,
        },
        DriverError::Command { code, first, last } => DriverError::Command {
            code,
            first: first + offset,
            last: last + offset,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_register_map() {
        let mut spec = GemmSpec::new(Precision::Int8, 1, 1, 1);
        assert_eq!(codes(&spec).0, PrecisionCode::Int8);
        assert_eq!(codes(&spec).1, OutputCode::Raw);
        let rq = Requant {
            multiplier: 3,
            shift: 5,
            zero_point: -2,
        };
        spec.output = OutputFormat::I8(rq);
        assert_eq!(codes(&spec).1, OutputCode::I8);
        assert_eq!(codes(&spec).2, rq);
        let mut spec = GemmSpec::new(Precision::Fp16, 1, 1, 1);
        spec.output = OutputFormat::Bf16;
        assert_eq!(codes(&spec).0, PrecisionCode::Fp16);
        assert_eq!(codes(&spec).1, OutputCode::Bf16);
    }

    #[test]
    fn jobs_are_checked_against_their_spec() {
        let spec = GemmSpec::new(Precision::Bf16, 2, 3, 4);
        let a = vec![0u8; 16];
        let b = vec![0u8; 24];
        let ok = GemmJob {
            spec,
            a: &a,
            b: &b,
            c: None,
        };
        assert_eq!(job_sizes(0, &ok).unwrap(), [16, 24, 0, 24]);
        let short = GemmJob { a: &a[..15], ..ok };
        let err = job_sizes(3, &short).unwrap_err();
        assert!(err.to_string().contains("descriptor 3"), "{err}");
        assert!(err.to_string().contains("A has 15 bytes"), "{err}");
        let c = vec![0u8; 24];
        let stray = GemmJob { c: Some(&c), ..ok };
        assert!(job_sizes(0, &stray).is_err());
        let accumulate = GemmJob {
            spec: GemmSpec {
                accumulate: true,
                ..spec
            },
            ..ok
        };
        assert!(job_sizes(0, &accumulate)
            .unwrap_err()
            .to_string()
            .contains("no C"));
    }
}
