//! A queue written by an older edgehook (schema 3: deliveries numbered in one sequence,
//! with a `deliveries_event` index, 4 KiB pages) opens with its backlog, is migrated to
//! schema 4 (deliveries numbered within their event) and delivers every event once per
//! endpoint, leaving the queue empty.

use std::os::unix::fs::PermissionsExt;

use rusqlite::Connection;

use crate::util::delivery::{count_by_id, wait_db, Endpoint, Upstream};
use crate::util::Builder;

/// The tables schema 3 had, as edgehook wrote them (`src/store/schema.rs`, migrations
/// 0 → 1 → 2 → 3).
const SCHEMA_3: &str = "
    PRAGMA page_size = 4096;
    PRAGMA journal_mode = WAL;
    CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, type TEXT NOT NULL,
        timestamp TEXT NOT NULL, data BLOB NOT NULL, size INTEGER NOT NULL,
        received_at INTEGER NOT NULL, peer_uid INTEGER, peer_gid INTEGER, peer_pid INTEGER);
    CREATE TABLE deliveries (seq INTEGER PRIMARY KEY,
        event_seq INTEGER NOT NULL REFERENCES events(seq), endpoint TEXT NOT NULL,
        state INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
        next_at INTEGER NOT NULL DEFAULT 0, order_key TEXT, created_at INTEGER NOT NULL,
        updated_at INTEGER, last_status INTEGER, last_error TEXT, dead_reason TEXT);
    CREATE INDEX deliveries_due ON deliveries(endpoint, state, next_at, seq);
    CREATE INDEX deliveries_event ON deliveries(event_seq);
    CREATE TABLE endpoint_state (endpoint TEXT PRIMARY KEY, state TEXT NOT NULL,
        since INTEGER NOT NULL, reason TEXT) WITHOUT ROWID;
    CREATE TABLE dedupe (id TEXT PRIMARY KEY, received_at INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE transfer_site (one INTEGER PRIMARY KEY CHECK (one = 1), site TEXT NOT NULL);
    CREATE TABLE transfer_imported (origin TEXT NOT NULL, event_id TEXT NOT NULL,
        endpoint TEXT NOT NULL, imported_at INTEGER NOT NULL,
        PRIMARY KEY (origin, event_id, endpoint)) WITHOUT ROWID;
    CREATE TABLE clock (id INTEGER PRIMARY KEY CHECK (id = 1), boot_id TEXT NOT NULL,
        base_ms INTEGER NOT NULL, queue_ms INTEGER NOT NULL, wall_ms INTEGER NOT NULL);
    PRAGMA user_version = 3;
";

#[test]
fn a_schema_3_backlog_is_migrated_and_delivered() {
    const N: i64 = 150;
    let up = Upstream::start();
    let b = Builder::new();
    let state = b.dir().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    {
        let db = Connection::open(state.join("queue.db")).unwrap();
        db.execute_batch(SCHEMA_3).unwrap();
        let tx = db.unchecked_transaction().unwrap();
        // Deliveries numbered as schema 3 did: one sequence for all, each endpoint's rows
        // of an event far apart (endpoint "b" was added later, say).
        for e in 1..=N {
            tx.execute(
                "INSERT INTO events(seq, id, type, timestamp, data, size, received_at)
                 VALUES (?1, 'old-' || ?1, 'Test.upgrade', '2026-12-01T00:00:00Z', CAST('{\"n\":' || ?1 || '}' AS BLOB), 80, 1000)",
                [e],
            )
            .unwrap();
            for (endpoint, seq) in [("a", e), ("b", 1000 + e)] {
                tx.execute(
                    "INSERT INTO deliveries(seq, event_seq, endpoint, created_at, next_at)
                     VALUES (?1, ?2, ?3, 1000, 1000 + ?2)",
                    rusqlite::params![seq, e, endpoint],
                )
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let ca = up.write_ca(b.dir());
    let d = b
        .toml(&Endpoint::new("a", &up.url("/a"), &ca).toml())
        .toml(&Endpoint::new("b", &up.url("/b"), &ca).toml())
        .start();

    let got = up.wait_for(2 * N as usize);
    let counts = count_by_id(&got);
    assert_eq!(counts.len(), N as usize, "{counts:?}");
    assert!(
        counts.values().all(|&c| c == 2),
        "once per endpoint: {counts:?}"
    );
    wait_db(&d, "the migrated queue to be empty after delivery", |d| {
        d.query_i64("SELECT COUNT(*) FROM deliveries", []) == 0
            && d.query_i64("SELECT COUNT(*) FROM events", []) == 0
    });
    assert_eq!(d.query_i64("PRAGMA user_version", []), 4);
    assert_eq!(
        d.query_i64(
            "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'deliveries_event'",
            []
        ),
        0
    );
}
