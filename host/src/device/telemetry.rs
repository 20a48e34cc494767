//! Device temperature and power, where the device reports them.
//!
//! For the `cpu` backend these are the CPU package's readings from Linux sysfs: the
//! `x86_pkg_temp` thermal zone (or a `coretemp`/`k10temp`/`zenpower` hwmon sensor) and the RAPL
//! package energy counter (`/sys/class/powercap/intel-rapl:0/energy_uj`), whose increase over
//! time is the power. Several `cpu` devices share one package, so they report the same values.
//! Virtual machines and containers often expose neither; the metrics are then absent.

use std::path::{Path, PathBuf};
use std::time::Instant;

/// One reading.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Telemetry {
    /// Degrees Celsius.
    pub temperature_c: Option<f64>,
    /// Watts.
    pub power_w: Option<f64>,
}

/// The CPU package's sensors, found once.
#[derive(Debug)]
pub struct CpuTelemetry {
    temperature: Option<PathBuf>,
    energy: Option<(PathBuf, Option<u64>)>,
    last_energy: Option<(Instant, u64)>,
    last_power: Option<f64>,
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn find_temperature() -> Option<PathBuf> {
    let zones = std::fs::read_dir("/sys/class/thermal").ok()?;
    for zone in zones.flatten() {
        let kind = std::fs::read_to_string(zone.path().join("type")).unwrap_or_default();
        let temp = zone.path().join("temp");
        if kind.trim() == "x86_pkg_temp" && read_u64(&temp).is_some() {
            return Some(temp);
        }
    }
    let monitors = std::fs::read_dir("/sys/class/hwmon").ok()?;
    for monitor in monitors.flatten() {
        let name = std::fs::read_to_string(monitor.path().join("name")).unwrap_or_default();
        let temp = monitor.path().join("temp1_input");
        if matches!(name.trim(), "coretemp" | "k10temp" | "zenpower") && read_u64(&temp).is_some() {
            return Some(temp);
        }
    }
    None
}

fn find_energy() -> Option<(PathBuf, Option<u64>)> {
    let base = Path::new("/sys/class/powercap/intel-rapl:0");
    let energy = base.join("energy_uj");
    read_u64(&energy)?;
    Some((energy, read_u64(&base.join("max_energy_range_uj"))))
}

impl CpuTelemetry {
    /// Looks for the sensors.
    pub fn discover() -> Self {
        CpuTelemetry {
            temperature: find_temperature(),
            energy: find_energy(),
            last_energy: None,
            last_power: None,
        }
    }

    /// Reads the temperature, and the power since the previous read.
    pub fn read(&mut self) -> Telemetry {
        let temperature_c = self
            .temperature
            .as_deref()
            .and_then(read_u64)
            .map(|milli| milli as f64 / 1000.0);
        if let Some((path, range)) = &self.energy {
            let now = Instant::now();
            let due = !matches!(
                self.last_energy,
                Some((then, _)) if now.duration_since(then).as_secs_f64() < 1.0
            );
            if due {
                if let Some(now_uj) = read_u64(path) {
                    if let Some((then, then_uj)) = self.last_energy {
                        let delta = if now_uj >= then_uj {
                            now_uj - then_uj
                        } else {
                            // The counter wrapped.
                            range.unwrap_or(u64::MAX).saturating_sub(then_uj) + now_uj
                        };
                        let seconds = now.duration_since(then).as_secs_f64();
                        self.last_power = Some(delta as f64 / 1e6 / seconds);
                    }
                    self.last_energy = Some((now, now_uj));
                }
            }
        }
        let power_w = self.last_power;
        Telemetry {
            temperature_c,
            power_w,
        }
    }
}
