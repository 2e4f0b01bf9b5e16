//! The queue's side of air-gapped transfer (`src/transfer/`): pages of deliveries read
//! and marked exported, imported deliveries queued at most once, receipts applied.
//!
//! Every [`Op`] runs on the writer thread (`Store::transfer`), inside its group commit, so
//! what a bundle holds is exactly what was marked exported, and the daemon keeps accepting
//! events between pages. An exported delivery keeps its row in state
//! [`STATE_EXPORTED`]: the delivery workers fetch state pending only, so they do not send
//! it, and status counts it as pending and exported.

use rusqlite::{params, Connection, OptionalExtension};

use super::deliveries::remove_event_if_unused;
use super::now_ms;
use super::schema::{delivery_seq, STATE_EXPORTED, STATE_PENDING};
use crate::event::stored_size;

/// A transfer step for the writer.
#[derive(Debug)]
pub enum Op {
    /// This relay's site id, made (a ULID) on first use.
    Site,
    /// Up to `limit` pending or already exported deliveries of `endpoints` with
    /// `after < seq <= upto`, in seq order; each is marked exported.
    Export {
        endpoints: Vec<String>,
        after: i64,
        upto: i64,
        limit: usize,
    },
    /// Queue these deliveries from the site `origin`, each (origin, event id, endpoint)
    /// at most once ever. Stops early (`full`) at the first one `queue.max_bytes` has no
    /// room for.
    Import {
        origin: String,
        deliveries: Vec<Incoming>,
    },
    /// Remove the deliveries a receipt names (seq, endpoint and event id must all match).
    Receipt { entries: Vec<Receipted> },
}

/// What an [`Op`] did.
#[derive(Debug, PartialEq)]
pub enum Done {
    Site(String),
    Exported(Vec<Outgoing>),
    Imported {
        queued: u64,
        /// Already queued by an earlier import.
        already: u64,
        /// Stopped early: the queue had no room for the next delivery.
        full: bool,
    },
    Removed {
        removed: u64,
        /// Named by the receipt but no longer here (an earlier apply of it, or purged).
        missing: u64,
    },
}

/// A delivery read for a bundle, with its event.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub seq: i64,
    pub endpoint: String,
    pub event_id: String,
    pub event_type: String,
    pub timestamp: String,
    pub data: Vec<u8>,
    pub attempts: u32,
    pub created_at: i64,
}

/// A delivery from a bundle, to queue here.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub endpoint: String,
    pub event_id: String,
    pub event_type: String,
    pub timestamp: String,
    pub data: Vec<u8>,
    pub attempts: u32,
    /// The importing endpoint's `order_key` value for this event, if it has one.
    pub order_key: Option<String>,
}

/// A delivery a receipt names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipted {
    pub seq: i64,
    pub endpoint: String,
    pub event_id: String,
}

/// [`Done`] plus the queue bytes it added and freed, for the writer's accounting.
pub(super) struct Applied {
    pub done: Done,
    pub added: u64,
    pub freed: u64,
}

/// Run `op`. `next_at` is the writer's monotonic insert time (imported rows are due now and
/// sort after older ones); `room` the bytes `queue.max_bytes` still allows.
pub(super) fn apply(
    conn: &Connection,
    op: Op,
    next_at: i64,
    room: u64,
    next_seq: &mut i64,
) -> rusqlite::Result<Applied> {
    let (done, added, freed) = match op {
        Op::Site => (Done::Site(site(conn)?), 0, 0),
        Op::Export {
            endpoints,
            after,
            upto,
            limit,
        } => (
            Done::Exported(export(conn, &endpoints, after, upto, limit)?),
            0,
            0,
        ),
        Op::Import { origin, deliveries } => {
            let (done, added) = import(conn, &origin, &deliveries, next_at, room, next_seq)?;
            (done, added, 0)
        }
        Op::Receipt { entries } => {
            let (done, freed) = receipt(conn, &entries)?;
            (done, 0, freed)
        }
    };
    Ok(Applied { done, added, freed })
}

fn site(conn: &Connection) -> rusqlite::Result<String> {
    conn.prepare_cached("INSERT OR IGNORE INTO transfer_site(one, site) VALUES (1, ?1)")?
        .execute([format!("site_{}", ulid::Ulid::new())])?;
    conn.prepare_cached("SELECT site FROM transfer_site WHERE one = 1")?
        .query_row([], |r| r.get(0))
}

