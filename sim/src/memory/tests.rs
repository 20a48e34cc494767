//! Protocol corner cases of the memory model, driven signal by signal from Rust. The model is
//! also tested against a real Verilog AXI master in `tests/axi_memory.rs`.

use super::*;

const BEAT: usize = 16;

fn memory(config: MemoryConfig) -> AxiMemory {
    AxiMemory::new(config, BEAT).unwrap()
}

fn small() -> MemoryConfig {
    MemoryConfig {
        base: 0x1000,
        size: 0x4000,
        read_latency: 5,
        write_latency: 2,
        ..MemoryConfig::default()
    }
}

/// Issues one read burst at cycle 0 and takes beats whenever `ready(cycle)` says so; returns
/// (cycle, data, resp, last) per beat.
fn read_burst(
    mem: &mut AxiMemory,
    addr: u64,
    beats: u8,
    ready: impl Fn(u64) -> bool,
) -> Vec<(u64, Vec<u8>, u8, bool)> {
    let mut got = Vec::new();
    let mut issued = false;
    for cycle in 0..500 {
        let out = mem.present().clone();
        let master = MasterSignals {
            arvalid: !issued,
            araddr: addr,
            arlen: beats - 1,
            rready: ready(cycle),
            ..MasterSignals::default()
        };
        if out.arready && master.arvalid {
            issued = true;
        }
        if out.rvalid && master.rready {
            got.push((cycle, out.rdata.clone(), out.rresp, out.rlast));
        }
        mem.clock(&master);
        if got.last().is_some_and(|b| b.3) {
            break;
        }
    }
    got
}

/// Writes one burst (AW at cycle 0, W beats as soon as accepted); returns (bresp, cycle of B).
fn write_burst(
    mem: &mut AxiMemory,
    addr: u64,
    beats: &[(Vec<u8>, u128)],
    wlast_on: usize,
) -> (u8, u64) {
    let mut aw_done = false;
    let mut next = 0;
    for cycle in 0..500 {
        let out = mem.present().clone();
        let (wdata, wstrb) = beats.get(next).cloned().unwrap_or_default();
        let master = MasterSignals {
            awvalid: !aw_done,
            awaddr: addr,
            awlen: (beats.len() - 1) as u8,
            wvalid: aw_done && next < beats.len(),
            wdata,
            wstrb,
            wlast: next == wlast_on,
            bready: true,
            ..MasterSignals::default()
        };
        let b = out.bvalid.then_some(out.bresp);
        if out.awready && master.awvalid {
            aw_done = true;
        }
        if out.wready && master.wvalid {
            next += 1;
        }
        mem.clock(&master);
        if let Some(resp) = b {
            return (resp, cycle);
        }
    }
    panic!("no write response within 500 cycles");
}

fn pattern(addr: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (addr as usize + i).wrapping_mul(7) as u8)
        .collect()
}

#[test]
fn reads_arrive_after_the_latency_back_to_back() {
    let mut mem = memory(small());
    mem.write(0x1000, &pattern(0x1000, 64)).unwrap();
    let beats = read_burst(&mut mem, 0x1000, 4, |_| true);
    let cycles: Vec<u64> = beats.iter().map(|b| b.0).collect();
    // AR handshake in cycle 0, latency 5: beats in cycles 5, 6, 7, 8.
    assert_eq!(cycles, vec![5, 6, 7, 8]);
    let data: Vec<u8> = beats.iter().flat_map(|b| b.1.clone()).collect();
    assert_eq!(data, pattern(0x1000, 64));
    assert!(beats.iter().all(|b| b.2 == RESP_OKAY));
    let lasts: Vec<bool> = beats.iter().map(|b| b.3).collect();
    assert_eq!(lasts, vec![false, false, false, true]);
    let stats = mem.stats();
    assert_eq!(
        (stats.read_bursts, stats.read_beats, stats.bytes_read),
        (1, 4, 64)
    );
    assert_eq!(stats.read_wait_cycles, 4, "cycles 1..=4 wait for data");
}

#[test]
fn an_offered_beat_waits_for_rready() {
    let mut mem = memory(small());
    mem.write(0x1000, &pattern(0x1000, 32)).unwrap();
    // The master is ready only on even cycles from 10 on.
    let beats = read_burst(&mut mem, 0x1000, 2, |c| c >= 10 && c % 2 == 0);
    assert_eq!(beats.iter().map(|b| b.0).collect::<Vec<_>>(), vec![10, 12]);
    assert_eq!(beats[0].1, pattern(0x1000, 16));
    assert_eq!(mem.stats().r_backpressure_cycles, 5 + 1);
}

