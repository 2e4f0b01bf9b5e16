//! Prometheus metrics: the counters and histograms the daemon keeps while it runs, and
//! the text exposition (format 0.0.4) the admin socket and `daemon.metrics_listen` serve.
//!
//! Most values are not counters we increment but a [`Snapshot`] the admin side reads at
//! scrape time (queue counts from SQLite, worker states, reload history), so they reach
//! the `prometheus-client` crate through a [`Collector`] that encodes each family of the
//! snapshot; the crate writes the text format (names, `_total`, escaping, histogram
//! buckets). The few live instruments ([`Received`], [`Histogram`]) are atomics. The
//! output is checked by the real Python Prometheus parser in `tests/admin.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    prometheus_text, DescriptorEncoder, EncodeGaugeValue, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The `Content-Type` of the exposition [`render`] writes.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

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
    /// Each bucket of [`DURATION_BUCKETS`] with its own observations (not cumulative).
    pub buckets: Vec<(f64, u64)>,
    /// Every observation, those above the last bucket too.
    pub count: u64,
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
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        HistogramSnapshot {
            buckets: DURATION_BUCKETS
                .iter()
                .copied()
                .zip(counts.clone())
                .collect(),
            count: counts.iter().sum(),
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
pub fn render(s: Snapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(s)));
    let mut out = String::new();
    prometheus_text::encode(&mut out, &registry).expect("writing to a String cannot fail");
    out
}

/// One scrape's snapshot, encoded family by family.
#[derive(Debug)]
struct Scrape(Snapshot);

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.0;
        family(
            &mut enc,
            "edgehook_build_info",
            "Always 1; the version label says which edgehook runs.",
            MetricType::Gauge,
        )?
        .encode_family(&[("version", s.version.as_str())])?
        .encode_gauge(&1i64)?;

        let (accepted, duplicate, rejected) = s.received;
        counters(
            &mut enc,
            "edgehook_events_received",
            "Events handed to ingest, by result.",
            &[
                (&[("result", "accepted")], accepted),
                (&[("result", "duplicate")], duplicate),
                (&[("result", "rejected")], rejected),
            ],
        )?;
        counters(
            &mut enc,
            "edgehook_events_dropped",
            "Accepted events dropped to make room because the queue was full (queue.when_full = \"drop_oldest\").",
            &[(&[], s.events_dropped)],
        )?;
        counters(
            &mut enc,
            "edgehook_reloads",
            "Configuration reloads, by result (a failed one leaves the old config running).",
            &[
                (&[("result", "ok")], s.reloads_ok),
                (&[("result", "failed")], s.reloads_failed),
            ],
        )?;
        family(
            &mut enc,
            "edgehook_queue_bytes",
            "Bytes of queued events (counted against queue.max_bytes).",
            MetricType::Gauge,
        )?
        .encode_gauge(&s.queue_bytes)?;
        family(
            &mut enc,
            "edgehook_queue_max_bytes",
            "queue.max_bytes: the queue's size limit.",
            MetricType::Gauge,
        )?
        .encode_gauge(&s.queue_max_bytes)?;

        let mut deliveries = family(
            &mut enc,
            "edgehook_deliveries",
            "Delivery attempts with a recorded outcome, by endpoint and outcome.",
            MetricType::Counter,
        )?;
        for e in &s.endpoints {
            let Some(w) = &e.worker else { continue };
            for (outcome, n) in [
                ("delivered", w.delivered),
                ("retried", w.retried),
                ("dead", w.dead),
            ] {
                deliveries
                    .encode_family(&[("endpoint", e.name.as_str()), ("outcome", outcome)])?
                    .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
            }
        }

        gauge_per_endpoint(
            &mut enc,
            s,
            "edgehook_queue_pending",
            "Deliveries waiting to be sent, by endpoint (orphaned endpoints included).",
            |e| Some(e.pending),
        )?;
        gauge_per_endpoint(
            &mut enc,
            s,
            "edgehook_queue_dead",
            "Dead letters kept in the queue, by endpoint.",
            |e| Some(e.dead),
        )?;
        gauge_per_endpoint(
            &mut enc,
            s,
            "edgehook_oldest_pending_age_seconds",
            "Age of the oldest pending delivery, by endpoint (0 when none).",
            |e| Some(e.oldest_pending_age_secs),
        )?;
        gauge_per_endpoint(
            &mut enc,
            s,
            "edgehook_endpoint_up",
            "1 while the endpoint is online, 0 when offline, gone or paused.",
            |e| e.worker.as_ref().map(|w| i64::from(w.up)),
        )?;

        let mut durations = family(
            &mut enc,
            "edgehook_delivery_duration_seconds",
            "Time from sending a delivery to its answer (or failure), by endpoint.",
            MetricType::Histogram,
        )?;
        for e in &s.endpoints {
            let Some(w) = &e.worker else { continue };
            let h = &w.duration;
            durations
                .encode_family(&[("endpoint", e.name.as_str())])?
                .encode_histogram::<NoLabelSet>(h.sum_secs, h.count, &h.buckets, None)?;
        }
        Ok(())
    }
}

/// Start the family `name` (a counter's name without `_total`: the encoder adds it).
fn family<'a>(
    enc: &'a mut DescriptorEncoder,
    name: &'a str,
    help: &str,
    kind: MetricType,
) -> Result<MetricEncoder<'a>, std::fmt::Error> {
    enc.encode_descriptor(name, help, None, kind)
}

/// A counter family with one sample per label set.
fn counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(&[(&str, &str)], u64)],
) -> std::fmt::Result {
    let mut f = family(enc, name, help, MetricType::Counter)?;
    for (labels, n) in samples {
        f.encode_family(labels)?
            .encode_counter::<NoLabelSet, _, u64>(n, None)?;
    }
    Ok(())
}

fn gauge_per_endpoint<V: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    s: &Snapshot,
    name: &str,
    help: &str,
    value: impl Fn(&EndpointSnapshot) -> Option<V>,
) -> std::fmt::Result {
    let mut f = family(enc, name, help, MetricType::Gauge)?;
    for e in &s.endpoints {
        if let Some(v) = value(e) {
            f.encode_family(&[("endpoint", e.name.as_str())])?
                .encode_gauge(&v)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_each_bucket_and_the_overflow() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.buckets.len(), DURATION_BUCKETS.len());
        assert_eq!(s.buckets[0], (0.005, 1), "≤ 5 ms");
        assert_eq!(s.buckets[3], (0.05, 1), "(25 ms, 50 ms]");
        assert_eq!(s.buckets.iter().map(|(_, n)| n).sum::<u64>(), 2, "≤ 30 s");
        assert_eq!(s.count, 3, "60 s is counted (+Inf)");
        assert!((s.sum_secs - 60.033).abs() < 1e-6, "{}", s.sum_secs);
    }

    #[test]
    fn renders_families_and_labels() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(20));
        let text = render(Snapshot {
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
            "# HELP edgehook_events_received_total Events handed to ingest, by result.",
            "# TYPE edgehook_events_received_total counter",
            "edgehook_build_info{version=\"1.2.3\"} 1",
            "# TYPE edgehook_delivery_duration_seconds histogram",
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
            "edgehook_delivery_duration_seconds_sum{endpoint=\"spark\"} 0.02",
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
        let text = render(Snapshot {
            version: "a\"b\\c\nd".into(),
            ..Default::default()
        });
        assert!(
            text.contains("edgehook_build_info{version=\"a\\\"b\\\\c\\nd\"} 1\n"),
            "{text}"
        );
    }
}
