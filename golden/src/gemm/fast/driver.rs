//! The loop nest around the micro-kernels: packing `A`, cutting the output into tiles, blocking
//! `K`, running tiles on several threads, and the output stage.
//!
//! Order of work for one GEMM (BLIS-style, with `B` already packed):
//!
//! 1. **Pack `A`** once into row panels of the kernel's `MR` rows (floats widened exactly to
//!    `f32`, `int8` grouped in quads), in parallel over panels.
//! 2. **Tiles**: the `M×N` output is cut into `MC×NC` tiles, handed out to at most `threads`
//!    workers through a shared counter. Each worker keeps its tile's accumulators in a
//!    thread-local scratch buffer (allocated once per thread, then reused).
//! 3. In a tile: start every accumulator from `+0`, `C` or `D` (plus the VNNI correction);
//!    for each `K` block of `KC` (ascending), for each 32-column panel of `B`, for each row
//!    panel of `A`, run the micro-kernel on the register block; then convert the tile into `D`.
//!
//! Each output element's accumulation chain is therefore the contract's `k = 0, 1, …, K−1`,
//! whatever the tile, block or thread it lands in: the partition changes *who* computes an
//! element, never *how*. That is why every thread count gives the same bits (tested).

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::buffer::AlignedBuf;
use super::convert;
use super::float_kernels::FloatKernel;
use super::int8_kernels::{ALayout, Int8Kernel};
use super::matrix::{MatRef, Operand, Output, Prior, RawMat};
use super::pack_a;
use super::packed::{PackedB, NR};
use super::Isa;
use crate::numerics::Requant;

/// Cache blocking: rows and columns per tile and the length of one `K` block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Blocking {
    /// Rows per tile, in units of the kernel's `MR`.
    pub mc_panels: usize,
    /// Columns per tile, in units of [`NR`].
    pub nc_panels: usize,
    /// `K` per block (for `int8`, rounded up to a multiple of 4).
    pub kc: usize,
}

impl Blocking {
    /// Sizes that keep a `B` block (`KC × 32`) in L1/L2 and an `A` block (`MC × KC`) plus the
    /// tile in L2 on current x86 cores.
    pub(crate) fn default_for(isa: Isa, int8: bool) -> Self {
        let mc_panels = match isa {
            Isa::Avx512 | Isa::Avx512Vnni => 8,
            Isa::Avx2 | Isa::Portable => 16,
        };
        Blocking {
            mc_panels,
            nc_panels: 8,
            kc: if int8 { 1024 } else { 256 },
        }
    }
}

/// Where results go, as raw handles the tile workers write through.
#[derive(Clone, Copy)]
enum RawOut {
    F32(RawMat<f32>),
    Bf16(RawMat<u16>),
    Fp16(RawMat<u16>),
    I32(RawMat<i32>),
    I8(RawMat<i8>, Requant),
}

/// A validated GEMM, ready to run (built by [`super::gemm_packed`] after all checks).
pub(crate) struct Job<'a> {
    pub a: Operand<'a>,
    pub b: &'a PackedB,
    pub prior: Prior<'a>,
    pub isa: Isa,
    pub threads: usize,
    pub blocking: Blocking,
}

thread_local! {
    /// Per-thread accumulator tile, reused across GEMMs.
    static TILE: RefCell<AlignedBuf> = RefCell::new(AlignedBuf::default());
    /// Per-thread packed `A` of the GEMM this thread started, reused across GEMMs.
    static PACKED_A: RefCell<AlignedBuf> = RefCell::new(AlignedBuf::default());
}

/// Runs `f` with this thread's buffer from `key`, or with a fresh one if it is in use (a GEMM
/// started from inside another GEMM's worker on the same thread): never a panic, at worst an
/// allocation.
fn with_buffer<R>(
    key: &'static std::thread::LocalKey<RefCell<AlignedBuf>>,
    f: impl FnOnce(&mut AlignedBuf) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => f(&mut buf),
        Err(_) => f(&mut AlignedBuf::default()),
    })
}

/// Calls `work(i)` for every `i < count` on at most `threads` workers (inline when 1).
fn parallel_for(threads: usize, count: usize, work: impl Fn(usize) + Sync) {
    let workers = threads.min(count);
    if workers <= 1 {
        (0..count).for_each(work);
        return;
    }
    let next = AtomicUsize::new(0);
    let worker = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= count {
            break;
        }
        work(i);
    };
    rayon::scope(|scope| {
        for _ in 1..workers {
            scope.spawn(|_| worker());
        }
        worker();
    });
}

/// Calls `pack(first_panel, chunk)` on `threads` disjoint chunks of `dst`, each holding whole
/// panels of `panel_len` elements (the last panel may be shorter).
fn parallel_chunks<T: Send>(
    threads: usize,
    dst: &mut [T],
    panels: usize,
    panel_len: usize,
    pack: impl Fn(usize, &mut [T]) + Sync,
) {
    let per_worker = panels.div_ceil(threads.max(1));
    if threads <= 1 || panels <= 1 {
        pack(0, dst);
        return;
    }
    let pack = &pack;
    rayon::scope(|scope| {
        let mut rest = dst;
        let mut first = 0;
        while first < panels {
            let take = (per_worker * panel_len).min(rest.len());
            let (chunk, tail) = rest.split_at_mut(take);
            rest = tail;
            let start = first;
            scope.spawn(move |_| pack(start, chunk));
            first += per_worker;
        }
    });
}