#[test]
fn bandwidth_paces_beats() {
    let config = MemoryConfig {
        bandwidth: Bandwidth::BytesPer {
            bytes: 8,
            cycles: 1,
        },
        ..small()
    };
    let mut mem = memory(config);
    let beats = read_burst(&mut mem, 0x1000, 4, |_| true);
    let cycles: Vec<u64> = beats.iter().map(|b| b.0).collect();
    // 8 bytes per cycle with 16-byte beats: one beat every other cycle.
    for pair in cycles.windows(2) {
        assert_eq!(pair[1] - pair[0], 2, "{cycles:?}");
    }
}

#[test]
fn outstanding_reads_are_limited() {
    let config = MemoryConfig {
        max_outstanding_reads: 2,
        read_latency: 10,
        ..small()
    };
    let mut mem = memory(config);
    let mut accepted = Vec::new();
    for cycle in 0..6 {
        let out = mem.present().clone();
        let master = MasterSignals {
            arvalid: true,
            araddr: 0x1000,
            arlen: 0,
            ..MasterSignals::default()
        };
        if out.arready {
            accepted.push(cycle);
        }
        mem.clock(&master);
    }
    assert_eq!(accepted, vec![0, 1]);
    assert_eq!(mem.stats().ar_stall_cycles, 4);
}

#[test]
fn writes_honour_strobes_and_respond_after_the_latency() {
    let mut mem = memory(small());
    mem.write(0x2000, &[0xee; 32]).unwrap();
    let beats = vec![(vec![0x11; BEAT], 0x00ff), (vec![0x22; BEAT], 0x8001)];
    let (resp, b_cycle) = write_burst(&mut mem, 0x2000, &beats, 1);
    assert_eq!(resp, RESP_OKAY);
    let mut got = [0u8; 32];
    mem.read(0x2000, &mut got).unwrap();
    let mut expected = [0xeeu8; 32];
    expected[..8].fill(0x11);
    expected[16] = 0x22;
    expected[31] = 0x22;
    assert_eq!(got, expected);
    // AW in cycle 0, W beats in cycles 1 and 2, B after 2 more cycles.
    assert_eq!(b_cycle, 4);
    assert_eq!(mem.stats().bytes_written, 10);
    assert_eq!(mem.stats().protocol_violations, 0);
}

#[test]
fn the_first_beat_of_an_unaligned_write_skips_lanes_below_the_address() {
    let mut mem = memory(small());
    let (resp, _) = write_burst(&mut mem, 0x1004, &[(vec![0x55; BEAT], u128::MAX)], 0);
    assert_eq!(resp, RESP_OKAY);
    let mut got = [0u8; 16];
    mem.read(0x1000, &mut got).unwrap();
    assert_eq!(got[..4], [0; 4]);
    assert_eq!(got[4..], [0x55; 12]);
}

#[test]
fn out_of_range_bursts_get_slverr_and_touch_nothing() {
    // The memory ends at 0x4f80, away from a 4 KiB boundary.
    let mut mem = memory(MemoryConfig {
        size: 0x3f80,
        ..small()
    });
    mem.write(0x4f70, &[0x99; 16]).unwrap();
    // The first beat is inside, the second is not.
    let beats = read_burst(&mut mem, 0x4f70, 2, |_| true);
    assert_eq!(beats.len(), 2);
    assert!(beats
        .iter()
        .all(|b| b.2 == RESP_SLVERR && b.1.iter().all(|&x| x == 0)));
    assert_eq!(mem.stats().read_errors, 1);
    assert_eq!(mem.stats().bytes_read, 0);

    let (resp, _) = write_burst(
        &mut mem,
        0x4f70,
        &[(vec![1; BEAT], u128::MAX), (vec![2; BEAT], u128::MAX)],
        1,
    );
    assert_eq!(resp, RESP_SLVERR);
    let mut got = [0u8; 16];
    mem.read(0x4f70, &mut got).unwrap();
    assert_eq!(
        got, [0x99; 16],
        "a rejected burst writes nothing, not even its in-range beats"
    );
    assert_eq!(mem.stats().write_errors, 1);
    assert_eq!(mem.stats().protocol_violations, 0);
    // Addresses near the top of the address space do not overflow.
    let beats = read_burst(&mut mem, u64::MAX - 15, 4, |_| true);
    assert!(beats.iter().all(|b| b.2 == RESP_SLVERR));
}

