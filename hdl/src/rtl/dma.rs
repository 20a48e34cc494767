//! The DMA engine: an AXI4 read engine and write engine between memory and the array's
//! buffers. The read engine either hands out one element per cycle (start values) or, in *raw*
//! mode, every beat as it arrives (operand rows, written into the buffers a beat at a time);
//! the write engine takes one element per cycle.
//!
//! Memory port protocol (AXI4 subset, documented in docs/hardware.md): 32-bit byte addresses,
//! 128-bit data, INCR bursts of full-width beats (so `arsize`/`awsize` = 16 bytes and
//! `arburst`/`awburst` = INCR are implied and not wired), no IDs, in-order responses. Reads use
//! bursts of up to `MAX_BURST` beats that never cross a 4 KiB boundary; writes use single-beat
//! bursts with byte strobes (a row of results is at most a few beats). Any non-OKAY response sets
//! the engine's sticky `error` (the transfer still runs to its end, so the bus never hangs).
//!
//! Elements are 1, 2 or 4 bytes (`esz` = log2 of the size) and must be aligned to their size
//! (the controller rejects misaligned descriptors), so an element never straddles two beats.

use rust_hdl::prelude::*;

/// Bytes per AXI beat.
pub const BEAT_BYTES: u64 = 16;

#[derive(Copy, Clone, PartialEq, Eq, Debug, LogicState)]
enum ReadState {
    Idle,
    Addr,
    Data,
    Extract,
    Raw,
    RawDrain,
}

/// Reads `count` elements starting at `addr` and emits them one per cycle.
#[derive(LogicBlock)]
pub struct DmaRead {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset.
    pub reset: Signal<In, Bit>,
    /// Start a transfer (ignored while busy).
    pub start: Signal<In, Bit>,
    /// Byte address of the first element (aligned to the element size).
    pub addr: Signal<In, Bits<32>>,
    /// Number of elements (≥ 1).
    pub count: Signal<In, Bits<16>>,
    /// log2 of the element size in bytes (0, 1 or 2).
    pub esz: Signal<In, Bits<2>>,
    /// Raw mode (sampled with `start`): read `rows` rows of `count` elements, `stride` bytes
    /// apart, and hand out whole beats on `beat_valid`/`beat_data` instead of elements. The
    /// read addresses of all rows are issued back to back, ahead of the data, so that the
    /// memory's latency is paid once per transfer, not per row.
    pub raw: Signal<In, Bit>,
    /// Raw mode: number of rows (≥ 1).
    pub rows: Signal<In, Bits<16>>,
    /// Raw mode: bytes from one row's start to the next's.
    pub stride: Signal<In, Bits<32>>,
    /// Raw mode: the consumer takes a beat this cycle (low stalls the data channel).
    pub beat_ready: Signal<In, Bit>,
    /// A transfer is in progress.
    pub busy: Signal<Out, Bit>,
    /// Some read of the current or last transfer had a non-OKAY response.
    pub error: Signal<Out, Bit>,
    /// `elem_data` holds element `elem_index` this cycle.
    pub elem_valid: Signal<Out, Bit>,
    /// The element, zero-extended.
    pub elem_data: Signal<Out, Bits<32>>,
    /// Its index within the transfer.
    pub elem_index: Signal<Out, Bits<16>>,
    /// Raw mode: `beat_data` is the next beat of the transfer, this cycle only: each row's
    /// beats in order (the beat holding its first byte first), row after row.
    pub beat_valid: Signal<Out, Bit>,
    /// Raw mode: the beat, as it comes from `rdata`.
    pub beat_data: Signal<Out, Bits<128>>,
    /// AXI read address.
    pub araddr: Signal<Out, Bits<32>>,
    /// AXI burst length minus one.
    pub arlen: Signal<Out, Bits<8>>,
    /// AXI read address valid.
    pub arvalid: Signal<Out, Bit>,
    /// AXI read address ready.
    pub arready: Signal<In, Bit>,
    /// AXI read data.
    pub rdata: Signal<In, Bits<128>>,
    /// AXI read response (0 = OKAY).
    pub rresp: Signal<In, Bits<2>>,
    /// AXI last beat of a burst.
    pub rlast: Signal<In, Bit>,
    /// AXI read data valid.
    pub rvalid: Signal<In, Bit>,
    /// AXI read data ready.
    pub rready: Signal<Out, Bit>,
    /// Longest burst in beats (1..=256).
    pub max_burst: Constant<Bits<16>>,
    state: DFF<ReadState>,
    ptr: DFF<Bits<32>>,
    remaining: DFF<Bits<16>>,
    index: DFF<Bits<16>>,
    next_ar: DFF<Bits<32>>,
    beats_left: DFF<Bits<16>>,
    burst_left: DFF<Bits<16>>,
    beat: DFF<Bits<128>>,
    err: DFF<Bit>,
    size: DFF<Bits<2>>,
    raw_q: DFF<Bit>,
    rows_left: DFF<Bits<16>>,
    stride_q: DFF<Bits<32>>,
    in_flight: DFF<Bits<16>>,
    fl_next: Signal<Local, Bits<16>>,
    next_row: Signal<Local, Bits<32>>,
    ar_fire: Signal<Local, Bit>,
    r_fire: Signal<Local, Bit>,
    to4k: Signal<Local, Bits<16>>,
    len: Signal<Local, Bits<16>>,
    lane_shift: Signal<Local, Bits<8>>,
    shifted: Signal<Local, Bits<128>>,
    next_ptr: Signal<Local, Bits<32>>,
}

