//! Damaged files (SPEC §6). A damaged `queue.db` makes `edgehook run` refuse to start,
//! naming the file and how to move it aside, and leaves it exactly as it was. A damaged
//! WAL (the tail of a crash, or garbage after it) is recovered as far as SQLite can: every
//! transaction committed before the first damaged frame is there, nothing after it.

use std::fs;
use std::path::Path;

use crate::util::{event, TestDaemon};

/// The page size of a new queue database (`PAGE_SIZE` in `src/store/mod.rs`).
const PAGE: usize = 1024;

#[test]
fn damaged_queue_db_refuses_to_start_and_is_left_untouched() {
    let mut d = TestDaemon::start();
    let data = format!(r#"{{"pad":"{}"}}"#, "p".repeat(400));
    for i in 0..300 {
        let r = d.post_event(&event("Test.many", &format!("c-{i}"), &data));
        assert_eq!(r.status, 202, "{r:?}");
    }
    d.stop();
    let db = d.state_dir.join("queue.db");
    let pristine = fs::read(&db).unwrap();
    assert!(
        pristine.len() > 40 * PAGE,
        "a database of some pages: {}",
        pristine.len()
    );
    assert!(
        !d.state_dir.join("queue.db-wal").exists(),
        "a clean stop checkpoints the WAL away"
    );

    let garbage = |len: usize| -> Vec<u8> { (0..len).map(|i| (i * 7 + 13) as u8).collect() };
    let mut pages_overwritten = pristine.clone();
    for page in [
        2,
        5,
        9,
        pristine.len() / PAGE / 2,
        pristine.len() / PAGE - 1,
    ] {
        pages_overwritten[page * PAGE..(page + 1) * PAGE].copy_from_slice(&garbage(PAGE));
    }
    let mut header_overwritten = pristine.clone();
    header_overwritten[..100].copy_from_slice(&garbage(100));
    let cases: [(&str, Vec<u8>); 4] = [
        ("truncated to half", pristine[..pristine.len() / 2].to_vec()),
        (
            "truncated mid-page",
            pristine[..pristine.len() - PAGE - 1000].to_vec(),
        ),
        ("pages overwritten", pages_overwritten),
        ("header overwritten", header_overwritten),
    ];
    for (what, damaged) in cases {
        fs::write(&db, &damaged).unwrap();
        let (code, stderr) = d.restart_expecting_exit();
        assert_eq!(code, 1, "{what}: exit status; stderr:\n{stderr}");
        let shown = db.display().to_string();
        assert!(
            stderr.contains(&format!("queue database {shown} is corrupt")),
            "{what}: names the file:\n{stderr}"
        );
        assert!(
            stderr.contains(&format!("mv {shown} {shown}.corrupt")),
            "{what}: says how to move it aside:\n{stderr}"
        );
        assert_eq!(
            fs::read(&db).unwrap(),
            damaged,
            "{what}: the file is left exactly as it was"
        );
        remove_wal(&d.state_dir);
    }

    // Moved aside as the message says, edgehook starts with an empty queue.
    fs::rename(&db, d.state_dir.join("queue.db.corrupt")).unwrap();
    d.restart();
    super::served(&d, "fresh-start");
    assert!(d.state_dir.join("queue.db.corrupt").exists());
}

/// A crash leaves a WAL whose last frames may be torn (power loss mid-write) or followed
/// by garbage. SQLite replays frames up to the last valid commit; the daemon starts with
/// exactly those transactions.
#[test]
fn damaged_wal_recovers_every_commit_before_the_damage() {
    let mut d = TestDaemon::start();
    let wal = d.state_dir.join("queue.db-wal");
    let n = 20;
    // WAL size right after each event's 202: its commit ends at or before this offset.
    let mut ends = Vec::new();
    for i in 0..n {
        let r = d.post_event(&event(
            "Test.wal",
            &format!("w-{i}"),
            &format!(r#"{{"i":{i}}}"#),
        ));
        assert_eq!(r.status, 202, "{r:?}");
        ends.push(fs::metadata(&wal).unwrap().len() as usize);
    }
    d.kill9();
    let db_bytes = fs::read(d.state_dir.join("queue.db")).unwrap();
    let wal_bytes = fs::read(&wal).unwrap();
    assert!(wal_bytes.len() >= ends[n - 1], "nothing was checkpointed");

    // Garbage after the last frame: every event is there.
    let mut garbage = wal_bytes.clone();
    garbage.extend((0..10_000).map(|i| (i * 31 + 7) as u8));
    fs::write(&wal, &garbage).unwrap();
    d.restart();
    let stored = stored_ids(&d);
    let all: Vec<String> = (0..n).map(|i| format!("w-{i}")).collect();
    assert_eq!(stored, all, "garbage after the WAL's end loses nothing");
    super::served(&d, "after-garbage");
    d.kill9();

    // Torn in the middle of event m's commit: events before m are there, m and later not.
    let m = n / 2;
    let cut = ends[m - 1] + (ends[m] - ends[m - 1]) / 2;
    assert!(cut > ends[m - 1] && cut < ends[m]);
    fs::write(d.state_dir.join("queue.db"), &db_bytes).unwrap();
    fs::write(&wal, &wal_bytes[..cut]).unwrap();
    d.restart();
    let stored = stored_ids(&d);
    assert_eq!(
        stored,
        all[..m].to_vec(),
        "every commit before the torn frame is recovered, none after"
    );
    super::served(&d, "after-torn");
}

fn stored_ids(d: &TestDaemon) -> Vec<String> {
    let db = d.db();
    let mut stmt = db
        .prepare("SELECT id FROM events WHERE id LIKE 'w-%' ORDER BY seq")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The WAL and shm a refused start may have created beside the damaged file.
fn remove_wal(state_dir: &Path) {
    for f in ["queue.db-wal", "queue.db-shm"] {
        let _ = fs::remove_file(state_dir.join(f));
    }
}
