//! `cargo bench --bench transfer`: air-gapped transfer at scale (minutes). A million events
//! (`EDGEHOOK_TRANSFER_EVENTS`) are queued at site A, whose endpoint is unreachable,
//! exported to a bundle, imported at a second daemon (its endpoint unreachable too, so
//! the import is measured alone), and the receipt applied back at A. For each step: wall
//! time, CPU time of the daemon (`/proc`) and of the CLI (`getrusage`), the daemon's RSS
//! (sampled every 250 ms) and the CLI's peak RSS; the bundle size against the raw event
//! bytes. Wall times depend on what else the machine runs; CPU times and sizes do not.

#[path = "support/endpoints.rs"]
mod endpoints;
#[allow(dead_code)]
#[path = "support/proc_stats.rs"]
mod proc_stats;
use endpoints::OFFLINE_ENDPOINT;
#[allow(dead_code, unused_imports)]
#[path = "../tests/util/mod.rs"]
mod util;

use std::time::Instant;

use nix::sys::resource::{getrusage, Usage, UsageWho};
use proc_stats::{Sampler, Snapshot};

/// The shared key of both sites.
const KEY: &str = "q83vASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4k=";
/// Events per NDJSON batch while filling site A.
const BATCH: usize = 10_000;

fn main() {
    let n = std::env::var("EDGEHOOK_TRANSFER_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let site = || {
        util::Builder::new()
            .toml(&format!("[transfer]\nkey = {KEY:?}\n"))
            .toml(OFFLINE_ENDPOINT)
            .start()
    };
    let a = site();
    let b = site();
    println!("transfer: {n} events queued at site A for an unreachable endpoint");
    let start = Instant::now();
    for first in (0..n).step_by(BATCH) {
        let batch: String = (first..(first + BATCH).min(n))
            .map(|i| {
                format!(
                    r#"{{"type":"Sensor.reading","id":"reading-{i:09}","data":{{"sensor":"pump-{}","seq":{i},"temp_c":{}.{},"status":"ok","site":"north-shaft"}}}}"#,
                    i % 64,
                    15 + i % 20,
                    i % 10
                ) + "\n"
            })
            .collect();
        let r = a.post("/v1/events", "application/x-ndjson", batch.as_bytes());
        assert_eq!(r.status, 202, "{r:?}");
    }
    println!(
        "  fill A over HTTP (NDJSON batches of {BATCH}): {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let raw = a.query_i64(
        "SELECT SUM(length(id) + length(type) + length(timestamp) + length(data)) FROM events",
        [],
    ) as u64;
    println!(
        "  raw event bytes (id + type + timestamp + data): {:.1} MiB",
        mib(raw)
    );

    let bundle = a.dir().join("a.bundle");
    let s = timed(&a, &["export", "--out", bundle.to_str().expect("utf-8")]);
    let size = std::fs::metadata(&bundle).expect("bundle").len();
    println!("  export: {s}");
    println!(
        "  bundle: {:.1} MiB = {:.1} % of the raw event bytes",
        mib(size),
        size as f64 * 100.0 / raw as f64
    );

    let receipt = b.dir().join("a.receipt");
    let s = timed(
        &b,
        &[
            "import",
            bundle.to_str().expect("utf-8"),
            "--receipt-out",
            receipt.to_str().expect("utf-8"),
        ],
    );
    println!("  import: {s}");
    println!(
        "  receipt: {:.1} MiB",
        mib(std::fs::metadata(&receipt).expect("receipt").len())
    );
    let queued = b.query_i64("SELECT COUNT(*) FROM deliveries WHERE state = 0", []);
    assert_eq!(queued, n as i64, "every event is queued at B");

    let s = timed(&a, &["receipt", "apply", receipt.to_str().expect("utf-8")]);
    println!("  receipt apply: {s}");
    assert_eq!(a.query_i64("SELECT COUNT(*) FROM deliveries", []), 0);
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

fn cpu_secs(u: &Usage) -> f64 {
    let (user, sys) = (u.user_time(), u.system_time());
    user.tv_sec() as f64
        + user.tv_usec() as f64 / 1e6
        + sys.tv_sec() as f64
        + sys.tv_usec() as f64 / 1e6
}

/// Run one transfer command against `daemon` and describe what it cost.
fn timed(daemon: &util::TestDaemon, args: &[&str]) -> String {
    let socket = daemon.dir().join("admin.sock");
    let mut all = args.to_vec();
    all.extend(["--json", "--admin-socket", socket.to_str().expect("utf-8")]);
    let children = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    let before = Snapshot::read(daemon.pid());
    let sampler = Sampler::start(daemon.pid());
    let start = Instant::now();
    let (code, out, err) = util::run_cli(&all, None);
    let wall = start.elapsed().as_secs_f64();
    let rss = sampler.finish();
    assert_eq!(code, 0, "{args:?}: {err}");
    let after = Snapshot::read(daemon.pid());
    let cli = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    let rss = rss.iter().map(|(kib, _)| *kib).max().unwrap_or(0);
    format!(
        "{wall:.1} s wall; CPU: daemon {:.1} s, CLI {:.1} s; daemon RSS at most {:.1} MiB, CLI peak RSS {:.1} MiB\n    {}",
        (after.cpu_ticks - before.cpu_ticks) as f64 / 100.0,
        cpu_secs(&cli) - cpu_secs(&children),
        rss as f64 / 1024.0,
        cli.max_rss() as f64 / 1024.0,
        out.trim()
    )
}
