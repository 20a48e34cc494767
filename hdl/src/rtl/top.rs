//! The top level: register port, command queue, controller, array, DMA engines and output
//! conversion, with the fixed external interface of docs/hardware.md:
//!
//! - `clock`, `reset` (synchronous, active high);
//! - `csr$addr[11:0]`, `csr$wdata[31:0]`, `csr$write`, `csr$read`, `csr$rdata[31:0]`;
//! - `irq` (level);
//! - `axi$…`: AXI4 master, 32-bit addresses, 128-bit data, no IDs (see [`super::dma`]).

use rust_hdl::prelude::*;

use super::array::ArrayCore;
use super::controller::Controller;
use super::dma::{DmaRead, DmaWrite};
use super::outconv::OutConv;
use super::queue::CmdQueue;
use super::regfile::RegFile;
use super::HdlConfig;

/// The register port (`csr$…`).
#[derive(LogicInterface, Default)]
pub struct CsrPort {
    /// Byte offset of the register (32-bit aligned).
    pub addr: Signal<In, Bits<12>>,
    /// Write data.
    pub wdata: Signal<In, Bits<32>>,
    /// Write strobe (one cycle).
    pub write: Signal<In, Bit>,
    /// Read strobe (one cycle).
    pub read: Signal<In, Bit>,
    /// Read data, valid the cycle after the read strobe.
    pub rdata: Signal<Out, Bits<32>>,
}

/// The AXI4 master memory port (`axi$…`).
#[derive(LogicInterface, Default)]
pub struct AxiPort {
    /// Read address.
    pub araddr: Signal<Out, Bits<32>>,
    /// Read burst length − 1.
    pub arlen: Signal<Out, Bits<8>>,
    /// Read address valid.
    pub arvalid: Signal<Out, Bit>,
    /// Read address ready.
    pub arready: Signal<In, Bit>,
    /// Read data.
    pub rdata: Signal<In, Bits<128>>,
    /// Read response.
    pub rresp: Signal<In, Bits<2>>,
    /// Last read beat.
    pub rlast: Signal<In, Bit>,
    /// Read data valid.
    pub rvalid: Signal<In, Bit>,
    /// Read data ready.
    pub rready: Signal<Out, Bit>,
    /// Write address.
    pub awaddr: Signal<Out, Bits<32>>,
    /// Write burst length − 1.
    pub awlen: Signal<Out, Bits<8>>,
    /// Write address valid.
    pub awvalid: Signal<Out, Bit>,
    /// Write address ready.
    pub awready: Signal<In, Bit>,
    /// Write data.
    pub wdata: Signal<Out, Bits<128>>,
    /// Write byte strobes.
    pub wstrb: Signal<Out, Bits<16>>,
    /// Last write beat.
    pub wlast: Signal<Out, Bit>,
    /// Write data valid.
    pub wvalid: Signal<Out, Bit>,
    /// Write data ready.
    pub wready: Signal<In, Bit>,
    /// Write response.
    pub bresp: Signal<In, Bits<2>>,
    /// Write response valid.
    pub bvalid: Signal<In, Bit>,
    /// Write response ready.
    pub bready: Signal<Out, Bit>,
}

/// The accelerator, with operand buffers of `2^AW` words: two halves of `2^(AW−1)` k steps.
#[derive(LogicBlock)]
pub struct Accelerator<const AW: usize> {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset, active high.
    pub reset: Signal<In, Bit>,
    /// Register port.
    pub csr: CsrPort,
    /// Interrupt (level).
    pub irq: Signal<Out, Bit>,
    /// Memory port.
    pub axi: AxiPort,
    regs: RegFile,
    queue: CmdQueue,
    ctrl: Controller,
    core: ArrayCore<AW>,
    rd: DmaRead,
    wr: DmaWrite,
    conv0: OutConv,
    conv1: OutConv,
    conv2: OutConv,
    conv3: OutConv,
}

impl<const AW: usize> Accelerator<AW> {
    /// Builds the accelerator for `config` (whose `kdepth` must be `2^(AW−1)`).
    pub fn new(config: &HdlConfig) -> Self {
        assert_eq!(config.kdepth, 1 << (AW - 1), "kdepth must equal 2^(AW−1)");
        Self {
            clock: Default::default(),
            reset: Default::default(),
            csr: Default::default(),
            irq: Default::default(),
            axi: Default::default(),
            regs: RegFile::new(config.capabilities()),
            queue: CmdQueue::new(config.queue_depth),
            ctrl: Controller::new(
                config.rows,
                config.cols,
                AW - 1,
                config.interleave,
                config.precision_mask(),
            ),
            core: ArrayCore::new(config.rows, config.cols, config.interleave),
            rd: DmaRead::new(config.max_burst),
            wr: DmaWrite::default(),
            conv0: OutConv::default(),
            conv1: OutConv::default(),
            conv2: OutConv::default(),
            conv3: OutConv::default(),
        }
    }
}

