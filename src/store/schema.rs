//! The queue database schema and its forward migrations (`PRAGMA user_version`).
//!
//! Each entry of [`MIGRATIONS`] takes the schema from version `i` to `i + 1`; a database
//! written by a newer edgehook (higher version than we know) is refused, never downgraded.

use anyhow::Context;
use rusqlite::Connection;

/// Migration `i` upgrades `user_version` `i` → `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 → 1: events, their per-endpoint deliveries, held endpoints, and the dedupe window.
    // `deliveries.next_at` is the insert time for new rows and the retry time after a
    // failure, so (next_at, seq) order is "oldest due first" and keyset-pageable.
    "CREATE TABLE events (
        seq         INTEGER PRIMARY KEY,
        id          TEXT    NOT NULL,
        type        TEXT    NOT NULL,
        timestamp   TEXT    NOT NULL,
        data        BLOB    NOT NULL,
        size        INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        peer_uid    INTEGER,
        peer_gid    INTEGER,
        peer_pid    INTEGER
    );
    CREATE TABLE deliveries (
        seq          INTEGER PRIMARY KEY,
        event_seq    INTEGER NOT NULL REFERENCES events(seq),
        endpoint     TEXT    NOT NULL,
        state        INTEGER NOT NULL DEFAULT 0,
        attempts     INTEGER NOT NULL DEFAULT 0,
        next_at      INTEGER NOT NULL DEFAULT 0,
        order_key    TEXT,
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER,
        last_status  INTEGER,
        last_error   TEXT,
        dead_reason  TEXT
    );
    CREATE INDEX deliveries_due ON deliveries(endpoint, state, next_at, seq);
    CREATE INDEX deliveries_event ON deliveries(event_seq);
    CREATE TABLE endpoint_state (
        endpoint    TEXT PRIMARY KEY,
        state       TEXT    NOT NULL,
        since       INTEGER NOT NULL,
        reason      TEXT
    ) WITHOUT ROWID;
    CREATE TABLE dedupe (
        id          TEXT PRIMARY KEY,
        received_at INTEGER NOT NULL
    ) WITHOUT ROWID;",
    // 1 → 2: air-gapped transfer (src/transfer/). A delivery carried off in a bundle keeps
    // its row in state 3 (exported) until a receipt names it; workers fetch state 0 only.
    // `transfer_site` holds this relay's site id (made on first use); `transfer_imported`
    // remembers every (origin site, event id, endpoint) an import queued, so a second
    // import of the same delivery queues nothing.
    "CREATE TABLE transfer_site (
        one         INTEGER PRIMARY KEY CHECK (one = 1),
        site        TEXT    NOT NULL
    );
    CREATE TABLE transfer_imported (
        origin      TEXT    NOT NULL,
        event_id    TEXT    NOT NULL,
        endpoint    TEXT    NOT NULL,
        imported_at INTEGER NOT NULL,
        PRIMARY KEY (origin, event_id, endpoint)
    ) WITHOUT ROWID;",
    // 2 → 3: what the last run knew of its clocks (`clock.rs`): stored times follow
    // elapsed time across wall-clock steps and restarts.
    "CREATE TABLE clock (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        boot_id     TEXT    NOT NULL,
        base_ms     INTEGER NOT NULL,
        queue_ms    INTEGER NOT NULL,
        wall_ms     INTEGER NOT NULL
    );",
    // 3 → 4: an event's deliveries are numbered `event_seq << 16` + 0, 1, 2, … (see
    // [`delivery_seq`]), so "the deliveries of an event" is a rowid range of `deliveries`
    // and the `deliveries_event` index goes: one B-tree fewer written by every ingest
    // commit and every delivered event (flash wear, BENCHMARKS.md). Existing rows are
    // renumbered so, in the order of their old seqs within each event (each endpoint's
    // (next_at, seq) order is kept: an event's seq grows with its deliveries' seqs).
    // Exported rows remember their old seq (`transfer_renumbered`): a receipt for a
    // bundle written before the upgrade names those. No `REFERENCES events(seq)`: the
    // bundled SQLite enforces foreign keys, and deleting an event would then look for
    // its children by `event_seq`, which no index serves any more (a scan of every
    // delivery per delivered event); the writer keeps events and deliveries together.
    "CREATE TABLE deliveries_v4 (
        seq          INTEGER PRIMARY KEY CHECK (seq >> 16 = event_seq),
        event_seq    INTEGER NOT NULL,
        endpoint     TEXT    NOT NULL,
        state        INTEGER NOT NULL DEFAULT 0,
        attempts     INTEGER NOT NULL DEFAULT 0,
        next_at      INTEGER NOT NULL DEFAULT 0,
        order_key    TEXT,
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER,
        last_status  INTEGER,
        last_error   TEXT,
        dead_reason  TEXT
    );
    CREATE TABLE renumbered AS
      SELECT seq AS old, state,
             (event_seq << 16) + ROW_NUMBER() OVER (PARTITION BY event_seq ORDER BY seq) - 1 AS new
      FROM deliveries;
    INSERT INTO deliveries_v4(seq, event_seq, endpoint, state, attempts, next_at, order_key,
                              created_at, updated_at, last_status, last_error, dead_reason)
      SELECT r.new, d.event_seq, d.endpoint, d.state, d.attempts, d.next_at, d.order_key,
             d.created_at, d.updated_at, d.last_status, d.last_error, d.dead_reason
      FROM deliveries d JOIN renumbered r ON r.old = d.seq;
    CREATE TABLE transfer_renumbered (
        old         INTEGER PRIMARY KEY,
        new         INTEGER NOT NULL
    );
    INSERT INTO transfer_renumbered(old, new) SELECT old, new FROM renumbered WHERE state = 3;
    DROP TABLE renumbered;
    DROP TABLE deliveries;
    ALTER TABLE deliveries_v4 RENAME TO deliveries;
    CREATE INDEX deliveries_due ON deliveries(endpoint, state, next_at, seq);",
];