impl DmaRead {
    /// A read engine issuing bursts of at most `max_burst` beats (1..=256).
    pub fn new(max_burst: u16) -> Self {
        assert!(
            (1..=256).contains(&max_burst),
            "max_burst {max_burst} must be 1..=256"
        );
        Self {
            clock: Default::default(),
            reset: Default::default(),
            start: Default::default(),
            addr: Default::default(),
            count: Default::default(),
            esz: Default::default(),
            raw: Default::default(),
            rows: Default::default(),
            stride: Default::default(),
            beat_ready: Default::default(),
            busy: Default::default(),
            error: Default::default(),
            elem_valid: Default::default(),
            elem_data: Default::default(),
            elem_index: Default::default(),
            beat_valid: Default::default(),
            beat_data: Default::default(),
            araddr: Default::default(),
            arlen: Default::default(),
            arvalid: Default::default(),
            arready: Default::default(),
            rdata: Default::default(),
            rresp: Default::default(),
            rlast: Default::default(),
            rvalid: Default::default(),
            rready: Default::default(),
            max_burst: Constant::new(u64::from(max_burst).into()),
            state: Default::default(),
            ptr: Default::default(),
            remaining: Default::default(),
            index: Default::default(),
            next_ar: Default::default(),
            beats_left: Default::default(),
            burst_left: Default::default(),
            beat: Default::default(),
            err: Default::default(),
            size: Default::default(),
            raw_q: Default::default(),
            rows_left: Default::default(),
            stride_q: Default::default(),
            in_flight: Default::default(),
            fl_next: Default::default(),
            next_row: Default::default(),
            ar_fire: Default::default(),
            r_fire: Default::default(),
            to4k: Default::default(),
            len: Default::default(),
            lane_shift: Default::default(),
            shifted: Default::default(),
            next_ptr: Default::default(),
        }
    }
}

