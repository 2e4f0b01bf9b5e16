//! What operators ask of the queue (`edgehook status`, `endpoints`, `dead …`, metrics):
//! per-endpoint counts, dead-letter listings, and the writer-side retry and purge.
//!
//! Reads run on the store's second reader connection (`Store::read_admin`), so a status
//! call on a big backlog never delays a delivery worker's page fetch. Every query here is
//! driven by the `deliveries_due (endpoint, state, …)` index: counts scan that index only,
//! and dead-letter queries are made per endpoint so they touch dead rows only.

use rusqlite::{params, Connection, OptionalExtension};

use super::deliveries::remove_event_if_unused;
use super::schema::{STATE_DEAD, STATE_EXPORTED, STATE_PENDING};

/// One endpoint's queue, as status and metrics show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointCounts {
    pub endpoint: String,
    /// Not yet delivered, including `exported`.
    pub pending: u64,
    /// Pending, carried off in a transfer bundle, awaiting a receipt (not sent from here).
    pub exported: u64,
    pub dead: u64,
    /// `created_at` (unix ms) of the oldest pending delivery.
    pub oldest_pending_at: Option<i64>,
}

/// A dead letter: the delivery of one event to one endpoint, given up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub event_id: String,
    pub event_type: String,
    pub endpoint: String,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub dead_reason: Option<String>,
    /// When it died (unix ms).
    pub updated_at: Option<i64>,
    /// When the event was queued (unix ms).
    pub created_at: i64,
}

/// Which dead letters an operator means: all, one endpoint's, and/or some event ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadFilter {
    pub endpoint: Option<String>,
    /// Event ids; empty means every event.
    pub ids: Vec<String>,
}

/// Pending (of them exported) and dead counts per endpoint that has any, sorted by name.
pub fn counts(conn: &Connection) -> rusqlite::Result<Vec<EndpointCounts>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT endpoint, state, COUNT(*), MIN(seq) FROM deliveries
         WHERE state IN ({STATE_PENDING}, {STATE_EXPORTED}, {STATE_DEAD})
         GROUP BY endpoint, state ORDER BY endpoint"
    ))?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    let mut out: Vec<EndpointCounts> = Vec::new();
    // Lowest pending or exported seq of the endpoint being filled in.
    let mut oldest: Option<i64> = None;
    for row in rows {
        let (endpoint, state, n, min_seq) = row?;
        if out.last().is_none_or(|c| c.endpoint != endpoint) {
            oldest = None;
            out.push(EndpointCounts {
                endpoint,
                ..Default::default()
            });
        }
        let c = out.last_mut().expect("pushed above");
        if state == STATE_DEAD {
            c.dead = n as u64;
            continue;
        }
        c.pending += n as u64;
        if state == STATE_EXPORTED {
            c.exported = n as u64;
        }
        if oldest.is_none_or(|o| min_seq < o) {
            oldest = Some(min_seq);
            // seq grows with insertion, so the lowest pending seq is the oldest one
            // (retried dead letters keep their seq and created_at).
            c.oldest_pending_at = conn
                .prepare_cached("SELECT created_at FROM deliveries WHERE seq = ?1")?
                .query_row([min_seq], |r| r.get(0))
                .optional()?;
        }
    }
    Ok(out)
}

/// The endpoints `filter` covers: its endpoint, or every endpoint with dead letters.
fn dead_endpoints(conn: &Connection, filter: &DeadFilter) -> rusqlite::Result<Vec<String>> {
    Ok(match &filter.endpoint {
        Some(e) => vec![e.clone()],
        None => counts(conn)?
            .into_iter()
            .filter(|c| c.dead > 0)
            .map(|c| c.endpoint)
            .collect(),
    })
}

/// `ids` as the JSON array `json_each` reads, or NULL for "any id".
fn ids_param(filter: &DeadFilter) -> Option<String> {
    (!filter.ids.is_empty()).then(|| serde_json::to_string(&filter.ids).unwrap_or_default())
}

// DEAD_WHERE spells the dead state as a literal.
const _: () = assert!(STATE_DEAD == 1);
const DEAD_WHERE: &str = "d.endpoint = ?1 AND d.state = 1
    AND (?2 IS NULL OR e.id IN (SELECT value FROM json_each(?2)))";

