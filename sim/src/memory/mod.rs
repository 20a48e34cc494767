//! The memory behind the accelerator's DMA port: an AXI4 slave, advanced one clock cycle at a
//! time.
//!
//! The model supports what the accelerator's master uses — INCR bursts of full-width beats
//! (1…256 beats, not crossing 4 KiB), in order, no IDs — and makes the memory's performance a
//! set of knobs ([`MemoryConfig`]): read latency, bandwidth, how many bursts may be in flight
//! per direction, write-response latency. Writes honour byte strobes. Anything outside the
//! memory, or a burst crossing a 4 KiB boundary, is answered with `SLVERR` (and the latter also
//! counted as a protocol violation) — never a panic. [`MemoryStats`] counts what happened.
//!
//! A cycle has two phases, mirroring how a slave sees the bus:
//!
//! 1. [`AxiMemory::present`] — the slave's outputs for this cycle (`arready`, `rvalid`/`rdata`,
//!    `awready`, `wready`, `bvalid`, …), which depend only on the slave's state;
//! 2. [`AxiMemory::clock`] — given the master's outputs in this cycle (sampled after the
//!    design settled against the slave's outputs), perform every handshake where both `valid`
//!    and `ready` are high, as the rising edge does, and advance one cycle.
//!
//! [`AxiPorts`] moves these signals between the model's ports and this struct; [`crate::Bench`]
//! runs the two phases around each clock edge.

mod ports;

use std::collections::VecDeque;

pub use ports::AxiPorts;

use crate::error::SimError;

/// AXI response: the access succeeded.
pub const RESP_OKAY: u8 = 0b00;
/// AXI response: slave error (address outside the memory, or an illegal burst).
pub const RESP_SLVERR: u8 = 0b10;

/// How fast the memory moves data, shared by reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bandwidth {
    /// One read beat and one write beat every cycle.
    Unlimited,
    /// On average `bytes` every `cycles` cycles, reads and writes together (a token bucket that
    /// never banks a whole beat beyond one cycle's share, so idle time does not buy bursts).
    BytesPer {
        /// Bytes …
        bytes: u64,
        /// … per this many cycles.
        cycles: u64,
    },
}

/// The memory's size, place and performance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryConfig {
    /// First byte address of the memory on the AXI bus.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
    /// Cycles from an AR handshake to the first R beat being offered (at least 1).
    pub read_latency: u32,
    /// Cycles from the last W beat to the B response being offered (at least 1).
    pub write_latency: u32,
    /// Data rate.
    pub bandwidth: Bandwidth,
    /// Read bursts accepted but not yet completed, at most (at least 1).
    pub max_outstanding_reads: u32,
    /// Write bursts accepted but not yet answered on B, at most (at least 1).
    pub max_outstanding_writes: u32,
}

impl Default for MemoryConfig {
    /// 16 MiB at address 0, 20-cycle read latency, full bandwidth, 8 bursts in flight each way.
    fn default() -> Self {
        Self {
            base: 0,
            size: 16 << 20,
            read_latency: 20,
            write_latency: 4,
            bandwidth: Bandwidth::Unlimited,
            max_outstanding_reads: 8,
            max_outstanding_writes: 8,
        }
    }
}

/// What the memory saw, cumulatively.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Cycles clocked.
    pub cycles: u64,
    /// Read bursts accepted (AR handshakes).
    pub read_bursts: u64,
    /// Write bursts accepted (AW handshakes).
    pub write_bursts: u64,
    /// R beats delivered.
    pub read_beats: u64,
    /// W beats accepted.
    pub write_beats: u64,
    /// Bytes delivered by successful read beats.
    pub bytes_read: u64,
    /// Bytes written (strobed bytes of successful write beats).
    pub bytes_written: u64,
    /// Read bursts answered with SLVERR.
    pub read_errors: u64,
    /// Write bursts answered with SLVERR.
    pub write_errors: u64,
    /// Cycles in which any burst was in flight.
    pub busy_cycles: u64,
    /// Cycles an R beat was offered but the master was not ready (master back-pressure).
    pub r_backpressure_cycles: u64,
    /// Cycles with read bursts in flight but no R beat offered (latency and bandwidth).
    pub read_wait_cycles: u64,
    /// Cycles the master offered a W beat the memory did not take.
    pub w_stall_cycles: u64,
    /// Cycles the master offered AR but the memory had no room (outstanding limit).
    pub ar_stall_cycles: u64,
    /// Cycles the master offered AW but the memory had no room.
    pub aw_stall_cycles: u64,
    /// Protocol violations by the master (4 KiB crossings, misplaced WLAST).
    pub protocol_violations: u64,
    /// The latest violation, described.
    pub last_violation: Option<String>,
}

