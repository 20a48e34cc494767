//! The DMA engine: an AXI4 read engine and write engine between memory and the array's
//! buffers. The read engine either hands out one element per cycle (start values) or, in *raw*
//! mode, every beat as it arrives (operand rows, written into the buffers a beat at a time);
//! the write engine takes up to four elements per cycle and keeps several single-beat writes in
//! flight (see `DmaWrite`).
//!
//! Memory port protocol (AXI4 subset, documented in docs/hardware.md): 32-bit byte addresses,
//! 128-bit data, INCR bursts of full-width beats (so `arsize`/`awsize` = 16 bytes and
//! `arburst`/`awburst` = INCR are implied and not wired), no IDs, in-order responses. Reads use
//! bursts of up to `MAX_BURST` beats that never cross a 4 KiB boundary; writes use single-beat
//! bursts with byte strobes (a row of results is at most a few beats), address and data sent
//! independently. Any non-OKAY response sets the engine's sticky `error` (the transfer still runs
//! to its end, so the bus never hangs); the read engine clears it when a transfer starts, the
//! write engine on a `clear_error` pulse.
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

/// Beats the write engine's queue holds between the packer and the AXI channels.
pub const WRITE_QUEUE_DEPTH: usize = 4;

/// Most writes the write engine keeps outstanding (address sent, response not yet received).
pub const MAX_WRITES_OUTSTANDING: u64 = 15;