/// Up to `limit` dead letters matching `filter`, oldest first, and how many match in all.
pub fn dead_letters(
    conn: &Connection,
    filter: &DeadFilter,
    limit: usize,
) -> rusqlite::Result<(Vec<DeadLetter>, u64)> {
    let ids = ids_param(filter);
    let mut all = Vec::new();
    let mut total = 0u64;
    for endpoint in dead_endpoints(conn, filter)? {
        let n: i64 = conn
            .prepare_cached(&format!(
                "SELECT COUNT(*) FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE {DEAD_WHERE}"
            ))?
            .query_row(params![endpoint, ids], |r| r.get(0))?;
        total += n as u64;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT d.seq, e.id, e.type, d.endpoint, d.attempts, d.last_status, d.last_error,
                    d.dead_reason, d.updated_at, d.created_at
             FROM deliveries d JOIN events e ON e.seq = d.event_seq
             WHERE {DEAD_WHERE} ORDER BY d.seq LIMIT ?3"
        ))?;
        let rows = stmt.query_map(params![endpoint, ids, limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                DeadLetter {
                    event_id: r.get(1)?,
                    event_type: r.get(2)?,
                    endpoint: r.get(3)?,
                    attempts: r.get(4)?,
                    last_status: r.get(5)?,
                    last_error: r.get(6)?,
                    dead_reason: r.get(7)?,
                    updated_at: r.get(8)?,
                    created_at: r.get(9)?,
                },
            ))
        })?;
        for row in rows {
            all.push(row?);
        }
    }
    all.sort_by_key(|(seq, _)| *seq);
    all.truncate(limit);
    Ok((all.into_iter().map(|(_, d)| d).collect(), total))
}

/// The delivery rows (seq) of every dead letter matching `filter`, for retry and purge.
pub fn dead_seqs(conn: &Connection, filter: &DeadFilter) -> rusqlite::Result<Vec<i64>> {
    let ids = ids_param(filter);
    let mut seqs = Vec::new();
    for endpoint in dead_endpoints(conn, filter)? {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT d.seq FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE {DEAD_WHERE}"
        ))?;
        for seq in stmt.query_map(params![endpoint, ids], |r| r.get(0))? {
            seqs.push(seq?);
        }
    }
    Ok(seqs)
}

/// Persisted holds (`paused`, `gone`) by endpoint.
pub fn holds(conn: &Connection) -> rusqlite::Result<Vec<(String, super::Hold)>> {
    conn.prepare_cached("SELECT endpoint, state FROM endpoint_state ORDER BY endpoint")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// Writer side: queue the dead deliveries `seqs` again as if new — pending, attempts 0,
/// due at `next_at` (the writer's monotonic insert time, so they sort after older rows).
/// Rows no longer dead (a race with another operator) are skipped. Returns how many.
pub(super) fn retry(conn: &Connection, seqs: &[i64], next_at: i64) -> rusqlite::Result<u64> {
    let now = super::now_ms();
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE deliveries SET state = {STATE_PENDING}, attempts = 0, next_at = ?2,
           dead_reason = NULL, updated_at = ?3
         WHERE seq = ?1 AND state = {STATE_DEAD}"
    ))?;
    let mut n = 0;
    for seq in seqs {
        n += stmt.execute(params![seq, next_at, now])? as u64;
    }
    Ok(n)
}

