//! Retry rules against a real upstream (SPEC §5): a 5xx is retried with the same
//! `webhook-id` and the next attempt number, `Retry-After` is honoured, a permanent status
//! makes a dead letter at once, and 410 Gone holds the endpoint, across restarts too.

use std::time::{Duration, Instant};

use crate::util::delivery::{ids, pending, wait_db, Endpoint, Upstream};
use crate::util::{event, Builder, TestDaemon};

/// Long enough for several retries at the test endpoints' 100 ms initial backoff: a
/// request that should never come would have come within it.
const QUIET: Duration = Duration::from_millis(600);

/// A daemon with one endpoint `e` (fast retries unless `retry` is given) at `up`.
fn daemon(up: &Upstream, retry: Option<&str>) -> TestDaemon {
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let mut endpoint = Endpoint::new("e", &up.url("/hook"), &ca);
    if let Some(retry) = retry {
        endpoint = endpoint.retry(retry);
    }
    b.toml(&endpoint.toml()).start()
}

fn send(d: &TestDaemon, id: &str) {
    let r = d.post_event(&event("Test.retry", id, "{}"));
    assert_eq!(r.status, 202, "{r:?}");
}

#[test]
fn server_error_is_retried_with_the_same_id() {
    let up = Upstream::start();
    up.receiver.push_responses(&[(500, &[])]).unwrap();
    let d = daemon(&up, None);

    send(&d, "retry-1");
    let got = up.wait_for(2);
    assert_eq!(ids(&got), ["retry-1", "retry-1"]);
    assert_eq!(got[0].header("edgehook-attempt"), Some("1"));
    assert_eq!(got[1].header("edgehook-attempt"), Some("2"));
    wait_db(&d, "the delivered row to be removed", |d| {
        d.query_i64("SELECT COUNT(*) FROM deliveries", []) == 0
    });
    assert_eq!(
        up.receiver.requests().len(),
        2,
        "delivered exactly once more"
    );
}

#[test]
fn retry_after_is_honoured() {
    let up = Upstream::start();
    up.receiver
        .push_responses(&[(429, &[("retry-after", "1")])])
        .unwrap();
    // `Retry-After` is capped at retry.max: leave room above 1 s. Without the header the
    // retry would come after the 100 ms backoff.
    let d = daemon(&up, Some("initial = \"100ms\"\nmax = \"3s\""));

    send(&d, "slow-down");
    up.wait_for(1);
    let first = Instant::now();
    let got = up.wait_for(2);
    let gap = first.elapsed();
    assert_eq!(ids(&got), ["slow-down", "slow-down"]);
    assert_eq!(got[1].header("edgehook-attempt"), Some("2"));
    assert!(
        gap >= Duration::from_millis(900) && gap < Duration::from_millis(2500),
        "the retry came {gap:?} after the 429 with Retry-After: 1"
    );
}

#[test]
fn permanent_status_is_dead_at_once() {
    let up = Upstream::start();
    up.receiver.push_responses(&[(400, &[])]).unwrap();
    let d = daemon(&up, None);

    send(&d, "bad-1");
    up.wait_for(1);
    wait_db(&d, "the delivery to be dead", |d| pending(d) == 0);
    let (state, attempts, status, reason): (i64, i64, Option<i64>, Option<String>) = d
        .db()
        .query_row(
            "SELECT state, attempts, last_status, dead_reason FROM deliveries",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!((state, attempts, status), (1, 1, Some(400)));
    let reason = reason.expect("a dead letter has a reason");
    assert!(reason.contains("400"), "{reason}");

    // The endpoint goes on with other events; the dead one is never sent again.
    send(&d, "good-1");
    up.wait_for(2);
    std::thread::sleep(QUIET);
    assert_eq!(ids(&up.receiver.requests()), ["bad-1", "good-1"]);
    assert_eq!(
        d.query_i64("SELECT state FROM deliveries", []),
        1,
        "still dead"
    );
}

#[test]
fn gone_holds_the_endpoint_across_restarts() {
    let up = Upstream::start();
    up.receiver.push_responses(&[(410, &[])]).unwrap();
    let mut d = daemon(&up, None);
    let held = |d: &TestDaemon| {
        d.query_i64(
            "SELECT COUNT(*) FROM endpoint_state WHERE endpoint = 'e' AND state = 'gone'",
            [],
        ) == 1
    };

    send(&d, "gone-1");
    up.wait_for(1);
    wait_db(&d, "endpoint_state to say gone", held);
    // Later events are still accepted and queued for the endpoint, but not sent (the
    // receiver would answer them 200).
    send(&d, "gone-2");
    send(&d, "gone-3");
    std::thread::sleep(QUIET);
    assert_eq!(up.receiver.requests().len(), 1);
    assert_eq!(pending(&d), 3, "nothing is dropped");
    assert_eq!(
        d.query_i64("SELECT MAX(attempts) FROM deliveries", []),
        0,
        "a 410 is not an attempt"
    );

    d.stop();
    d.restart();
    send(&d, "gone-4");
    std::thread::sleep(QUIET);
    assert_eq!(
        up.receiver.requests().len(),
        1,
        "still held after a restart"
    );
    assert!(held(&d));
    assert_eq!(pending(&d), 4);
    assert_eq!(d.query_i64("SELECT COUNT(*) FROM events", []), 4);
}