/// Writes `count` elements starting at `addr`, taking up to four elements per cycle from
/// `in_*`, and issues them as single-beat AXI writes with byte strobes.
///
/// Three stages, so that a row's elements, its beats and their responses overlap with the
/// next row's:
/// - the *packer* takes a group of up to four elements per cycle, compacts them to their
///   bytes and shifts them into a two-beat window at the byte offset of the next element, so a
///   group that crosses a 16-byte boundary still goes in one cycle; a completed beat (and, at
///   the end of a transfer, the partial beat after it) goes into the queue, a partial beat
///   stays in the packer for the next group;
/// - a queue of `WRITE_QUEUE_DEPTH` beats (address, data, strobes) read by two pointers, one
///   for AW and one for W, which run independently (AXI allows data before its address); a
///   full queue holds back `in_ready`, never data;
/// - a count of writes whose address went and whose response has not come back, capped at
///   `MAX_WRITES_OUTSTANDING`, so `idle` can say when everything is answered.
///
/// A new transfer may start as soon as the previous one's elements are all taken (even in the
/// cycle its last group is taken); its first beat is always a fresh one, even where it is
/// adjacent to the previous transfer's last beat.
#[derive(LogicBlock)]
pub struct DmaWrite {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset (drops any transfer and queued beat: only for a bus that is quiet).
    pub reset: Signal<In, Bit>,
    /// Start a transfer; taken only in a cycle where `can_start` is high, ignored otherwise
    /// (and ignored with `count` = 0).
    pub start: Signal<In, Bit>,
    /// Byte address of the first element (aligned to the element size).
    pub addr: Signal<In, Bits<32>>,
    /// Number of elements (≥ 1).
    pub count: Signal<In, Bits<16>>,
    /// log2 of the element size in bytes (0, 1 or 2).
    pub esz: Signal<In, Bits<2>>,
    /// A `start` is taken this cycle: no transfer is taking elements, or the current one's
    /// last group is taken this cycle. Depends combinationally on `in_valid` (not on `start`),
    /// so the source must not derive `in_valid` from `can_start` or `start`.
    pub can_start: Signal<Out, Bit>,
    /// The current transfer still has elements to take: the source keeps offering the group
    /// at `in_index`.
    pub busy: Signal<Out, Bit>,
    /// Nothing left to do: no transfer taking elements, no beat queued, no write response
    /// outstanding (every write of every transfer answered).
    pub idle: Signal<Out, Bit>,
    /// Sticky: some write response since the last `clear_error` pulse was not OKAY.
    pub error: Signal<Out, Bit>,
    /// Clears `error` (a non-OKAY response in the same cycle still sets it).
    pub clear_error: Signal<In, Bit>,
    /// `in_data` holds the group at `in_index`.
    pub in_valid: Signal<In, Bit>,
    /// Up to four elements: element `in_index + i` in bits `32·i ..`, its low `1 << esz`
    /// bytes; lanes past the transfer's end are ignored.
    pub in_data: Signal<In, Bits<128>>,
    /// The group on `in_data` (`min(4, remaining)` elements) is taken this cycle (when
    /// `in_valid`).
    pub in_ready: Signal<Out, Bit>,
    /// Index within the transfer of the element wanted in lane 0 (0, 4, 8, …), for the
    /// source's multiplexer.
    pub in_index: Signal<Out, Bits<16>>,
    /// AXI write address (16-byte aligned).
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
    /// AXI write response ready (high whenever a response is owed).
    pub bready: Signal<Out, Bit>,
    /// `MAX_WRITES_OUTSTANDING`, for the generated logic.
    max_outstanding: Constant<Bits<4>>,
    /// All ones, to build the byte mask of a group.
    all_ones: Constant<Bits<128>>,
    /// A transfer is taking elements (`busy`).
    taking: DFF<Bit>,
    /// Byte address of the next element to take.
    ptr: DFF<Bits<32>>,
    /// Elements left to take.
    remaining: DFF<Bits<16>>,
    /// Index of the next element to take.
    index: DFF<Bits<16>>,
    /// log2 of the current transfer's element size.
    size: DFF<Bits<2>>,
    /// 16-byte aligned address of the beat the packer is filling.
    part_addr: DFF<Bits<32>>,
    /// The bytes of that beat taken so far (zero elsewhere).
    part_data: DFF<Bits<128>>,
    /// Their strobes (zero: nothing taken into this beat yet).
    part_strb: DFF<Bits<16>>,
    /// Queued beats: their addresses.
    queue_addr: Vec<DFF<Bits<32>>>,
    /// Queued beats: their data.
    queue_data: Vec<DFF<Bits<128>>>,
    /// Queued beats: their strobes.
    queue_strb: Vec<DFF<Bits<16>>>,
    /// Queue slot the next beat goes into (one wrap bit above the slot index).
    push_ptr: DFF<Bits<3>>,
    /// Queue slot whose address goes on AW next.
    aw_ptr: DFF<Bits<3>>,
    /// Queue slot whose data goes on W next.
    w_ptr: DFF<Bits<3>>,
    /// Writes whose address went and whose response has not come back.
    b_owed: DFF<Bits<4>>,
    /// The sticky error.
    err: DFF<Bit>,
    /// Elements in the group wanted now (`min(4, remaining)`).
    group_len: Signal<Local, Bits<3>>,
    /// Its bytes (1..=16).
    group_bytes: Signal<Local, Bits<5>>,
    /// Byte offset of the next element within its beat.
    offset: Signal<Local, Bits<5>>,
    /// `offset + group_bytes`: 16 or more means the group completes the beat.
    group_end: Signal<Local, Bits<5>>,
    /// The group wanted now is the transfer's last.
    last_group: Signal<Local, Bit>,
    /// Taking the group queues the beat being filled (it is complete, or the transfer ends).
    push_low: Signal<Local, Bit>,
    /// Taking the group also queues the beat after it (the transfer ends inside it).
    push_high: Signal<Local, Bit>,
    /// Beats taking the group queues (0..=2).
    beats_needed: Signal<Local, Bits<3>>,
    /// The queue slot after `push_ptr` (for the second beat of a transfer's last group).
    push_ptr_next: Signal<Local, Bits<3>>,
    /// Beats not yet sent on AW.
    aw_queued: Signal<Local, Bits<3>>,
    /// Beats not yet sent on W.
    w_queued: Signal<Local, Bits<3>>,
    /// Free queue slots (a slot is free once both its address and its data went).
    queue_free: Signal<Local, Bits<3>>,
    /// The group is taken this cycle.
    take: Signal<Local, Bit>,
    /// The transfer on `start`/`addr`/`count`/`esz` begins this cycle.
    accept: Signal<Local, Bit>,
    /// AW, W and B handshakes this cycle.
    aw_fire: Signal<Local, Bit>,
    w_fire: Signal<Local, Bit>,
    b_fire: Signal<Local, Bit>,
    /// The group's elements packed to consecutive bytes (garbage past the group).
    compact: Signal<Local, Bits<128>>,
    /// Ones over the group's bytes.
    group_mask: Signal<Local, Bits<128>>,
    /// The group's bytes at their place in a two-beat window starting at `part_addr`.
    window: Signal<Local, Bits<256>>,
    /// Their strobes.
    window_strb: Signal<Local, Bits<32>>,
    /// The beat being filled, with the group's bytes added.
    low_data: Signal<Local, Bits<128>>,
    low_strb: Signal<Local, Bits<16>>,
    /// The group's bytes that spill into the next beat.
    high_data: Signal<Local, Bits<128>>,
    high_strb: Signal<Local, Bits<16>>,
    _depth: usize,
}

