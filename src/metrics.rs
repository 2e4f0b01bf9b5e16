//! Prometheus metrics: the counters and histograms the daemon keeps while it runs, and
//! the text exposition (format 0.0.4) the admin socket and `daemon.metrics_listen` serve.
//!
//! Built by hand rather than with the `prometheus-client` crate: most values here are not
//! counters we increment but snapshots read at scrape time (queue counts from SQLite,
//! worker states, reload history), which `prometheus-client` only models through a custom
//! `Collector` and its own encoder traits — more code than the ~150 lines of text format
//! below, plus a dependency. The few live instruments ([`Received`], [`Histogram`]) are
//! atomics. The output is checked by the real Python Prometheus parser in `tests/admin.rs`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the delivery duration buckets: from a fast LAN receiver
/// (5 ms) to the default 10 s `timeout` and a little beyond.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Events handed to ingest, by result (`edgehook_events_received_total`).
#[derive(Debug, Default)]
pub struct Received {
    accepted: AtomicU64,
    duplicate: AtomicU64,
    rejected: AtomicU64,
}

impl Received {
    pub fn add(&self, accepted: u64, duplicate: u64, rejected: u64) {
        self.accepted.fetch_add(accepted, Ordering::Relaxed);
        self.duplicate.fetch_add(duplicate, Ordering::Relaxed);
        self.rejected.fetch_add(rejected, Ordering::Relaxed);
    }

    /// `(accepted, duplicate, rejected)` so far.
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.accepted.load(Ordering::Relaxed),
            self.duplicate.load(Ordering::Relaxed),
            self.rejected.load(Ordering::Relaxed),
        )
    }
}

/// A fixed-bucket histogram of durations ([`DURATION_BUCKETS`]), lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last slot is `+Inf`.
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

/// A histogram read at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Cumulative counts per bucket of [`DURATION_BUCKETS`], then `+Inf` (= the count).
    pub cumulative: Vec<u64>,
    pub sum_secs: f64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let slot = DURATION_BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Ordering::Relaxed);
                total
            })
            .collect();
        HistogramSnapshot {
            cumulative,
            sum_secs: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// Everything one scrape shows, gathered by the admin side.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub version: String,
    /// `(accepted, duplicate, rejected)`.
    pub received: (u64, u64, u64),
    /// Events dropped to make room (`queue.when_full = "drop_oldest"`).
    pub events_dropped: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub queue_bytes: u64,
    pub queue_max_bytes: u64,
    pub endpoints: Vec<EndpointSnapshot>,
}

/// One endpoint's series. Orphaned endpoints (pending rows, no config) have only queue
/// gauges: `worker` is `None`.
#[derive(Debug, Clone, Default)]
pub struct EndpointSnapshot {
    pub name: String,
    pub pending: u64,
    pub dead: u64,
    pub oldest_pending_age_secs: f64,
    pub worker: Option<WorkerSnapshot>,
}

/// What a running worker reports. Its counters start at zero when a reload replaces the
/// worker; Prometheus' `rate()` treats that as an ordinary counter reset.
#[derive(Debug, Clone, Default)]
pub struct WorkerSnapshot {
    pub up: bool,
    pub delivered: u64,
    pub retried: u64,
    pub dead: u64,
    pub duration: HistogramSnapshot,
}

/// The text exposition of `s`.
pub fn render(s: &Snapshot) -> String {
    let mut out = Text::default();
    out.family(
        "edgehook_build_info",
        "gauge",
        "Always 1; the version label says which edgehook runs.",
    );
    out.sample("edgehook_build_info", &[("version", &s.version)], 1.0);

    out.family(
        "edgehook_events_received_total",
        "counter",
        "Events handed to ingest, by result.",
    );
    let (accepted, duplicate, rejected) = s.received;
    for (result, n) in [
        ("accepted", accepted),
        ("duplicate", duplicate),
        ("rejected", rejected),
    ] {
        out.sample(
            "edgehook_events_received_total",
            &[("result", result)],
            n as f64,
        );
    }

    out.family(
        "edgehook_events_dropped_total",
        "counter",
        "Accepted events dropped to make room because the queue was full (queue.when_full = \"drop_oldest\").",
    );
    out.sample(
        "edgehook_events_dropped_total",
        &[],
        s.events_dropped as f64,
    );

    out.family(
        "edgehook_reloads_total",
        "counter",
        "Configuration reloads, by result (a failed one leaves the old config running).",
    );
    out.sample(
        "edgehook_reloads_total",
        &[("result", "ok")],
        s.reloads_ok as f64,
    );
    out.sample(
        "edgehook_reloads_total",
        &[("result", "failed")],
        s.reloads_failed as f64,
    );

    out.family(
        "edgehook_queue_bytes",
        "gauge",
        "Bytes of queued events (counted against queue.max_bytes).",
    );
    out.sample("edgehook_queue_bytes", &[], s.queue_bytes as f64);
    out.family(
        "edgehook_queue_max_bytes",
        "gauge",
        "queue.max_bytes: the queue's size limit.",
    );
    out.sample("edgehook_queue_max_bytes", &[], s.queue_max_bytes as f64);

    out.family(
        "edgehook_deliveries_total",
        "counter",
        "Delivery attempts with a recorded outcome, by endpoint and outcome.",
    );
    for e in &s.endpoints {
        if let Some(w) = &e.worker {
            for (outcome, n) in [
                ("delivered", w.delivered),
                ("retried", w.retried),
                ("dead", w.dead),
            ] {
                out.sample(
                    "edgehook_deliveries_total",
                    &[("endpoint", &e.name), ("outcome", outcome)],
                    n as f64,
                );
            }
        }
    }
    gauge_per_endpoint(
        &mut out,
        s,
        "edgehook_queue_pending",
        "Deliveries waiting to be sent, by endpoint (orphaned endpoints included).",
        |e| Some(e.pending as f64),
    );
    gauge_per_endpoint(
        &mut out,
        s,
        "edgehook_queue_dead",
        "Dead letters kept in the queue, by endpoint.",
        |e| Some(e.dead as f64),
    );
    gauge_per_endpoint(
        &mut out,
        s,
        "edgehook_oldest_pending_age_seconds",
        "Age of the oldest pending delivery, by endpoint (0 when none).",
        |e| Some(e.oldest_pending_age_secs),
    );
    gauge_per_endpoint(
        &mut out,
        s,
        "edgehook_endpoint_up",
        "1 while the endpoint is online, 0 when offline, gone or paused.",
        |e| e.worker.as_ref().map(|w| if w.up { 1.0 } else { 0.0 }),
    );

    let name = "edgehook_delivery_duration_seconds";
    out.family(
        name,
        "histogram",
        "Time from sending a delivery to its answer (or failure), by endpoint.",
    );
    for e in &s.endpoints {
        let Some(w) = &e.worker else { continue };
        let h = &w.duration;
        for (le, n) in DURATION_BUCKETS.iter().zip(&h.cumulative) {
            let le = format_value(*le);
            out.sample(
                &format!("{name}_bucket"),
                &[("endpoint", &e.name), ("le", &le)],
                *n as f64,
            );
        }
        let count = h.cumulative.last().copied().unwrap_or(0);
        out.sample(
            &format!("{name}_bucket"),
            &[("endpoint", &e.name), ("le", "+Inf")],
            count as f64,
        );
        out.sample(&format!("{name}_sum"), &[("endpoint", &e.name)], h.sum_secs);
        out.sample(
            &format!("{name}_count"),
            &[("endpoint", &e.name)],
            count as f64,
        );
    }
    out.0
}

