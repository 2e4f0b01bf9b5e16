//! `cargo bench --bench adaptive`: does `concurrency = "adaptive"` (SPEC §12) drain a
//! backlog at the receiver's pace without a hand-tuned number? Issue 14's proof, against
//! two receivers:
//!
//! - **fast**: nginx from Debian (`support/nginx.rs`, `return 200`), whose latency hardly
//!   moves with load: adaptive should reach the events/s of the best fixed setting;
//! - **knee**: `support/knee.rs`, 16 workers of 2 ms each (about 3 ms with tokio's
//!   millisecond timer, so at most ~5,000 requests/s); past 16 in flight only its latency
//!   grows: adaptive should settle near 16 instead of piling on, at the same events/s;
//! - **fleet**: four relays with a backlog each, released at once against the knee
//!   receiver (a site's link coming back for a fleet): the receiver's requests in flight,
//!   adaptive against fixed settings.
//!
//! Each run: a fresh daemon whose one endpoint is paused, a backlog posted as NDJSON
//! batches (committed before the clock starts), then `resume` and the clock runs until the
//! receiver has answered every event. `EDGEHOOK_BENCH_ONLY=fast|knee|fleet` runs one
//! scenario. Rows are medians of `EDGEHOOK_BENCH_RUNS` runs (default 3);
//! `EDGEHOOK_BENCH_EVENTS` sets the backlog (default 40,000; the knee scenario uses a
//! quarter, the fleet a sixteenth per relay). Signing (Standard Webhooks) and TLS on, as in issue 14's
//! rig. Columns: drain events/s; the daemon's CPU per 1k events; the limit (status'
//! `concurrency_limit`, median and range over the second half of the drain); at the knee
//! receiver its mean latency, mean requests in flight (Little's law) and the peak.

#[path = "support/knee.rs"]
mod knee;
#[path = "support/nginx.rs"]
mod nginx;
#[allow(dead_code)]
#[path = "support/proc_stats.rs"]
mod proc_stats;
#[allow(dead_code, unused_imports)]
#[path = "../tests/util/mod.rs"]
mod util;
#[path = "support/wait.rs"]
mod wait;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use knee::Knee;
use nginx::Nginx;
use proc_stats::Snapshot;
use wait::env_usize;

/// The knee receiver: workers and service time of each request.
const KNEE_WORKERS: usize = 16;
const KNEE_SERVICE: Duration = Duration::from_millis(2);
/// The signing secret of every endpoint here.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Events per NDJSON batch while building a backlog.
const BATCH: usize = 2_000;
/// How often the limit is read from `status`.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// A fixed `concurrency = N`, or `None` for adaptive (the default).
type Setting = Option<usize>;

fn label(setting: Setting) -> String {
    setting.map_or("adaptive".to_owned(), |n| format!("fixed {n}"))
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let runs = env_usize("EDGEHOOK_BENCH_RUNS", 3);
    let n = env_usize("EDGEHOOK_BENCH_EVENTS", 40_000);
    println!("adaptive concurrency: medians of {runs} runs; TLS 1.3, Standard Webhooks signing");

    let only = std::env::var("EDGEHOOK_BENCH_ONLY").unwrap_or_default();
    let wanted = |scenario: &str| only.is_empty() || only == scenario;

    if wanted("fast") {
        fast(runs, n);
    }
    if wanted("knee") {
        knee(&rt, runs, n / 4);
    }
    if wanted("fleet") {
        fleet(&rt, runs, n / 16);
    }
}

/// The fast receiver (module doc).
fn fast(runs: usize, n: usize) {
    println!("\nfast receiver: nginx, backlog of {n} events");
    header();
    for setting in [Some(8), Some(16), Some(32), Some(64), None] {
        let rows: Vec<Row> = (0..runs)
            .map(|_| {
                let nginx = Nginx::start();
                let mut fleet = Fleet::new(1, n, setting, &nginx.url("/hook"), &nginx.ca_file());
                let before = nginx.counts().requests;
                fleet.drain(|| nginx.wait_for(before + n as u64, Duration::from_secs(900)));
                fleet.row(None)
            })
            .collect();
        print_row(&label(setting), &median(&rows));
    }
}

/// The knee receiver (module doc), `n` events.
fn knee(rt: &tokio::runtime::Runtime, runs: usize, n: usize) {
    println!(
        "\nknee receiver: {KNEE_WORKERS} workers × {KNEE_SERVICE:?} (tokio's millisecond timer makes \
         that about 3 ms), backlog of {n} events"
    );
    header();
    for setting in [Some(4), Some(8), Some(16), Some(32), Some(64), None] {
        let rows: Vec<Row> = (0..runs).map(|_| knee_run(rt, 1, n, setting)).collect();
        print_row(&label(setting), &median(&rows));
    }
}