impl Default for DmaWrite {
    fn default() -> Self {
        Self {
            clock: Default::default(),
            reset: Default::default(),
            start: Default::default(),
            addr: Default::default(),
            count: Default::default(),
            esz: Default::default(),
            can_start: Default::default(),
            busy: Default::default(),
            idle: Default::default(),
            error: Default::default(),
            clear_error: Default::default(),
            in_valid: Default::default(),
            in_data: Default::default(),
            in_ready: Default::default(),
            in_index: Default::default(),
            awaddr: Default::default(),
            awlen: Default::default(),
            awvalid: Default::default(),
            awready: Default::default(),
            wdata: Default::default(),
            wstrb: Default::default(),
            wlast: Default::default(),
            wvalid: Default::default(),
            wready: Default::default(),
            bresp: Default::default(),
            bvalid: Default::default(),
            bready: Default::default(),
            max_outstanding: Constant::new(MAX_WRITES_OUTSTANDING.into()),
            all_ones: Constant::new(
                (Bits::<128>::from(u64::MAX) << 64) | Bits::<128>::from(u64::MAX),
            ),
            taking: Default::default(),
            ptr: Default::default(),
            remaining: Default::default(),
            index: Default::default(),
            size: Default::default(),
            part_addr: Default::default(),
            part_data: Default::default(),
            part_strb: Default::default(),
            queue_addr: (0..WRITE_QUEUE_DEPTH).map(|_| DFF::default()).collect(),
            queue_data: (0..WRITE_QUEUE_DEPTH).map(|_| DFF::default()).collect(),
            queue_strb: (0..WRITE_QUEUE_DEPTH).map(|_| DFF::default()).collect(),
            push_ptr: Default::default(),
            aw_ptr: Default::default(),
            w_ptr: Default::default(),
            b_owed: Default::default(),
            err: Default::default(),
            group_len: Default::default(),
            group_bytes: Default::default(),
            offset: Default::default(),
            group_end: Default::default(),
            last_group: Default::default(),
            push_low: Default::default(),
            push_high: Default::default(),
            beats_needed: Default::default(),
            push_ptr_next: Default::default(),
            aw_queued: Default::default(),
            w_queued: Default::default(),
            queue_free: Default::default(),
            take: Default::default(),
            accept: Default::default(),
            aw_fire: Default::default(),
            w_fire: Default::default(),
            b_fire: Default::default(),
            compact: Default::default(),
            group_mask: Default::default(),
            window: Default::default(),
            window_strb: Default::default(),
            low_data: Default::default(),
            low_strb: Default::default(),
            high_data: Default::default(),
            high_strb: Default::default(),
            _depth: WRITE_QUEUE_DEPTH,
        }
    }
}