fn gauge_per_endpoint(
    out: &mut Text,
    s: &Snapshot,
    name: &str,
    help: &str,
    value: impl Fn(&EndpointSnapshot) -> Option<f64>,
) {
    out.family(name, "gauge", help);
    for e in &s.endpoints {
        if let Some(v) = value(e) {
            out.sample(name, &[("endpoint", &e.name)], v);
        }
    }
}

/// The exposition being written.
#[derive(Default)]
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", format_value(value));
    }
}

/// Integers without a fraction, everything else as Rust prints it (both are valid Go floats).
fn format_value(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.cumulative.len(), DURATION_BUCKETS.len() + 1);
        assert_eq!(s.cumulative[0], 1); // ≤ 5 ms
        assert_eq!(s.cumulative[3], 2); // ≤ 50 ms
        assert_eq!(s.cumulative[DURATION_BUCKETS.len() - 1], 2); // ≤ 30 s
        assert_eq!(*s.cumulative.last().unwrap(), 3); // +Inf
        assert!((s.sum_secs - 60.033).abs() < 1e-6, "{}", s.sum_secs);
    }

    #[test]
    fn renders_families_and_labels() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(20));
        let text = render(&Snapshot {
            version: "1.2.3".into(),
            received: (5, 1, 2),
            events_dropped: 9,
            reloads_ok: 3,
            reloads_failed: 1,
            queue_bytes: 1024,
            queue_max_bytes: 1 << 30,
            endpoints: vec![
                EndpointSnapshot {
                    name: "spark".into(),
                    pending: 4,
                    dead: 1,
                    oldest_pending_age_secs: 12.5,
                    worker: Some(WorkerSnapshot {
                        up: true,
                        delivered: 7,
                        retried: 2,
                        dead: 1,
                        duration: h.snapshot(),
                    }),
                },
                EndpointSnapshot {
                    name: "old".into(),
                    pending: 3,
                    ..Default::default()
                },
            ],
        });
        for line in [
            "# TYPE edgehook_events_received_total counter",
            "edgehook_events_received_total{result=\"accepted\"} 5",
            "edgehook_events_received_total{result=\"rejected\"} 2",
            "edgehook_events_dropped_total 9",
            "edgehook_reloads_total{result=\"failed\"} 1",
            "edgehook_queue_max_bytes 1073741824",
            "edgehook_deliveries_total{endpoint=\"spark\",outcome=\"retried\"} 2",
            "edgehook_queue_pending{endpoint=\"old\"} 3",
            "edgehook_oldest_pending_age_seconds{endpoint=\"spark\"} 12.5",
            "edgehook_endpoint_up{endpoint=\"spark\"} 1",
            "edgehook_delivery_duration_seconds_bucket{endpoint=\"spark\",le=\"0.01\"} 0",
            "edgehook_delivery_duration_seconds_bucket{endpoint=\"spark\",le=\"0.025\"} 1",
            "edgehook_delivery_duration_seconds_bucket{endpoint=\"spark\",le=\"+Inf\"} 1",
            "edgehook_delivery_duration_seconds_count{endpoint=\"spark\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(!text.contains("edgehook_endpoint_up{endpoint=\"old\"}"));
        assert!(
            !text.contains("outcome=\"delivered\"} 0\nedgehook_deliveries_total{endpoint=\"old\"")
        );
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
