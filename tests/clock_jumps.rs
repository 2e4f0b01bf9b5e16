//! Wall-clock steps (SPEC §5, §6; README "Failure modes": clock jumps): schedules and ages
//! in the queue follow elapsed time, not the wall clock. The daemon's wall clock is moved
//! with libfaketime ([`FakeClock`]) while it runs and while it is stopped; its monotonic
//! clocks stay real, as on an edge box whose NTP or RTC steps the time.

use std::time::{Duration, Instant};

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::util::client;
use crate::util::clock::FakeClock;
use crate::util::delivery::{pending, unix_now, wait_db, wait_log, Endpoint, Upstream};
use crate::util::{event, Builder, TestDaemon};

/// How long a test watches for a wrong expiry after a step: three housekeeping runs at the
/// one-second interval that `keep_delivered = "2s"` gives (there is no signal for "a
/// housekeeping run found nothing to do").
const EXPIRY_WATCH: Duration = Duration::from_secs(3);

/// Queue settings that make housekeeping run every second with a one-hour `max_age`.
const QUEUE: &str = "[queue]\nmax_age = \"1h\"\nkeep_delivered = \"2s\"\n";

/// The endpoint's Standard Webhooks key; the receiver answers 401 to a bad signature.
const SECRET: &str = "whsec_Y2xvY2sganVtcHMgdGVzdCBzZWNyZXQ=";

/// A daemon with one signing endpoint `e` at `up`, its wall clock at `spec`, and `extra`
/// TOML; `None` when libfaketime is not installed (outside CI).
fn start(up: &Upstream, spec: &str, extra: &str) -> Option<(TestDaemon, FakeClock)> {
    let b = Builder::new();
    let (clock, env) = FakeClock::new(b.dir(), spec)?;
    let ca = up.write_ca(b.dir());
    up.receiver.verify_with(SECRET);
    let signing =
        format!("[endpoint.signing]\nscheme = \"standard-webhooks\"\nsecret = {SECRET:?}");
    let d = b
        .env(env)
        .toml(extra)
        .toml(
            &Endpoint::new("e", &up.url("/hook"), &ca)
                .table(&signing)
                .toml(),
        )
        .start();
    Some((d, clock))
}

/// Post `ids` as one NDJSON batch; all must be accepted.
fn post_all(d: &TestDaemon, ids: &[String]) {
    let batch: String = ids
        .iter()
        .map(|id| event("Test.clock", id, "{}") + "\n")
        .collect();
    let r = d.post("/v1/events", "application/x-ndjson", batch.as_bytes());
    assert_eq!(r.status, 202, "{r:?}");
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:02}")).collect()
}

