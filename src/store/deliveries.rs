//! The delivery side of the queue: reading due deliveries in order (never the whole
//! backlog), and applying delivery outcomes (run by the writer, inside its group commit).

use rusqlite::{params, Connection, OptionalExtension};

use super::schema::{deliveries_of, event_of, STATE_DEAD, STATE_DELIVERED, STATE_PENDING};
use super::{now_ms, Hold};

/// A delivery ready to be attempted, with its event.
#[derive(Debug, Clone)]
pub struct Due {
    pub seq: i64,
    pub next_at: i64,
    pub attempts: u32,
    pub created_at: i64,
    pub order_key: Option<String>,
    pub event_id: String,
    pub event_type: String,
    pub timestamp: String,
    pub data: Vec<u8>,
}

/// The result of one attempt, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// 2xx: the delivery is done.
    Delivered,
    /// Try again at `next_at` (unix ms); `attempts` is the new count.
    Retry {
        attempts: u32,
        next_at: i64,
        status: Option<u16>,
        error: String,
    },
    /// Given up: stays in the queue as a dead letter with its reason.
    Dead {
        attempts: u32,
        status: Option<u16>,
        error: String,
        reason: String,
    },
}

/// An outcome for the delivery `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub seq: i64,
    pub outcome: Outcome,
}

const DUE_COLUMNS: &str =
    "d.seq, d.next_at, d.attempts, d.created_at, d.order_key, e.id, e.type, e.timestamp, e.data";

fn due_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Due> {
    Ok(Due {
        seq: r.get(0)?,
        next_at: r.get(1)?,
        attempts: r.get(2)?,
        created_at: r.get(3)?,
        order_key: r.get(4)?,
        event_id: r.get(5)?,
        event_type: r.get(6)?,
        timestamp: r.get(7)?,
        data: r.get(8)?,
    })
}

/// Up to `limit` pending deliveries of `endpoint` due by `now`, in (next_at, seq) order,
/// strictly after the keyset `after`.
pub fn due(
    conn: &Connection,
    endpoint: &str,
    now: i64,
    after: (i64, i64),
    limit: usize,
) -> rusqlite::Result<Vec<Due>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {DUE_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event_seq
         WHERE d.endpoint = ?1 AND d.state = {STATE_PENDING} AND d.next_at <= ?2
           AND (d.next_at, d.seq) > (?3, ?4)
         ORDER BY d.next_at, d.seq LIMIT ?5"
    ))?;
    let rows = stmt.query_map(
        params![endpoint, now, after.0, after.1, limit as i64],
        due_row,
    )?;
    rows.collect()
}

/// The oldest pending delivery of `endpoint`, due or not (the head an offline probe uses).
pub fn head(conn: &Connection, endpoint: &str) -> rusqlite::Result<Option<Due>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {DUE_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event_seq
         WHERE d.endpoint = ?1 AND d.state = {STATE_PENDING}
         ORDER BY d.next_at, d.seq LIMIT 1"
    ))?;
    stmt.query_row([endpoint], due_row).optional()
}

/// When the next not-yet-due pending delivery of `endpoint` becomes due, if any.
pub fn next_due_after(
    conn: &Connection,
    endpoint: &str,
    now: i64,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(&format!(
        "SELECT next_at FROM deliveries WHERE endpoint = ?1 AND state = {STATE_PENDING} AND next_at > ?2
         ORDER BY next_at LIMIT 1"
    ))?
    .query_row(params![endpoint, now], |r| r.get(0))
    .optional()
}

/// Persisted endpoint hold (`gone` after a 410, `paused` by an operator), if any.
pub fn endpoint_hold(conn: &Connection, endpoint: &str) -> rusqlite::Result<Option<Hold>> {
    conn.prepare_cached("SELECT state FROM endpoint_state WHERE endpoint = ?1")?
        .query_row([endpoint], |r| r.get(0))
        .optional()
}