impl Logic for DmaWrite {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, taking, ptr, remaining, index, size, part_addr, part_data, part_strb,
            push_ptr, aw_ptr, w_ptr, b_owed, err
        );
        // Queue occupancy: a slot stays taken until both its address and its data went.
        self.push_ptr_next.next = self.push_ptr.q.val() + 1;
        self.aw_queued.next = self.push_ptr.q.val() - self.aw_ptr.q.val();
        self.w_queued.next = self.push_ptr.q.val() - self.w_ptr.q.val();
        self.queue_free.next = 4 - self.aw_queued.val();
        if self.w_queued.val() > self.aw_queued.val() {
            self.queue_free.next = 4 - self.w_queued.val();
        }

        // The group wanted now and what taking it does to the beat being filled.
        self.last_group.next = ((self.remaining.q.val() - 1) & 0xFFFC) == 0;
        self.group_len.next = 4.into();
        if self.last_group.val() {
            self.group_len.next = self.remaining.q.val().get_bits::<3>(0);
        }
        self.group_bytes.next = bit_cast::<5, 3>(self.group_len.val()) << self.size.q.val();
        self.offset.next = bit_cast::<5, 4>(self.ptr.q.val().get_bits::<4>(0));
        self.group_end.next = self.offset.val() + self.group_bytes.val();
        self.push_low.next = self.group_end.val().get_bit(4) | self.last_group.val();
        self.push_high.next = self.last_group.val()
            & self.group_end.val().get_bit(4)
            & (self.group_end.val().get_bits::<4>(0) != 0);
        self.beats_needed.next = 0.into();
        if self.push_low.val() {
            self.beats_needed.next = 1.into();
            if self.push_high.val() {
                self.beats_needed.next = 2.into();
            }
        }
        self.in_ready.next =
            self.taking.q.val() & (self.queue_free.val() >= self.beats_needed.val());
        self.take.next = self.in_ready.val() & self.in_valid.val();
        self.in_index.next = self.index.q.val();
        self.busy.next = self.taking.q.val();
        self.can_start.next = !self.taking.q.val() | (self.take.val() & self.last_group.val());
        self.accept.next = self.start.val() & self.can_start.val() & (self.count.val() != 0);

        // Pack: the elements' bytes side by side, masked to the group, shifted to the offset.
        self.compact.next = self.in_data.val();
        if self.size.q.val() == 0 {
            self.compact.next = (self.in_data.val() & 0xFF_u64)
                | ((self.in_data.val() >> 24) & 0xFF00_u64)
                | ((self.in_data.val() >> 48) & 0xFF_0000_u64)
                | ((self.in_data.val() >> 72) & 0xFF00_0000_u64);
        } else if self.size.q.val() == 1 {
            self.compact.next = (self.in_data.val() & 0xFFFF_u64)
                | ((self.in_data.val() >> 16) & 0xFFFF_0000_u64)
                | ((self.in_data.val() >> 32) & 0xFFFF_0000_0000_u64)
                | ((self.in_data.val() >> 48) & 0xFFFF_0000_0000_0000_u64);
        }
        // 16 - group_bytes is 16 only when no group is wanted; the mask is then unused.
        self.group_mask.next =
            self.all_ones.val() >> (bit_cast::<8, 5>((16 - self.group_bytes.val()) & 0xF) << 3);
        self.window.next = bit_cast::<256, 128>(self.compact.val() & self.group_mask.val())
            << (bit_cast::<8, 5>(self.offset.val()) << 3);
        self.window_strb.next =
            ((bit_cast::<32, 1>(1.into()) << self.group_bytes.val()) - 1) << self.offset.val();
        self.low_data.next = self.part_data.q.val() | self.window.val().get_bits::<128>(0);
        self.low_strb.next = self.part_strb.q.val() | self.window_strb.val().get_bits::<16>(0);
        self.high_data.next = self.window.val().get_bits::<128>(128);
        self.high_strb.next = self.window_strb.val().get_bits::<16>(16);

        // The AXI side: AW and W each send the oldest beat they have not sent.
        self.awlen.next = 0.into();
        self.wlast.next = true;
        self.awvalid.next =
            (self.aw_queued.val() != 0) & (self.b_owed.q.val() != self.max_outstanding.val());
        self.wvalid.next = self.w_queued.val() != 0;
        self.bready.next = self.b_owed.q.val() != 0;
        self.aw_fire.next = self.awvalid.val() & self.awready.val();
        self.w_fire.next = self.wvalid.val() & self.wready.val();
        self.b_fire.next = self.bready.val() & self.bvalid.val();
        self.awaddr.next = 0.into();
        self.wdata.next = 0.into();
        self.wstrb.next = 0.into();
        for i in 0..self._depth {
            self.queue_addr[i].clock.next = self.clock.val();
            self.queue_data[i].clock.next = self.clock.val();
            self.queue_strb[i].clock.next = self.clock.val();
            self.queue_addr[i].d.next = self.queue_addr[i].q.val();
            self.queue_data[i].d.next = self.queue_data[i].q.val();
            self.queue_strb[i].d.next = self.queue_strb[i].q.val();
            if self.take.val()
                & self.push_low.val()
                & (self.push_ptr.q.val().get_bits::<2>(0).index() == i)
            {
                self.queue_addr[i].d.next = self.part_addr.q.val();
                self.queue_data[i].d.next = self.low_data.val();
                self.queue_strb[i].d.next = self.low_strb.val();
            }
            if self.take.val()
                & self.push_high.val()
                & (self.push_ptr_next.val().get_bits::<2>(0).index() == i)
            {
                self.queue_addr[i].d.next = self.part_addr.q.val() + 16;
                self.queue_data[i].d.next = self.high_data.val();
                self.queue_strb[i].d.next = self.high_strb.val();
            }
            if self.aw_ptr.q.val().get_bits::<2>(0).index() == i {
                self.awaddr.next = self.queue_addr[i].q.val();
            }
            if self.w_ptr.q.val().get_bits::<2>(0).index() == i {
                self.wdata.next = self.queue_data[i].q.val();
                self.wstrb.next = self.queue_strb[i].q.val();
            }
        }
        if self.take.val() {
            self.push_ptr.d.next = self.push_ptr.q.val() + self.beats_needed.val();
        }
        if self.aw_fire.val() {
            self.aw_ptr.d.next = self.aw_ptr.q.val() + 1;
        }
        if self.w_fire.val() {
            self.w_ptr.d.next = self.w_ptr.q.val() + 1;
        }
        if self.aw_fire.val() & !self.b_fire.val() {
            self.b_owed.d.next = self.b_owed.q.val() + 1;
        } else if !self.aw_fire.val() & self.b_fire.val() {
            self.b_owed.d.next = self.b_owed.q.val() - 1;
        }
        self.idle.next = !self.taking.q.val()
            & (self.aw_queued.val() == 0)
            & (self.w_queued.val() == 0)
            & (self.b_owed.q.val() == 0);

        // Taking a group: the filled beat goes into the queue, what spills over stays.
        if self.take.val() {
            self.ptr.d.next = self.ptr.q.val() + bit_cast::<32, 5>(self.group_bytes.val());
            self.remaining.d.next =
                self.remaining.q.val() - bit_cast::<16, 3>(self.group_len.val());
            self.index.d.next = self.index.q.val() + 4;
            if self.last_group.val() {
                self.taking.d.next = false;
                self.part_data.d.next = 0.into();
                self.part_strb.d.next = 0.into();
            } else if self.group_end.val().get_bit(4) {
                self.part_addr.d.next = self.part_addr.q.val() + 16;
                self.part_data.d.next = self.high_data.val();
                self.part_strb.d.next = self.high_strb.val();
            } else {
                self.part_data.d.next = self.low_data.val();
                self.part_strb.d.next = self.low_strb.val();
            }
        }
        // A new transfer (possibly in the cycle the last one's last group is taken) starts
        // with a fresh beat.
        if self.accept.val() {
            self.taking.d.next = true;
            self.ptr.d.next = self.addr.val();
            self.remaining.d.next = self.count.val();
            self.index.d.next = 0.into();
            self.size.d.next = self.esz.val();
            self.part_addr.d.next = self.addr.val() & 0xFFFF_FFF0_u64;
            self.part_data.d.next = 0.into();
            self.part_strb.d.next = 0.into();
        }

        if self.clear_error.val() {
            self.err.d.next = false;
        }
        if self.b_fire.val() & (self.bresp.val() != 0) {
            self.err.d.next = true;
        }
        self.error.next = self.err.q.val();
        if self.reset.val() {
            self.taking.d.next = false;
            self.part_strb.d.next = 0.into();
            self.part_data.d.next = 0.into();
            self.push_ptr.d.next = 0.into();
            self.aw_ptr.d.next = 0.into();
            self.w_ptr.d.next = 0.into();
            self.b_owed.d.next = 0.into();
            self.err.d.next = false;
        }
    }
}

