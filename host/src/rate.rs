//! A sliding-window rate meter (events per second over the last few seconds), for
//! `nonces_per_second` in `/status` and per-device artifacts per second in `/metrics`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts events and reports their recent rate.
#[derive(Debug)]
pub struct RateMeter {
    window: Duration,
    created: Instant,
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl RateMeter {
    /// A meter averaging over `window`.
    pub fn new(window: Duration) -> Self {
        RateMeter {
            window,
            created: Instant::now(),
            samples: Mutex::new(VecDeque::new()),
        }
    }

    /// Records `count` events now.
    pub fn add(&self, count: u64) {
        self.add_at(Instant::now(), count);
    }

    fn add_at(&self, at: Instant, count: u64) {
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        samples.push_back((at, count));
        while samples
            .front()
            .is_some_and(|(t, _)| at.duration_since(*t) > self.window)
        {
            samples.pop_front();
        }
    }

    /// Events per second over the window (or since creation, if that is shorter).
    pub fn per_second(&self) -> f64 {
        self.per_second_at(Instant::now())
    }

    fn per_second_at(&self, now: Instant) -> f64 {
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let total: u64 = samples
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= self.window)
            .map(|(_, c)| c)
            .sum();
        let span = now.duration_since(self.created).min(self.window);
        if span.is_zero() {
            0.0
        } else {
            total as f64 / span.as_secs_f64()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_events_over_the_window() {
        let meter = RateMeter::new(Duration::from_secs(10));
        let t0 = meter.created;
        meter.add_at(t0 + Duration::from_secs(1), 50);
        meter.add_at(t0 + Duration::from_secs(2), 50);
        let rate = meter.per_second_at(t0 + Duration::from_secs(4));
        assert!((rate - 25.0).abs() < 1e-9, "{rate}");
        // After the window, old events no longer count.
        let rate = meter.per_second_at(t0 + Duration::from_secs(30));
        assert_eq!(rate, 0.0);
    }
}
