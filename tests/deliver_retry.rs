//! Retry rules against a real upstream (SPEC §5): a 5xx is retried with the same
//! `webhook-id` and the next attempt number, `Retry-After` is honoured, a permanent status
//! makes a dead letter at once, and 410 Gone holds the endpoint, across restarts too.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::delivery::{ids, pending_for, wait_db, with_witness, Endpoint, Upstream};
use crate::util::{event, run_cli, Builder, TestDaemon};

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

/// The dead letters, as `edgehook dead --json` lists them.
fn dead_letters(d: &TestDaemon) -> Vec<Value> {
    let socket = d.dir().join("admin.sock");
    let (code, out, err) = run_cli(
        &[
            "dead",
            "list",
            "--json",
            "--admin-socket",
            socket.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v["dead"].as_array().cloned().unwrap_or_default()
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
    // One attempt at a time, and a fixed backoff: were the dead letter retried, its retry
    // would be due `backoff` after it died, and sent before any event stored later.
    let backoff = Duration::from_millis(50);
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let d = b
        .toml(
            &Endpoint::new("e", &up.url("/hook"), &ca)
                .key("concurrency = 1")
                .retry("initial = \"50ms\"\nmax = \"50ms\"\njitter = 0.0")
                .toml(),
        )
        .start();

    send(&d, "bad-1");
    up.wait_for(1);
    wait_db(&d, "the delivery to be dead", |d| pending_for(d, "e") == 0);
    let dead = dead_letters(&d);
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(
        (
            &dead[0]["event_id"],
            &dead[0]["attempts"],
            &dead[0]["last_status"]
        ),
        (&"bad-1".into(), &1.into(), &400.into()),
        "{dead:#?}"
    );
    let reason = dead[0]["dead_reason"]
        .as_str()
        .expect("a dead letter has a reason");
    assert!(reason.contains("400"), "{reason}");

    // The endpoint goes on with other events; the dead one is never sent again: good-1,
    // stored once a retry would be due, arrives right after the one attempt.
    std::thread::sleep(backoff);
    send(&d, "good-1");
    assert_eq!(ids(&up.wait_for(2)), ["bad-1", "good-1"]);
    assert_eq!(dead_letters(&d).len(), 1, "still dead");
    assert_eq!(ids(&up.receiver.requests()), ["bad-1", "good-1"]);
}

#[test]
fn gone_holds_the_endpoint_across_restarts() {
    let up = Upstream::start();
    up.receiver.push_responses(&[(410, &[])]).unwrap();
    let witness = Upstream::start();
    let mut d = with_witness(&up, &witness);
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
    // receiver would answer them 200); `w` receiving them is the witness.
    send(&d, "gone-2");
    send(&d, "gone-3");
    let mut witnessed = ids(&witness.wait_for(3));
    witnessed.sort_unstable();
    assert_eq!(witnessed, ["gone-1", "gone-2", "gone-3"]);
    assert_eq!(up.receiver.requests().len(), 1);
    assert_eq!(pending_for(&d, "e"), 3, "nothing is dropped");
    assert_eq!(
        d.query_i64(
            "SELECT MAX(attempts) FROM deliveries WHERE endpoint = 'e'",
            []
        ),
        0,
        "a 410 is not an attempt"
    );

    d.stop();
    d.restart();
    send(&d, "gone-4");
    witness.wait_for(4);
    assert_eq!(
        up.receiver.requests().len(),
        1,
        "still held after a restart"
    );
    assert!(held(&d));
    assert_eq!(pending_for(&d, "e"), 4);
    assert_eq!(d.query_i64("SELECT COUNT(*) FROM events", []), 4);
}