impl<const AW: usize> Logic for Accelerator<AW> {
    #[hdl_gen]
    fn update(&mut self) {
        // Clocks and resets.
        self.regs.clock.next = self.clock.val();
        self.queue.clock.next = self.clock.val();
        self.ctrl.clock.next = self.clock.val();
        self.core.clock.next = self.clock.val();
        self.rd.clock.next = self.clock.val();
        self.wr.clock.next = self.clock.val();
        self.regs.reset.next = self.reset.val();
        self.queue.reset.next = self.reset.val();
        self.ctrl.reset.next = self.reset.val();
        self.core.reset.next = self.reset.val();
        self.rd.reset.next = self.reset.val();
        self.wr.reset.next = self.reset.val();

        // Register port and interrupt.
        self.regs.addr.next = self.csr.addr.val();
        self.regs.wdata.next = self.csr.wdata.val();
        self.regs.write.next = self.csr.write.val();
        self.regs.read.next = self.csr.read.val();
        self.csr.rdata.next = self.regs.rdata.val();
        self.irq.next = self.regs.irq.val();
        self.regs.status.next = self.ctrl.status.val();
        self.regs.completed.next = self.ctrl.completed.val();
        self.regs.errors.next = self.ctrl.errors.val();
        self.regs.perf_busy.next = self.ctrl.perf_busy.val();
        self.regs.perf_macs_lo.next = self.ctrl.perf_macs_lo.val();
        self.regs.perf_macs_hi.next = self.ctrl.perf_macs_hi.val();
        self.regs.perf_stall_read.next = self.ctrl.perf_stall_read.val();
        self.regs.perf_stall_write.next = self.ctrl.perf_stall_write.val();
        self.regs.perf_stall_other.next = self.ctrl.perf_stall_other.val();
        self.regs.irq_set.next = self.ctrl.irq_set.val();

        // Doorbell → queue → controller.
        self.queue.push.next = self.regs.doorbell.val();
        self.queue.data_in.next = self.regs.desc.val();
        self.queue.pop.next = self.ctrl.q_pop.val();
        self.ctrl.q_head.next = self.queue.head.val();
        self.ctrl.q_empty.next = self.queue.empty.val();
        self.ctrl.q_free.next = self.queue.free.val();
        self.ctrl.reject.next = self.regs.doorbell.val() & self.queue.full.val();
        self.ctrl.perf_clear.next = self.regs.perf_clear.val();

        // Controller → array.
        self.core.prec.next = self.ctrl.prec.val();
        self.core.wprec.next = self.ctrl.wprec.val();
        self.core.a_we.next = self.ctrl.a_we.val();
        self.core.a_wsel.next = self.ctrl.a_wsel.val();
        self.core.a_waddr.next = bit_cast::<AW, 16>(self.ctrl.a_waddr.val());
        self.core.a_wdata.next = self.ctrl.a_wdata.val();
        self.core.b_we.next = self.ctrl.b_we.val();
        self.core.b_wword.next = self.ctrl.b_wword.val();
        self.core.b_waddr.next = bit_cast::<AW, 16>(self.ctrl.b_waddr.val());
        self.core.b_wdata.next = self.ctrl.b_wdata.val();
        self.core.step.next = self.ctrl.step.val();
        self.core.step_first.next = self.ctrl.step_first.val();
        self.core.step_mark.next = self.ctrl.step_mark.val();
        self.core.step_addr.next = bit_cast::<AW, 16>(self.ctrl.step_addr.val());
        self.core.step_addr_a.next = bit_cast::<AW, 16>(self.ctrl.step_addr_a.val());
        self.core.step_lane.next = self.ctrl.step_lane.val();
        self.core.ci_we.next = self.ctrl.ci_we.val();
        self.core.ci_wsel.next = self.ctrl.ci_wsel.val();
        self.core.ci_wdata.next = self.ctrl.ci_wdata.val();
        self.core.sh_shift.next = self.ctrl.sh_shift.val();
        self.core.out_sel.next = self.ctrl.out_sel.val();
        self.ctrl.core_done.next = self.core.done.val();

        // Controller ↔ DMA read.
        self.rd.start.next = self.ctrl.rd_start.val();
        self.rd.addr.next = self.ctrl.rd_addr.val();
        self.rd.count.next = self.ctrl.rd_count.val();
        self.rd.esz.next = self.ctrl.rd_esz.val();
        self.rd.raw.next = self.ctrl.rd_raw.val();
        self.rd.rows.next = self.ctrl.rd_rows.val();
        self.rd.stride.next = self.ctrl.rd_stride.val();
        self.rd.beat_ready.next = self.ctrl.rd_beat_ready.val();
        self.ctrl.rd_busy.next = self.rd.busy.val();
        self.ctrl.rd_error.next = self.rd.error.val();
        self.ctrl.rd_valid.next = self.rd.elem_valid.val();
        self.ctrl.rd_data.next = self.rd.elem_data.val();
        self.ctrl.rd_index.next = self.rd.elem_index.val();
        self.ctrl.rd_beat_valid.next = self.rd.beat_valid.val();
        self.ctrl.rd_beat_data.next = self.rd.beat_data.val();

        // Array drain → output conversion (four lanes) → DMA write. One block per lane,
        // written out: `#[hdl_gen]` has no loops or arrays of blocks.
        self.conv0.code.next = self.ctrl.oc_code.val();
        self.conv0.is_float.next = self.ctrl.oc_float.val();
        self.conv0.acc.next = self.core.out_data.val().get_bits::<32>(0);
        self.conv0.rq_mult.next = self.ctrl.rq_mult.val();
        self.conv0.rq_shift.next = self.ctrl.rq_shift.val();
        self.conv0.rq_zp.next = self.ctrl.rq_zp.val();
        self.conv1.code.next = self.ctrl.oc_code.val();
        self.conv1.is_float.next = self.ctrl.oc_float.val();
        self.conv1.acc.next = self.core.out_data.val().get_bits::<32>(32);
        self.conv1.rq_mult.next = self.ctrl.rq_mult.val();
        self.conv1.rq_shift.next = self.ctrl.rq_shift.val();
        self.conv1.rq_zp.next = self.ctrl.rq_zp.val();
        self.conv2.code.next = self.ctrl.oc_code.val();
        self.conv2.is_float.next = self.ctrl.oc_float.val();
        self.conv2.acc.next = self.core.out_data.val().get_bits::<32>(64);
        self.conv2.rq_mult.next = self.ctrl.rq_mult.val();
        self.conv2.rq_shift.next = self.ctrl.rq_shift.val();
        self.conv2.rq_zp.next = self.ctrl.rq_zp.val();
        self.conv3.code.next = self.ctrl.oc_code.val();
        self.conv3.is_float.next = self.ctrl.oc_float.val();
        self.conv3.acc.next = self.core.out_data.val().get_bits::<32>(96);
        self.conv3.rq_mult.next = self.ctrl.rq_mult.val();
        self.conv3.rq_shift.next = self.ctrl.rq_shift.val();
        self.conv3.rq_zp.next = self.ctrl.rq_zp.val();
        self.wr.start.next = self.ctrl.wr_start.val();
        self.wr.addr.next = self.ctrl.wr_addr.val();
        self.wr.count.next = self.ctrl.wr_count.val();
        self.wr.esz.next = self.ctrl.wr_esz.val();
        self.wr.in_valid.next = true;
        self.wr.in_data.next = (bit_cast::<128, 32>(self.conv3.out.val()) << 96)
            | (bit_cast::<128, 32>(self.conv2.out.val()) << 64)
            | (bit_cast::<128, 32>(self.conv1.out.val()) << 32)
            | bit_cast::<128, 32>(self.conv0.out.val());
        self.wr.clear_error.next = self.ctrl.wr_clear_error.val();
        self.ctrl.wr_busy.next = self.wr.busy.val();
        self.ctrl.wr_can_start.next = self.wr.can_start.val();
        self.ctrl.wr_idle.next = self.wr.idle.val();
        self.ctrl.wr_error.next = self.wr.error.val();
        self.ctrl.wr_index.next = self.wr.in_index.val();

        // AXI.
        self.axi.araddr.next = self.rd.araddr.val();
        self.axi.arlen.next = self.rd.arlen.val();
        self.axi.arvalid.next = self.rd.arvalid.val();
        self.rd.arready.next = self.axi.arready.val();
        self.rd.rdata.next = self.axi.rdata.val();
        self.rd.rresp.next = self.axi.rresp.val();
        self.rd.rlast.next = self.axi.rlast.val();
        self.rd.rvalid.next = self.axi.rvalid.val();
        self.axi.rready.next = self.rd.rready.val();
        self.axi.awaddr.next = self.wr.awaddr.val();
        self.axi.awlen.next = self.wr.awlen.val();
        self.axi.awvalid.next = self.wr.awvalid.val();
        self.wr.awready.next = self.axi.awready.val();
        self.axi.wdata.next = self.wr.wdata.val();
        self.axi.wstrb.next = self.wr.wstrb.val();
        self.axi.wlast.next = self.wr.wlast.val();
        self.axi.wvalid.next = self.wr.wvalid.val();
        self.wr.wready.next = self.axi.wready.val();
        self.wr.bresp.next = self.axi.bresp.val();
        self.wr.bvalid.next = self.axi.bvalid.val();
        self.axi.bready.next = self.wr.bready.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regmap::{self, fields, ErrorCode, OutputCode, PrecisionCode};
    use crate::rtl::dma::memory::{MasterOut, Memory};
    use crate::rtl::testbench::{settle, tick};
    use golden::gemm::{reference, GemmSpec};
    use golden::numerics::{OutputFormat, Precision, Requant};
    use rand::{Rng, SeedableRng};

    /// Buffer address width: two halves of 16 k steps.
    const AW: usize = 5;

    struct Harness {
        acc: Box<Accelerator<AW>>,
        mem: Memory,
        cycles: u64,
    }

    fn config() -> HdlConfig {
        HdlConfig {
            rows: 2,
            cols: 3,
            kdepth: 1 << (AW - 1),
            queue_depth: 2,
            max_burst: 4,
            precisions: PrecisionCode::ALL.to_vec(),
            interleave: 2,
        }
    }

    impl Harness {
        fn new(config: &HdlConfig) -> Self {
            let mut acc = Box::new(Accelerator::<AW>::new(config));
            acc.connect_all();
            let mut h = Harness {
                acc,
                mem: Memory::new(1 << 18),
                cycles: 0,
            };
            h.acc.reset.next = true;
            h.cycle();
            h.acc.reset.next = false;
            h
        }

        fn cycle(&mut self) {
            let o = self.mem.outputs();
            let a = &mut self.acc;
            a.axi.arready.next = o.arready;
            a.axi.rdata.next = o.rdata.to_bits();
            a.axi.rresp.next = o.rresp.into();
            a.axi.rlast.next = o.rlast;
            a.axi.rvalid.next = o.rvalid;
            a.axi.awready.next = o.awready;
            a.axi.wready.next = o.wready;
            a.axi.bresp.next = o.bresp.into();
            a.axi.bvalid.next = o.bvalid;
            settle(a.as_mut());
            let m = MasterOut {
                araddr: a.axi.araddr.val().to_u64(),
                arlen: a.axi.arlen.val().to_u64(),
                arvalid: a.axi.arvalid.val(),
                rready: a.axi.rready.val(),
                awaddr: a.axi.awaddr.val().to_u64(),
                awvalid: a.axi.awvalid.val(),
                wdata: a.axi.wdata.val().to_u128(),
                wstrb: a.axi.wstrb.val().to_u64() as u16,
                wvalid: a.axi.wvalid.val(),
                bready: a.axi.bready.val(),
            };
            self.mem.edge(&m, &o);
            tick(a.as_mut(), |a| &mut a.clock);
            self.cycles += 1;
        }

        fn write(&mut self, addr: u32, value: u32) {
            self.acc.csr.addr.next = u64::from(addr).into();
            self.acc.csr.wdata.next = u64::from(value).into();
            self.acc.csr.write.next = true;
            self.cycle();
            self.acc.csr.write.next = false;
        }

        fn read(&mut self, addr: u32) -> u32 {
            self.acc.csr.addr.next = u64::from(addr).into();
            self.acc.csr.read.next = true;
            self.cycle();
            self.acc.csr.read.next = false;
            self.acc.csr.rdata.val().to_u64() as u32
        }

        /// Waits until `COMPLETED` reaches `target` (panics after `limit` cycles: a hang).
        fn wait_completed(&mut self, target: u32, limit: u64) {
            let start = self.cycles;
            while self.read(regmap::COMPLETED) < target {
                for _ in 0..16 {
                    self.cycle();
                }
                assert!(self.cycles - start < limit, "controller hung");
            }
        }
    }

    /// A descriptor: registers to write, in the driver's way.
    struct Desc {
        regs: Vec<(u32, u32)>,
    }

    #[allow(clippy::too_many_arguments)]
    fn desc(
        prec: PrecisionCode,
        out: OutputCode,
        accumulate: bool,
        (a, b, c, d): (u32, u32, u32, u32),
        (m, n, k): (u32, u32, u32),
        (lda, ldb, ldc, ldd): (u32, u32, u32, u32),
        rq: Requant,
    ) -> Desc {
        let flags = fields::DESC_FLAGS::PRECISION.encode(prec as u32)
            | fields::DESC_FLAGS::OUTPUT.encode(out as u32)
            | fields::DESC_FLAGS::ACCUMULATE.encode(accumulate.into());
        Desc {
            regs: vec![
                (regmap::DESC_A_LO, a),
                (regmap::DESC_A_HI, 0),
                (regmap::DESC_B_LO, b),
                (regmap::DESC_B_HI, 0),
                (regmap::DESC_C_LO, c),
                (regmap::DESC_C_HI, 0),
                (regmap::DESC_D_LO, d),
                (regmap::DESC_D_HI, 0),
                (regmap::DESC_M, m),
                (regmap::DESC_N, n),
                (regmap::DESC_K, k),
                (regmap::DESC_LDA, lda),
                (regmap::DESC_LDB, ldb),
                (regmap::DESC_LDC, ldc),
                (regmap::DESC_LDD, ldd),
                (regmap::DESC_FLAGS, flags),
                (regmap::DESC_RQ_MULT, rq.multiplier as u32),
                (
                    regmap::DESC_RQ_SHIFT,
                    fields::DESC_RQ_SHIFT::SHIFT.encode(rq.shift.into())
                        | fields::DESC_RQ_SHIFT::ZERO_POINT.encode(u32::from(rq.zero_point as u8)),
                ),
            ],
        }
    }

    fn submit(h: &mut Harness, d: &Desc) {
        for &(r, v) in &d.regs {
            h.write(r, v);
        }
        h.write(regmap::DOORBELL, 1);
    }

    /// A GEMM whose operands are in memory: its descriptor and the D rows it must produce.
    struct Prepared {
        spec: GemmSpec,
        desc: Desc,
        d_at: usize,
        ldd: usize,
        want: Vec<u8>,
    }

    /// Runs one GEMM with strided operands at fixed addresses and compares D with golden.
    fn gemm_case(h: &mut Harness, spec: GemmSpec, seed: u64) {
        gemm_stream(h, &[(spec, seed)]);
    }

    /// Puts every GEMM's operands in its own 32 KiB region, rings all doorbells back to back
    /// (so that each GEMM's loads, rounds and start values overlap the previous one's last
    /// tiles), waits for all and compares every D, and every byte outside them, with golden.
    fn gemm_stream(h: &mut Harness, gemms: &[(GemmSpec, u64)]) {
        let prepared: Vec<Prepared> = gemms
            .iter()
            .enumerate()
            .map(|(i, &(spec, seed))| prepare(h, spec, seed, i * 0x8000))
            .collect();
        let before = h.mem.bytes.clone();
        let done_before = h.read(regmap::COMPLETED);
        let errors_before = h.read(regmap::ERRORS);
        for p in &prepared {
            submit(h, &p.desc);
        }
        h.wait_completed(done_before + prepared.len() as u32, 400_000);
        assert_eq!(
            h.read(regmap::ERRORS),
            errors_before,
            "a GEMM of {gemms:?} failed"
        );
        let mut expected_mem = before;
        for p in &prepared {
            let (m, n, ob) = (p.spec.m, p.spec.n, p.spec.output.bytes());
            for i in 0..m {
                let got = &h.mem.bytes[p.d_at + i * p.ldd..][..n * ob];
                assert_eq!(
                    got,
                    &p.want[i * n * ob..][..n * ob],
                    "row {i} of {:?}",
                    p.spec
                );
                expected_mem[p.d_at + i * p.ldd..][..n * ob]
                    .copy_from_slice(&p.want[i * n * ob..][..n * ob]);
            }
        }
        assert!(
            h.mem.bytes == expected_mem,
            "bytes outside D changed for {gemms:?}"
        );
    }

    /// Writes a GEMM's operands at `base` (rows starting anywhere in a beat) and computes the
    /// golden D.
    fn prepare(h: &mut Harness, spec: GemmSpec, seed: u64, base: usize) -> Prepared {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let eb = spec.precision.operand_bytes();
        let ob = spec.output.bytes();
        let (m, n, k) = (spec.m, spec.n, spec.k);
        // Row strides with a little padding; padding bytes must survive.
        let (lda, ldb, ldc, ldd) = (k * eb + 2 * 4, n * eb + 4, n * 4 + 4, n * ob + 4);
        // Operands at element-aligned but not beat-aligned addresses (varied by the seed), so
        // rows start anywhere in a beat.
        let s = seed as usize;
        let (a_at, b_at) = (
            base + 0x0100 + eb * (s % 8),
            base + 0x2000 + eb * (s / 2 % 8),
        );
        let (c_at, d_at) = (base + 0x4000 + 4 * (s % 4), base + 0x6000 + ob * (s % 5));
        let elem = |rng: &mut rand::rngs::StdRng| -> Vec<u8> {
            match spec.precision.operand_format() {
                None => vec![rng.random::<u8>()],
                Some(f) => (f.encode_rne(rng.random_range(-3.0f32..3.0)) as u16)
                    .to_le_bytes()
                    .to_vec(),
            }
        };
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..m {
            for kk in 0..k {
                let e = elem(&mut rng);
                h.mem.bytes[a_at + i * lda + kk * eb..][..eb].copy_from_slice(&e);
                a.extend(e);
            }
        }
        for kk in 0..k {
            for j in 0..n {
                let e = elem(&mut rng);
                h.mem.bytes[b_at + kk * ldb + j * eb..][..eb].copy_from_slice(&e);
                b.extend(e);
            }
        }
        for i in 0..m {
            for j in 0..n {
                let v: u32 = match spec.precision {
                    Precision::Int8 => rng.random::<u32>() >> 8,
                    _ => rng.random_range(-4.0f32..4.0).to_bits(),
                };
                h.mem.bytes[c_at + i * ldc + j * 4..][..4].copy_from_slice(&v.to_le_bytes());
                c.extend(v.to_le_bytes());
            }
        }
        let mut want = vec![0u8; spec.d_bytes()];
        reference::gemm(&spec, &a, &b, spec.accumulate.then_some(&c[..]), &mut want).unwrap();
        let (prec, out, rq) = match (spec.precision, spec.output) {
            (Precision::Int8, OutputFormat::I8(rq)) => (PrecisionCode::Int8, OutputCode::I8, rq),
            (Precision::Int8, _) => (PrecisionCode::Int8, OutputCode::Raw, Requant::SATURATE),
            (p, o) => (
                if p == Precision::Bf16 {
                    PrecisionCode::Bf16
                } else {
                    PrecisionCode::Fp16
                },
                match o {
                    OutputFormat::Bf16 => OutputCode::Bf16,
                    OutputFormat::Fp16 => OutputCode::Fp16,
                    _ => OutputCode::Raw,
                },
                Requant::SATURATE,
            ),
        };
        let desc = desc(
            prec,
            out,
            spec.accumulate,
            (a_at as u32, b_at as u32, c_at as u32, d_at as u32),
            (m as u32, n as u32, k as u32),
            (lda as u32, ldb as u32, ldc as u32, ldd as u32),
            rq,
        );
        Prepared {
            spec,
            desc,
            d_at,
            ldd,
            want,
        }
    }

    #[test]
    fn gemms_match_golden_including_edge_tiles_and_chunks() {
        let mut h = Harness::new(&config());
        assert_eq!(h.read(regmap::ID), regmap::IDENT);
        let caps = h.read(regmap::CAP_ARRAY);
        assert_eq!(
            (
                fields::CAP_ARRAY::ROWS.get(caps),
                fields::CAP_ARRAY::COLS.get(caps)
            ),
            (2, 3)
        );
        // 5×4 output on a 2×3 array (edge tiles both ways), K = 19 > 16-step buffers (chunks).
        let mut s = GemmSpec::new(Precision::Bf16, 5, 4, 19);
        gemm_case(&mut h, s, 1);
        s = GemmSpec::new(Precision::Fp16, 3, 7, 5);
        s.accumulate = true;
        s.output = OutputFormat::Fp16;
        gemm_case(&mut h, s, 2);
        s = GemmSpec::new(Precision::Bf16, 2, 3, 1);
        s.output = OutputFormat::Bf16;
        gemm_case(&mut h, s, 3);
        s = GemmSpec::new(Precision::Int8, 4, 5, 17);
        s.accumulate = true;
        gemm_case(&mut h, s, 4);
        s.output = OutputFormat::I8(Requant {
            multiplier: 1 << 20,
            shift: 24,
            zero_point: -3,
        });
        gemm_case(&mut h, s, 5);
        let macs =
            u64::from(h.read(regmap::PERF_MACS_LO)) | u64::from(h.read(regmap::PERF_MACS_HI)) << 32;
        assert_eq!(macs, 5 * 4 * 19 + 3 * 7 * 5 + 2 * 3 + 2 * 4 * 5 * 17);
        assert!(h.read(regmap::PERF_BUSY) > 0);
    }

    /// Several row and column tiles, with K that fits a buffer half (A panels reused across
    /// column tiles, loaded into alternate halves) and K that does not (A and B per chunk):
    /// every process runs beside the others, including the drain reading C while the loader
    /// reads operands.
    #[test]
    fn multi_tile_gemms_overlap_loads_compute_and_drain() {
        let mut h = Harness::new(&config());
        let tile_rows = 2 * 2;
        let mut s = GemmSpec::new(Precision::Bf16, 3 * tile_rows + 1, 10, 16);
        s.accumulate = true;
        s.output = OutputFormat::Bf16;
        gemm_case(&mut h, s, 11);
        s = GemmSpec::new(Precision::Int8, 2 * tile_rows + 3, 7, 33);
        gemm_case(&mut h, s, 12);
        s = GemmSpec::new(Precision::Fp16, tile_rows, 20, 3);
        s.accumulate = true;
        gemm_case(&mut h, s, 13);
        s = GemmSpec::new(Precision::Int8, 3 * tile_rows, 9, 8);
        s.accumulate = true;
        s.output = OutputFormat::I8(Requant {
            multiplier: 3 << 18,
            shift: 23,
            zero_point: 5,
        });
        gemm_case(&mut h, s, 14);
        let macs =
            u64::from(h.read(regmap::PERF_MACS_LO)) | u64::from(h.read(regmap::PERF_MACS_HI)) << 32;
        assert_eq!(macs, 13 * 10 * 16 + 11 * 7 * 33 + 4 * 20 * 3 + 12 * 9 * 8);
        assert!(h.read(regmap::PERF_BUSY) > 0);
    }

    /// GEMMs with one or two k steps, for every interleave factor. Their k = 0 round of first
    /// steps comes shortly before the flush round; when it was marked like the flush round, its
    /// `done` pulse (R + C + 5 cycles after issue) reached the controller while it waited for
    /// the flush round's, and the drain read the chains before the results were swapped in
    /// (here with L = 2 for K = 2; in the simulator with L = 8 for K = 1 on 8×8).
    #[test]
    fn short_k_gemms_drain_after_the_flush_round() {
        for l in crate::rtl::pe::INTERLEAVES {
            let cfg = HdlConfig {
                interleave: l,
                ..config()
            };
            // Names the interleave factor in the output of a failure.
            println!("interleave {l}");
            let mut h = Harness::new(&cfg);
            let tile_rows = cfg.rows * l;
            let mut specs = vec![
                GemmSpec::new(Precision::Bf16, 1, 1, 1),
                // Edge tiles both ways, tiles back to back.
                GemmSpec::new(Precision::Bf16, tile_rows + 1, cfg.cols + 1, 1),
                GemmSpec::new(Precision::Fp16, 2, cfg.cols, 2),
            ];
            let mut s = GemmSpec::new(Precision::Int8, 3, 2, 1);
            s.accumulate = true;
            specs.push(s);
            for (n, spec) in specs.into_iter().enumerate() {
                gemm_case(&mut h, spec, 100 + n as u64);
            }
        }
    }

    /// GEMMs with fewer rows than `R·L` share each PE's slots between rows and 2^g column
    /// groups: every g the interleave allows, N ending inside and before the last group, K
    /// resident and in chunks of `kdepth/2^g`, with and without C, every output.
    #[test]
    fn short_gemms_spread_slots_over_column_groups() {
        // L = 8 has every g of L = 4 and more; POCFORGE_FULL=1 runs L = 4 as well.
        let interleaves: &[usize] = if std::env::var_os("POCFORGE_FULL").is_some() {
            &[4, 8]
        } else {
            &[8]
        };
        for &l in interleaves {
            let cfg = HdlConfig {
                interleave: l,
                ..config()
            };
            println!("interleave {l}");
            let mut h = Harness::new(&cfg);
            let tile_rows = cfg.rows * l;
            let mut seed = 200;
            let mut macs = 0;
            for g in 1..=l.trailing_zeros() as usize {
                let m = tile_rows >> g;
                let groups = cfg.cols << g;
                // Rows: all of the row tile, and fewer (but still needing this g).
                for (m, n, k) in [
                    (m, groups + cfg.cols + 1, 3),
                    (m / 2 + 1, groups - cfg.cols + 1, (16 >> g) + 5),
                    (m, 2 * groups, 16 >> g),
                ] {
                    let mut s = GemmSpec::new(Precision::Bf16, m, n, k);
                    s.accumulate = seed % 2 == 0;
                    s.output =
                        [OutputFormat::F32, OutputFormat::Bf16, OutputFormat::Fp16][seed % 3];
                    gemm_case(&mut h, s, seed as u64);
                    let mut s = GemmSpec::new(Precision::Int8, m, n, k + 1);
                    s.accumulate = seed % 2 == 1;
                    if seed % 3 == 0 {
                        s.output = OutputFormat::I8(Requant {
                            multiplier: 5 << 17,
                            shift: 22,
                            zero_point: 1,
                        });
                    }
                    gemm_case(&mut h, s, seed as u64 + 1);
                    macs += m * n * (2 * k + 1);
                    seed += 2;
                }
            }
            let got = u64::from(h.read(regmap::PERF_MACS_LO))
                | u64::from(h.read(regmap::PERF_MACS_HI)) << 32;
            assert_eq!(got, macs as u64, "useful MACs counted per tile");
        }
    }

    /// Column groups whose B rows are whole 16-byte words (C = 8: bf16 rows of one word) load
    /// the tile's row of every group in one transfer: word w goes to group w. Rows start inside
    /// a beat; N ends inside a group and before the last; K resident and chunked; int8 (rows
    /// of half a word) loads group by group in the same GEMM stream.
    #[test]
    fn joined_group_rows_load_in_one_transfer() {
        let cfg = HdlConfig {
            rows: 2,
            cols: 8,
            interleave: 4,
            ..config()
        };
        let mut h = Harness::new(&cfg);
        let mut gemms = Vec::new();
        for (n, (m, nn, k)) in [(4, 16, 5), (3, 13, 9), (2, 29, 3), (1, 9, 6)]
            .into_iter()
            .enumerate()
        {
            let mut s = GemmSpec::new(Precision::Bf16, m, nn, k);
            s.accumulate = n % 2 == 1;
            s.output = [OutputFormat::F32, OutputFormat::Bf16][n % 2];
            gemms.push((s, 500 + n as u64));
            gemms.push((GemmSpec::new(Precision::Int8, m, nn, k), 600 + n as u64));
        }
        // Streams of four: the FIFO, the validator and this queue of two hold seven.
        for stream in gemms.chunks(4) {
            gemm_stream(&mut h, stream);
        }
    }

    /// Descriptors rung back to back run as one stream: the loader goes on to the next GEMM's
    /// operands, the drain brings in its first start values while the previous GEMM's last
    /// tiles compute and leave, and each retires in order. Neighbours differ in precision
    /// (B rows laid out differently), column groups, C or none, output format, and size (one
    /// tile or many, resident or chunked K); a stream of one-tile GEMMs chains every GEMM.
    #[test]
    fn back_to_back_gemms_overlap_and_retire_in_order() {
        let mut h = Harness::new(&config());
        let tile_rows = 2 * 2;
        let mut specs = Vec::new();
        let mut s = GemmSpec::new(Precision::Bf16, 2 * tile_rows + 1, 7, 5);
        s.accumulate = true;
        specs.push(s);
        let mut s = GemmSpec::new(Precision::Int8, 2, 5, 3);
        s.output = OutputFormat::I8(Requant {
            multiplier: 3 << 18,
            shift: 20,
            zero_point: -2,
        });
        specs.push(s);
        let mut s = GemmSpec::new(Precision::Fp16, 1, 2, 20);
        s.output = OutputFormat::Fp16;
        specs.push(s);
        let mut s = GemmSpec::new(Precision::Int8, tile_rows + 2, 4, 17);
        s.accumulate = true;
        specs.push(s);
        let mut s = GemmSpec::new(Precision::Bf16, 3, 3, 1);
        s.output = OutputFormat::Bf16;
        specs.push(s);
        let gemms: Vec<(GemmSpec, u64)> = specs.into_iter().zip(300..).collect();
        gemm_stream(&mut h, &gemms);
        // Single-tile GEMMs only: every one after the first is chained.
        let mut ones = Vec::new();
        for i in 0..6u64 {
            let mut s = GemmSpec::new([Precision::Bf16, Precision::Int8][i as usize % 2], 3, 3, 2);
            s.accumulate = i % 3 == 1;
            ones.push((s, 400 + i));
        }
        gemm_stream(&mut h, &ones);
    }

    /// A memory error in the middle of a stream: the descriptors in the FIFO retire with it
    /// (each counted), nothing hangs, and the next GEMM runs normally.
    #[test]
    fn an_error_in_a_stream_retires_the_descriptors_in_flight() {
        let mut h = Harness::new(&config());
        let spec = GemmSpec::new(Precision::Bf16, 5, 4, 19);
        let mut gemms: Vec<Prepared> = (0..3)
            .map(|i| prepare(&mut h, spec, 700 + i, i as usize * 0x8000))
            .collect();
        // The second GEMM's B lies where the memory answers with errors.
        let bad_at = 0x30000u32;
        h.mem.error_from = u64::from(bad_at);
        for (reg, value) in gemms[1].desc.regs.iter_mut() {
            if *reg == regmap::DESC_B_LO {
                *value = bad_at;
            }
        }
        let done = h.read(regmap::COMPLETED);
        let errors = h.read(regmap::ERRORS);
        for p in &gemms {
            submit(&mut h, &p.desc);
        }
        h.wait_completed(done + 3, 400_000);
        let failed = h.read(regmap::ERRORS) - errors;
        assert!((1..=3).contains(&failed), "{failed} descriptors failed");
        let status = h.read(regmap::STATUS);
        assert_eq!(
            fields::STATUS::LAST_ERROR.get(status),
            ErrorCode::ReadResponse as u32
        );
        assert_eq!(fields::STATUS::BUSY.get(status), 0, "idle after the abort");
        h.mem.error_from = u64::MAX;
        gemm_case(&mut h, spec, 710);
    }

    #[test]
    fn malformed_descriptors_raise_errors_and_never_hang() {
        let mut h = Harness::new(&config());
        h.write(regmap::IRQ_ENABLE, fields::IRQ_ENABLE::ERROR.encode(1));
        let good = || {
            desc(
                PrecisionCode::Bf16,
                OutputCode::Raw,
                false,
                (0x100, 0x2000, 0x4000, 0x6000),
                (2, 2, 2),
                (4, 4, 8, 8),
                Requant::SATURATE,
            )
        };
        let with = |reg: u32, value: u32| {
            let mut d = good();
            for r in d.regs.iter_mut().filter(|r| r.0 == reg) {
                r.1 = value;
            }
            d
        };
        let int8_flags =
            fields::DESC_FLAGS::PRECISION.encode(0) | fields::DESC_FLAGS::OUTPUT.encode(3);
        let cases = [
            (with(regmap::DESC_M, 0), ErrorCode::ZeroDimension),
            (with(regmap::DESC_K, 0), ErrorCode::ZeroDimension),
            (with(regmap::DESC_FLAGS, 7), ErrorCode::UnsupportedPrecision),
            (
                with(
                    regmap::DESC_FLAGS,
                    fields::DESC_FLAGS::PRECISION.encode(1) | fields::DESC_FLAGS::OUTPUT.encode(3),
                ),
                ErrorCode::UnsupportedOutput,
            ),
            (
                with(regmap::DESC_A_LO, 0xFFFF_FFFC),
                ErrorCode::AddressOverflow,
            ),
            (with(regmap::DESC_D_HI, 1), ErrorCode::AddressOverflow),
            (with(regmap::DESC_LDB, 3), ErrorCode::StrideTooSmall),
            (with(regmap::DESC_A_LO, 0x101), ErrorCode::Misaligned),
            (
                {
                    let mut d = with(regmap::DESC_FLAGS, int8_flags);
                    for r in d.regs.iter_mut().filter(|r| r.0 == regmap::DESC_RQ_SHIFT) {
                        r.1 = 63;
                    }
                    d
                },
                ErrorCode::ShiftRange,
            ),
            (with(regmap::DESC_B_LO, 0xF000), ErrorCode::ReadResponse),
            (with(regmap::DESC_D_LO, 0xF000), ErrorCode::WriteResponse),
        ];
        h.mem.error_from = 0xF000;
        for (n, (d, code)) in cases.iter().enumerate() {
            submit(&mut h, d);
            h.wait_completed(n as u32 + 1, 50_000);
            let status = h.read(regmap::STATUS);
            assert_eq!(
                fields::STATUS::LAST_ERROR.get(status),
                *code as u32,
                "case {n}"
            );
            assert!(h.acc.irq.val(), "case {n}: ERROR interrupt");
            let irq = h.read(regmap::IRQ_STATUS);
            assert_eq!(irq & 2, 2);
            h.write(regmap::IRQ_STATUS, irq);
            h.cycle();
            assert!(!h.acc.irq.val(), "case {n}: interrupt cleared");
        }
        assert_eq!(h.read(regmap::ERRORS), cases.len() as u32);
        // The queue rejects a doorbell when full (2 slots; the controller holds a third).
        for _ in 0..4 {
            h.write(regmap::DOORBELL, 1);
        }
        let status = h.read(regmap::STATUS);
        assert_eq!(
            fields::STATUS::LAST_ERROR.get(status),
            ErrorCode::QueueFull as u32
        );
        assert_eq!(fields::STATUS::QUEUE_FREE.get(status), 0);
        assert_eq!(fields::STATUS::BUSY.get(status), 1);
        h.wait_completed(cases.len() as u32 + 3, 100_000);
        // And a good descriptor still runs.
        let done = h.read(regmap::COMPLETED);
        let errors = h.read(regmap::ERRORS);
        submit(&mut h, &good());
        h.wait_completed(done + 1, 50_000);
        assert_eq!(h.read(regmap::ERRORS), errors);
    }
}