impl Job<'_> {
    fn m(&self) -> usize {
        self.a.shape().0
    }

    /// Runs the GEMM into `out` (all shapes, precisions and the ISA were checked by the caller).
    pub(crate) fn run(&self, out: Output<'_>) {
        let raw = match out {
            Output::F32(mut m) => RawOut::F32(m.raw()),
            Output::Bf16(mut m) => RawOut::Bf16(m.raw()),
            Output::Fp16(mut m) => RawOut::Fp16(m.raw()),
            Output::I32(mut m) => RawOut::I32(m.raw()),
            Output::I8(mut m, requant) => RawOut::I8(m.raw(), requant),
        };
        // The `MatMut` borrows live until this function returns, after every worker finished.
        match self.a {
            Operand::Int8(a) => self.run_int8(a, raw),
            Operand::Bf16(a) => self.run_float(a, false, raw),
            Operand::Fp16(a) => self.run_float(a, true, raw),
        }
    }

    /// Visits the `(rows, cols)` tiles of the output: `tile(i0, i1, j0, j1)`.
    fn for_each_tile(&self, mr: usize, tile: impl Fn(usize, usize, usize, usize) + Sync) {
        let (m, n) = (self.m(), self.b.n());
        let mc = self.blocking.mc_panels * mr;
        let nc = self.blocking.nc_panels * NR;
        let (tiles_m, tiles_n) = (m.div_ceil(mc), n.div_ceil(nc));
        parallel_for(self.threads, tiles_m * tiles_n, |t| {
            let (ti, tj) = (t / tiles_n, t % tiles_n);
            let (i0, j0) = (ti * mc, tj * nc);
            tile(i0, (i0 + mc).min(m), j0, (j0 + nc).min(n));
        });
    }

    fn run_float(&self, a: MatRef<'_, u16>, fp16: bool, out: RawOut) {
        let kernel = FloatKernel::new(self.isa);
        let (m, k) = (self.m(), self.b.k());
        let mr = kernel.mr;
        with_buffer(&PACKED_A, |buf| {
            buf.reserve::<f32>(m * k);
            let packed_a = buf.slice_mut::<f32>(m * k);
            // Panel p: rows p·mr… (r of them), stored k-major: element (kk, i) at kk·r + i.
            parallel_chunks(
                self.threads,
                packed_a,
                m.div_ceil(mr),
                mr * k,
                |first, chunk| {
                    for (p, panel) in chunk.chunks_mut(mr * k).enumerate() {
                        pack_a::float_panel(self.isa, fp16, &a, (first + p) * mr, panel);
                    }
                },
            );
            let packed_a = &*packed_a;
            self.for_each_tile(mr, |i0, i1, j0, j1| {
                with_buffer(&TILE, |buf| {
                    self.float_tile(&kernel, packed_a, buf, out, (i0, i1), (j0, j1));
                });
            });
        });
    }

    fn float_tile(
        &self,
        kernel: &FloatKernel,
        packed_a: &[f32],
        buf: &mut AlignedBuf,
        out: RawOut,
        (i0, i1): (usize, usize),
        (j0, j1): (usize, usize),
    ) {
        let (m, k, mr) = (self.m(), self.b.k(), kernel.mr);
        let (rows, cols) = (i1 - i0, j1 - j0);
        let ldt = cols.div_ceil(NR) * NR;
        buf.reserve::<f32>(rows * ldt);
        let tile = buf.slice_mut::<f32>(rows * ldt);
        for i in 0..rows {
            let row = &mut tile[i * ldt..i * ldt + cols];
            match (self.prior, out) {
                (Prior::F32(c), _) => row.copy_from_slice(&c.row(i0 + i)[j0..j1]),
                (Prior::Output, RawOut::F32(d)) => {
                    // SAFETY: this worker owns rows i0..i1 × columns j0..j1 of the output,
                    // which the caller validated against the output view.
                    let current = unsafe { d.row_mut(i0 + i, j0, cols) };
                    row.copy_from_slice(current)
                }
                _ => row.fill(0.0),
            }
        }
        let mut pc = 0;
        while pc < k {
            let kc = self.blocking.kc.min(k - pc);
            for jp in j0 / NR..j1.div_ceil(NR) {
                let b = &self.b.f32_panel(jp)[pc * NR..];
                let col = jp * NR - j0;
                for (ip, row0) in (i0..i1).step_by(mr).enumerate() {
                    let r = mr.min(m - row0);
                    let a = &packed_a[row0 * k + pc * r..][..kc * r];
                    kernel.run(r, kc, a, b, &mut tile[ip * mr * ldt + col..], ldt);
                }
            }
            pc += kc;
        }
        for i in 0..rows {
            let src = &tile[i * ldt..i * ldt + cols];
            // SAFETY: as above, this worker owns this part of the output.
            unsafe {
                match out {
                    RawOut::F32(d) => convert::f32_row(self.isa, src, d.row_mut(i0 + i, j0, cols)),
                    RawOut::Bf16(d) => {
                        convert::bf16_row(self.isa, src, d.row_mut(i0 + i, j0, cols))
                    }
                    RawOut::Fp16(d) => {
                        convert::fp16_row(self.isa, src, d.row_mut(i0 + i, j0, cols))
                    }
                    RawOut::I32(_) | RawOut::I8(..) => {
                        unreachable!("output format validated against the precision")
                    }
                }
            }
        }
    }

    fn run_int8(&self, a: MatRef<'_, i8>, out: RawOut) {
        let kernel = Int8Kernel::new(self.isa);
        let (m, k) = (self.m(), self.b.k());
        let (mr, quads) = (kernel.mr, k.div_ceil(4));
        let elements = m * quads * 4;
        let element_bytes = kernel.layout.element_bytes();
        with_buffer(&PACKED_A, |buf| {
            buf.reserve::<u8>(elements * element_bytes);
            // Panel p: rows p·mr… (r of them), quad-major: element (q, i, t) at (q·r + i)·4 + t.
            let dst = buf.slice_mut::<u8>(elements * element_bytes);
            let panel_bytes = mr * quads * 4 * element_bytes;
            parallel_chunks(
                self.threads,
                dst,
                m.div_ceil(mr),
                panel_bytes,
                |first, chunk| {
                    for (p, panel) in chunk.chunks_mut(panel_bytes).enumerate() {
                        pack_a::int8_panel(kernel.layout, &a, (first + p) * mr, panel);
                    }
                },
            );
            let packed_a = buf.slice::<u8>(elements * element_bytes);
            self.for_each_tile(mr, |i0, i1, j0, j1| {
                with_buffer(&TILE, |tile_buf| {
                    self.int8_tile(&kernel, packed_a, tile_buf, out, (i0, i1), (j0, j1));
                });
            });
        });
    }

    fn int8_tile(
        &self,
        kernel: &Int8Kernel,
        packed_a: &[u8],
        buf: &mut AlignedBuf,
        out: RawOut,
        (i0, i1): (usize, usize),
        (j0, j1): (usize, usize),
    ) {
        let (m, mr) = (self.m(), kernel.mr);
        let quads = self.b.k().div_ceil(4);
        let quad_bytes = 4 * kernel.layout.element_bytes();
        let (rows, cols) = (i1 - i0, j1 - j0);
        let ldt = cols.div_ceil(NR) * NR;
        buf.reserve::<i32>(rows * ldt);
        let tile = buf.slice_mut::<i32>(rows * ldt);
        let correction = &self.b.vnni_correction()[j0..j1];
        for i in 0..rows {
            let row = &mut tile[i * ldt..i * ldt + cols];
            match (self.prior, out) {
                (Prior::I32(c), _) => row.copy_from_slice(&c.row(i0 + i)[j0..j1]),
                (Prior::Output, RawOut::I32(d)) => {
                    // SAFETY: this worker owns rows i0..i1 × columns j0..j1 of the output,
                    // which the caller validated against the output view.
                    let current = unsafe { d.row_mut(i0 + i, j0, cols) };
                    row.copy_from_slice(current)
                }
                _ => row.fill(0),
            }
            if kernel.layout == ALayout::U8Offset {
                for (acc, &fix) in row.iter_mut().zip(correction) {
                    *acc = acc.wrapping_add(fix);
                }
            }
        }
        let block_quads = self.blocking.kc.div_ceil(4);
        let mut pq = 0;
        while pq < quads {
            let kq = block_quads.min(quads - pq);
            for jp in j0 / NR..j1.div_ceil(NR) {
                let b = &self.b.i8_panel(jp)[pq * NR * 4..];
                let col = jp * NR - j0;
                for (ip, row0) in (i0..i1).step_by(mr).enumerate() {
                    let r = mr.min(m - row0);
                    let a =
                        &packed_a[(row0 * quads + pq * r) * quad_bytes..][..kq * r * quad_bytes];
                    kernel.run(r, kq, a, b, &mut tile[ip * mr * ldt + col..], ldt);
                }
            }
            pq += kq;
        }
        for i in 0..rows {
            let src = &tile[i * ldt..i * ldt + cols];
            // SAFETY: as above, this worker owns this part of the output.
            unsafe {
                match out {
                    RawOut::I32(d) => d.row_mut(i0 + i, j0, cols).copy_from_slice(src),
                    RawOut::I8(d, requant) => {
                        convert::i8_row(self.isa, src, d.row_mut(i0 + i, j0, cols), requant)
                    }
                    RawOut::F32(_) | RawOut::Bf16(_) | RawOut::Fp16(_) => {
                        unreachable!("output format validated against the precision")
                    }
                }
            }
        }
    }
}