impl Logic for DmaRead {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, state, ptr, remaining, index, next_ar, beats_left, burst_left, beat, err,
            size, raw_q, rows_left, stride_q, in_flight
        );
        self.busy.next = self.state.q.val() != ReadState::Idle;
        self.error.next = self.err.q.val();
        self.arvalid.next = false;
        self.rready.next = false;
        self.elem_valid.next = false;
        self.beat_valid.next = false;
        self.beat_data.next = self.rdata.val();
        self.araddr.next = self.next_ar.q.val();
        // Burst length: what is left, cut at the 4 KiB boundary and at max_burst.
        self.to4k.next = bit_cast::<16, 32>((4096 - (self.next_ar.q.val() & 0xFFF)) >> 4);
        self.len.next = self.beats_left.q.val();
        if self.len.val() > self.to4k.val() {
            self.len.next = self.to4k.val();
        }
        if self.len.val() > self.max_burst.val() {
            self.len.next = self.max_burst.val();
        }
        self.arlen.next = bit_cast::<8, 16>(self.len.val() - 1);
        // The element at ptr within the held beat.
        self.lane_shift.next = bit_cast::<8, 4>(self.ptr.q.val().get_bits::<4>(0)) << 3;
        self.shifted.next = self.beat.q.val() >> self.lane_shift.val();
        self.elem_data.next = bit_cast::<32, 8>(self.shifted.val().get_bits::<8>(0));
        if self.size.q.val() == 1 {
            self.elem_data.next = bit_cast::<32, 16>(self.shifted.val().get_bits::<16>(0));
        } else if self.size.q.val() == 2 {
            self.elem_data.next = self.shifted.val().get_bits::<32>(0);
        }
        self.elem_index.next = self.index.q.val();
        self.next_ptr.next = self.ptr.q.val() + (bit_cast::<32, 1>(1.into()) << self.size.q.val());
        // Raw mode: the address side runs ahead; `in_flight` counts beats asked for and not yet
        // handed out.
        self.next_row.next = self.ptr.q.val() + self.stride_q.q.val();
        self.ar_fire.next = false;
        self.r_fire.next = false;
        if (self.state.q.val() == ReadState::Raw) | (self.state.q.val() == ReadState::RawDrain) {
            self.rready.next = self.beat_ready.val() & (self.in_flight.q.val() != 0);
            self.r_fire.next =
                self.beat_ready.val() & (self.in_flight.q.val() != 0) & self.rvalid.val();
            self.beat_valid.next = self.r_fire.val();
            if self.r_fire.val() & (self.rresp.val() != 0) {
                self.err.d.next = true;
            }
        }
        if self.state.q.val() == ReadState::Raw {
            self.arvalid.next = true;
            self.ar_fire.next = self.arready.val();
        }
        self.fl_next.next = self.in_flight.q.val();
        if self.ar_fire.val() & !self.r_fire.val() {
            self.fl_next.next = self.in_flight.q.val() + self.len.val();
        } else if self.ar_fire.val() & self.r_fire.val() {
            self.fl_next.next = self.in_flight.q.val() + self.len.val() - 1;
        } else if self.r_fire.val() {
            self.fl_next.next = self.in_flight.q.val() - 1;
        }
        self.in_flight.d.next = self.fl_next.val();

        match self.state.q.val() {
            ReadState::Idle => {
                if self.start.val() {
                    self.ptr.d.next = self.addr.val();
                    self.remaining.d.next = self.count.val();
                    self.index.d.next = 0.into();
                    self.next_ar.d.next = self.addr.val() & 0xFFFF_FFF0_u64;
                    self.beats_left.d.next = bit_cast::<16, 32>(
                        ((self.addr.val() & 0xF)
                            + (bit_cast::<32, 16>(self.count.val()) << self.esz.val())
                            + 15)
                            >> 4,
                    );
                    self.size.d.next = self.esz.val();
                    self.raw_q.d.next = self.raw.val();
                    self.rows_left.d.next = self.rows.val();
                    self.stride_q.d.next = self.stride.val();
                    self.in_flight.d.next = 0.into();
                    self.err.d.next = false;
                    self.state.d.next = ReadState::Addr;
                    if self.raw.val() {
                        self.state.d.next = ReadState::Raw;
                    }
                }
            }
            ReadState::Addr => {
                self.arvalid.next = true;
                if self.arready.val() {
                    self.burst_left.d.next = self.len.val();
                    self.next_ar.d.next =
                        self.next_ar.q.val() + (bit_cast::<32, 16>(self.len.val()) << 4);
                    self.beats_left.d.next = self.beats_left.q.val() - self.len.val();
                    self.state.d.next = ReadState::Data;
                }
            }
            ReadState::Data => {
                self.rready.next = true;
                if self.rvalid.val() {
                    self.beat.d.next = self.rdata.val();
                    if self.rresp.val() != 0 {
                        self.err.d.next = true;
                    }
                    self.burst_left.d.next = self.burst_left.q.val() - 1;
                    self.state.d.next = ReadState::Extract;
                }
            }
            ReadState::Extract => {
                self.elem_valid.next = true;
                self.ptr.d.next = self.next_ptr.val();
                self.index.d.next = self.index.q.val() + 1;
                self.remaining.d.next = self.remaining.q.val() - 1;
                if self.remaining.q.val() == 1 {
                    // Done; a beat still owed by a malformed burst count would be drained here.
                    self.state.d.next = ReadState::Idle;
                    if self.burst_left.q.val() != 0 {
                        self.state.d.next = ReadState::Data;
                    }
                } else if self.next_ptr.val().get_bits::<4>(0) == 0 {
                    self.state.d.next = ReadState::Data;
                    if self.burst_left.q.val() == 0 {
                        self.state.d.next = ReadState::Addr;
                    }
                }
            }
            ReadState::Raw => {
                // One burst address per cycle the memory accepts, row after row.
                if self.ar_fire.val() {
                    self.next_ar.d.next =
                        self.next_ar.q.val() + (bit_cast::<32, 16>(self.len.val()) << 4);
                    self.beats_left.d.next = self.beats_left.q.val() - self.len.val();
                    if self.beats_left.q.val() == self.len.val() {
                        // The row's last burst: on to the next row, or wait for the data.
                        self.rows_left.d.next = self.rows_left.q.val() - 1;
                        self.ptr.d.next = self.next_row.val();
                        self.next_ar.d.next = self.next_row.val() & 0xFFFF_FFF0_u64;
                        self.beats_left.d.next = bit_cast::<16, 32>(
                            ((self.next_row.val() & 0xF)
                                + (bit_cast::<32, 16>(self.remaining.q.val())
                                    << self.size.q.val())
                                + 15)
                                >> 4,
                        );
                        if self.rows_left.q.val() == 1 {
                            self.state.d.next = ReadState::RawDrain;
                        }
                    }
                }
            }
            ReadState::RawDrain => {
                if self.fl_next.val() == 0 {
                    self.state.d.next = ReadState::Idle;
                }
            }
            _ => {
                self.state.d.next = ReadState::Idle;
            }
        }
        if self.reset.val() {
            self.state.d.next = ReadState::Idle;
            self.err.d.next = false;
        }
    }
}

