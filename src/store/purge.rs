//! `edgehook purge --endpoint NAME` on the writer's side (SPEC §12): delete every delivery
//! of one endpoint that is not delivered (pending, dead, exported), and each event that no
//! delivery refers to any more, so its bytes stop counting against `queue.max_bytes`.
//! Delivered rows kept by `keep_delivered` stay; housekeeping removes them.

use rusqlite::Connection;

use super::deliveries::remove_event_if_unused;
use super::STATE_DELIVERED;

/// Delete `endpoint`'s undelivered deliveries. Returns (deliveries removed, event bytes
/// freed).
pub(super) fn endpoint(conn: &Connection, endpoint: &str) -> rusqlite::Result<(u64, u64)> {
    let event_seqs: Vec<i64> = conn
        .prepare_cached(&format!(
            "DELETE FROM deliveries WHERE endpoint = ?1 AND state != {STATE_DELIVERED} RETURNING event_seq"
        ))?
        .query_map([endpoint], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut freed = 0;
    for seq in &event_seqs {
        freed += remove_event_if_unused(conn, *seq)?;
    }
    Ok((event_seqs.len() as u64, freed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::admin::tests::{add, db};
    use crate::store::{STATE_DEAD, STATE_PENDING};

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn purging_an_endpoint_frees_events_only_it_needed() {
        let conn = db();
        add(&conn, "only-old", 10, &[("old", STATE_PENDING)]);
        add(&conn, "old-dead", 20, &[("old", STATE_DEAD)]);
        add(
            &conn,
            "shared",
            40,
            &[("old", STATE_PENDING), ("keep", STATE_PENDING)],
        );
        add(&conn, "delivered", 80, &[("old", STATE_DELIVERED)]);
        assert_eq!(endpoint(&conn, "old").unwrap(), (3, 30));
        assert_eq!(
            count(
                &conn,
                "SELECT COUNT(*) FROM deliveries WHERE endpoint = 'old'"
            ),
            1
        );
        assert_eq!(
            count(
                &conn,
                "SELECT COUNT(*) FROM deliveries WHERE endpoint = 'keep'"
            ),
            1
        );
        assert_eq!(
            count(&conn, "SELECT COUNT(*) FROM events"),
            2,
            "shared and delivered stay"
        );
        assert_eq!(
            endpoint(&conn, "old").unwrap(),
            (0, 0),
            "nothing left to purge"
        );
    }
}
