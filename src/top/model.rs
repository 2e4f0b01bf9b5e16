//! What `edgehook top` shows, computed from successive `GET /v1/status` answers: pure, no
//! terminal and no socket, so the arithmetic is unit-tested with made-up samples.
//!
//! The daemon serves counters since its start (per endpoint: delivered, retried, dead and
//! the delivery-duration histogram; for ingest: accepted events). Rates are the difference
//! between two answers over the time between them; the last minute of rates feeds the
//! sparklines, and the histogram's difference over that minute gives the latency
//! percentiles. A counter that went down (a reload replaced the endpoint's worker, which
//! starts from zero) restarts the endpoint's history.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How much history the sparklines and percentiles cover.
pub const WINDOW: Duration = Duration::from_secs(60);

/// One endpoint as the daemon reports it now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointNow {
    pub name: String,
    pub state: String,
    /// Seconds until the next probe of an offline endpoint.
    pub next_probe_in_secs: Option<u64>,
    pub pending: u64,
    pub dead: u64,
    pub in_flight: Option<u64>,
    pub last_error: Option<String>,
    pub clock_skew_secs: Option<i64>,
    /// Counters since the worker started; `None` without a worker (orphaned, stopped).
    pub counters: Option<Counters>,
}

/// A worker's counters since it started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    pub delivered: u64,
    /// Failed attempts: retried plus given up on (dead).
    pub failed: u64,
    /// Upper bounds (seconds) of the duration buckets.
    pub bucket_bounds: Vec<f64>,
    /// Cumulative count per bucket, then the `+Inf` bucket (= the total).
    pub cumulative: Vec<u64>,
}

/// One `GET /v1/status` answer, the parts `top` shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    pub version: String,
    pub pid: u64,
    pub uptime_secs: u64,
    pub queue_bytes: u64,
    pub queue_max_bytes: u64,
    pub pending: u64,
    pub dead: u64,
    /// Events accepted since the daemon started.
    pub accepted: u64,
    pub endpoints: Vec<EndpointNow>,
}

impl Status {
    /// Read the fields `top` uses; missing ones are zero or `None`.
    pub fn from_json(v: &Value) -> Status {
        let u = |v: &Value| v.as_u64().unwrap_or(0);
        let endpoints = v["endpoints"]
            .as_array()
            .map(|a| a.iter().map(endpoint_from_json).collect())
            .unwrap_or_default();
        Status {
            version: v["version"].as_str().unwrap_or("?").to_string(),
            pid: u(&v["pid"]),
            uptime_secs: u(&v["uptime_secs"]),
            queue_bytes: u(&v["queue"]["bytes"]),
            queue_max_bytes: u(&v["queue"]["max_bytes"]),
            pending: u(&v["queue"]["pending"]),
            dead: u(&v["queue"]["dead"]),
            accepted: u(&v["received"]["accepted"]),
            endpoints,
        }
    }
}