#[derive(Copy, Clone, PartialEq, Eq, Debug, LogicState)]
enum WriteState {
    Idle,
    Fill,
    Send,
    Resp,
}

/// Writes `count` elements starting at `addr`, taking one element per cycle from `in_*`.
#[derive(LogicBlock, Default)]
pub struct DmaWrite {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset.
    pub reset: Signal<In, Bit>,
    /// Start a transfer (ignored while busy).
    pub start: Signal<In, Bit>,
    /// Byte address of the first element (aligned to the element size).
    pub addr: Signal<In, Bits<32>>,
    /// Number of elements (≥ 1).
    pub count: Signal<In, Bits<16>>,
    /// log2 of the element size in bytes (0, 1 or 2).
    pub esz: Signal<In, Bits<2>>,
    /// A transfer is in progress.
    pub busy: Signal<Out, Bit>,
    /// Some write of the current or last transfer had a non-OKAY response.
    pub error: Signal<Out, Bit>,
    /// `in_data` holds the next element.
    pub in_valid: Signal<In, Bit>,
    /// The next element (low bytes).
    pub in_data: Signal<In, Bits<32>>,
    /// The element on `in_data` is taken this cycle.
    pub in_ready: Signal<Out, Bit>,
    /// Index of the element wanted next (for the source's multiplexer).
    pub in_index: Signal<Out, Bits<16>>,
    /// AXI write address.
    pub awaddr: Signal<Out, Bits<32>>,
    /// AXI burst length minus one (always 0: single-beat bursts).
    pub awlen: Signal<Out, Bits<8>>,
    /// AXI write address valid.
    pub awvalid: Signal<Out, Bit>,
    /// AXI write address ready.
    pub awready: Signal<In, Bit>,
    /// AXI write data.
    pub wdata: Signal<Out, Bits<128>>,
    /// AXI byte strobes.
    pub wstrb: Signal<Out, Bits<16>>,
    /// AXI last beat (always 1).
    pub wlast: Signal<Out, Bit>,
    /// AXI write data valid.
    pub wvalid: Signal<Out, Bit>,
    /// AXI write data ready.
    pub wready: Signal<In, Bit>,
    /// AXI write response (0 = OKAY).
    pub bresp: Signal<In, Bits<2>>,
    /// AXI write response valid.
    pub bvalid: Signal<In, Bit>,
    /// AXI write response ready.
    pub bready: Signal<Out, Bit>,
    state: DFF<WriteState>,
    ptr: DFF<Bits<32>>,
    remaining: DFF<Bits<16>>,
    index: DFF<Bits<16>>,
    beat_addr: DFF<Bits<32>>,
    data: DFF<Bits<128>>,
    strb: DFF<Bits<16>>,
    aw_done: DFF<Bit>,
    w_done: DFF<Bit>,
    b_pending: DFF<Bit>,
    err: DFF<Bit>,
    size: DFF<Bits<2>>,
    lane_shift: Signal<Local, Bits<8>>,
    elem_mask: Signal<Local, Bits<128>>,
    byte_mask: Signal<Local, Bits<16>>,
    next_ptr: Signal<Local, Bits<32>>,
}

