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
];

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
}