/// The slave's outputs in one cycle.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlaveSignals {
    /// AR channel ready.
    pub arready: bool,
    /// An R beat is offered.
    pub rvalid: bool,
    /// R data, little-endian, one byte per lane.
    pub rdata: Vec<u8>,
    /// R response.
    pub rresp: u8,
    /// Last beat of the burst.
    pub rlast: bool,
    /// AW channel ready.
    pub awready: bool,
    /// W channel ready.
    pub wready: bool,
    /// A B response is offered.
    pub bvalid: bool,
    /// B response.
    pub bresp: u8,
}

/// The master's outputs in one cycle.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MasterSignals {
    /// Read address.
    pub araddr: u64,
    /// Read burst length minus one.
    pub arlen: u8,
    /// Read address valid.
    pub arvalid: bool,
    /// Ready for R beats.
    pub rready: bool,
    /// Write address.
    pub awaddr: u64,
    /// Write burst length minus one.
    pub awlen: u8,
    /// Write address valid.
    pub awvalid: bool,
    /// Write data, little-endian, one byte per lane.
    pub wdata: Vec<u8>,
    /// Write strobes, bit i for byte lane i.
    pub wstrb: u128,
    /// Last beat of the write burst.
    pub wlast: bool,
    /// Write data valid.
    pub wvalid: bool,
    /// Ready for B responses.
    pub bready: bool,
}

/// A burst the slave accepted.
#[derive(Clone, Debug)]
struct Burst {
    /// Address of the first beat (possibly unaligned).
    addr: u64,
    beats: u32,
    /// Beats done so far.
    done: u32,
    /// Answer every beat with SLVERR and touch no memory.
    error: bool,
    /// Read: first cycle a beat may be offered.
    ready_at: u64,
}

/// A B response waiting to be offered.
#[derive(Clone, Copy, Debug)]
struct Response {
    resp: u8,
    ready_at: u64,
}

/// The AXI4 memory.
#[derive(Clone, Debug)]
pub struct AxiMemory {
    config: MemoryConfig,
    data_bytes: usize,
    storage: Vec<u8>,
    now: u64,
    reads: VecDeque<Burst>,
    writes: VecDeque<Burst>,
    responses: VecDeque<Response>,
    /// R beat currently offered (held until the master takes it).
    r_offered: bool,
    /// B response currently offered.
    b_offered: bool,
    /// Bandwidth credits, in units of 1/`cycles` bytes.
    credits: u64,
    /// Credits reserved for a W beat offered this cycle, refunded if not taken.
    w_reserved: u64,
    /// Round-robin between read and write when bandwidth is short.
    prefer_write: bool,
    out: SlaveSignals,
    presented: bool,
    stats: MemoryStats,
}