/// The fleet (module doc): four relays of `per_relay` events each.
fn fleet(rt: &tokio::runtime::Runtime, runs: usize, per_relay: usize) {
    println!("\nfleet: 4 relays × {per_relay} events released at once against the knee receiver");
    header();
    for setting in [Some(8), Some(32), None] {
        let rows: Vec<Row> = (0..runs)
            .map(|_| knee_run(rt, 4, per_relay, setting))
            .collect();
        print_row(&format!("4 × {}", label(setting)), &median(&rows));
    }
}

/// One drain of `relays` × `per_relay` events into a fresh knee receiver.
fn knee_run(
    rt: &tokio::runtime::Runtime,
    relays: usize,
    per_relay: usize,
    setting: Setting,
) -> Row {
    let pki = edgehook::demo::pki::generate().expect("pki");
    let knee = rt.block_on(Knee::start(&pki, KNEE_WORKERS, KNEE_SERVICE));
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = knee.write_ca(dir.path());
    let mut fleet = Fleet::new(relays, per_relay, setting, &knee.url("/hook"), &ca);
    let before = knee.counts();
    knee.reset_peak();
    fleet.drain(|| knee.wait_for((relays * per_relay) as u64, Duration::from_secs(900)));
    let after = knee.counts();
    let served = (after.requests - before.requests).max(1);
    let latency_us = after.latency_us - before.latency_us;
    fleet.row(Some(AtReceiver {
        mean_latency_ms: latency_us as f64 / served as f64 / 1e3,
        mean_in_flight: latency_us as f64 / 1e6 / fleet.secs,
        peak_in_flight: after.peak as f64,
        connections: (after.connections - before.connections) as f64,
    }))
}

/// Relays (daemons) with one paused endpoint each and a backlog for it.
struct Fleet {
    daemons: Vec<util::TestDaemon>,
    per_relay: usize,
    before: Vec<Snapshot>,
    secs: f64,
    limits: Vec<f64>,
}

impl Fleet {
    fn new(
        relays: usize,
        per_relay: usize,
        setting: Setting,
        url: &str,
        ca: &std::path::Path,
    ) -> Fleet {
        let concurrency = setting.map_or(String::new(), |c| format!("concurrency = {c}\n"));
        let endpoint = format!(
            "[[endpoint]]\nname = \"e\"\nurl = \"{url}\"\n{concurrency}\
             [endpoint.signing]\nscheme = \"standard-webhooks\"\nsecret = \"{SECRET}\"\n\
             [endpoint.tls]\nca_file = {ca:?}\n"
        );
        let daemons: Vec<util::TestDaemon> = (0..relays)
            .map(|r| {
                let d = util::Builder::new().toml(&endpoint).start();
                admin(&d, &["pause", "e"]);
                fill(&d, r, per_relay);
                d
            })
            .collect();
        Fleet {
            before: daemons.iter().map(|d| Snapshot::read(d.pid())).collect(),
            daemons,
            per_relay,
            secs: 0.0,
            limits: Vec::new(),
        }
    }

    /// Resume every relay and time until `done` returns (it blocks until the receiver has
    /// answered the whole backlog), sampling the first relay's limit meanwhile.
    fn drain<T>(&mut self, done: impl FnOnce() -> T) {
        let stop = Arc::new(AtomicBool::new(false));
        let admin_socket = self.daemons[0].dir().join("admin.sock");
        let sampler = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut limits = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(SAMPLE_EVERY);
                    if let Some(limit) = limit(&admin_socket) {
                        limits.push(limit);
                    }
                }
                limits
            })
        };
        let start = Instant::now();
        for d in &self.daemons {
            admin(d, &["resume", "e"]);
        }
        done();
        self.secs = start.elapsed().as_secs_f64();
        stop.store(true, Ordering::SeqCst);
        let limits = sampler.join().expect("sampler");
        self.limits = limits[limits.len() / 2..].to_vec();
    }

    fn row(&self, receiver: Option<AtReceiver>) -> Row {
        let events = self.per_relay * self.daemons.len();
        let cpu: f64 = self
            .daemons
            .iter()
            .zip(&self.before)
            .map(|(d, before)| Snapshot::read(d.pid()).cpu_ms_per_1k(before, self.per_relay))
            .sum::<f64>()
            / self.daemons.len() as f64;
        let mut limits = self.limits.clone();
        limits.sort_by(f64::total_cmp);
        Row {
            events_per_s: events as f64 / self.secs,
            cpu_ms_per_1k: cpu,
            limit: (
                limits.first().copied().unwrap_or(f64::NAN),
                pick(&limits, 0.5),
                limits.last().copied().unwrap_or(f64::NAN),
            ),
            receiver,
        }
    }
}