fn export(
    conn: &Connection,
    endpoints: &[String],
    after: i64,
    upto: i64,
    limit: usize,
) -> rusqlite::Result<Vec<Outgoing>> {
    let names = serde_json::to_string(endpoints).unwrap_or_default();
    // `+d.endpoint`: walk the rowid range in seq order, not the endpoint index.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT d.seq, d.endpoint, e.id, e.type, e.timestamp, e.data, d.attempts, d.created_at
         FROM deliveries d JOIN events e ON e.seq = d.event_seq
         WHERE d.seq > ?1 AND d.seq <= ?2 AND d.state IN ({STATE_PENDING}, {STATE_EXPORTED})
           AND +d.endpoint IN (SELECT value FROM json_each(?3))
         ORDER BY d.seq LIMIT ?4"
    ))?;
    let rows: Vec<Outgoing> = stmt
        .query_map(params![after, upto, names, limit as i64], |r| {
            Ok(Outgoing {
                seq: r.get(0)?,
                endpoint: r.get(1)?,
                event_id: r.get(2)?,
                event_type: r.get(3)?,
                timestamp: r.get(4)?,
                data: r.get(5)?,
                attempts: r.get(6)?,
                created_at: r.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut mark = conn.prepare_cached(&format!(
        "UPDATE deliveries SET state = {STATE_EXPORTED} WHERE seq = ?1 AND state = {STATE_PENDING}"
    ))?;
    for row in &rows {
        mark.execute([row.seq])?;
    }
    Ok(rows)
}

fn import(
    conn: &Connection,
    origin: &str,
    deliveries: &[Incoming],
    next_at: i64,
    room: u64,
    next_seq: &mut i64,
) -> rusqlite::Result<(Done, u64)> {
    let now = now_ms();
    let (mut queued, mut already, mut added) = (0, 0, 0u64);
    for d in deliveries {
        let seen: bool = conn
            .prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM transfer_imported WHERE origin = ?1 AND event_id = ?2 AND endpoint = ?3)",
            )?
            .query_row(params![origin, d.event_id, d.endpoint], |r| r.get(0))?;
        if seen {
            already += 1;
            continue;
        }
        let size = stored_size(&d.event_id, &d.event_type, &d.timestamp, d.data.len());
        if added + size > room {
            let done = Done::Imported {
                queued,
                already,
                full: true,
            };
            return Ok((done, added));
        }
        conn.prepare_cached(
            "INSERT INTO transfer_imported(origin, event_id, endpoint, imported_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![origin, d.event_id, d.endpoint, now])?;
        conn.prepare_cached(
            "INSERT INTO events(seq, id, type, timestamp, data, size, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            *next_seq,
            d.event_id,
            d.event_type,
            d.timestamp,
            d.data,
            size as i64,
            now
        ])?;
        let event_seq = *next_seq;
        *next_seq += 1;
        conn.prepare_cached(
            "INSERT INTO deliveries(seq, event_seq, endpoint, attempts, order_key, created_at, next_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            delivery_seq(event_seq, 0),
            event_seq,
            d.endpoint,
            d.attempts,
            d.order_key,
            now,
            next_at
        ])?;
        queued += 1;
        added += size;
    }
    let done = Done::Imported {
        queued,
        already,
        full: false,
    };
    Ok((done, added))
}

