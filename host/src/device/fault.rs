//! Fault injection: make a device compute wrong bits, fail, or hang, on purpose.
//!
//! A test and operations feature: it proves, on the real pipeline, that the golden cross-check
//! catches wrong results (a flipped bit in a matrix-product output propagates through the
//! forward into the artifact), and that errors and hangs are reset and quarantined. Calls are
//! counted per device; faults start after `skip` calls and then hit every `every`-th call.
//! Never configure it on a device that mines for real.

use serde::Deserialize;

/// What to inject, and how often.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// Flip this bit (0 = least significant) of one output element of a matrix product; the bit
    /// index is taken modulo the element width (32 for `f32` outputs, 16 for bf16/fp16).
    #[serde(default)]
    pub flip_bit: Option<u32>,
    /// Which output element to flip (modulo the output's length); default: a different
    /// pseudo-random element on each faulty call.
    #[serde(default)]
    pub element: Option<usize>,
    /// Inject on every `every`-th matrix product (default 1: every one).
    #[serde(default = "one")]
    pub every: u64,
    /// Leave the first `skip` matrix products alone.
    #[serde(default)]
    pub skip: u64,
    /// Fail every `error_every`-th matrix product with a device error (0: never).
    #[serde(default)]
    pub error_every: u64,
    /// Hang on every `hang_every`-th matrix product until the watchdog aborts it (0: never).
    #[serde(default)]
    pub hang_every: u64,
}

fn one() -> u64 {
    1
}

impl FaultConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        if self.every == 0 {
            return Err("fault.every must be at least 1".into());
        }
        if self.flip_bit.is_none() && self.error_every == 0 && self.hang_every == 0 {
            return Err(
                "fault table injects nothing: set flip_bit, error_every or hang_every".into(),
            );
        }
        Ok(())
    }

    /// Applies a `fault_<key>=value` of a `--device` spec.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let int = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("fault_{key}={v:?} is not a non-negative integer"))
        };
        match key {
            "flip_bit" => self.flip_bit = Some(int(value)? as u32),
            "element" => self.element = Some(int(value)? as usize),
            "every" => self.every = int(value)?,
            "skip" => self.skip = int(value)?,
            "error_every" => self.error_every = int(value)?,
            "hang_every" => self.hang_every = int(value)?,
            other => {
                return Err(format!(
                    "unknown fault key fault_{other}; expected flip_bit, element, every, skip, error_every, hang_every"
                ))
            }
        }
        Ok(())
    }
}

/// What to do to one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Injection {
    /// Nothing.
    None,
    /// Flip `bit` of element `element` (both still to be reduced modulo the output's shape).
    Flip {
        /// Bit index.
        bit: u32,
        /// Element index.
        element: usize,
    },
    /// Fail the call.
    Error,
    /// Hang until interrupted.
    Hang,
}

/// Counts calls and decides what to inject.
#[derive(Clone, Debug)]
pub struct FaultInjector {
    config: FaultConfig,
    calls: u64,
}

impl FaultInjector {
    /// An injector for `config`.
    pub fn new(config: FaultConfig) -> Self {
        FaultInjector { config, calls: 0 }
    }

    /// Decides the fate of the next call.
    pub fn next_call(&mut self) -> Injection {
        self.calls += 1;
        let Some(n) = self.calls.checked_sub(self.config.skip) else {
            return Injection::None;
        };
        if n == 0 {
            return Injection::None;
        }
        let c = &self.config;
        if c.hang_every > 0 && n % c.hang_every == 0 {
            return Injection::Hang;
        }
        if c.error_every > 0 && n % c.error_every == 0 {
            return Injection::Error;
        }
        match c.flip_bit {
            Some(bit) if n % c.every == 0 => Injection::Flip {
                bit,
                element: c.element.unwrap_or_else(|| scramble(n) as usize),
            },
            _ => Injection::None,
        }
    }
}

/// A fixed pseudo-random element choice per call (SplitMix64 finaliser).
fn scramble(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_follow_skip_and_every() {
        let mut injector = FaultInjector::new(FaultConfig {
            flip_bit: Some(3),
            element: Some(7),
            every: 2,
            skip: 1,
            ..FaultConfig::default()
        });
        let fates: Vec<Injection> = (0..5).map(|_| injector.next_call()).collect();
        let flip = Injection::Flip { bit: 3, element: 7 };
        assert_eq!(
            fates,
            [
                Injection::None,
                Injection::None,
                flip,
                Injection::None,
                flip
            ]
        );
    }

    #[test]
    fn hangs_and_errors_take_precedence() {
        let mut injector = FaultInjector::new(FaultConfig {
            error_every: 2,
            hang_every: 3,
            every: 1,
            ..FaultConfig::default()
        });
        let fates: Vec<Injection> = (0..6).map(|_| injector.next_call()).collect();
        assert_eq!(
            fates,
            [
                Injection::None,
                Injection::Error,
                Injection::Hang,
                Injection::Error,
                Injection::None,
                Injection::Hang
            ]
        );
    }

    #[test]
    fn an_empty_fault_table_is_refused() {
        assert!(FaultConfig {
            every: 1,
            ..FaultConfig::default()
        }
        .validate()
        .is_err());
    }
}