impl AxiMemory {
    /// A zero-filled memory for a bus with `data_bytes`-byte beats (a power of two, 1…128).
    pub fn new(config: MemoryConfig, data_bytes: usize) -> Result<Self, SimError> {
        if !data_bytes.is_power_of_two() || data_bytes > 128 {
            return Err(SimError::Config(format!(
                "AXI data width of {data_bytes} bytes; it must be a power of two up to 128 bytes (1024 bits)"
            )));
        }
        if config.read_latency == 0 || config.write_latency == 0 {
            return Err(SimError::Config(
                "read_latency and write_latency must be at least 1 cycle (a response cannot come \
                 in the cycle of its request)"
                    .into(),
            ));
        }
        if config.max_outstanding_reads == 0 || config.max_outstanding_writes == 0 {
            return Err(SimError::Config(
                "max_outstanding_reads/writes must be at least 1".into(),
            ));
        }
        if let Bandwidth::BytesPer { bytes, cycles } = config.bandwidth {
            if bytes == 0 || cycles == 0 {
                return Err(SimError::Config(format!(
                    "bandwidth of {bytes} bytes per {cycles} cycles; both must be at least 1"
                )));
            }
            if bytes.checked_mul(cycles).is_none()
                || (data_bytes as u64).checked_mul(cycles).is_none()
            {
                return Err(SimError::Config("bandwidth numbers too large".into()));
            }
        }
        if config.base.checked_add(config.size).is_none() {
            return Err(SimError::Config(format!(
                "memory at {:#x} of {:#x} bytes runs past the 64-bit address space",
                config.base, config.size
            )));
        }
        let size = usize::try_from(config.size)
            .ok()
            .filter(|&s| s <= isize::MAX as usize)
            .ok_or_else(|| {
                SimError::Config(format!(
                    "memory of {} bytes does not fit this host",
                    config.size
                ))
            })?;
        let out = SlaveSignals {
            rdata: vec![0; data_bytes],
            ..SlaveSignals::default()
        };
        Ok(Self {
            config,
            data_bytes,
            storage: vec![0; size],
            now: 0,
            reads: VecDeque::new(),
            writes: VecDeque::new(),
            responses: VecDeque::new(),
            r_offered: false,
            b_offered: false,
            credits: 0,
            w_reserved: 0,
            prefer_write: false,
            out,
            presented: false,
            stats: MemoryStats::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MemoryConfig {
        &self.config
    }

    /// Bytes per beat.
    pub fn data_bytes(&self) -> usize {
        self.data_bytes
    }

    /// The statistics so far.
    pub fn stats(&self) -> &MemoryStats {
        &self.stats
    }

    /// Whether no burst is in flight.
    pub fn is_idle(&self) -> bool {
        self.reads.is_empty()
            && self.writes.is_empty()
            && self.responses.is_empty()
            && !self.b_offered
    }

    /// Forgets every burst in flight (the master was reset); memory contents stay.
    pub fn reset_bus(&mut self) {
        self.reads.clear();
        self.writes.clear();
        self.responses.clear();
        self.r_offered = false;
        self.b_offered = false;
        self.credits = 0;
        self.w_reserved = 0;
        self.presented = false;
        self.out = SlaveSignals {
            rdata: vec![0; self.data_bytes],
            ..SlaveSignals::default()
        };
    }

    /// Copies memory at bus address `addr` into `out` (the host's side door, no bus cycles).
    pub fn read(&self, addr: u64, out: &mut [u8]) -> Result<(), SimError> {
        let range = self.host_range(addr, out.len())?;
        out.copy_from_slice(&self.storage[range]);
        Ok(())
    }

    /// Copies `data` into memory at bus address `addr` (the host's side door).
    pub fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), SimError> {
        let range = self.host_range(addr, data.len())?;
        self.storage[range].copy_from_slice(data);
        Ok(())
    }

    fn host_range(&self, addr: u64, len: usize) -> Result<std::ops::Range<usize>, SimError> {
        self.offset_of(addr, len as u64)
            .ok_or(SimError::MemoryRange {
                address: addr,
                len: len as u64,
                base: self.config.base,
                size: self.config.size,
            })
    }

    /// Storage offsets of `len` bytes at `addr`, if all inside the memory.
    fn offset_of(&self, addr: u64, len: u64) -> Option<std::ops::Range<usize>> {
        let start = addr.checked_sub(self.config.base)?;
        let end = start.checked_add(len)?;
        (end <= self.config.size).then_some(start as usize..end as usize)
    }

    fn beat_cost(&self) -> u64 {
        match self.config.bandwidth {
            Bandwidth::Unlimited => 0,
            Bandwidth::BytesPer { cycles, .. } => self.data_bytes as u64 * cycles,
        }
    }

    /// Phase 1: the slave's outputs for this cycle.
    pub fn present(&mut self) -> &SlaveSignals {
        if self.presented {
            return &self.out;
        }
        self.presented = true;
        let cost = self.beat_cost();
        if let Bandwidth::BytesPer { bytes, .. } = self.config.bandwidth {
            // Capped so that unused credit never adds up to a whole extra beat, yet no fraction
            // of a beat is lost while the memory is busy.
            self.credits = (self.credits + bytes).min(bytes + cost - 1);
        }

        // Which channel gets the bandwidth first this cycle.
        let want_read =
            !self.r_offered && self.reads.front().is_some_and(|b| b.ready_at <= self.now);
        let want_write = !self.writes.is_empty();
        let write_first = want_write && (self.prefer_write || !want_read);

        if write_first {
            self.offer_write(cost);
            self.offer_read(cost);
        } else {
            self.offer_read(cost);
            self.offer_write(cost);
        }
        if want_read && want_write {
            self.prefer_write = !self.prefer_write;
        }

        self.out.arready = self.reads.len() < self.config.max_outstanding_reads as usize;
        let writes_in_flight =
            self.writes.len() + self.responses.len() + usize::from(self.b_offered);
        self.out.awready = writes_in_flight < self.config.max_outstanding_writes as usize;

        if !self.b_offered
            && self
                .responses
                .front()
                .is_some_and(|r| r.ready_at <= self.now)
        {
            let response = self.responses.pop_front().expect("checked non-empty");
            self.b_offered = true;
            self.out.bresp = response.resp;
        }
        self.out.bvalid = self.b_offered;
        &self.out
    }

    /// Offers the next R beat if the front read burst is due and bandwidth allows.
    fn offer_read(&mut self, cost: u64) {
        if self.r_offered {
            return;
        }
        let Some(burst) = self.reads.front() else {
            self.out.rvalid = false;
            return;
        };
        if burst.ready_at > self.now || self.credits < cost {
            self.out.rvalid = false;
            return;
        }
        self.credits -= cost;
        let last = burst.done + 1 == burst.beats;
        if burst.error {
            self.out.rdata.fill(0);
            self.out.rresp = RESP_SLVERR;
        } else {
            // In range (and so without overflow): checked when the burst was accepted.
            let beat_addr = beat_address(burst.addr, burst.done, self.data_bytes);
            let range = self
                .offset_of(beat_addr, self.data_bytes as u64)
                .expect("checked when the burst was accepted");
            self.out.rdata.copy_from_slice(&self.storage[range]);
            self.out.rresp = RESP_OKAY;
        }
        self.out.rlast = last;
        self.out.rvalid = true;
        self.r_offered = true;
    }

    /// Raises `wready` if a write burst awaits data and bandwidth allows (reserving it).
    fn offer_write(&mut self, cost: u64) {
        self.out.wready = !self.writes.is_empty() && self.credits >= cost;
        if self.out.wready {
            self.credits -= cost;
            self.w_reserved = cost;
        } else {
            self.w_reserved = 0;
        }
    }

    /// Phase 2: the rising edge. Performs the handshakes of this cycle given the master's
    /// outputs, and advances one cycle.
    pub fn clock(&mut self, master: &MasterSignals) {
        if !self.presented {
            self.present();
        }
        let out = std::mem::take(&mut self.out);
        let in_flight = !self.is_idle();

        // Statistics of this cycle, from the signals as they were.
        self.stats.cycles += 1;
        self.stats.busy_cycles += u64::from(in_flight);
        self.stats.r_backpressure_cycles += u64::from(out.rvalid && !master.rready);
        self.stats.read_wait_cycles += u64::from(!self.reads.is_empty() && !out.rvalid);
        self.stats.w_stall_cycles += u64::from(master.wvalid && !out.wready);
        self.stats.ar_stall_cycles += u64::from(master.arvalid && !out.arready);
        self.stats.aw_stall_cycles += u64::from(master.awvalid && !out.awready);

        // R: the offered beat is taken.
        if out.rvalid && master.rready {
            self.r_offered = false;
            let burst = self
                .reads
                .front_mut()
                .expect("an offered beat belongs to a burst");
            burst.done += 1;
            self.stats.read_beats += 1;
            if !burst.error {
                self.stats.bytes_read += self.data_bytes as u64;
            }
            if burst.done == burst.beats {
                self.reads.pop_front();
            }
        }
        // W: a beat is accepted.
        if out.wready && master.wvalid {
            self.accept_write_beat(master);
        } else {
            self.credits += self.w_reserved;
        }
        self.w_reserved = 0;
        // B: the response is taken.
        if out.bvalid && master.bready {
            self.b_offered = false;
        }
        // AR and AW: new bursts (after R/W so a burst never gets a beat in its own cycle).
        if out.arready && master.arvalid {
            let burst = self.accept_burst(master.araddr, master.arlen, "read");
            self.stats.read_bursts += 1;
            self.stats.read_errors += u64::from(burst.error);
            self.reads.push_back(Burst {
                ready_at: self.now + u64::from(self.config.read_latency),
                ..burst
            });
        }
        if out.awready && master.awvalid {
            let burst = self.accept_burst(master.awaddr, master.awlen, "write");
            self.stats.write_bursts += 1;
            self.stats.write_errors += u64::from(burst.error);
            self.writes.push_back(burst);
        }

        // Keep what stays offered (R beat, B response) for the next cycle.
        self.out = SlaveSignals {
            rvalid: self.r_offered,
            rdata: out.rdata,
            rresp: out.rresp,
            rlast: out.rlast,
            bvalid: self.b_offered,
            bresp: out.bresp,
            ..SlaveSignals::default()
        };
        self.now += 1;
        self.presented = false;
    }

    fn accept_burst(&mut self, addr: u64, len: u8, what: &str) -> Burst {
        let beats = u32::from(len) + 1;
        let first = align_down(addr, self.data_bytes);
        let bytes = u64::from(beats) * self.data_bytes as u64;
        let error = match first.checked_add(bytes) {
            None => true,
            Some(end) => {
                let crosses = first >> 12 != (end - 1) >> 12;
                if crosses {
                    self.violation(format!(
                        "{what} burst at {addr:#x} of {beats} beats × {} bytes crosses a 4 KiB boundary",
                        self.data_bytes
                    ));
                }
                crosses || self.offset_of(first, bytes).is_none()
            }
        };
        Burst {
            addr,
            beats,
            done: 0,
            error,
            ready_at: 0,
        }
    }

    fn accept_write_beat(&mut self, master: &MasterSignals) {
        let data_bytes = self.data_bytes;
        let Some(burst) = self.writes.front_mut() else {
            return;
        };
        let beat = burst.done;
        let start = burst.addr;
        // On an unaligned first beat, lanes below the address carry no data.
        let first_lane = if beat == 0 {
            (burst.addr % data_bytes as u64) as usize
        } else {
            0
        };
        let last = beat + 1 == burst.beats;
        let error = burst.error;
        burst.done += 1;
        self.stats.write_beats += 1;
        if master.wlast != last {
            let message = format!(
                "WLAST was {} on beat {} of a {}-beat write burst at {:#x}",
                u8::from(master.wlast),
                beat + 1,
                burst.beats,
                burst.addr
            );
            self.violation(message);
        }
        if !error {
            let beat_addr = beat_address(start, beat, data_bytes);
            let base = self
                .offset_of(beat_addr, data_bytes as u64)
                .expect("checked when the burst was accepted")
                .start;
            for lane in first_lane..data_bytes {
                if master.wstrb >> lane & 1 == 1 {
                    self.storage[base + lane] = master.wdata.get(lane).copied().unwrap_or(0);
                    self.stats.bytes_written += 1;
                }
            }
        }
        if last {
            self.writes.pop_front();
            let resp = if error { RESP_SLVERR } else { RESP_OKAY };
            self.responses.push_back(Response {
                resp,
                ready_at: self.now + u64::from(self.config.write_latency),
            });
        }
    }

    fn violation(&mut self, message: String) {
        self.stats.protocol_violations += 1;
        self.stats.last_violation = Some(message);
    }
}

fn align_down(addr: u64, data_bytes: usize) -> u64 {
    addr & !(data_bytes as u64 - 1)
}

/// The aligned address of the bytes beat `k` of an INCR burst starting at `addr` covers (the
/// first beat of an unaligned burst covers the aligned word that holds `addr`).
fn beat_address(addr: u64, k: u32, data_bytes: usize) -> u64 {
    align_down(addr, data_bytes) + u64::from(k) * data_bytes as u64
}

#[cfg(test)]
mod tests;