impl Logic for DmaWrite {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, state, ptr, remaining, index, beat_addr, data, strb, aw_done, w_done,
            b_pending, err, size
        );
        self.busy.next = self.state.q.val() != WriteState::Idle;
        self.error.next = self.err.q.val();
        self.in_ready.next = false;
        self.in_index.next = self.index.q.val();
        self.awaddr.next = self.beat_addr.q.val();
        self.awlen.next = 0.into();
        self.awvalid.next = false;
        self.wdata.next = self.data.q.val();
        self.wstrb.next = self.strb.q.val();
        self.wlast.next = true;
        self.wvalid.next = false;
        // The previous beat's response may come while the next beat fills.
        self.bready.next = self.b_pending.q.val();
        if self.b_pending.q.val() & self.bvalid.val() {
            self.b_pending.d.next = false;
            if self.bresp.val() != 0 {
                self.err.d.next = true;
            }
        }
        self.lane_shift.next = bit_cast::<8, 4>(self.ptr.q.val().get_bits::<4>(0)) << 3;
        self.elem_mask.next = 0xFF.into();
        self.byte_mask.next = 1.into();
        if self.size.q.val() == 1 {
            self.elem_mask.next = 0xFFFF.into();
            self.byte_mask.next = 3.into();
        } else if self.size.q.val() == 2 {
            self.elem_mask.next = 0xFFFF_FFFF_u64.into();
            self.byte_mask.next = 15.into();
        }
        self.next_ptr.next = self.ptr.q.val() + (bit_cast::<32, 1>(1.into()) << self.size.q.val());

        match self.state.q.val() {
            WriteState::Idle => {
                if self.start.val() {
                    self.ptr.d.next = self.addr.val();
                    self.remaining.d.next = self.count.val();
                    self.index.d.next = 0.into();
                    self.size.d.next = self.esz.val();
                    self.data.d.next = 0.into();
                    self.strb.d.next = 0.into();
                    self.err.d.next = false;
                    self.state.d.next = WriteState::Fill;
                }
            }
            WriteState::Fill => {
                self.in_ready.next = true;
                if self.in_valid.val() {
                    if self.strb.q.val() == 0 {
                        self.beat_addr.d.next = self.ptr.q.val() & 0xFFFF_FFF0_u64;
                    }
                    self.data.d.next = self.data.q.val()
                        | ((bit_cast::<128, 32>(self.in_data.val()) & self.elem_mask.val())
                            << self.lane_shift.val());
                    self.strb.d.next = self.strb.q.val()
                        | (self.byte_mask.val() << self.ptr.q.val().get_bits::<4>(0));
                    self.ptr.d.next = self.next_ptr.val();
                    self.index.d.next = self.index.q.val() + 1;
                    self.remaining.d.next = self.remaining.q.val() - 1;
                    if (self.remaining.q.val() == 1) | (self.next_ptr.val().get_bits::<4>(0) == 0) {
                        self.aw_done.d.next = false;
                        self.w_done.d.next = false;
                        self.state.d.next = WriteState::Send;
                    }
                }
            }
            WriteState::Send => {
                // One write in flight at a time: the beat goes once the last one is answered.
                if !self.b_pending.q.val() {
                    self.awvalid.next = !self.aw_done.q.val();
                    self.wvalid.next = !self.w_done.q.val();
                    if self.awready.val() {
                        self.aw_done.d.next = true;
                    }
                    if self.wready.val() {
                        self.w_done.d.next = true;
                    }
                    if (self.aw_done.q.val() | self.awready.val())
                        & (self.w_done.q.val() | self.wready.val())
                    {
                        self.state.d.next = WriteState::Resp;
                        if self.remaining.q.val() != 0 {
                            self.b_pending.d.next = true;
                            self.data.d.next = 0.into();
                            self.strb.d.next = 0.into();
                            self.state.d.next = WriteState::Fill;
                        }
                    }
                }
            }
            WriteState::Resp => {
                // The last beat's response.
                self.bready.next = true;
                if self.bvalid.val() {
                    if self.bresp.val() != 0 {
                        self.err.d.next = true;
                    }
                    self.state.d.next = WriteState::Idle;
                }
            }
            _ => {
                self.state.d.next = WriteState::Idle;
            }
        }
        if self.reset.val() {
            self.state.d.next = WriteState::Idle;
            self.b_pending.d.next = false;
            self.err.d.next = false;
        }
    }
}