fn endpoint_from_json(e: &Value) -> EndpointNow {
    let s = &e["since_start"];
    let counters = s.is_object().then(|| Counters {
        delivered: s["delivered"].as_u64().unwrap_or(0),
        failed: s["retried"].as_u64().unwrap_or(0) + s["dead"].as_u64().unwrap_or(0),
        bucket_bounds: e["durations"]["le"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default(),
        cumulative: e["durations"]["cumulative"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default(),
    });
    EndpointNow {
        name: e["name"].as_str().unwrap_or("?").to_string(),
        state: e["state"].as_str().unwrap_or("?").to_string(),
        next_probe_in_secs: e["next_probe_in_secs"].as_u64(),
        pending: e["pending"].as_u64().unwrap_or(0),
        dead: e["dead"].as_u64().unwrap_or(0),
        in_flight: e["in_flight"].as_u64(),
        last_error: e["last_error"].as_str().map(str::to_string),
        clock_skew_secs: e["clock_skew_secs"].as_i64(),
        counters,
    }
}

/// Latency percentiles over the window, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

/// An endpoint's history: rates per sample and histogram snapshots, newest last.
#[derive(Debug, Default)]
struct History {
    samples: VecDeque<(Instant, Counters)>,
    delivered_per_sec: VecDeque<f64>,
    failed_per_sec: VecDeque<f64>,
}

/// What `top` knows: the latest status and the last minute before it.
#[derive(Debug, Default)]
pub struct Model {
    pub status: Status,
    /// (when, accepted) of the daemon's ingest counter.
    accepted: VecDeque<(Instant, u64)>,
    ingest_per_sec: f64,
    history: HashMap<String, History>,
}

impl Model {
    /// Take a new status read at `at`.
    pub fn update(&mut self, status: Status, at: Instant) {
        push_rate_sample(&mut self.accepted, at, status.accepted);
        self.ingest_per_sec = rate(&self.accepted, 2).unwrap_or(0.0);
        let mut seen = Vec::new();
        for e in &status.endpoints {
            seen.push(e.name.clone());
            let Some(c) = &e.counters else {
                self.history.remove(&e.name);
                continue;
            };
            let h = self.history.entry(e.name.clone()).or_default();
            let reset = h.samples.back().is_some_and(|(_, last)| {
                c.delivered < last.delivered
                    || c.failed < last.failed
                    || c.cumulative.last() < last.cumulative.last()
            });
            if reset {
                *h = History::default();
            }
            if let Some((then, last)) = h.samples.back() {
                let secs = at.duration_since(*then).as_secs_f64();
                if secs > 0.0 {
                    push_capped(
                        &mut h.delivered_per_sec,
                        (c.delivered - last.delivered) as f64 / secs,
                    );
                    push_capped(
                        &mut h.failed_per_sec,
                        (c.failed - last.failed) as f64 / secs,
                    );
                }
            }
            h.samples.push_back((at, c.clone()));
            while h
                .samples
                .front()
                .is_some_and(|(t, _)| at.duration_since(*t) > WINDOW)
            {
                h.samples.pop_front();
            }
        }
        self.history.retain(|name, _| seen.contains(name));
        self.status = status;
    }

    /// Events accepted per second, over the last two reads.
    pub fn ingest_per_sec(&self) -> f64 {
        self.ingest_per_sec
    }

    /// Delivered per second, one value per read over the last minute (oldest first).
    pub fn delivered(&self, endpoint: &str) -> Vec<f64> {
        self.history
            .get(endpoint)
            .map(|h| h.delivered_per_sec.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Failed attempts per second, as [`Model::delivered`].
    pub fn failed(&self, endpoint: &str) -> Vec<f64> {
        self.history
            .get(endpoint)
            .map(|h| h.failed_per_sec.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Latency percentiles of the deliveries completed in the window, if any.
    pub fn latency(&self, endpoint: &str) -> Option<Percentiles> {
        let h = self.history.get(endpoint)?;
        let (_, first) = h.samples.front()?;
        let (_, last) = h.samples.back()?;
        let delta: Vec<u64> = last
            .cumulative
            .iter()
            .zip(first.cumulative.iter().chain(std::iter::repeat(&0)))
            .map(|(now, then)| now.saturating_sub(*then))
            .collect();
        // One sample only: everything since the worker started.
        let delta = if h.samples.len() == 1 {
            last.cumulative.clone()
        } else {
            delta
        };
        Some(Percentiles {
            p50: quantile(0.5, &last.bucket_bounds, &delta)?,
            p90: quantile(0.9, &last.bucket_bounds, &delta)?,
            p99: quantile(0.99, &last.bucket_bounds, &delta)?,
        })
    }
}

/// Rates are kept for one minute of one-second reads.
const RATE_SAMPLES: usize = WINDOW.as_secs() as usize;

fn push_capped(v: &mut VecDeque<f64>, x: f64) {
    v.push_back(x);
    while v.len() > RATE_SAMPLES {
        v.pop_front();
    }
}

fn push_rate_sample(v: &mut VecDeque<(Instant, u64)>, at: Instant, n: u64) {
    if v.back().is_some_and(|(_, last)| n < *last) {
        v.clear();
    }
    v.push_back((at, n));
    while v.len() > 2 {
        v.pop_front();
    }
}

/// The rate between the first and last of at least `min` samples.
fn rate(v: &VecDeque<(Instant, u64)>, min: usize) -> Option<f64> {
    if v.len() < min {
        return None;
    }
    let (t0, n0) = v.front()?;
    let (t1, n1) = v.back()?;
    let secs = t1.duration_since(*t0).as_secs_f64();
    (secs > 0.0).then(|| (n1 - n0) as f64 / secs)
}

/// The `q` quantile of a histogram with `bounds` (upper bounds, seconds) and `cumulative`
/// counts (one per bound, then `+Inf`), interpolating linearly inside the bucket as
/// Prometheus' `histogram_quantile` does. A quantile in the `+Inf` bucket is the highest
/// finite bound. `None` without observations.
pub fn quantile(q: f64, bounds: &[f64], cumulative: &[u64]) -> Option<f64> {
    let total = *cumulative.last()?;
    if total == 0 || bounds.is_empty() {
        return None;
    }
    let rank = q * total as f64;
    let i = cumulative.iter().position(|c| *c as f64 >= rank)?;
    if i >= bounds.len() {
        return bounds.last().copied();
    }
    let (lower, below) = if i == 0 {
        (0.0, 0)
    } else {
        (bounds[i - 1], cumulative[i - 1])
    };
    let in_bucket = cumulative[i] - below;
    if in_bucket == 0 {
        return Some(bounds[i]);
    }
    Some(lower + (bounds[i] - lower) * (rank - below as f64) / in_bucket as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BOUNDS: [f64; 3] = [0.01, 0.1, 1.0];

    fn status(delivered: u64, failed: u64, cumulative: [u64; 4], accepted: u64) -> Status {
        Status::from_json(&json!({
            "version": "0.1.0", "pid": 7, "uptime_secs": 60,
            "queue": {"bytes": 10, "max_bytes": 100, "pending": 5, "dead": 0},
            "received": {"accepted": accepted},
            "endpoints": [{
                "name": "spark", "state": "online", "pending": 5, "dead": 0, "in_flight": 2,
                "since_start": {"delivered": delivered, "retried": failed, "dead": 0},
                "durations": {"le": BOUNDS, "cumulative": cumulative},
            }, {"name": "old", "state": "orphaned", "pending": 1, "dead": 0, "in_flight": null}],
        }))
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        // 10 in (0, 10ms], 10 in (10ms, 100ms], none above.
        let cumulative = [10, 20, 20, 20];
        assert_eq!(quantile(0.5, &BOUNDS, &cumulative), Some(0.01));
        let p75 = quantile(0.75, &BOUNDS, &cumulative).unwrap();
        assert!((p75 - 0.055).abs() < 1e-9, "{p75}");
        // Beyond the last finite bound: that bound.
        assert_eq!(quantile(0.99, &BOUNDS, &[0, 0, 0, 5]), Some(1.0));
        assert_eq!(quantile(0.5, &BOUNDS, &[0, 0, 0, 0]), None);
    }

    #[test]
    fn rates_come_from_counter_differences_over_time() {
        let t0 = Instant::now();
        let mut m = Model::default();
        m.update(status(100, 4, [100, 100, 100, 100], 1000), t0);
        assert!(m.delivered("spark").is_empty(), "one read has no rate yet");
        m.update(
            status(150, 5, [150, 150, 150, 150], 1200),
            t0 + Duration::from_secs(2),
        );
        assert_eq!(m.delivered("spark"), [25.0]);
        assert_eq!(m.failed("spark"), [0.5]);
        assert_eq!(m.ingest_per_sec(), 100.0);
        assert!(m.delivered("old").is_empty(), "no worker, no rates");
        // The window's 50 deliveries were all under 10 ms.
        assert!(m.latency("spark").unwrap().p99 <= 0.01);
    }

    #[test]
    fn a_counter_that_went_down_restarts_the_history() {
        let t0 = Instant::now();
        let mut m = Model::default();
        m.update(status(100, 0, [0, 100, 100, 100], 0), t0);
        m.update(
            status(110, 0, [0, 110, 110, 110], 0),
            t0 + Duration::from_secs(1),
        );
        m.update(status(3, 0, [3, 3, 3, 3], 0), t0 + Duration::from_secs(2));
        assert!(m.delivered("spark").is_empty());
        // Only the new worker's deliveries (all under 10 ms) count.
        assert!(m.latency("spark").unwrap().p50 <= 0.01);
    }

    #[test]
    fn history_keeps_one_minute() {
        let t0 = Instant::now();
        let mut m = Model::default();
        for s in 0..=90u64 {
            m.update(
                status(s * 10, 0, [s, s, s, s], 0),
                t0 + Duration::from_secs(s),
            );
        }
        assert_eq!(m.delivered("spark").len(), RATE_SAMPLES);
        assert!(m.delivered("spark").iter().all(|r| *r == 10.0));
    }
}