fn receipt(conn: &Connection, entries: &[Receipted]) -> rusqlite::Result<(Done, u64)> {
    let (mut removed, mut missing, mut freed) = (0, 0, 0);
    for entry in entries {
        let remove = |seq: i64| {
            conn.prepare_cached(
                "DELETE FROM deliveries WHERE seq = ?1 AND endpoint = ?2
                   AND (SELECT e.id FROM events e WHERE e.seq = deliveries.event_seq) = ?3
                 RETURNING event_seq",
            )?
            .query_row(params![seq, entry.endpoint, entry.event_id], |r| r.get(0))
            .optional()
        };
        let mut event_seq: Option<i64> = remove(entry.seq)?;
        if event_seq.is_none() {
            // A bundle exported before schema 4 names the seq the delivery had then.
            let renumbered: Option<i64> = conn
                .prepare_cached("DELETE FROM transfer_renumbered WHERE old = ?1 RETURNING new")?
                .query_row([entry.seq], |r| r.get(0))
                .optional()?;
            if let Some(seq) = renumbered {
                event_seq = remove(seq)?;
            }
        }
        match event_seq {
            Some(event_seq) => {
                removed += 1;
                freed += remove_event_if_unused(conn, event_seq)?;
            }
            None => missing += 1,
        }
    }
    Ok((Done::Removed { removed, missing }, freed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        conn
    }

    /// Event `id` with one delivery per endpoint, all pending; returns the delivery seqs.
    fn add(conn: &Connection, id: &str, endpoints: &[&str]) -> Vec<i64> {
        conn.execute(
            "INSERT INTO events(id, type, timestamp, data, size, received_at) VALUES (?1, 'T', 'ts', x'7b7d', 10, 0)",
            [id],
        )
        .unwrap();
        let event = conn.last_insert_rowid();
        endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| {
                conn.execute(
                    "INSERT INTO deliveries(seq, event_seq, endpoint, created_at, next_at) VALUES (?1, ?2, ?3, 5, 5)",
                    params![delivery_seq(event, i), event, e],
                )
                .unwrap();
                conn.last_insert_rowid()
            })
            .collect()
    }

    fn state(conn: &Connection, seq: i64) -> Option<i64> {
        conn.query_row("SELECT state FROM deliveries WHERE seq = ?1", [seq], |r| {
            r.get(0)
        })
        .optional()
        .unwrap()
    }

    fn export_all(conn: &Connection, endpoints: &[&str], upto: i64) -> Vec<Outgoing> {
        let endpoints = endpoints.iter().map(|s| s.to_string()).collect();
        match apply(
            conn,
            Op::Export {
                endpoints,
                after: 0,
                upto,
                limit: 100,
            },
            0,
            0,
            &mut 1,
        )
        .unwrap()
        .done
        {
            Done::Exported(rows) => rows,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn site_is_made_once() {
        let conn = db();
        let a = apply(&conn, Op::Site, 0, 0, &mut 1).unwrap().done;
        let b = apply(&conn, Op::Site, 0, 0, &mut 1).unwrap().done;
        assert_eq!(a, b);
        assert!(matches!(a, Done::Site(s) if s.starts_with("site_")));
    }

    #[test]
    fn export_marks_and_carries_again_within_bounds() {
        let conn = db();
        let a = add(&conn, "a", &["spark", "flows"]);
        let b = add(&conn, "b", &["spark"]);
        let c = add(&conn, "c", &["spark"]);
        conn.execute("UPDATE deliveries SET state = 1 WHERE seq = ?1", [b[0]])
            .unwrap();
        let rows = export_all(&conn, &["spark"], a[0].max(c[0]));
        let ids: Vec<_> = rows.iter().map(|r| r.event_id.as_str()).collect();
        assert_eq!(ids, ["a", "c"], "dead letters and other endpoints stay");
        assert_eq!(rows[0].data, b"{}");
        assert_eq!(state(&conn, a[0]), Some(STATE_EXPORTED));
        assert_eq!(state(&conn, a[1]), Some(STATE_PENDING));
        // The delivery workers' query sees no exported row.
        let due = super::super::deliveries::due(&conn, "spark", i64::MAX, (0, 0), 10).unwrap();
        assert!(due.is_empty(), "{due:?}");
        // Unreceipted: the next export carries them again; `upto` bounds it.
        assert_eq!(export_all(&conn, &["spark"], a[0]).len(), 1);
        assert_eq!(export_all(&conn, &["spark"], c[0]).len(), 2);
    }

    fn incoming(id: &str, endpoint: &str) -> Incoming {
        Incoming {
            endpoint: endpoint.into(),
            event_id: id.into(),
            event_type: "T".into(),
            timestamp: "2020-01-01T00:00:00Z".into(),
            data: b"{\"x\":1}".to_vec(),
            attempts: 2,
            order_key: None,
        }
    }

    fn import_op(conn: &Connection, origin: &str, ids: &[&str], room: u64) -> Applied {
        let deliveries = ids.iter().map(|id| incoming(id, "spark")).collect();
        let op = Op::Import {
            origin: origin.into(),
            deliveries,
        };
        let mut next_seq: i64 = conn
            .query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM events", [], |r| {
                r.get(0)
            })
            .unwrap();
        apply(conn, op, 77, room, &mut next_seq).unwrap()
    }

    #[test]
    fn import_queues_each_delivery_once_per_origin() {
        let conn = db();
        let first = import_op(&conn, "site_a", &["e1", "e2"], u64::MAX);
        assert_eq!(
            first.done,
            Done::Imported {
                queued: 2,
                already: 0,
                full: false
            }
        );
        assert_eq!(first.added, 2 * (2 + 1 + 20 + 7 + 64));
        let again = import_op(&conn, "site_a", &["e2", "e3"], u64::MAX).done;
        assert_eq!(
            again,
            Done::Imported {
                queued: 1,
                already: 1,
                full: false
            }
        );
        let other_site = import_op(&conn, "site_b", &["e1"], u64::MAX).done;
        assert!(matches!(other_site, Done::Imported { queued: 1, .. }));
        let due = super::super::deliveries::due(&conn, "spark", 77, (0, 0), 10).unwrap();
        let ids: Vec<_> = due.iter().map(|d| d.event_id.as_str()).collect();
        assert_eq!(ids, ["e1", "e2", "e3", "e1"]);
        assert_eq!(
            (due[0].attempts, due[0].timestamp.as_str()),
            (2, "2020-01-01T00:00:00Z")
        );
    }

    #[test]
    fn import_stops_when_the_queue_is_full() {
        let conn = db();
        let applied = import_op(&conn, "site_a", &["e1", "e2"], 150);
        assert_eq!(
            applied.done,
            Done::Imported {
                queued: 1,
                already: 0,
                full: true
            }
        );
        // The one that did not fit is not remembered: a later import queues it.
        let later = import_op(&conn, "site_a", &["e1", "e2"], u64::MAX).done;
        assert!(matches!(
            later,
            Done::Imported {
                queued: 1,
                already: 1,
                ..
            }
        ));
    }

    #[test]
    fn receipt_removes_exactly_what_it_names() {
        let conn = db();
        let a = add(&conn, "a", &["spark", "flows"]);
        let b = add(&conn, "b", &["spark"]);
        export_all(&conn, &["spark", "flows"], b[0]);
        let entries = vec![
            Receipted {
                seq: a[0],
                endpoint: "spark".into(),
                event_id: "a".into(),
            },
            // Wrong event id for this seq: not removed.
            Receipted {
                seq: b[0],
                endpoint: "spark".into(),
                event_id: "zzz".into(),
            },
        ];
        let applied = apply(&conn, Op::Receipt { entries }, 0, 0, &mut 1).unwrap();
        assert_eq!(
            applied.done,
            Done::Removed {
                removed: 1,
                missing: 1
            }
        );
        assert_eq!(applied.freed, 0, "event a still has its flows delivery");
        assert_eq!(state(&conn, a[0]), None);
        assert_eq!(state(&conn, a[1]), Some(STATE_EXPORTED));
        assert_eq!(state(&conn, b[0]), Some(STATE_EXPORTED));
    }

    #[test]
    fn receipt_for_a_bundle_from_before_schema_4_names_the_old_seq() {
        let conn = db();
        let a = add(&conn, "a", &["spark"]);
        export_all(&conn, &["spark"], a[0]);
        // What the 3 → 4 migration records for an exported row it renumbered.
        conn.execute(
            "INSERT INTO transfer_renumbered(old, new) VALUES (7, ?1)",
            [a[0]],
        )
        .unwrap();
        let entries = vec![Receipted {
            seq: 7,
            endpoint: "spark".into(),
            event_id: "a".into(),
        }];
        let applied = apply(&conn, Op::Receipt { entries }, 0, 0, &mut 1).unwrap();
        assert_eq!(
            applied.done,
            Done::Removed {
                removed: 1,
                missing: 0
            }
        );
        assert_eq!(state(&conn, a[0]), None);
        assert_eq!(applied.freed, 10, "the event went with its last delivery");
    }
}