/// A behavioural AXI4 memory for tests: answers one burst at a time, in order, after a fixed
/// latency, and can be told to answer addresses in a range with SLVERR.
#[cfg(test)]
pub(crate) mod memory {
    /// Byte-addressed memory with an AXI read and write port state machine.
    pub struct Memory {
        /// The bytes.
        pub bytes: Vec<u8>,
        /// Reads and writes at or above this address answer SLVERR.
        pub error_from: u64,
        read_burst: Option<(u64, u64)>,
        write_addr: Option<u64>,
        write_data: Option<(u128, u16)>,
        write_resp: bool,
        /// Bursts seen: (address, beats), for protocol checks.
        pub bursts: Vec<(u64, u64)>,
    }

    /// The master's outputs this cycle.
    #[derive(Default, Clone, Copy)]
    pub struct MasterOut {
        pub araddr: u64,
        pub arlen: u64,
        pub arvalid: bool,
        pub rready: bool,
        pub awaddr: u64,
        pub awvalid: bool,
        pub wdata: u128,
        pub wstrb: u16,
        pub wvalid: bool,
        pub bready: bool,
    }

    /// The memory's outputs this cycle.
    #[derive(Default, Clone, Copy, Debug)]
    pub struct SlaveOut {
        pub arready: bool,
        pub rdata: u128,
        pub rresp: u64,
        pub rlast: bool,
        pub rvalid: bool,
        pub awready: bool,
        pub wready: bool,
        pub bresp: u64,
        pub bvalid: bool,
    }

    impl Memory {
        /// A memory of `size` bytes.
        pub fn new(size: usize) -> Self {
            Memory {
                bytes: vec![0; size],
                error_from: u64::MAX,
                read_burst: None,
                write_addr: None,
                write_data: None,
                write_resp: false,
                bursts: Vec::new(),
            }
        }

        fn resp(&self, addr: u64) -> u64 {
            if addr >= self.error_from || addr + 16 > self.bytes.len() as u64 {
                2
            } else {
                0
            }
        }

        /// The memory's outputs for the current state (before the clock edge).
        pub fn outputs(&self) -> SlaveOut {
            let mut o = SlaveOut {
                arready: self.read_burst.is_none(),
                awready: self.write_addr.is_none() && !self.write_resp,
                wready: self.write_data.is_none() && !self.write_resp,
                ..Default::default()
            };
            if let Some((addr, beats)) = self.read_burst {
                let a = addr as usize;
                let mut d = [0u8; 16];
                if let Some(src) = self.bytes.get(a..a + 16) {
                    d.copy_from_slice(src);
                }
                o.rdata = u128::from_le_bytes(d);
                o.rvalid = true;
                o.rlast = beats == 1;
                o.rresp = self.resp(addr);
            }
            if self.write_resp {
                o.bvalid = true;
                o.bresp = self.resp(self.write_addr.unwrap_or(0));
            }
            o
        }

