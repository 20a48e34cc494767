//! Shared helpers for the PoCForge benchmarks (`cargo bench -p bench`).
//!
//! Benchmarks on a shared, noisy machine are only meaningful as *ratios* against a baseline
//! measured in the same process at the same time. [`paired_best`] runs several contenders in
//! rotation, round after round, so that a burst of load from elsewhere hits all of them alike,
//! and keeps each contender's best round.

use std::time::{Duration, Instant};

/// A small deterministic generator (xorshift64*), so inputs are the same on every run and
/// no random-number crate is needed.
#[derive(Clone, Debug)]
pub struct Xorshift(u64);

impl Xorshift {
    /// A generator from a non-zero seed (zero is replaced by a fixed constant).
    pub fn new(seed: u64) -> Self {
        Xorshift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A uniform `f32` in `[-1, 1)`.
    pub fn next_unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// `len` bfloat16 values in `[-1, 1)` (raw bits), rounded to nearest even.
pub fn bf16_values(len: usize, seed: u64) -> Vec<u16> {
    let mut rng = Xorshift::new(seed);
    (0..len)
        .map(|_| golden::numerics::float::f32_to_bf16_rne(rng.next_unit()))
        .collect()
}

/// `len` IEEE binary16 values in `[-1, 1)` (raw bits), rounded to nearest even.
pub fn fp16_values(len: usize, seed: u64) -> Vec<u16> {
    let mut rng = Xorshift::new(seed);
    (0..len)
        .map(|_| golden::numerics::float::f32_to_fp16_rne(rng.next_unit()))
        .collect()
}

/// `len` uniformly random `i8` values.
pub fn i8_values(len: usize, seed: u64) -> Vec<i8> {
    let mut rng = Xorshift::new(seed);
    (0..len).map(|_| (rng.next_u64() >> 56) as i8).collect()
}

/// Floating-point operations of an `m×n×k` GEMM (one multiply and one add per MAC).
pub fn gemm_flops(m: usize, n: usize, k: usize) -> f64 {
    2.0 * m as f64 * n as f64 * k as f64
}

/// CPU time consumed so far by the calling thread: unlike wall-clock time it does not count
/// the time the thread waited for a core, the main noise on a shared, oversubscribed machine.
/// `None` where the platform has no per-thread CPU clock.
pub fn thread_cpu_time() -> Option<Duration> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is supported by
        // Linux and the BSDs, and a failure is reported through the return value.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The best round of one contender in [`paired_best`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Best {
    /// Shortest wall-clock time of a round.
    pub wall: Duration,
    /// Shortest CPU time of the calling thread in a round (meaningful for single-threaded
    /// contenders only; `Duration::MAX` where unavailable).
    pub thread_cpu: Duration,
    /// Median wall-clock time of the rounds.
    pub median_wall: Duration,
    /// Median thread CPU time of the rounds (`Duration::MAX` where unavailable).
    pub median_thread_cpu: Duration,
}

/// Runs every contender once per round, in rotation, for `rounds` rounds (after one warm-up
/// round), and returns each contender's best and median round.
pub fn paired_best(rounds: usize, contenders: &mut [&mut dyn FnMut()]) -> Vec<Best> {
    let mut walls = vec![Vec::with_capacity(rounds); contenders.len()];
    let mut cpus = vec![Vec::with_capacity(rounds); contenders.len()];
    for round in 0..=rounds {
        for (i, run) in contenders.iter_mut().enumerate() {
            let cpu_start = thread_cpu_time();
            let start = Instant::now();
            run();
            let wall = start.elapsed();
            let cpu = match (cpu_start, thread_cpu_time()) {
                (Some(a), Some(b)) => b.saturating_sub(a),
                _ => Duration::MAX,
            };
            if round > 0 {
                walls[i].push(wall);
                cpus[i].push(cpu);
            }
        }
    }
    let min_and_median = |times: &mut Vec<Duration>| {
        times.sort_unstable();
        match times.len() {
            0 => (Duration::MAX, Duration::MAX),
            n => (times[0], times[n / 2]),
        }
    };
    walls
        .iter_mut()
        .zip(&mut cpus)
        .map(|(wall, cpu)| {
            let (wall, median_wall) = min_and_median(wall);
            let (thread_cpu, median_thread_cpu) = min_and_median(cpu);
            Best {
                wall,
                thread_cpu,
                median_wall,
                median_thread_cpu,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_deterministic_and_in_range() {
        assert_eq!(bf16_values(5, 1), bf16_values(5, 1));
        assert_ne!(bf16_values(5, 1), bf16_values(5, 2));
        let mut rng = Xorshift::new(0);
        for _ in 0..1000 {
            let x = rng.next_unit();
            assert!((-1.0..1.0).contains(&x), "{x}");
        }
        let v = i8_values(4096, 3);
        assert!(v.contains(&-128) && v.contains(&127));
    }

    #[test]
    fn paired_best_runs_every_contender_each_round() {
        let (mut a, mut b) = (0, 0);
        let times = paired_best(3, &mut [&mut || a += 1, &mut || b += 1]);
        assert_eq!((a, b, times.len()), (4, 4, 2));
        assert!(times.iter().all(|t| t.wall < Duration::from_secs(1)));
    }

    #[test]
    fn thread_cpu_time_advances_with_work() {
        let Some(start) = thread_cpu_time() else {
            return; // no per-thread clock on this platform
        };
        let mut x = 0u64;
        while thread_cpu_time().unwrap() - start < Duration::from_millis(2) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(x > 0);
    }
}
