//! Failure handling (issue 7, SPEC §2, §5, §6): what the daemon does when the queue is
//! full, the disk is full, files are damaged, clients are hostile or the power goes.
//! Each case runs the real binary against real parts: a tmpfs that really fills up,
//! database files damaged byte by byte, raw sockets misbehaving, strace watching fsyncs.
//!
//! The fuzzing (`fuzz/run.sh`) and the million-event backlog
//! (`EDGEHOOK_BENCH=backlog cargo bench --bench throughput`) are scripts, not tests: they
//! take minutes. Their results are in `fuzz/README.md` and `BENCHMARKS.md`.

// Hostile clients: slowloris, idle floods, unread replies, huge bodies, nested JSON, bad bytes.
mod clients;
// Damaged queue.db (refuse to start, touch nothing) and damaged WAL (recover what SQLite can).
mod corrupt;
// Disk full on a real tmpfs: 503, health, nothing lost, recovery by itself.
mod disk;
// A queue that fills its own disk (queue.reserve): ingest refused, the backlog drains, ingest back.
mod drain;
// The 202 of `durability = "full"` follows the commit's fsync (checked with strace).
mod power;
// queue.max_bytes with drop_oldest, max_age expiry, keep_delivered.
mod queue;

use crate::util::{event, TestDaemon};

/// A well-behaved client is served right now: one event, 202, stored.
pub fn served(d: &TestDaemon, id: &str) {
    let r = d.post_event(&event("Test.normal", id, r#"{"ok":true}"#));
    assert_eq!(
        r.status,
        202,
        "a normal client must be served: {r:?}; stderr:\n{}",
        d.log()
    );
    assert_eq!(d.events_with_id(id), 1, "{id} is stored");
}

/// Accept `n` events `{prefix}-{i}` before an attack; their ids.
pub fn accept_some(d: &TestDaemon, prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let id = format!("{prefix}-{i}");
            let r = d.post_event(&event("Test.before", &id, &format!(r#"{{"i":{i}}}"#)));
            assert_eq!(r.status, 202, "{id}: {r:?}");
            id
        })
        .collect()
}

/// Every event in `ids` is still in the queue, once, with its data and both deliveries.
pub fn intact(d: &TestDaemon, ids: &[String]) {
    for (i, id) in ids.iter().enumerate() {
        let data: Vec<u8> = d
            .db()
            .query_row("SELECT data FROM events WHERE id = ?1", [id], |r| r.get(0))
            .unwrap_or_else(|e| panic!("accepted event {id} is missing: {e}"));
        assert_eq!(data, format!(r#"{{"i":{i}}}"#).as_bytes(), "{id}'s data");
        assert_eq!(d.events_with_id(id), 1, "{id} stored once");
        assert_eq!(
            d.delivery_endpoints(id),
            ["flows", "spark"],
            "{id}'s deliveries"
        );
    }
}