/// A behavioural AXI4 memory for tests. Reads: one burst at a time, in order, after a fixed
/// latency. Writes: addresses (AW) and data (W) are accepted independently into queues, a
/// write is performed once both its address and data are queued, and responses come back in
/// order `write_latency` cycles later; `awready`, `wready` and the raising of `bvalid` can be
/// withheld at random (seeded). Addresses from `error_from` on answer SLVERR (and are not
/// written).
#[cfg(test)]
pub(crate) mod memory {
    use rand::{Rng, SeedableRng};
    use std::collections::VecDeque;

    /// Byte-addressed memory with an AXI read and write port state machine.
    pub struct Memory {
        /// The bytes.
        pub bytes: Vec<u8>,
        /// Reads and writes at or above this address answer SLVERR.
        pub error_from: u64,
        /// Cycles from a write being performed to its response being offered (≥ 1).
        pub write_latency: u64,
        /// Capacity of the write address and write data queues.
        pub write_queue: usize,
        read_burst: Option<(u64, u64)>,
        write_addrs: VecDeque<u64>,
        write_beats: VecDeque<(u128, u16)>,
        /// Responses owed: (first cycle it may be offered, resp).
        write_resps: VecDeque<(u64, u64)>,
        /// The front response was offered last cycle and not taken: it must stay offered.
        resp_shown: bool,
        cycle: u64,
        /// Random stalls: (generator, stall one cycle in this many) and this cycle's
        /// (awready, wready, bvalid) withheld.
        stalls: Option<(rand::rngs::StdRng, u32)>,
        stalled: (bool, bool, bool),
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
        /// A memory of `size` bytes, always ready, answering writes one cycle after they are
        /// complete.
        pub fn new(size: usize) -> Self {
            Memory {
                bytes: vec![0; size],
                error_from: u64::MAX,
                write_latency: 1,
                write_queue: 8,
                read_burst: None,
                write_addrs: VecDeque::new(),
                write_beats: VecDeque::new(),
                write_resps: VecDeque::new(),
                resp_shown: false,
                cycle: 0,
                stalls: None,
                stalled: (false, false, false),
                bursts: Vec::new(),
            }
        }