        /// Applies the handshakes of one clock edge.
        pub fn edge(&mut self, m: &MasterOut, o: &SlaveOut) {
            if let Some((addr, beats)) = self.read_burst {
                if m.rready {
                    self.read_burst = if beats == 1 {
                        None
                    } else {
                        Some((addr + 16, beats - 1))
                    };
                }
            } else if m.arvalid && o.arready {
                assert_eq!(m.araddr % 16, 0, "unaligned burst");
                let beats = m.arlen + 1;
                assert_eq!(
                    m.araddr / 4096,
                    (m.araddr + 16 * beats - 1) / 4096,
                    "4 KiB crossed"
                );
                self.bursts.push((m.araddr, beats));
                self.read_burst = Some((m.araddr, beats));
            }
            if self.write_resp {
                if m.bready {
                    self.write_resp = false;
                    self.write_addr = None;
                }
                return;
            }
            if m.awvalid && o.awready {
                self.write_addr = Some(m.awaddr);
            }
            if m.wvalid && o.wready {
                self.write_data = Some((m.wdata, m.wstrb));
            }
            if let (Some(addr), Some((data, strb))) = (self.write_addr, self.write_data) {
                if self.resp(addr) == 0 {
                    for (i, byte) in data.to_le_bytes().iter().enumerate() {
                        if strb >> i & 1 == 1 {
                            self.bytes[addr as usize + i] = *byte;
                        }
                    }
                }
                self.write_data = None;
                self.write_resp = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::memory::{MasterOut, Memory};
    use super::*;
    use crate::rtl::testbench::{settle, tick};
    use rand::{Rng, SeedableRng};

    /// Drives a started read against `mem` until the engine is idle, calling `take` on every
    /// settled cycle and asking `stall` whether the consumer refuses a beat; the error flag.
    fn run_read(
        mem: &mut Memory,
        dma: &mut DmaRead,
        stall: &mut dyn FnMut() -> bool,
        take: &mut dyn FnMut(&DmaRead),
    ) -> bool {
        for cycle in 0..100_000 {
            let o = mem.outputs();
            dma.arready.next = o.arready;
            dma.rdata.next = o.rdata.to_bits();
            dma.rresp.next = o.rresp.into();
            dma.rlast.next = o.rlast;
            dma.rvalid.next = o.rvalid;
            dma.beat_ready.next = !stall();
            settle(dma);
            if cycle > 0 && !dma.busy.val() {
                return dma.error.val();
            }
            take(dma);
            let m = MasterOut {
                araddr: dma.araddr.val().to_u64(),
                arlen: dma.arlen.val().to_u64(),
                arvalid: dma.arvalid.val(),
                rready: dma.rready.val(),
                ..Default::default()
            };
            mem.edge(&m, &o);
            tick(dma, |d| &mut d.clock);
            dma.start.next = false;
        }
        panic!("read never finished");
    }

    fn read(
        mem: &mut Memory,
        dma: &mut DmaRead,
        addr: u64,
        count: u64,
        esz: u64,
    ) -> (Vec<u32>, bool) {
        dma.start.next = true;
        dma.raw.next = false;
        dma.addr.next = addr.into();
        dma.count.next = count.into();
        dma.esz.next = esz.into();
        let mut out = Vec::new();
        let err = run_read(mem, dma, &mut || false, &mut |dma| {
            if dma.elem_valid.val() {
                assert_eq!(dma.elem_index.val().to_u64(), out.len() as u64);
                out.push(dma.elem_data.val().to_u64() as u32);
            }
        });
        (out, err)
    }

    #[test]
    fn reads_split_bursts_and_extract_elements() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut mem = Memory::new(3 * 4096);
        rng.fill(&mut mem.bytes[..]);
        let mut dma = DmaRead::new(4);
        dma.connect_all();
        dma.reset.next = true;
        tick(&mut dma, |d| &mut d.clock);
        dma.reset.next = false;
        for (addr, count, esz) in [
            (0u64, 1u64, 0u64),
            (4090, 20, 1),
            (4093, 9, 0),
            (100, 70, 2),
            (8190, 1, 1),
            (15, 1, 0),
        ] {
            let (got, err) = read(&mut mem, &mut dma, addr, count, esz);
            let size = 1usize << esz;
            let want: Vec<u32> = (0..count as usize)
                .map(|i| {
                    let at = addr as usize + i * size;
                    let mut b = [0u8; 4];
                    b[..size].copy_from_slice(&mem.bytes[at..at + size]);
                    u32::from_le_bytes(b)
                })
                .collect();
            assert_eq!(got, want, "read {count} × {size} B at {addr}");
            assert!(!err);
        }
        assert!(mem.bursts.iter().all(|&(_, beats)| beats <= 4));
        mem.error_from = 8192;
        let (_, err) = read(&mut mem, &mut dma, 8000, 100, 2);
        assert!(err, "an SLVERR must be reported");
        let (_, err) = read(&mut mem, &mut dma, 0, 4, 2);
        assert!(!err, "the error flag clears at the next transfer");
    }

    /// A raw-mode read of `rows` rows of `bytes` bytes, `stride` apart, with the consumer
    /// refusing beats on the cycles `stall` says: the beats in order, and the error flag.
    fn read_raw(
        mem: &mut Memory,
        dma: &mut DmaRead,
        (addr, bytes, rows, stride): (u64, u64, u64, u64),
        stall: &mut dyn FnMut() -> bool,
    ) -> (Vec<u128>, bool) {
        dma.start.next = true;
        dma.raw.next = true;
        dma.addr.next = addr.into();
        dma.count.next = bytes.into();
        dma.rows.next = rows.into();
        dma.stride.next = stride.into();
        dma.esz.next = 0u64.into();
        let mut out = Vec::new();
        let err = run_read(mem, dma, stall, &mut |dma| {
            assert!(!dma.elem_valid.val(), "raw mode hands out no elements");
            if dma.beat_valid.val() {
                let beat = dma.beat_data.val();
                out.push(
                    u128::from(beat.get_bits::<64>(0).to_u64())
                        | u128::from(beat.get_bits::<64>(64).to_u64()) << 64,
                );
            }
        });
        dma.raw.next = false;
        (out, err)
    }

    #[test]
    fn raw_reads_hand_out_every_rows_beats_once_in_order() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        let mut mem = Memory::new(3 * 4096);
        rng.fill(&mut mem.bytes[..]);
        let mut dma = DmaRead::new(4);
        dma.connect_all();
        dma.reset.next = true;
        tick(&mut dma, |d| &mut d.clock);
        dma.reset.next = false;
        let mut stalls = rand::rngs::StdRng::seed_from_u64(7);
        for (n, (addr, bytes, rows, stride)) in [
            (0u64, 16u64, 1u64, 0u64),
            (3, 16, 5, 18),
            (4090, 40, 2, 100),
            (17, 200, 3, 203),
            (8190, 1, 1, 0),
            (4000, 33, 4, 16),
        ]
        .into_iter()
        .enumerate()
        {
            // Every other transfer with a consumer that stalls a third of the cycles.
            let mut stall = || n % 2 == 1 && stalls.random_ratio(1, 3);
            let (got, err) = read_raw(&mut mem, &mut dma, (addr, bytes, rows, stride), &mut stall);
            let want: Vec<u128> = (0..rows)
                .flat_map(|r| {
                    let at = addr + r * stride;
                    let first = at & !15;
                    let beats = (at - first + bytes).div_ceil(16);
                    (0..beats).map(move |b| first + 16 * b)
                })
                .map(|at| {
                    let at = at as usize;
                    u128::from_le_bytes(mem.bytes[at..at + 16].try_into().unwrap())
                })
                .collect();
            assert_eq!(
                got, want,
                "raw read of {rows} × {bytes} B at {addr}, stride {stride}"
            );
            assert!(!err);
        }
        assert!(mem.bursts.iter().all(|&(_, beats)| beats <= 4));
        // Element mode still works after raw transfers.
        let (got, _) = read(&mut mem, &mut dma, 5, 2, 0);
        assert_eq!(got, vec![u32::from(mem.bytes[5]), u32::from(mem.bytes[6])]);
        // An error response in raw mode is reported.
        mem.error_from = 8192;
        let (_, err) = read_raw(&mut mem, &mut dma, (8000, 64, 3, 100), &mut || false);
        assert!(err, "an SLVERR must be reported in raw mode");
        mem.error_from = u64::MAX;
    }