/// Apply one outcome. Returns the bytes freed (an event removed when no delivery needs it).
pub(super) fn apply(
    conn: &Connection,
    update: &Update,
    keep_delivered: bool,
) -> rusqlite::Result<u64> {
    let now = now_ms();
    match &update.outcome {
        Outcome::Delivered if keep_delivered => {
            conn.prepare_cached(&format!(
                "UPDATE deliveries SET state = {STATE_DELIVERED}, updated_at = ?2 WHERE seq = ?1"
            ))?
            .execute(params![update.seq, now])?;
            Ok(0)
        }
        Outcome::Delivered => {
            let removed = conn
                .prepare_cached("DELETE FROM deliveries WHERE seq = ?1")?
                .execute([update.seq])?;
            if removed == 0 {
                return Ok(0); // purged, dropped or received meanwhile
            }
            remove_event_if_unused(conn, event_of(update.seq))
        }
        Outcome::Retry {
            attempts,
            next_at,
            status,
            error,
        } => {
            conn.prepare_cached(
                "UPDATE deliveries SET attempts = ?2, next_at = ?3, last_status = ?4, last_error = ?5, updated_at = ?6
                 WHERE seq = ?1",
            )?
            .execute(params![update.seq, attempts, next_at, status, error, now])?;
            Ok(0)
        }
        Outcome::Dead {
            attempts,
            status,
            error,
            reason,
        } => {
            conn.prepare_cached(&format!(
                "UPDATE deliveries SET state = {STATE_DEAD}, attempts = ?2, last_status = ?3, last_error = ?4,
                 dead_reason = ?5, updated_at = ?6 WHERE seq = ?1"
            ))?
            .execute(params![update.seq, attempts, status, error, reason, now])?;
            Ok(0)
        }
    }
}

/// Record (`Some(hold)`) or clear (`None`) an endpoint hold.
pub(super) fn set_hold(
    conn: &Connection,
    endpoint: &str,
    hold: Option<Hold>,
) -> rusqlite::Result<()> {
    match hold {
        Some(hold) => conn
            .prepare_cached("INSERT OR REPLACE INTO endpoint_state(endpoint, state, since, reason) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![endpoint, hold, now_ms(), hold.reason()])?,
        None => conn
            .prepare_cached("DELETE FROM endpoint_state WHERE endpoint = ?1")?
            .execute([endpoint])?,
    };
    Ok(())
}

/// Delete the event `seq` if no delivery row refers to it any more; returns bytes freed.
pub(super) fn remove_event_if_unused(conn: &Connection, event_seq: i64) -> rusqlite::Result<u64> {
    // Not `DELETE … RETURNING`: SQLite builds an ephemeral table for RETURNING on every
    // call, 10 % of the writer's instructions in the profile (BENCHMARKS.md).
    let (lo, hi) = deliveries_of(event_seq);
    let unused_size: Option<i64> = conn
        .prepare_cached(
            "SELECT size FROM events WHERE seq = ?1
               AND NOT EXISTS (SELECT 1 FROM deliveries WHERE seq BETWEEN ?2 AND ?3)",
        )?
        .query_row([event_seq, lo, hi], |r| r.get(0))
        .optional()?;
    let Some(size) = unused_size else {
        return Ok(0); // still needed, or already gone
    };
    conn.prepare_cached("DELETE FROM events WHERE seq = ?1")?
        .execute([event_seq])?;
    Ok(size as u64)
}

/// Housekeeping: expire pending deliveries older than `max_age` (ms) to dead letters,
/// and forget delivered rows older than `keep_delivered` (ms). Returns bytes freed.
pub(super) fn expire(
    conn: &Connection,
    max_age: Option<i64>,
    keep_delivered: i64,
) -> rusqlite::Result<u64> {
    let now = now_ms();
    if let Some(max_age) = max_age {
        conn.prepare_cached(&format!(
            "UPDATE deliveries SET state = {STATE_DEAD}, updated_at = ?1,
               dead_reason = 'expired: older than queue.max_age'
             WHERE state = {STATE_PENDING} AND created_at < ?2"
        ))?
        .execute(params![now, now - max_age])?;
    }
    let mut freed = 0;
    let old: Vec<(i64, i64)> = conn
        .prepare_cached(&format!(
            "SELECT seq, event_seq FROM deliveries WHERE state = {STATE_DELIVERED} AND updated_at < ?1"
        ))?
        .query_map([now - keep_delivered], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (seq, event_seq) in old {
        conn.prepare_cached("DELETE FROM deliveries WHERE seq = ?1")?
            .execute([seq])?;
        freed += remove_event_if_unused(conn, event_seq)?;
    }
    Ok(freed)
}