/// Wait until the (refusing) receiver saw a connection beyond `seen`: the worker has
/// tried the endpoint and holds its backlog as offline.
fn wait_for_attempt(up: &Upstream, d: &TestDaemon, seen: usize) -> usize {
    let deadline = Instant::now() + crate::util::delivery::WAIT;
    loop {
        let now = up.receiver.connections();
        if now > seen {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "no delivery attempt reached the receiver; stderr:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn dead(d: &TestDaemon) -> i64 {
    d.query_i64("SELECT COUNT(*) FROM deliveries WHERE state = 1", [])
}

/// For [`EXPIRY_WATCH`], no delivery becomes a dead letter.
fn assert_nothing_expires(d: &TestDaemon, what: &str) {
    let until = Instant::now() + EXPIRY_WATCH;
    while Instant::now() < until {
        let n = dead(d);
        assert_eq!(
            n,
            0,
            "{what}: {n} deliveries expired although they are seconds old; stderr:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Posting `id` again is answered as a duplicate.
fn assert_duplicate(d: &TestDaemon, id: &str, what: &str) {
    let r = d.post_event(&event("Test.clock", id, "{}"));
    assert_eq!(
        (r.status, &r.json["duplicate"]),
        (200, &Value::Bool(true)),
        "{what}: {id} was accepted again, so a retried POST is queued twice: {r:?}"
    );
}

/// `GET /v1/status` on the admin socket.
fn status(d: &TestDaemon) -> Value {
    let r = client::request(&d.dir().join("admin.sock"), "GET", "/v1/status", None, b"")
        .expect("GET /v1/status on the admin socket");
    assert_eq!(r.status, 200, "{r:?}");
    r.json
}

#[test]
fn a_backlog_waiting_through_a_step_back_of_a_year_drains_when_the_receiver_returns() {
    let up = Upstream::start();
    up.receiver.set_refuse(true);
    let Some((d, clock)) = start(&up, "+0", "") else {
        return;
    };
    let sent = ids("back", 20);
    post_all(&d, &sent);
    let seen = wait_for_attempt(&up, &d, 0);

    clock.set("-365d");
    // A probe after the step: the daemon has run in the new time.
    wait_for_attempt(&up, &d, seen);
    up.receiver.set_refuse(false);

    // The offline probe succeeds and the whole backlog follows, with no `edgehook wake`.
    let got = up.wait_for(sent.len());
    assert_eq!(got.len(), sent.len());
    // Signed with the time of sending (a year back); the envelope keeps the time the
    // event was accepted (before the step).
    let year = 365 * 86_400;
    for r in &got {
        assert_eq!(r.signature_ok, Some(true), "{r:?}");
        let sent_at: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
        assert!((sent_at - (unix_now() - year)).abs() < 120, "{r:?}");
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let accepted = OffsetDateTime::parse(body["timestamp"].as_str().unwrap(), &Rfc3339)
            .unwrap()
            .unix_timestamp();
        assert!((accepted - unix_now()).abs() < 120, "{body}");
    }
    wait_db(&d, "every delivery done", |d| pending(d) == 0);
    // The kernel's clock-set notice never fires for a clock faked inside the process, and
    // the next housekeeping run is a minute away: `status` checks the clock itself.
    let s = status(&d);
    let step = s["clock"]["last_step"]["secs"].as_i64();
    assert!(step.is_some_and(|secs| (secs + year).abs() < 120), "{s:#}");
    let log = wait_log(&d, "the step logged with its size", |l| {
        l.contains("Wall clock stepped") && l.contains("-365d")
    });
    assert!(!log.contains("ERROR"), "{log}");
}

#[test]
fn a_step_forward_of_two_days_expires_nothing_under_max_age() {
    let up = Upstream::start();
    up.receiver.set_refuse(true);
    let Some((d, clock)) = start(&up, "+0", QUEUE) else {
        return;
    };
    let sent = ids("fwd", 3);
    post_all(&d, &sent);
    wait_for_attempt(&up, &d, 0);

    clock.set("+2d");
    assert_nothing_expires(&d, "after a step forward of 2 days with max_age = 1h");
    // Seen by the next housekeeping run (every second with these settings).
    wait_log(&d, "the step logged with its size", |l| {
        l.contains("Wall clock stepped") && l.contains("+2d")
    });

    up.receiver.set_refuse(false);
    up.wait_for(sent.len());
    wait_db(&d, "every delivery done", |d| pending(d) == 0);
    assert_eq!(dead(&d), 0);
}

#[test]
fn an_id_seen_before_a_step_forward_is_still_a_duplicate_after_it() {
    let up = Upstream::start();
    let Some((d, clock)) = start(&up, "+0", "[queue]\ndedupe_window = \"1h\"\n") else {
        return;
    };
    assert_eq!(
        d.post_event(&event("Test.clock", "dup-1", "{}")).status,
        202
    );
    clock.set("+2d");
    assert_duplicate(&d, "dup-1", "after a step forward of 2 days");
    assert_eq!(d.events_with_id("dup-1"), 1);
}

#[test]
fn a_restart_across_a_step_keeps_schedules_ages_and_duplicates() {
    let up = Upstream::start();
    up.receiver.set_refuse(true);
    let Some((mut d, clock)) = start(&up, "+0", QUEUE) else {
        return;
    };

    // Stopped, the clock steps back a year, started again: the backlog is due at once.
    let first = ids("before-back", 3);
    post_all(&d, &first);
    wait_for_attempt(&up, &d, 0);
    d.stop();
    clock.set("-365d");
    d.restart();
    up.receiver.set_refuse(false);
    up.wait_for(first.len());
    wait_db(&d, "the first backlog delivered", |d| pending(d) == 0);
    wait_log(&d, "the step while stopped logged with its size", |l| {
        l.contains("stepped while edgehook was stopped") && l.contains("-365d")
    });
    assert_duplicate(&d, &first[0], "after a restart across a step back");

    // Stopped, the clock steps forward (two days past the real time), started again:
    // nothing expires and ids are still remembered. (A restart first, so no connection
    // from the deliveries above is still open while the receiver refuses.)
    d.stop();
    up.receiver.set_refuse(true);
    d.restart();
    let before = up.receiver.connections();
    let second = ids("before-forward", 3);
    post_all(&d, &second);
    wait_for_attempt(&up, &d, before);
    d.stop();
    clock.set("+2d");
    d.restart();
    assert_nothing_expires(
        &d,
        "after a restart across a step forward with max_age = 1h",
    );
    assert_duplicate(&d, &second[0], "after a restart across a step forward");
    up.receiver.set_refuse(false);
    up.wait_for(first.len() + second.len());
    wait_db(&d, "the second backlog delivered", |d| pending(d) == 0);
    assert_eq!(dead(&d), 0);
}

#[test]
fn a_start_at_1970_is_reported_once_and_delivers_once_the_clock_is_set() {
    let up = Upstream::start();
    let Some((d, clock)) = start(&up, "@1970-01-01 00:00:10", "") else {
        return;
    };
    let unset = "Wall clock looks unset";
    wait_log(&d, "the unset clock reported", |l| l.contains(unset));
    let s = status(&d);
    assert_eq!(s["clock"]["unset"], true, "{s:#}");

    // Events are accepted and kept; HTTPS cannot verify certificates in 1970.
    let sent = ids("epoch", 3);
    post_all(&d, &sent);
    assert_eq!(pending(&d), 3);

    clock.set("+0");
    let got = up.wait_for(sent.len());
    assert_eq!(got.len(), sent.len());
    wait_db(&d, "every delivery done", |d| pending(d) == 0);
    // `status` checks the clock (the kernel's clock-set notice never fires for a faked
    // clock), so it shows the step and the set clock at once.
    let s = status(&d);
    assert_eq!(s["clock"]["unset"], false, "{s:#}");
    let log = wait_log(&d, "the step and the set clock logged", |l| {
        l.contains("Wall clock stepped") && l.contains("Wall clock is set now")
    });
    assert_eq!(log.matches(unset).count(), 1, "reported once:\n{log}");
    assert!(
        s["clock"]["last_step"]["secs"].as_i64() > Some(50 * 365 * 86_400),
        "{s:#}"
    );
}
