//! Queue limits (SPEC §6): `max_bytes` with `when_full = "drop_oldest"` (the 507 of
//! `"reject"` is in `ingest_http`), `max_age` expiry to dead letters, `keep_delivered`.

use edgehook::store::{STATE_DEAD, STATE_DELIVERED};

use crate::util::delivery::{wait_db, Endpoint, Upstream};
use crate::util::{event, run_cli, Builder, ENDPOINTS};

/// A full queue with `drop_oldest` drops the oldest events (with their deliveries) to
/// admit a new one, says so in the log per event, and counts them in the metrics.
#[test]
fn drop_oldest_drops_the_oldest_events_and_logs_and_counts_them() {
    let d = Builder::new()
        .toml("[queue]\nmax_bytes = \"4KiB\"\nwhen_full = \"drop_oldest\"")
        .toml(ENDPOINTS)
        .start();
    let data = format!("\"{}\"", "z".repeat(300));
    let sent = 40;
    for i in 0..sent {
        let r = d.post_event(&event("Test.fill", &format!("q-{i}"), &data));
        assert_eq!(
            r.status, 202,
            "drop_oldest always admits the new event: {r:?}"
        );
    }
    let db = d.db();
    let kept: Vec<String> = db
        .prepare("SELECT id FROM events ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let n = kept.len();
    assert!(n > 1 && n < sent, "{n} of {sent} events kept");
    let newest: Vec<String> = (sent - n..sent).map(|i| format!("q-{i}")).collect();
    assert_eq!(
        kept, newest,
        "the newest events are kept, the oldest dropped"
    );
    let bytes = d.query_i64("SELECT SUM(size) FROM events", []);
    assert!(bytes <= 4096, "the queue stays within max_bytes: {bytes}");
    assert_eq!(
        d.query_i64("SELECT COUNT(*) FROM deliveries", []),
        2 * n as i64,
        "dropped events take their deliveries with them"
    );
    let dropped = sent - n;
    let log = d.log();
    for i in 0..dropped {
        assert!(
            log.contains(&format!("event_id=q-{i} ")) || log.contains(&format!("event_id=q-{i}\n")),
            "the drop of q-{i} is logged:\n{log}"
        );
    }
    assert_eq!(log.matches("dropped the oldest event").count(), dropped);

    let socket = d.dir().join("admin.sock");
    let (code, metrics, err) = run_cli(
        &["metrics", "--admin-socket", socket.to_str().unwrap()],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let line = format!("edgehook_events_dropped_total {dropped}");
    assert!(
        metrics.lines().any(|l| l == line),
        "{line:?} in:\n{metrics}"
    );

    // A batch larger than the whole queue cannot fit even after dropping everything
    // older: it is refused whole, and nothing was dropped for it.
    let batch: String = (0..20)
        .map(|i| event("Test.fill", &format!("huge-{i}"), &data) + "\n")
        .collect();
    let r = d.post("/v1/events", "application/x-ndjson", batch.as_bytes());
    assert_eq!(r.status, 507, "{r:?}");
    assert_eq!(r.code(), "queue_full");
    let after: i64 = d.query_i64("SELECT COUNT(*) FROM events", []);
    assert_eq!(after, n as i64, "the refused batch dropped nothing");
    assert_eq!(
        d.query_i64("SELECT COUNT(*) FROM events WHERE id LIKE 'huge-%'", []),
        0
    );
}

/// `queue.max_age`: a delivery pending longer becomes a dead letter with reason
/// "expired…" (housekeeping runs every max_age/2, here every second), event data kept.
#[test]
fn max_age_turns_old_pending_deliveries_into_dead_letters() {
    let d = Builder::new()
        .toml("[queue]\nmax_age = \"2s\"")
        .toml(ENDPOINTS)
        .start();
    // Before the request: the delivery's created_at is no earlier, while the 202 may come
    // well after it (the commit's fsync on a loaded machine).
    let sent = std::time::Instant::now();
    let r = d.post_event(&event("UploadProduct", "aged-1", "{}"));
    assert_eq!(r.status, 202, "{r:?}");
    wait_db(&d, "aged-1's delivery expired to dead", |d| {
        d.query_i64(
            &format!("SELECT COUNT(*) FROM deliveries WHERE state = {STATE_DEAD}"),
            [],
        ) == 1
    });
    assert!(
        sent.elapsed() >= std::time::Duration::from_secs(2),
        "not before max_age"
    );
    let reason: String = d
        .db()
        .query_row("SELECT dead_reason FROM deliveries", [], |r| r.get(0))
        .unwrap();
    assert!(reason.starts_with("expired"), "{reason}");
    assert_eq!(
        d.events_with_id("aged-1"),
        1,
        "a dead letter keeps its event"
    );
}

/// `keep_delivered`: a delivered row stays (state delivered, event data kept) for that
/// long, then housekeeping removes it and its event.
#[test]
fn keep_delivered_keeps_delivered_rows_then_removes_them() {
    let up = Upstream::start();
    let b = Builder::new().toml("[queue]\nkeep_delivered = \"2s\"");
    let ca = up.write_ca(b.dir());
    let d = b
        .toml(&Endpoint::new("up", &up.url("/hook"), &ca).toml())
        .start();
    let r = d.post_event(&event("Test.kept", "kept-1", r#"{"k":1}"#));
    assert_eq!(r.status, 202, "{r:?}");
    up.wait_for(1);
    wait_db(&d, "kept-1 recorded as delivered", |d| {
        d.query_i64(
            &format!("SELECT COUNT(*) FROM deliveries WHERE state = {STATE_DELIVERED}"),
            [],
        ) == 1
    });
    let delivered_at: i64 = d.query_i64("SELECT updated_at FROM deliveries", []);
    let data: Vec<u8> = d
        .db()
        .query_row("SELECT data FROM events WHERE id = 'kept-1'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(data, br#"{"k":1}"#, "the delivered event is kept");
    wait_db(&d, "kept-1 removed after keep_delivered", |d| {
        d.query_i64("SELECT COUNT(*) FROM events", []) == 0
    });
    let removed_at = crate::util::delivery::unix_now() * 1000 + 999;
    assert!(
        removed_at - delivered_at >= 2000,
        "removed {} ms after delivery, before keep_delivered",
        removed_at - delivered_at
    );
    assert_eq!(d.query_i64("SELECT COUNT(*) FROM deliveries", []), 0);
}