/// POST `n` events as NDJSON batches; each answer means they are committed.
fn fill(d: &util::TestDaemon, relay: usize, n: usize) {
    for start in (0..n).step_by(BATCH) {
        let batch: String = (start..(start + BATCH).min(n))
            .map(|i| {
                format!(
                    "{{\"type\":\"Bench.adaptive\",\"data\":{{\"relay\":{relay},\"i\":{i:>6},\"pad\":\"{}\"}}}}\n",
                    "x".repeat(150)
                )
            })
            .collect();
        let reply = d.post("/v1/events", "application/x-ndjson", batch.as_bytes());
        assert_eq!(reply.status, 202, "backlog batch refused: {}", reply.json);
    }
}

/// Run an admin command against `d`, expecting success.
fn admin(d: &util::TestDaemon, args: &[&str]) {
    let socket = d.dir().join("admin.sock");
    let mut all = args.to_vec();
    all.extend(["--admin-socket", socket.to_str().expect("utf-8 path")]);
    let (code, _, err) = util::cli::run_cli(&all, None);
    assert_eq!(code, 0, "edgehook {args:?}: {err}");
}

/// The endpoint's `concurrency_limit` from `status --json`.
fn limit(admin_socket: &std::path::Path) -> Option<f64> {
    let socket = admin_socket.to_str()?;
    let (code, out, _) = util::cli::run_cli(&["status", "--json", "--admin-socket", socket], None);
    if code != 0 {
        return None;
    }
    let status: serde_json::Value = serde_json::from_str(&out).ok()?;
    status["endpoints"][0]["concurrency_limit"].as_f64()
}

/// What the knee receiver saw during a drain.
#[derive(Clone, Copy)]
struct AtReceiver {
    mean_latency_ms: f64,
    mean_in_flight: f64,
    peak_in_flight: f64,
    connections: f64,
}

struct Row {
    events_per_s: f64,
    cpu_ms_per_1k: f64,
    /// (min, median, max) of the limit over the second half of the drain.
    limit: (f64, f64, f64),
    receiver: Option<AtReceiver>,
}

/// The `q` quantile of sorted `values` (NaN when empty).
fn pick(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values[((values.len() as f64 * q) as usize).min(values.len() - 1)]
}

/// Each column's median across runs.
fn median(rows: &[Row]) -> Row {
    let col = |f: &dyn Fn(&Row) -> f64| {
        let mut v: Vec<f64> = rows.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        pick(&v, 0.5)
    };
    let at =
        |f: &dyn Fn(&AtReceiver) -> f64| col(&|r: &Row| r.receiver.as_ref().map_or(f64::NAN, f));
    Row {
        events_per_s: col(&|r| r.events_per_s),
        cpu_ms_per_1k: col(&|r| r.cpu_ms_per_1k),
        limit: (
            col(&|r| r.limit.0),
            col(&|r| r.limit.1),
            col(&|r| r.limit.2),
        ),
        receiver: rows[0].receiver.map(|_| AtReceiver {
            mean_latency_ms: at(&|a| a.mean_latency_ms),
            mean_in_flight: at(&|a| a.mean_in_flight),
            peak_in_flight: at(&|a| a.peak_in_flight),
            connections: at(&|a| a.connections),
        }),
    }
}

fn header() {
    println!(
        "{:<20} {:>9} {:>9} {:>15} {:>10} {:>9} {:>5} {:>5}",
        "setting",
        "events/s",
        "CPU ms/1k",
        "limit (range)",
        "latency ms",
        "in flight",
        "peak",
        "conns"
    );
}

fn print_row(name: &str, r: &Row) {
    let limit = format!("{:.0} ({:.0}–{:.0})", r.limit.1, r.limit.0, r.limit.2);
    let at = r.receiver.map_or(
        format!("{:>10} {:>9} {:>5} {:>5}", "–", "–", "–", "–"),
        |a| {
            format!(
                "{:>10.2} {:>9.1} {:>5.0} {:>5.0}",
                a.mean_latency_ms, a.mean_in_flight, a.peak_in_flight, a.connections
            )
        },
    );
    println!(
        "{name:<20} {:>9.0} {:>9.1} {limit:>15} {at}",
        r.events_per_s, r.cpu_ms_per_1k
    );
}
