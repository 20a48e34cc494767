//! `GET /metrics`: the Prometheus text exposition format (version 0.0.4), written by hand (a
//! few dozen lines do not need a metrics framework).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use crate::node::Node;

/// HTTP requests by (route, status code).
#[derive(Debug, Default)]
pub struct HttpCounters(Mutex<BTreeMap<(String, u16), u64>>);

impl HttpCounters {
    /// Counts one request.
    pub fn record(&self, route: &str, status: u16) {
        *self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((route.to_string(), status))
            .or_default() += 1;
    }

    fn snapshot(&self) -> Vec<((String, u16), u64)> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}

/// Builds one exposition.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

/// Escapes a label value (backslash, quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Exposition {
    /// Starts a metric family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// One sample.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            let inner: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.text, "{{{}}}", inner.join(","));
        }
        if value.is_finite() && value == value.trunc() && value.abs() < 1e15 {
            let _ = writeln!(self.text, " {}", value as i64);
        } else {
            let _ = writeln!(self.text, " {value}");
        }
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// The text.
    pub fn finish(self) -> String {
        self.text
    }
}

/// Renders every metric of the node.
pub fn render(node: &Node) -> String {
    let mut m = Exposition::default();
    m.family(
        "host_info",
        "gauge",
        "The served model and the daemon version.",
    );
    m.sample(
        "host_info",
        &[
            ("model", node.served.name()),
            ("version", env!("CARGO_PKG_VERSION")),
        ],
        1.0,
    );
    let epoch = node.epoch();
    let generating = node.status().status == "GENERATING";
    m.single(
        "host_generating",
        "gauge",
        "1 while generating (status GENERATING).",
        f64::from(u8::from(generating)),
    );
    let processed = epoch
        .as_ref()
        .map_or(0.0, |e| e.processed.load(Ordering::Relaxed) as f64);
    let rate = match (&epoch, generating) {
        (Some(e), true) => e.nonces_per_second(),
        _ => 0.0,
    };
    m.single(
        "host_epoch_artifacts",
        "gauge",
        "Artifacts committed in the current (or, once stopped, the last) generation stage.",
        processed,
    );
    m.single(
        "host_nonces_per_second",
        "gauge",
        "Generation rate over the last 10 s.",
        rate,
    );
    m.single(
        "host_queue_depth_nonces",
        "gauge",
        "Nonces of /generate jobs accepted and not yet handed to a device.",
        node.queue.depth() as f64,
    );
    m.single(
        "host_queue_cap_nonces",
        "gauge",
        "The queue cap (more answers 429).",
        node.limits.queue_cap as f64,
    );
    m.single(
        "host_jobs_unfinished",
        "gauge",
        "/generate jobs queued or running.",
        node.jobs.unfinished().len() as f64,
    );
    let backlog = node.outbox.backlog();
    m.single(
        "host_callback_backlog_artifacts",
        "gauge",
        "Artifacts stored in the outbox and not yet delivered.",
        backlog.artifacts as f64,
    );
    m.single(
        "host_callback_backlog_records",
        "gauge",
        "Callbacks stored in the outbox and not yet delivered.",
        backlog.records as f64,
    );
    m.single(
        "host_outbox_full",
        "gauge",
        "1 while the outbox is full and generation is paused.",
        f64::from(u8::from(node.outbox.is_full())),
    );
    let s = &node.sender_stats;
    m.family(
        "host_callback_posts_total",
        "counter",
        "Callback requests by result.",
    );
    m.sample(
        "host_callback_posts_total",
        &[("result", "ok")],
        s.posts_ok.load(Ordering::Relaxed) as f64,
    );
    m.sample(
        "host_callback_posts_total",
        &[("result", "failed")],
        s.posts_failed.load(Ordering::Relaxed) as f64,
    );
    m.single(
        "host_callback_artifacts_delivered_total",
        "counter",
        "Artifacts delivered to callback receivers.",
        s.artifacts_delivered.load(Ordering::Relaxed) as f64,
    );
    m.single(
        "host_callback_validations_delivered_total",
        "counter",
        "Validation results delivered to callback receivers.",
        s.validations_delivered.load(Ordering::Relaxed) as f64,
    );
    m.single(
        "host_outbox_errors_total",
        "counter",
        "Outbox appends that failed (disk errors).",
        node.commit.outbox_errors.load(Ordering::Relaxed) as f64,
    );
    render_devices(node, &mut m);
    m.family(
        "host_http_requests_total",
        "counter",
        "API requests by route and status code.",
    );
    for ((route, code), count) in node.http.snapshot() {
        m.sample(
            "host_http_requests_total",
            &[("route", &route), ("code", &code.to_string())],
            count as f64,
        );
    }
    m.finish()
}