#[test]
fn crossing_4k_is_a_violation_answered_with_slverr() {
    let config = MemoryConfig {
        base: 0,
        size: 0x10000,
        ..small()
    };
    let mut mem = memory(config);
    let beats = read_burst(&mut mem, 0x0fe0, 4, |_| true);
    assert!(beats.iter().all(|b| b.2 == RESP_SLVERR));
    assert_eq!(mem.stats().protocol_violations, 1);
    assert!(mem
        .stats()
        .last_violation
        .as_deref()
        .unwrap()
        .contains("4 KiB"));
    // Exactly up to the boundary is fine.
    let beats = read_burst(&mut mem, 0x0fc0, 4, |_| true);
    assert!(beats.iter().all(|b| b.2 == RESP_OKAY));
}

#[test]
fn a_misplaced_wlast_is_reported() {
    let mut mem = memory(small());
    let beats = vec![(vec![1; BEAT], u128::MAX), (vec![2; BEAT], u128::MAX)];
    let (resp, _) = write_burst(&mut mem, 0x1000, &beats, 0);
    assert_eq!(
        resp, RESP_OKAY,
        "the burst length decides, WLAST is only checked"
    );
    assert_eq!(mem.stats().protocol_violations, 2);
    assert!(mem
        .stats()
        .last_violation
        .as_deref()
        .unwrap()
        .contains("WLAST"));
}

#[test]
fn reads_and_writes_share_limited_bandwidth_fairly() {
    let config = MemoryConfig {
        bandwidth: Bandwidth::BytesPer {
            bytes: 16,
            cycles: 1,
        },
        read_latency: 1,
        ..small()
    };
    let mut mem = memory(config);
    let mut r_beats = 0;
    let mut w_beats = 0;
    let mut ar_sent = false;
    let mut aw_sent = false;
    for _ in 0..100 {
        let out = mem.present().clone();
        let master = MasterSignals {
            arvalid: !ar_sent,
            araddr: 0x1000,
            arlen: 63,
            rready: true,
            awvalid: !aw_sent,
            awaddr: 0x3000,
            awlen: 63,
            wvalid: aw_sent,
            wdata: vec![0; BEAT],
            wstrb: u128::MAX,
            wlast: w_beats == 63,
            bready: true,
        };
        ar_sent |= out.arready;
        aw_sent |= out.awready;
        r_beats += u32::from(out.rvalid);
        w_beats += u32::from(out.wready && master.wvalid);
        mem.clock(&master);
    }
    // One beat per cycle in all, split evenly while both channels are busy.
    assert!(r_beats + w_beats <= 100);
    assert!(
        r_beats.abs_diff(w_beats) <= 2,
        "reads {r_beats}, writes {w_beats}"
    );
}

#[test]
fn host_access_is_bounds_checked() {
    let mut mem = memory(small());
    assert!(mem.write(0x0fff, &[1]).is_err());
    assert!(mem.write(0x4fff, &[1, 2]).is_err());
    assert!(mem.write(0x4fff, &[1]).is_ok());
    let mut buf = [0u8; 2];
    let error = mem.read(u64::MAX, &mut buf).unwrap_err();
    assert!(error.to_string().contains("outside the memory"), "{error}");
}

#[test]
fn bad_configurations_are_refused() {
    assert!(AxiMemory::new(small(), 12).is_err());
    assert!(AxiMemory::new(
        MemoryConfig {
            read_latency: 0,
            ..small()
        },
        BEAT
    )
    .is_err());
    assert!(AxiMemory::new(
        MemoryConfig {
            max_outstanding_writes: 0,
            ..small()
        },
        BEAT
    )
    .is_err());
    let zero_bw = MemoryConfig {
        bandwidth: Bandwidth::BytesPer {
            bytes: 0,
            cycles: 1,
        },
        ..small()
    };
    assert!(AxiMemory::new(zero_bw, BEAT).is_err());
    assert!(AxiMemory::new(
        MemoryConfig {
            base: u64::MAX,
            size: 2,
            ..small()
        },
        BEAT
    )
    .is_err());
}