        /// Withholds `awready`, `wready` and a new `bvalid`, each independently, one cycle in
        /// `one_in` (0: never), drawn from a generator seeded with `seed`.
        pub fn stall_writes(&mut self, seed: u64, one_in: u32) {
            self.stalls = (one_in != 0).then(|| (rand::rngs::StdRng::seed_from_u64(seed), one_in));
            self.stalled = (false, false, false);
        }

        /// Some write address, data beat or response is still queued in the memory.
        pub fn writes_pending(&self) -> bool {
            !(self.write_addrs.is_empty()
                && self.write_beats.is_empty()
                && self.write_resps.is_empty())
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
                awready: self.write_addrs.len() < self.write_queue && !self.stalled.0,
                wready: self.write_beats.len() < self.write_queue && !self.stalled.1,
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
            if let Some(&(ready_at, resp)) = self.write_resps.front() {
                o.bvalid = ready_at <= self.cycle && (self.resp_shown || !self.stalled.2);
                o.bresp = resp;
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
            self.resp_shown = o.bvalid && !m.bready;
            if o.bvalid && m.bready {
                self.write_resps.pop_front();
            }
            if m.awvalid && o.awready {
                assert_eq!(m.awaddr % 16, 0, "unaligned write address");
                self.write_addrs.push_back(m.awaddr);
            }
            if m.wvalid && o.wready {
                self.write_beats.push_back((m.wdata, m.wstrb));
            }
            while let (Some(&addr), Some(&(data, strb))) =
                (self.write_addrs.front(), self.write_beats.front())
            {
                let resp = self.resp(addr);
                if resp == 0 {
                    for (i, byte) in data.to_le_bytes().iter().enumerate() {
                        if strb >> i & 1 == 1 {
                            self.bytes[addr as usize + i] = *byte;
                        }
                    }
                }
                self.write_addrs.pop_front();
                self.write_beats.pop_front();
                self.write_resps
                    .push_back((self.cycle + self.write_latency, resp));
            }
            self.cycle += 1;
            if let Some((rng, one_in)) = &mut self.stalls {
                self.stalled = (
                    rng.random_ratio(1, *one_in),
                    rng.random_ratio(1, *one_in),
                    rng.random_ratio(1, *one_in),
                );
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

    /// One write transfer for the tests: its address, element size and elements.
    struct Transfer {
        addr: u64,
        esz: u64,
        data: Vec<u32>,
    }

    impl Transfer {
        /// Applies the transfer to a byte model of `mem`, skipping the beats the memory
        /// answers with SLVERR; whether it has such a beat.
        fn apply(&self, model: &mut [u8], error_from: u64) -> bool {
            let size = 1usize << self.esz;
            let mut error = false;
            for (i, v) in self.data.iter().enumerate() {
                let at = self.addr as usize + i * size;
                if (at as u64 & !15) >= error_from {
                    error = true;
                } else {
                    model[at..at + size].copy_from_slice(&v.to_le_bytes()[..size]);
                }
            }
            error
        }
    }

    fn new_writer() -> DmaWrite {
        let mut dma = DmaWrite::default();
        dma.connect_all();
        dma.reset.next = true;
        tick(&mut dma, |d| &mut d.clock);
        dma.reset.next = false;
        settle(&mut dma);
        dma
    }

    /// Drives `transfers` through `dma` into `mem`, each started in the first cycle
    /// `can_start` allows (`start` held high for it until then), its groups offered except on
    /// the cycles `gap` says, with garbage on lanes past the transfer's end and while
    /// `in_valid` is low; pulses `clear_error` in the first cycle. Checks the handshake rules
    /// every cycle and runs until `idle`; the cycles from the first one to the one where
    /// `idle` is seen.
    fn run_writes(
        mem: &mut Memory,
        dma: &mut DmaWrite,
        transfers: &[Transfer],
        gap: &mut dyn FnMut() -> bool,
    ) -> u64 {
        let mut garbage = rand::rngs::StdRng::seed_from_u64(99);
        // The transfer taking elements (index into `transfers`) and its next element.
        let mut current: Option<usize> = None;
        let mut taken = 0usize;
        let mut next = 0usize;
        for cycle in 0..100_000u64 {
            let o = mem.outputs();
            dma.awready.next = o.awready;
            dma.wready.next = o.wready;
            dma.bresp.next = o.bresp.into();
            dma.bvalid.next = o.bvalid;
            dma.clear_error.next = cycle == 0;
            let offer = match current {
                Some(t) if dma.busy.val() && !gap() => Some(t),
                _ => None,
            };
            let mut lanes = [0u32; 4];
            for (lane, v) in lanes.iter_mut().enumerate() {
                *v = garbage.random();
                if let Some(t) = offer {
                    let idx = dma.in_index.val().to_u64() as usize + lane;
                    if let Some(&d) = transfers[t].data.get(idx) {
                        *v = d;
                    }
                }
            }
            let in_data = (lanes.iter().enumerate())
                .fold(0u128, |acc, (lane, v)| acc | u128::from(*v) << (32 * lane));
            dma.in_valid.next = offer.is_some();
            dma.in_data.next = in_data.to_bits();
            let starting = transfers.get(next);
            dma.start.next = starting.is_some();
            if let Some(t) = starting {
                dma.addr.next = t.addr.into();
                dma.count.next = (t.data.len() as u64).into();
                dma.esz.next = t.esz.into();
            }
            settle(dma);
            if dma.idle.val() {
                assert!(!dma.busy.val() && dma.can_start.val(), "idle yet busy");
                assert!(!mem.writes_pending(), "idle with writes not answered");
                if next == transfers.len() {
                    return cycle;
                }
            }
            assert!(
                dma.busy.val() || dma.can_start.val(),
                "a start must be possible once all elements are taken"
            );
            assert_eq!(
                dma.busy.val(),
                current.is_some(),
                "busy while taking elements"
            );
            if let Some(t) = offer.filter(|_| dma.in_ready.val()) {
                assert_eq!(dma.in_index.val().to_u64() as usize, taken, "group index");
                taken += 4;
                if taken >= transfers[t].data.len() {
                    current = None;
                }
            }
            if starting.is_some() && dma.can_start.val() {
                assert!(
                    current.is_none(),
                    "a start was allowed while elements are left"
                );
                current = Some(next);
                taken = 0;
                next += 1;
            }
            assert_eq!(dma.awlen.val().to_u64(), 0);
            assert!(dma.wlast.val());
            let m = MasterOut {
                awaddr: dma.awaddr.val().to_u64(),
                awvalid: dma.awvalid.val(),
                wdata: dma.wdata.val().to_u128(),
                wstrb: dma.wstrb.val().to_u64() as u16,
                wvalid: dma.wvalid.val(),
                bready: dma.bready.val(),
                ..Default::default()
            };
            assert!(!o.bvalid || m.bready, "a response came that was not owed");
            mem.edge(&m, &o);
            tick(dma, |d| &mut d.clock);
        }
        panic!("writes never finished");
    }

    #[test]
    fn random_back_to_back_writes_match_a_byte_model_under_stalls() {
        let full = std::env::var_os("POCFORGE_FULL").is_some();
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let size = 8192;
        let mut mem = Memory::new(size);
        rng.fill(&mut mem.bytes[..]);
        let mut model = mem.bytes.clone();
        let mut dma = new_writer();
        let mut errors_seen = 0;
        for batch in 0..if full { 3000 } else { 300 } {
            // Even batches stall the memory a third of the cycles and offer groups with gaps;
            // every fourth batch reaches into the SLVERR region.
            let stalling = batch % 2 == 0;
            mem.stall_writes(batch, if stalling { 3 } else { 0 });
            mem.write_latency = rng.random_range(1..6);
            mem.error_from = if batch % 4 == 1 { 4096 } else { u64::MAX };
            let transfers: Vec<Transfer> = (0..rng.random_range(1..8))
                .map(|_| {
                    let esz = rng.random_range(0..3u64);
                    let count = rng.random_range(1..=40usize);
                    let span = (count as u64) << esz;
                    let addr = rng.random_range(0..=size as u64 - span) >> esz << esz;
                    let data = (0..count).map(|_| rng.random()).collect();
                    Transfer { addr, esz, data }
                })
                .collect();
            let mut want_error = false;
            for t in &transfers {
                want_error |= t.apply(&mut model, mem.error_from);
            }
            let mut gaps = rand::rngs::StdRng::seed_from_u64(1000 + batch);
            run_writes(&mut mem, &mut dma, &transfers, &mut || {
                stalling && gaps.random_ratio(1, 3)
            });
            assert!(
                mem.bytes == model,
                "batch {batch}: memory differs from the model"
            );
            assert_eq!(
                dma.error.val(),
                want_error,
                "batch {batch}: error must be sticky since the last clear_error"
            );
            errors_seen += usize::from(want_error);
        }
        assert!(errors_seen > 0, "no batch exercised the error path");
    }

    #[test]
    fn a_start_with_count_zero_is_ignored_and_clear_error_clears() {
        let mut mem = Memory::new(4096);
        mem.error_from = 2048;
        let mut dma = new_writer();
        let bad = [Transfer {
            addr: 3000,
            esz: 2,
            data: vec![1, 2, 3],
        }];
        run_writes(&mut mem, &mut dma, &bad, &mut || false);
        assert!(dma.error.val(), "an SLVERR must be reported");
        // Stays set while idle; a clear_error pulse clears it.
        tick(&mut dma, |d| &mut d.clock);
        assert!(dma.error.val(), "the error is sticky");
        dma.clear_error.next = true;
        tick(&mut dma, |d| &mut d.clock);
        dma.clear_error.next = false;
        settle(&mut dma);
        assert!(!dma.error.val());
        dma.start.next = true;
        dma.count.next = 0u64.into();
        tick(&mut dma, |d| &mut d.clock);
        dma.start.next = false;
        settle(&mut dma);
        assert!(
            dma.idle.val() && !dma.busy.val(),
            "a start with count 0 is ignored"
        );
    }

    /// `rows` rows of 8 f32, the first at `first`, `stride` bytes apart, started back to back
    /// against an always-ready memory: the cycles from the first start until everything is
    /// answered.
    fn row_cycles(rows: u64, first: u64, stride: u64) -> u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        let mut mem = Memory::new(8192);
        let mut model = mem.bytes.clone();
        let mut dma = new_writer();
        let transfers: Vec<Transfer> = (0..rows)
            .map(|r| Transfer {
                addr: first + stride * r,
                esz: 2,
                data: (0..8).map(|_| rng.random()).collect(),
            })
            .collect();
        for t in &transfers {
            t.apply(&mut model, u64::MAX);
        }
        let cycles = run_writes(&mut mem, &mut dma, &transfers, &mut || false);
        assert!(mem.bytes == model);
        cycles
    }

    #[test]
    fn f32_rows_drain_at_one_beat_per_cycle() {
        // Unaligned rows are three beats each: one row is its start, two groups, three beats
        // and the last response; back to back, the beats set the pace.
        let one = row_cycles(1, 4, 40);
        let unaligned = row_cycles(64, 4, 40);
        // Aligned rows are two beats, two groups: the next row must start in the cycle the
        // last group is taken to keep the pace.
        let aligned = row_cycles(64, 16, 48);
        println!(
            "8 f32 rows: 1 unaligned {one} cycles, 64 unaligned {unaligned} cycles, \
             64 aligned {aligned} cycles"
        );
        assert!(one <= 6, "one row took {one} cycles");
        assert!(unaligned <= 64 * 3 + 6, "64 rows took {unaligned} cycles");
        assert!(
            aligned <= 64 * 2 + 6,
            "64 aligned rows took {aligned} cycles"
        );
    }
}