fn render_devices(node: &Node, m: &mut Exposition) {
    let slots = node.pool.slots();
    type Get = fn(&crate::pool::DeviceSlot) -> Option<f64>;
    let families: [(&str, &str, &str, Get); 11] = [
        (
            "host_device_up",
            "gauge",
            "1 while the device takes work (healthy), 0 when hung or quarantined.",
            |s| Some(f64::from(u8::from(s.is_healthy()))),
        ),
        (
            "host_device_quarantined",
            "gauge",
            "1 once the device was taken out of service.",
            |s| Some(f64::from(u8::from(s.is_quarantined()))),
        ),
        (
            "host_device_artifacts_total",
            "counter",
            "Artifacts committed from this device.",
            |s| Some(s.stats.artifacts.load(Ordering::Relaxed) as f64),
        ),
        (
            "host_device_artifacts_per_second",
            "gauge",
            "Artifacts committed per second over the last 10 s.",
            |s| Some(s.rate.per_second()),
        ),
        (
            "host_device_throughput_nonces_per_second",
            "gauge",
            "Measured compute speed (average over recent units).",
            |s| s.throughput(),
        ),
        (
            "host_device_crosschecked_total",
            "counter",
            "Artifacts recomputed by the golden cross-check and found equal.",
            |s| Some(s.stats.crosschecked.load(Ordering::Relaxed) as f64),
        ),
        (
            "host_device_hardware_errors_total",
            "counter",
            "Results that differ from the golden model (never reported).",
            |s| Some(s.stats.hardware_errors.load(Ordering::Relaxed) as f64),
        ),
        (
            "host_device_errors_total",
            "counter",
            "Device calls that failed.",
            |s| Some(s.stats.errors.load(Ordering::Relaxed) as f64),
        ),
        (
            "host_device_hangs_total",
            "counter",
            "Units aborted by the hang watchdog.",
            |s| Some(s.stats.hangs.load(Ordering::Relaxed) as f64),
        ),
        (
            "host_device_temperature_celsius",
            "gauge",
            "Device temperature, where the device reports it.",
            |s| s.telemetry().temperature_c,
        ),
        (
            "host_device_power_watts",
            "gauge",
            "Device power, where the device reports it.",
            |s| s.telemetry().power_w,
        ),
    ];
    for (name, kind, help, get) in families {
        let values: Vec<(&str, &str, f64)> = slots
            .iter()
            .filter_map(|s| get(s).map(|v| (s.name.as_str(), s.backend, v)))
            .collect();
        if values.is_empty() {
            continue;
        }
        m.family(name, kind, help);
        for (device, backend, value) in values {
            m.sample(name, &[("device", device), ("backend", backend)], value);
        }
    }
    m.family(
        "host_device_resets_total",
        "counter",
        "Device resets after faults.",
    );
    for s in slots {
        m.sample(
            "host_device_resets_total",
            &[("device", &s.name), ("backend", s.backend)],
            s.stats.resets.load(Ordering::Relaxed) as f64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format() {
        let mut m = Exposition::default();
        m.family("x_total", "counter", "An x.");
        m.sample("x_total", &[("device", "a\"b")], 3.0);
        m.sample("x_total", &[], 0.5);
        assert_eq!(
            m.finish(),
            "# HELP x_total An x.\n# TYPE x_total counter\nx_total{device=\"a\\\"b\"} 3\nx_total 0.5\n"
        );
    }
}
