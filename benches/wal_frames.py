#!/usr/bin/env python3
"""Where one client's flash writes come from: WAL frames per B-tree per commit.

Replays what the writer does for one HTTP client (`BEGIN IMMEDIATE`, `MAX(seq)`, a
savepoint, the event row, its delivery row, optionally the dedupe row, `COMMIT`; one
event per commit, `synchronous = FULL`) on a scratch database with the queue's schema,
then decodes each commit's WAL frames (page number → B-tree, through SQLite's `dbstat`)
and estimates the bytes `/proc/<pid>/io` `write_bytes` counts: every 4 KiB file page a
commit's frames touch (the previous commit's last, partly written WAL page is dirtied
again), plus each checkpoint's distinct database pages (every 1 000 frames, as the
daemon's default `wal_autocheckpoint`). The estimate agrees with the daemon's measured
`write_bytes` within 1 % (BENCHMARKS.md, "Flash wear").

    benches/wal_frames.py [--events 2000] [--page-size 1024 512 4096] [--ids]
        [--schema current|range]

`--schema range` is the candidate without the `deliveries_event` index (an event's
deliveries at seqs `event_seq << 16 + i`, a rowid range), to weigh it before migrating.
"""

import argparse
import collections
import os
import struct
import sqlite3
import tempfile
import time

EVENTS = """
CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, type TEXT NOT NULL,
  timestamp TEXT NOT NULL, data BLOB NOT NULL, size INTEGER NOT NULL,
  received_at INTEGER NOT NULL, peer_uid INTEGER, peer_gid INTEGER, peer_pid INTEGER);
CREATE TABLE deliveries (seq INTEGER PRIMARY KEY, event_seq INTEGER NOT NULL,
  endpoint TEXT NOT NULL, state INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
  next_at INTEGER NOT NULL DEFAULT 0, order_key TEXT, created_at INTEGER NOT NULL,
  updated_at INTEGER, last_status INTEGER, last_error TEXT, dead_reason TEXT);
CREATE INDEX deliveries_due ON deliveries(endpoint, state, next_at, seq);
CREATE TABLE dedupe (id TEXT PRIMARY KEY, received_at INTEGER NOT NULL) WITHOUT ROWID;
"""
SCHEMAS = {
    "current": EVENTS + "CREATE INDEX deliveries_event ON deliveries(event_seq);",
    "range": EVENTS,
}
CHECKPOINT_FRAMES = 1000
FILE_PAGE = 4096


def insert(conn, i, ids, range_seqs):
    """One event as the writer stores it (213 bytes of JSON data on the wire)."""
    conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM events").fetchone()
    conn.execute("SAVEPOINT insert_call")
    now = int(time.time() * 1000)
    data = ('{"i":%6d,"pad":"%s"}' % (i, "x" * 162)).encode()
    # A client id, or an assigned one: "evt_" and a 26-character ULID.
    eid = "bench-%08d" % i if ids else "evt_01JE%022d" % i
    if ids:
        conn.execute("SELECT received_at FROM dedupe WHERE id = ?", (eid,)).fetchall()
        conn.execute("INSERT OR REPLACE INTO dedupe(id, received_at) VALUES (?, ?)", (eid, now))
    seq = conn.execute(
        "INSERT INTO events(id, type, timestamp, data, size, received_at, peer_uid, peer_gid,"
        " peer_pid) VALUES (?, ?, ?, ?, ?, ?, 0, 0, 4242)",
        (eid, "Bench.http", "2026-12-04T21:50:42.123Z", data, len(data) + 64, now),
    ).lastrowid
    if range_seqs:
        conn.execute(
            "INSERT INTO deliveries(seq, event_seq, endpoint, created_at, next_at)"
            " VALUES (?, ?, 'sink', ?, ?)", (seq << 16, seq, now, now))
    else:
        conn.execute(
            "INSERT INTO deliveries(event_seq, endpoint, created_at, next_at)"
            " VALUES (?, 'sink', ?, ?)", (seq, now, now))
    conn.execute("RELEASE insert_call")


def new_frames(wal, offset, page):
    """Page numbers of the frames from `offset` on that belong to the current WAL."""
    pages = []
    with open(wal, "rb") as f:
        salts = f.read(32)[16:24]
        f.seek(offset)
        while True:
            head = f.read(24)
            if len(head) < 24 or head[8:16] != salts:
                return pages
            pages.append(struct.unpack(">I", head[:4])[0])
            f.seek(page, 1)


def simulate(events, page, ids, schema):
    d = tempfile.mkdtemp()
    path = os.path.join(d, "queue.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA page_size = {page}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.executescript(SCHEMAS[schema])
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    frame = page + 24
    offset, since_checkpoint = 32, 0
    by_tree, names, touched = collections.Counter(), {}, set()
    wal_pages = checkpoint_pages = 0
    for i in range(events):
        conn.execute("BEGIN IMMEDIATE")
        insert(conn, i, ids, schema == "range")
        conn.execute("COMMIT")
        pages = new_frames(path + "-wal", offset, page)
        if any(p not in names for p in pages):
            names = dict(conn.execute("SELECT pageno, name FROM dbstat"))
        for p in pages:
            by_tree["page 1" if p == 1 else names.get(p, "?")] += 1
            touched.add(p)
        end = offset + len(pages) * frame
        wal_pages += (end - 1) // FILE_PAGE - offset // FILE_PAGE + 1
        offset, since_checkpoint = end, since_checkpoint + len(pages)
        if since_checkpoint >= CHECKPOINT_FRAMES:
            checkpoint_pages += len({(p - 1) * page // FILE_PAGE for p in touched})
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            # The next commit restarts the WAL from its header.
            touched, offset, since_checkpoint = set(), 32, 0
            wal_pages += 1
    frames = sum(by_tree.values())
    return {
        "frames": frames / events,
        "by_tree": {k: v / events for k, v in by_tree.most_common()},
        "wal": wal_pages * FILE_PAGE / events,
        "checkpoint": checkpoint_pages * FILE_PAGE / events,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--page-size", type=int, nargs="+", default=[1024])
    ap.add_argument("--ids", action="store_true", help="client ids (the dedupe table)")
    ap.add_argument("--schema", choices=SCHEMAS, default="current")
    args = ap.parse_args()
    for page in args.page_size:
        r = simulate(args.events, page, args.ids, args.schema)
        trees = ", ".join(f"{k} {v:.2f}" for k, v in r["by_tree"].items())
        print(f"schema {args.schema}, page {page}, ids {args.ids}: {r['frames']:.2f} frames a commit"
              f" ({trees}); written per event ≈ {r['wal'] + r['checkpoint']:.0f} B"
              f" (WAL {r['wal']:.0f}, checkpoints {r['checkpoint']:.0f})")


if __name__ == "__main__":
    main()
