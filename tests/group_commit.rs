//! Group commit is real (SPEC §2, §6): with `durability = "full"`, many concurrent clients
//! share fsyncs instead of paying one each.
//!
//! Counted from outside: the daemon runs under `strace -f -c`, which also makes every
//! fsync take [`FSYNC_DELAY_US`] longer, like the SD card or eMMC of an edge box. On a fast
//! disk fsync is so cheap that grouping depends on CPU scheduling; with a slow one, the
//! clients that arrive during a commit must share the next one, so the count is stable
//! (about 70 for 1280 events here, against 1280+ without grouping). Skipped with a note
//! where strace is not installed.

use std::path::Path;
use std::sync::{Arc, Barrier};

use crate::util::{client, event, tools, Builder, ENDPOINTS};

const CLIENTS: usize = 64;
const EVENTS_PER_CLIENT: usize = 20;
/// Injected per-fsync latency in microseconds: a slow flash disk.
const FSYNC_DELAY_US: u32 = 5000;

/// Total `calls` of the fsync-family rows in a `strace -c` summary.
fn fsync_calls(summary: &str) -> u64 {
    summary
        .lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            match cols.last() {
                Some(&"fsync" | &"fdatasync") => cols.get(3)?.parse::<u64>().ok(),
                _ => None,
            }
        })
        .sum()
}

#[test]
fn concurrent_clients_share_fsyncs() {
    let Some(strace) = tools::strace("the group-commit fsync count") else {
        return;
    };
    let b = Builder::new()
        .toml("[queue]\ndurability = \"full\"")
        .toml(ENDPOINTS);
    let summary_path = b.dir().join("strace.txt");
    let inject = format!("inject=fsync,fdatasync:delay_exit={FSYNC_DELAY_US}");
    let mut d = b
        .wrap(&[
            strace.to_str().unwrap(),
            "-f",
            "-c",
            "-e",
            "trace=fsync,fdatasync",
            "-e",
            &inject,
            "-o",
            summary_path.to_str().unwrap(),
        ])
        .start();

    let start = Arc::new(Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let socket = d.socket().to_path_buf();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                for n in 0..EVENTS_PER_CLIENT {
                    post(&socket, &format!("gc-{c}-{n}"));
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let events = (CLIENTS * EVENTS_PER_CLIENT) as u64;
    let stored = d.query_i64("SELECT COUNT(*) FROM events WHERE id LIKE 'gc-%'", []);
    assert_eq!(stored as u64, events);
    d.stop();

    let summary = std::fs::read_to_string(&summary_path).unwrap();
    let fsyncs = fsync_calls(&summary);
    eprintln!("group commit: {events} events from {CLIENTS} clients, {fsyncs} fsyncs");
    assert!(
        fsyncs > 0,
        "strace counted no fsync at all; durability=full syncs each commit:\n{summary}"
    );
    assert!(
        fsyncs < events / 4,
        "{fsyncs} fsyncs for {events} events: commits are not grouped\n{summary}"
    );
}

fn post(socket: &Path, id: &str) {
    let body = event("Test.gc", id, "{}");
    let r = client::request(
        socket,
        "POST",
        "/v1/events",
        Some("application/json"),
        body.as_bytes(),
    )
    .unwrap_or_else(|e| panic!("{id}: {e}"));
    assert_eq!(r.status, 202, "{id}: {r:?}");
}