/// Bits of a delivery's seq that number it within its event: an event has at most
/// 65 536 deliveries (one per endpoint).
const DELIVERY_BITS: u32 = 16;

/// Most deliveries one event can have.
pub const MAX_DELIVERIES_PER_EVENT: usize = 1 << DELIVERY_BITS;

/// The seq of the `i`-th delivery of event `event_seq` (schema 4).
pub fn delivery_seq(event_seq: i64, i: usize) -> i64 {
    (event_seq << DELIVERY_BITS) + i as i64
}

/// The event a delivery belongs to.
pub fn event_of(delivery_seq: i64) -> i64 {
    delivery_seq >> DELIVERY_BITS
}

/// The first and last seq the deliveries of event `event_seq` can have.
pub fn deliveries_of(event_seq: i64) -> (i64, i64) {
    (
        delivery_seq(event_seq, 0),
        delivery_seq(event_seq, MAX_DELIVERIES_PER_EVENT - 1),
    )
}

/// Delivery states stored in `deliveries.state`.
pub const STATE_PENDING: i64 = 0;
pub const STATE_DEAD: i64 = 1;
pub const STATE_DELIVERED: i64 = 2;
/// Pending, but carried off in a transfer bundle: not sent from here until a receipt
/// removes it (or a new export carries it again).
pub const STATE_EXPORTED: i64 = 3;

/// The schema version this build writes.
pub fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Bring `conn` up to [`current_version`], one transaction per step.
pub fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > current_version() {
        anyhow::bail!(
            "it has schema version {version}, written by a newer edgehook (this one knows up to {}); \
             upgrade edgehook or restore the older database",
            current_version()
        );
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .and_then(|()| tx.pragma_update(None, "user_version", from as i64 + 1))
            .and_then(|()| tx.commit())
            .with_context(|| format!("migrating schema {from} → {}", from + 1))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_fresh_database_and_is_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, current_version());
        conn.execute("SELECT seq FROM deliveries", []).ok();
    }

    #[test]
    fn refuses_newer_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        let err = migrate(&mut conn).unwrap_err().to_string();
        assert!(err.contains("newer edgehook"), "{err}");
    }

    /// A schema-3 queue with a backlog, as an older edgehook left it.
    fn schema_3_with_backlog() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.execute_batch(
            "INSERT INTO events(seq, id, type, timestamp, data, size, received_at) VALUES
               (1, 'a', 'T', 't', x'7b7d', 10, 0), (2, 'b', 'T', 't', x'7b7d', 10, 0),
               (3, 'c', 'T', 't', x'7b7d', 10, 0);
             INSERT INTO deliveries(seq, event_seq, endpoint, state, created_at, next_at) VALUES
               (10, 1, 'x', 0, 0, 5), (11, 1, 'y', 3, 0, 5), (12, 2, 'x', 0, 0, 5),
               (13, 2, 'y', 1, 0, 5), (14, 3, 'x', 0, 0, 6);",
        )
        .unwrap();
        conn
    }

    #[test]
    fn schema_4_numbers_deliveries_within_their_event() {
        let mut conn = schema_3_with_backlog();
        migrate(&mut conn).unwrap();
        let rows: Vec<(i64, i64, String, i64)> = conn
            .prepare("SELECT seq, event_seq, endpoint, state FROM deliveries ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let row = |seq, event, endpoint: &str, state| (seq, event, endpoint.to_string(), state);
        assert_eq!(
            rows,
            [
                row(delivery_seq(1, 0), 1, "x", 0),
                row(delivery_seq(1, 1), 1, "y", 3),
                row(delivery_seq(2, 0), 2, "x", 0),
                row(delivery_seq(2, 1), 2, "y", 1),
                row(delivery_seq(3, 0), 3, "x", 0),
            ]
        );
        // Each endpoint's due order is the same as before.
        let due: Vec<i64> = conn
            .prepare("SELECT event_seq FROM deliveries WHERE endpoint = 'x' AND state = 0 ORDER BY next_at, seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(due, [1, 2, 3]);
        let renumbered: (i64, i64) = conn
            .query_row("SELECT old, new FROM transfer_renumbered", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(
            renumbered,
            (11, delivery_seq(1, 1)),
            "only the exported row"
        );
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'deliveries' AND sql IS NOT NULL")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(indexes, ["deliveries_due"]);
        // A foreign key would make every event delete scan the deliveries.
        let foreign_keys: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_foreign_key_list('deliveries')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(foreign_keys, 0);
    }

    #[test]
    fn a_delivery_outside_its_events_range_is_refused() {
        let mut conn = schema_3_with_backlog();
        migrate(&mut conn).unwrap();
        // Without an explicit seq SQLite would pick one in event 3's range.
        let err = conn
            .execute(
                "INSERT INTO deliveries(event_seq, endpoint, created_at) VALUES (1, 'z', 0)",
                [],
            )
            .unwrap_err();
        assert!(err.to_string().contains("CHECK"), "{err}");
        let (lo, hi) = deliveries_of(2);
        assert_eq!((lo, hi), (delivery_seq(2, 0), delivery_seq(3, 0) - 1));
    }
}
