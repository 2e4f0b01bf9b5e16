//! Outages (SPEC §5): an endpoint that cannot be connected to is offline; only its head
//! delivery is probed, on the backoff schedule, and those probes are free (no attempts are
//! counted); when it answers again the whole backlog drains. With `ordering = "fifo"` the
//! order survives the outage and a failing head holds back the ones behind it.
//!
//! The receiver's refuse mode accepts each TCP connection and drops it before TLS, so the
//! daemon sees a connect-level failure and the test can count every connection attempt.

use std::time::{Duration, Instant};

use edgehook::store::STATE_PENDING;

use crate::util::delivery::{ids, pending, wait_db, Endpoint, Upstream, WAIT};
use crate::util::{event, Builder};

/// How often the receiver's connection counter is sampled (there is no signal for it).
const SAMPLE: Duration = Duration::from_millis(1);
/// Connections closer together than this belong to one burst of concurrent attempts;
/// probes are at least the 100 ms initial backoff apart.
const BURST_GAP: Duration = Duration::from_millis(50);

#[test]
fn offline_endpoint_is_probed_at_its_head_and_drains_when_back() {
    const EVENTS: usize = 20;
    const CONCURRENCY: usize = 8;
    let up = Upstream::start();
    up.receiver.set_refuse(true);
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    // No jitter, so probe spacing is exactly initial × 2^(n-1): 100, 200, 400 ms, …
    let d = b
        .toml(
            &Endpoint::new("e", &up.url("/hook"), &ca)
                .key(&format!("concurrency = {CONCURRENCY}"))
                .retry("initial = \"100ms\"\nmultiplier = 2.0\nmax = \"2s\"\njitter = 0.0")
                .toml(),
        )
        .start();

    // One batch, one commit: the worker finds the whole backlog at once and starts
    // `concurrency` attempts before the first failure tells it the endpoint is offline.
    let sent: Vec<String> = (0..EVENTS).map(|n| format!("off-{n:02}")).collect();
    let batch: String = sent
        .iter()
        .map(|id| event("Test.offline", id, "{}") + "\n")
        .collect();
    let r = d.post("/v1/events", "application/x-ndjson", batch.as_bytes());
    assert_eq!(r.status, 202, "{r:?}");

    // Record when the connection count grows until three probes followed the burst.
    let mut seen: Vec<(Instant, usize)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = 0;
    let clusters = loop {
        let now = up.receiver.connections();
        if now != last {
            seen.push((Instant::now(), now - last));
            last = now;
        }
        let clusters = clusters(&seen);
        if clusters.len() >= 4 {
            break clusters;
        }
        assert!(
            Instant::now() < deadline,
            "fewer than 3 probes after the first failures within 5 s: {clusters:?}; stderr:\n{}",
            d.log()
        );
        std::thread::sleep(SAMPLE);
    };
    let burst = clusters[0].1;
    assert!(
        burst <= CONCURRENCY,
        "the first failures are at most `concurrency` in flight: {clusters:?}"
    );
    for (_, n, _) in &clusters[1..] {
        assert_eq!(
            *n, 1,
            "only the head is probed, one at a time: {clusters:?}"
        );
    }
    // Without offline mode each of the 20 events would be retried on its own backoff:
    // some 60 connections by now.
    let probes = clusters.len() - 1;
    assert!(
        last <= CONCURRENCY + probes,
        "{last} connections: offline endpoints must not be stormed: {clusters:?}"
    );
    // Probes follow the backoff schedule from its start (the first failure, which is not
    // before the burst began), not advanced by the other failures of the burst.
    let gaps: Vec<Duration> = clusters
        .windows(2)
        .map(|w| w[1].0.duration_since(w[0].0))
        .collect();
    for (gap, schedule) in gaps.iter().zip([100u64, 200, 400]) {
        let schedule = Duration::from_millis(schedule);
        assert!(
            *gap >= schedule.mul_f64(0.9) && *gap < schedule + Duration::from_millis(900),
            "probe gaps {gaps:?} do not follow the backoff 100ms, 200ms, 400ms"
        );
    }

    // Offline time is free: nothing was counted as an attempt, nothing was delivered.
    let (rows, max_attempts): (i64, i64) = d
        .db()
        .query_row(
            &format!(
                "SELECT COUNT(*), MAX(attempts) FROM deliveries WHERE state = {STATE_PENDING}"
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((rows, max_attempts), (EVENTS as i64, 0));
    assert!(up.receiver.requests().is_empty());

    // Link back: the next probe (the head) succeeds and the backlog drains.
    up.receiver.set_refuse(false);
    let got = up.wait_for(EVENTS);
    wait_db(&d, "the backlog to drain", |d| pending(d) == 0);
    let got_ids = ids(&got);
    assert_eq!(got_ids[0], sent[0], "the probe is the head of the queue");
    let mut sorted = got_ids.clone();
    sorted.sort();
    assert_eq!(sorted, sent, "each event exactly once");
    for r in &got {
        assert_eq!(r.header("edgehook-attempt"), Some("1"), "probes are free");
    }
}

/// Group connection increments into bursts: (first, connections, last) per burst.
fn clusters(seen: &[(Instant, usize)]) -> Vec<(Instant, usize, Instant)> {
    let mut out: Vec<(Instant, usize, Instant)> = Vec::new();
    for &(at, n) in seen {
        match out.last_mut() {
            Some(c) if at.duration_since(c.2) < BURST_GAP => {
                c.1 += n;
                c.2 = at;
            }
            _ => out.push((at, n, at)),
        }
    }
    out
}

#[test]
fn fifo_order_survives_an_outage_and_a_failing_head() {
    const EVENTS: usize = 10;
    let up = Upstream::start();
    up.receiver.set_refuse(true);
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let d = b
        .toml(
            &Endpoint::new("e", &up.url("/hook"), &ca)
                .key("ordering = \"fifo\"")
                .toml(),
        )
        .start();

    let sent: Vec<String> = (0..EVENTS).map(|n| format!("fifo-{n}")).collect();
    for id in &sent {
        let r = d.post_event(&event("Test.fifo", id, "{}"));
        assert_eq!(r.status, 202, "{r:?}");
    }
    // The outage is noticed and probed (first failure plus at least one probe).
    let deadline = Instant::now() + WAIT;
    while up.receiver.connections() < 2 {
        assert!(Instant::now() < deadline, "no probe; stderr:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(5));
    }

    // Back up, but the fifth event fails once: the ones after it must wait for it.
    let ok: &[(&str, &str)] = &[];
    up.receiver
        .push_responses(&[(200, ok), (200, ok), (200, ok), (200, ok), (500, ok)])
        .unwrap();
    up.receiver.set_refuse(false);
    up.wait_for(EVENTS + 1);
    wait_db(&d, "the queue to drain", |d| pending(d) == 0);
    let got = up.receiver.requests();
    let mut expected = sent.clone();
    expected.insert(5, sent[4].clone());
    assert_eq!(ids(&got), expected);
    let attempts: Vec<&str> = got
        .iter()
        .map(|r| r.header("edgehook-attempt").unwrap_or("?"))
        .collect();
    assert_eq!(
        attempts,
        ["1", "1", "1", "1", "1", "2", "1", "1", "1", "1", "1"]
    );
}