    fn write(mem: &mut Memory, dma: &mut DmaWrite, addr: u64, data: &[u32], esz: u64) -> bool {
        dma.start.next = true;
        dma.addr.next = addr.into();
        dma.count.next = (data.len() as u64).into();
        dma.esz.next = esz.into();
        for cycle in 0..10_000 {
            let o = mem.outputs();
            dma.awready.next = o.awready;
            dma.wready.next = o.wready;
            dma.bresp.next = o.bresp.into();
            dma.bvalid.next = o.bvalid;
            let idx = dma.in_index.val().to_u64() as usize;
            dma.in_valid.next = idx < data.len();
            dma.in_data.next = u64::from(*data.get(idx).unwrap_or(&0)).into();
            settle(dma);
            if cycle > 0 && !dma.busy.val() {
                return dma.error.val();
            }
            let m = MasterOut {
                awaddr: dma.awaddr.val().to_u64(),
                awvalid: dma.awvalid.val(),
                wdata: dma.wdata.val().to_u128(),
                wstrb: dma.wstrb.val().to_u64() as u16,
                wvalid: dma.wvalid.val(),
                bready: dma.bready.val(),
                ..Default::default()
            };
            mem.edge(&m, &o);
            tick(dma, |d| &mut d.clock);
            dma.start.next = false;
        }
        panic!("write never finished");
    }

    #[test]
    fn writes_use_strobes_for_partial_beats() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        let mut mem = Memory::new(4096);
        let mut model = mem.bytes.clone();
        let mut dma = DmaWrite::default();
        dma.connect_all();
        dma.reset.next = true;
        tick(&mut dma, |d| &mut d.clock);
        dma.reset.next = false;
        for (addr, count, esz) in [(3u64, 5usize, 0u64), (30, 9, 1), (100, 7, 2), (4092, 1, 2)] {
            let data: Vec<u32> = (0..count).map(|_| rng.random()).collect();
            assert!(!write(&mut mem, &mut dma, addr, &data, esz));
            let size = 1usize << esz;
            for (i, v) in data.iter().enumerate() {
                let at = addr as usize + i * size;
                model[at..at + size].copy_from_slice(&v.to_le_bytes()[..size]);
            }
            assert_eq!(mem.bytes, model, "write {count} × {size} B at {addr}");
        }
        mem.error_from = 2048;
        assert!(write(&mut mem, &mut dma, 3000, &[1, 2, 3], 2));
    }
}
