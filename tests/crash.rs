//! Crash safety (SPEC §5, §6): a daemon SIGKILLed under concurrent load loses no event it
//! answered 202, and stores none twice.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::{Rng, SeedableRng};

use crate::util::{client, event, TestDaemon};

const CLIENTS: usize = 8;

#[test]
fn sigkill_under_load_loses_no_accepted_event() {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Kill after this many 202s in total: a random moment in the middle of the load.
    let kill_after: usize = rng.random_range(20..300);
    eprintln!("crash test: seed {seed}, SIGKILL after {kill_after} accepted events");

    let mut d = TestDaemon::start();
    let (acked_tx, acked_rx) = mpsc::channel::<()>();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let socket = d.socket().to_path_buf();
            let acked_tx = acked_tx.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                client::post_until_killed(
                    &socket,
                    &format!("crash-{c}"),
                    |n| format!(r#"{{"c":{c},"n":{n}}}"#),
                    |id| {
                        acked.push(id);
                        let _ = acked_tx.send(());
                        true
                    },
                );
                acked
            })
        })
        .collect();
    drop(acked_tx);
    for _ in 0..kill_after {
        acked_rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|e| {
                panic!(
                    "clients stalled before the kill ({e}); stderr:\n{}",
                    d.log()
                )
            });
    }
    d.kill9();
    let acked: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert!(acked.len() >= kill_after);

    d.restart();
    let db = d.db();
    let mut stmt = db
        .prepare("SELECT id, COUNT(*) FROM events WHERE id LIKE 'crash-%' GROUP BY id")
        .unwrap();
    let stored: HashMap<String, i64> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|id| !stored.contains_key(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "seed {seed}: {} accepted events lost: {lost:?}",
        lost.len()
    );
    let doubled: Vec<_> = stored.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        doubled.is_empty(),
        "seed {seed}: stored more than once: {doubled:?}"
    );
    // Every stored event (acked or not) still has both its deliveries.
    let orphans = d.query_i64(
        "SELECT COUNT(*) FROM events e WHERE e.id LIKE 'crash-%'
         AND (SELECT COUNT(*) FROM deliveries d WHERE d.event_seq = e.seq) != 2",
        [],
    );
    assert_eq!(orphans, 0, "seed {seed}: events without their deliveries");
    assert_eq!(
        d.post_event(&event("Test.crash", "after-restart", "{}"))
            .status,
        202
    );
}