/// Writer side: delete the dead deliveries `seqs`, and each event no delivery refers to
/// any more. Returns (deliveries removed, event bytes freed).
pub(super) fn purge(conn: &Connection, seqs: &[i64]) -> rusqlite::Result<(u64, u64)> {
    let (mut n, mut freed) = (0, 0);
    for seq in seqs {
        let event_seq: Option<i64> = conn
            .prepare_cached(&format!(
                "DELETE FROM deliveries WHERE seq = ?1 AND state = {STATE_DEAD} RETURNING event_seq"
            ))?
            .query_row([seq], |r| r.get(0))
            .optional()?;
        if let Some(event_seq) = event_seq {
            n += 1;
            freed += remove_event_if_unused(conn, event_seq)?;
        }
    }
    Ok((n, freed))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::store::schema::delivery_seq;

    /// A migrated in-memory queue (also for `purge.rs`'s tests).
    pub(in crate::store) fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        conn
    }

    /// An event `id` of `size` bytes with one delivery per `(endpoint, state)`.
    pub(in crate::store) fn add(
        conn: &Connection,
        id: &str,
        size: i64,
        deliveries: &[(&str, i64)],
    ) {
        conn.execute(
            "INSERT INTO events(id, type, timestamp, data, size, received_at) VALUES (?1, 'T', 't', x'7b7d', ?2, 0)",
            params![id, size],
        )
        .unwrap();
        let seq = conn.last_insert_rowid();
        for (i, (endpoint, state)) in deliveries.iter().enumerate() {
            let created = conn
                .query_row("SELECT COUNT(*) FROM deliveries", [], |r| {
                    r.get::<_, i64>(0)
                })
                .unwrap()
                * 1000;
            conn.execute(
                "INSERT INTO deliveries(seq, event_seq, endpoint, state, created_at, next_at, attempts, dead_reason)
                 VALUES (?5, ?1, ?2, ?3, ?4, ?4, 3, CASE WHEN ?3 = 1 THEN 'permanent status 400' END)",
                params![seq, endpoint, state, 1000 + created, delivery_seq(seq, i)],
            )
            .unwrap();
        }
    }

    #[test]
    fn counts_pending_dead_and_oldest_per_endpoint() {
        let conn = db();
        add(&conn, "a", 10, &[("spark", 0), ("flows", 1)]);
        add(&conn, "b", 10, &[("spark", 0), ("flows", 0)]);
        add(&conn, "c", 10, &[("spark", 2)]);
        add(&conn, "d", 10, &[("flows", 3)]);
        let c = counts(&conn).unwrap();
        assert_eq!(
            c,
            vec![
                EndpointCounts {
                    endpoint: "flows".into(),
                    pending: 2,
                    exported: 1,
                    dead: 1,
                    oldest_pending_at: Some(4000),
                },
                EndpointCounts {
                    endpoint: "spark".into(),
                    pending: 2,
                    exported: 0,
                    dead: 0,
                    oldest_pending_at: Some(1000),
                },
            ]
        );
    }

    #[test]
    fn lists_and_filters_dead_letters() {
        let conn = db();
        add(&conn, "a", 10, &[("spark", 1), ("flows", 1)]);
        add(&conn, "b", 10, &[("spark", 1)]);
        add(&conn, "c", 10, &[("spark", 0)]);
        let (all, total) = dead_letters(&conn, &DeadFilter::default(), 100).unwrap();
        assert_eq!(total, 3);
        let ids: Vec<_> = all
            .iter()
            .map(|d| (d.event_id.as_str(), d.endpoint.as_str()))
            .collect();
        assert_eq!(ids, [("a", "spark"), ("a", "flows"), ("b", "spark")]);
        assert_eq!(all[0].dead_reason.as_deref(), Some("permanent status 400"));

        let spark = DeadFilter {
            endpoint: Some("spark".into()),
            ids: vec![],
        };
        let (_, total) = dead_letters(&conn, &spark, 100).unwrap();
        assert_eq!(total, 2);
        let b = DeadFilter {
            endpoint: None,
            ids: vec!["b".into(), "zzz".into()],
        };
        let (rows, total) = dead_letters(&conn, &b, 100).unwrap();
        assert_eq!((rows.len(), total), (1, 1));
        let (rows, total) = dead_letters(&conn, &DeadFilter::default(), 1).unwrap();
        assert_eq!((rows.len(), total), (1, 3));
        assert_eq!(dead_seqs(&conn, &b).unwrap().len(), 1);
    }

    #[test]
    fn retry_requeues_and_purge_frees_unused_events() {
        let conn = db();
        add(&conn, "a", 10, &[("spark", 1), ("flows", 1)]);
        add(&conn, "b", 20, &[("spark", 1)]);
        let spark = DeadFilter {
            endpoint: Some("spark".into()),
            ids: vec!["a".into()],
        };
        let seqs = dead_seqs(&conn, &spark).unwrap();
        assert_eq!(retry(&conn, &seqs, 99_000).unwrap(), 1);
        assert_eq!(retry(&conn, &seqs, 99_000).unwrap(), 0, "no longer dead");
        let (state, attempts, next_at, reason): (i64, i64, i64, Option<String>) = conn
            .query_row(
                "SELECT state, attempts, next_at, dead_reason FROM deliveries WHERE seq = ?1",
                [seqs[0]],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!((state, attempts, next_at, reason), (0, 0, 99_000, None));

        // Purging every dead letter: "a" still has its pending spark delivery, "b" goes.
        let seqs = dead_seqs(&conn, &DeadFilter::default()).unwrap();
        assert_eq!(purge(&conn, &seqs).unwrap(), (2, 20));
        let events: Vec<String> = conn
            .prepare("SELECT id FROM events")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(events, ["a"]);
    }
}
