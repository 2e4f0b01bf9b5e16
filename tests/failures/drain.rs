//! A queue that fills its own disk (SPEC §6, §12 `queue.reserve`): the state dir is a
//! 16 MiB tmpfs, the receiver is down, and events arrive until ingest refuses. Then the
//! receiver comes back: every acknowledged event is delivered (no endless repeats, counted
//! by `webhook-id` at the receiver), the backlog drains, ingest accepts again by itself
//! within seconds, and the whole episode writes a bounded number of log lines.
//!
//! Needs root (or CAP_SYS_ADMIN) to mount; skipped with a note otherwise, like `disk.rs`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::disk::Tmpfs;
use crate::util::delivery::{count_by_id, pending, wait_db, Endpoint, Upstream};
use crate::util::{event, Builder, Reply, TestDaemon};

/// Most log lines the whole episode may write: start, endpoint offline and back, storage
/// refusing and accepting again, each once (SPEC §12: repeats are summarised).
const MAX_LOG_LINES: usize = 40;
/// Longest from a drained backlog to ingest accepting again.
const RESUME_WITHIN: Duration = Duration::from_secs(5);
/// Longest the drain of a full queue may take once the receiver is back.
const DRAIN_WITHIN: Duration = Duration::from_secs(60);

#[test]
fn a_disk_filled_by_8_kib_events_drains_by_itself_and_ingest_resumes() {
    fill_drain_resume("16m", 8 << 10, 1);
}

#[test]
fn a_disk_filled_by_200_byte_events_drains_by_itself_and_ingest_resumes() {
    // A smaller disk: tens of thousands of small deliveries take long in a debug build.
    fill_drain_resume("8m", 200, 200);
}

/// Fill a state dir of `disk` (a tmpfs size) with events of about `size` bytes of data,
/// `per_post` to a request (NDJSON batches, all or nothing), then let the receiver drain it.
fn fill_drain_resume(disk: &str, size: usize, per_post: usize) {
    let Some(fs) = Tmpfs::mount(disk) else {
        return;
    };
    let up = Upstream::start();
    up.receiver.set_refuse(true);
    let b = Builder::new().state_dir(fs.path());
    let ca = up.write_ca(b.dir());
    let d = b
        .toml(
            &Endpoint::new("e", &up.url("/hook"), &ca)
                .key("concurrency = 32")
                .retry("initial = \"50ms\"\nmax = \"200ms\"\njitter = 0.0")
                .toml(),
        )
        .start();

    // Fill until ingest refuses.
    let payload = format!("\"{}\"", "x".repeat(size));
    let mut accepted: Vec<String> = Vec::new();
    let refused = (0..)
        .map(|post| {
            let ids: Vec<String> = (0..per_post).map(|i| format!("ev-{post}-{i}")).collect();
            let r = post_batch(&d, &ids, &payload);
            if r.status == 202 {
                accepted.extend(ids);
            }
            assert!(post < 20_000, "a 16 MiB file system never refused");
            r
        })
        .find(|r| r.status != 202)
        .unwrap();
    assert!(
        accepted.len() > 100,
        "{} accepted before {refused:?}",
        accepted.len()
    );
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.code(), "unavailable", "{refused:?}");
    assert!(refused.header("retry-after").is_some(), "{refused:?}");
    let h = d.health();
    assert_eq!(h.status, 503, "health says why ingest refuses: {h:?}");

    // The receiver comes back: everything acknowledged arrives, the queue drains.
    up.receiver.set_refuse(false);
    let back = Instant::now();
    let drain_deadline = Instant::now() + DRAIN_WITHIN;
    while pending(&d) > 0 {
        assert!(
            Instant::now() < drain_deadline,
            "{} of {} deliveries still pending {DRAIN_WITHIN:?} after the receiver came back; stderr:\n{}",
            pending(&d),
            accepted.len(),
            tail(&d.log())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let drained = Instant::now();

    // Ingest accepts again by itself.
    let mut n = 0;
    let resumed = loop {
        let r = post_batch(&d, &[format!("after-{n}")], &payload);
        if r.status == 202 {
            break drained.elapsed();
        }
        assert!(
            drained.elapsed() < RESUME_WITHIN,
            "ingest still refuses {RESUME_WITHIN:?} after the backlog drained: {r:?}; health {:?}; stderr:\n{}",
            d.health(),
            tail(&d.log())
        );
        n += 1;
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!(
        "{size}-byte events: {} accepted, drained in {:?}, accepting again {resumed:?} after the drain",
        accepted.len(),
        drained - back
    );
    wait_db(&d, "health back to 200", |d| d.health().status == 200);

    // Every acknowledged event arrived, and none keeps arriving.
    let requests = up.wait_for(accepted.len());
    let counts = count_by_id(&requests);
    let missing: Vec<&String> = accepted
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but never delivered: {missing:?}"
    );
    std::thread::sleep(Duration::from_secs(1));
    let total = up.receiver.requests().len();
    let distinct: HashSet<_> = counts.keys().collect();
    assert!(
        total <= distinct.len() + distinct.len() / 10 + 16,
        "{total} requests for {} events: deliveries repeat",
        distinct.len()
    );

    let log = d.log();
    let lines = log.lines().count();
    eprintln!("log lines for the whole episode: {lines}");
    assert!(
        lines <= MAX_LOG_LINES,
        "{lines} log lines for one disk-full episode:\n{}",
        tail(&log)
    );
}

/// POST `ids` as one NDJSON batch (one event: a plain JSON body).
fn post_batch(d: &TestDaemon, ids: &[String], payload: &str) -> Reply {
    if let [id] = ids {
        return d.post_event(&event("Test.fill", id, payload));
    }
    let body: String = ids
        .iter()
        .map(|id| event("Test.fill", id, payload) + "\n")
        .collect();
    d.post("/v1/events", "application/x-ndjson", body.as_bytes())
}

/// The last lines of a long log, for failure messages.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let from = lines.len().saturating_sub(30);
    format!("({} lines)\n{}", lines.len(), lines[from..].join("\n"))
}
