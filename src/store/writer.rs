//! The writer thread: the only code that writes to the queue database.
//!
//! Group commit: block for one command, then take every other command already waiting
//! (up to [`MAX_GROUP`]), apply them inside one `BEGIN IMMEDIATE … COMMIT`, each under
//! its own savepoint so one caller's failure (queue full) does not undo another's work,
//! and answer the callers only after `COMMIT` returned. If the commit fails (disk full,
//! I/O error) every caller of the group is told so and nothing of the group is kept.
//!
//! Storage health ([`State::failing`], `/v1/health`) is set by any failed write and
//! cleared only by a commit that really wrote something: a group of no-ops (a watchdog
//! ping) proves nothing about a full disk. While failing, the daemon sends a
//! [`Command::Probe`] every second, a one-page write, so health recovers by itself when
//! space returns even if no client writes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use super::admin;
use super::clock;
use super::deliveries::{self, Update};
use super::purge;
use super::reserve::Reserve;
use super::schema::{deliveries_of, delivery_seq, MAX_DELIVERIES_PER_EVENT};
use super::transfer;
use super::{is_corrupt, now_ms, Inserted, NewEvent, StoreError};
use crate::config::{Durability, QueueConfig, WhenFull};
use crate::logging::repeats::Repeats;

/// Upper bound of commands per transaction: keeps one commit's latency bounded.
const MAX_GROUP: usize = 1024;

/// Prepared statements the writer keeps: more than the ~20 distinct ones it runs.
const STATEMENT_CACHE: usize = 64;

/// Test hook for the systemd watchdog test: with this variable set to `1` the writer hangs
/// for good after its first commit, as a writer stuck in a dead disk would. Never set in
/// production (the shipped unit does not set it); it only makes edgehook stop working.
const WEDGE_ENV: &str = "EDGEHOOK_DEBUG_WEDGE_WRITER";

/// Failed commits, logged once per distinct error and then summarised (SPEC §12): while
/// the disk is full every group fails the same way.
static COMMIT_FAILED: Repeats = Repeats::new();

pub(super) type InsertReply = Result<Vec<Result<Inserted, StoreError>>, StoreError>;

pub(super) enum Command {
    Insert {
        events: Vec<NewEvent>,
        atomic: bool,
        reply: oneshot::Sender<InsertReply>,
    },
    Complete {
        updates: Vec<Update>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    SetHold {
        endpoint: String,
        hold: Option<super::Hold>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Queue these dead deliveries again (`edgehook dead retry`); replies how many.
    RetryDead {
        seqs: Vec<i64>,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    /// Delete these dead deliveries (`edgehook dead purge`); replies how many.
    PurgeDead {
        seqs: Vec<i64>,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    /// Delete an endpoint's undelivered deliveries (`edgehook purge`); replies how many.
    PurgeEndpoint {
        endpoint: String,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    /// An air-gapped transfer step (`transfer.rs`), under its own savepoint.
    Transfer {
        op: transfer::Op,
        reply: oneshot::Sender<Result<transfer::Done, StoreError>>,
    },
    Configure(QueueConfig),
    Maintain,
    /// Record what the queue clock knows after a wall-clock step (`clock.rs`).
    MarkClock(clock::Marker),
    /// Answered after the group it joins has committed: the watchdog's proof of progress.
    Ping(oneshot::Sender<Result<(), StoreError>>),
    /// A one-page write (`user_version` rewritten with its value): proves that storage
    /// accepts writes again after a failure.
    Probe(oneshot::Sender<Result<(), StoreError>>),
    Close,
}

/// What the writer keeps in memory between commands.
pub(super) struct State {
    queue: QueueConfig,
    /// Sum of `events.size`: the queue's size for `max_bytes`.
    bytes: u64,
    /// Last `next_at` given to a new delivery: kept monotonic so new rows sort after
    /// older ones even if the wall clock steps back.
    last_insert_ms: i64,
    /// Bumped after every commit that stored events; delivery workers watch it.
    inserted: tokio::sync::watch::Sender<u64>,
    /// `bytes` as of the last commit, for status and metrics.
    published: Arc<AtomicU64>,
    /// Why storage is failing (last group's error), `None` while healthy; for health checks.
    failing: Arc<std::sync::Mutex<Option<String>>>,
    /// `failing` or the reserve's `low` is set: wakes the maintenance task, which probes.
    unhealthy: tokio::sync::watch::Sender<bool>,
    /// Ids of the events dropped by `when_full = "drop_oldest"` in the current group,
    /// logged and counted only once the group commits.
    dropping: Vec<String>,
    /// The first `events.seq` of the current group: `drop_oldest` drops only older ones.
    group_floor: i64,
    /// The seq the next event gets: above every seq this daemon gave out, even when the
    /// newest event was deleted since (SQLite would hand its rowid out again). A delivery
    /// worker matches the outcomes it is waiting for by seq, so a seq reused while one is
    /// settling would hide the new delivery from it.
    next_seq: i64,
    /// Events dropped by `when_full = "drop_oldest"` since start (committed drops only).
    dropped: Arc<AtomicU64>,
    /// Whether the connection is at `synchronous=FULL` now (see [`set_sync`]).
    sync_full: bool,
    /// Free space kept for bookkeeping (`queue.reserve`): checked before inserts.
    reserve: Reserve,
}

impl State {
    pub(super) fn load(
        conn: &Connection,
        queue: &QueueConfig,
        inserted: tokio::sync::watch::Sender<u64>,
        reserve: Reserve,
    ) -> rusqlite::Result<State> {
        let bytes: i64 = conn.query_row("SELECT COALESCE(SUM(size), 0) FROM events", [], |r| {
            r.get(0)
        })?;
        Ok(State {
            queue: queue.clone(),
            bytes: bytes as u64,
            last_insert_ms: 0,
            inserted,
            published: Arc::new(AtomicU64::new(bytes as u64)),
            failing: Arc::default(),
            unhealthy: tokio::sync::watch::Sender::new(false),
            dropping: Vec::new(),
            group_floor: 0,
            next_seq: 1,
            dropped: Arc::default(),
            sync_full: queue.durability == Durability::Full,
            reserve,
        })
    }

    /// Events dropped to make room (`when_full = "drop_oldest"`) since start.
    pub(super) fn dropped(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }

    /// The queue size in bytes as of the last commit, kept current by the writer.
    pub(super) fn published_bytes(&self) -> Arc<AtomicU64> {
        self.published.clone()
    }

    pub(super) fn failing(&self) -> Arc<std::sync::Mutex<Option<String>>> {
        self.failing.clone()
    }

    pub(super) fn unhealthy(&self) -> tokio::sync::watch::Receiver<bool> {
        self.unhealthy.subscribe()
    }
}

/// An answer held back until the group's commit is known.
enum Pending {
    Insert(oneshot::Sender<InsertReply>, InsertReply),
    Done(
        oneshot::Sender<Result<(), StoreError>>,
        Result<(), StoreError>,
    ),
    Count(
        oneshot::Sender<Result<u64, StoreError>>,
        Result<u64, StoreError>,
    ),
    Transfer(
        oneshot::Sender<Result<transfer::Done, StoreError>>,
        Result<transfer::Done, StoreError>,
    ),
}

impl Pending {
    /// A storage failure this answer carries, if any (not a full queue: that is a policy).
    fn failure(&self) -> Option<&str> {
        fn unavailable(e: &StoreError) -> Option<&str> {
            match e {
                StoreError::Unavailable(m) => Some(m.as_str()),
                _ => None,
            }
        }
        match self {
            Pending::Insert(_, Err(e)) => unavailable(e),
            Pending::Insert(_, Ok(results)) => results
                .iter()
                .find_map(|r| r.as_ref().err().and_then(unavailable)),
            Pending::Done(_, Err(e)) => unavailable(e),
            Pending::Count(_, Err(e)) => unavailable(e),
            Pending::Transfer(_, Err(e)) => unavailable(e),
            _ => None,
        }
    }

    fn send(self, commit: Result<(), &StoreError>) {
        match self {
            Pending::Insert(reply, result) => {
                let _ = reply.send(commit.map_err(Clone::clone).and(result));
            }
            Pending::Done(reply, result) => {
                let _ = reply.send(commit.map_err(Clone::clone).and(result));
            }
            Pending::Count(reply, result) => {
                let _ = reply.send(commit.map_err(Clone::clone).and(result));
            }
            Pending::Transfer(reply, result) => {
                let _ = reply.send(commit.map_err(Clone::clone).and(result));
            }
        }
    }
}

pub(super) fn run(mut conn: Connection, mut rx: mpsc::Receiver<Command>, mut state: State) {
    // Every statement of the write path stays prepared (rusqlite keeps 16 by default,
    // fewer than the writer uses, so some were parsed again and again).
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let wedge = std::env::var_os(WEDGE_ENV).is_some_and(|v| v == "1");
    let mut closing = false;
    while !closing {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(cmd) => group.push(cmd),
                Err(_) => break,
            }
        }
        closing = group.iter().any(|c| matches!(c, Command::Close));
        apply_group(&mut conn, &mut state, group);
        if wedge {
            wedge_forever();
        }
    }
    if let Err(err) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        warn!(error = %err, "Checkpoint at shutdown failed; the WAL will be replayed at next start.");
    }
}

/// Choose this group's commit durability. A group that accepts events commits with the
/// configured `durability`; a group of only bookkeeping (delivery outcomes, holds,
/// housekeeping) commits with `synchronous=NORMAL`, without an fsync of its own: if power
/// is lost before a later fsync, the worst case is that a delivered event is sent again
/// (at least once still holds), and deliveries do not each wait for the disk.
fn set_sync(conn: &Connection, state: &mut State, group: &[Command]) {
    // An import is accepting events too: its receipt lets the other site delete them.
    let accepts = group.iter().any(|c| {
        matches!(
            c,
            Command::Insert { .. }
                | Command::Transfer {
                    op: transfer::Op::Import { .. },
                    ..
                }
        )
    });
    let full = accepts && state.queue.durability == Durability::Full;
    if full != state.sync_full {
        let mode = if full { "FULL" } else { "NORMAL" };
        match exec_cached(conn, &format!("PRAGMA synchronous = {mode}")) {
            Ok(()) => state.sync_full = full,
            Err(err) => warn!(error = %err, "Cannot change PRAGMA synchronous."),
        }
    }
}

/// Apply one group of commands in one transaction, then answer every caller.
fn apply_group(conn: &mut Connection, state: &mut State, group: Vec<Command>) {
    let bytes_before = state.bytes;
    let changes_before = conn.total_changes();
    state.dropping.clear();
    set_sync(conn, state, &group);
    let mut tx = Group {
        open: begin(conn, state),
        pending: Vec::with_capacity(group.len()),
        probed: false,
        requeued: false,
    };
    for cmd in group {
        tx.check_open(conn);
        tx.apply(conn, state, cmd);
    }
    tx.check_open(conn);
    let commit = commit(conn, tx.open.clone());
    if commit.is_err() {
        state.bytes = bytes_before;
        state.dropping.clear();
    }
    state.published.store(state.bytes, Ordering::Relaxed);
    if commit.is_ok() {
        state.reserve.reclaim(conn);
    }
    let wrote = commit.is_ok() && (tx.probed || conn.total_changes() != changes_before);
    record_health(state, &commit, &tx.pending, wrote);
    let failing = state
        .failing
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_some();
    let unhealthy = failing || state.reserve.is_low();
    state
        .unhealthy
        .send_if_modified(|u| std::mem::replace(u, unhealthy) != unhealthy);
    announce(state, &commit, &tx);
    for p in tx.pending {
        p.send(commit.as_ref().map(|_| ()));
    }
}

/// One group's transaction while its commands are applied.
struct Group {
    /// `Ok` while the transaction is open; the error every later command gets otherwise.
    open: Result<(), StoreError>,
    /// Answers held back until the commit is known.
    pending: Vec<Pending>,
    /// A [`Command::Probe`] wrote: the commit proves storage works even if nothing changed.
    probed: bool,
    /// Dead letters were queued again: workers must look.
    requeued: bool,
}

impl Group {
    /// SQLite rolls a whole transaction back by itself after some errors (SQLITE_FULL,
    /// SQLITE_IOERR, SQLITE_NOMEM): then the group is lost, and the remaining commands
    /// must not run outside a transaction, each committing on its own.
    fn check_open(&mut self, conn: &Connection) {
        if self.open.is_ok() && conn.is_autocommit() {
            self.open = Err(StoreError::Unavailable(
                "the transaction was rolled back after a storage error".into(),
            ));
        }
    }

    /// Apply one command inside the transaction (or answer it with the group's error).
    fn apply(&mut self, conn: &Connection, state: &mut State, cmd: Command) {
        let open = self.open.clone();
        match cmd {
            Command::Insert {
                events,
                atomic,
                reply,
            } => {
                let result = match open {
                    Ok(()) => insert(conn, state, events, atomic),
                    Err(e) => Err(e),
                };
                self.pending.push(Pending::Insert(reply, result));
            }
            Command::Complete { updates, reply } => {
                let result = open.and_then(|()| complete(conn, state, &updates));
                self.pending.push(Pending::Done(reply, result));
            }
            Command::SetHold {
                endpoint,
                hold,
                reply,
            } => {
                let result = open.and_then(|()| {
                    deliveries::set_hold(conn, &endpoint, hold).map_err(unavailable)
                });
                self.pending.push(Pending::Done(reply, result));
            }
            Command::RetryDead { seqs, reply } => {
                let result = open.and_then(|()| retry_dead(conn, state, &seqs));
                self.requeued |= matches!(result, Ok(n) if n > 0);
                self.pending.push(Pending::Count(reply, result));
            }
            Command::PurgeDead { seqs, reply } => {
                let result = open.and_then(|()| purge_dead(conn, state, &seqs));
                self.pending.push(Pending::Count(reply, result));
            }
            Command::PurgeEndpoint { endpoint, reply } => {
                let result = open.and_then(|()| purge_endpoint(conn, state, &endpoint));
                self.pending.push(Pending::Count(reply, result));
            }
            Command::Transfer { op, reply } => {
                let result = open.and_then(|()| transfer(conn, state, op));
                self.requeued |=
                    matches!(result, Ok(transfer::Done::Imported { queued, .. }) if queued > 0);
                self.pending.push(Pending::Transfer(reply, result));
            }
            Command::Configure(queue) => {
                state.reserve.bytes = queue.reserve;
                state.queue = queue;
            }
            Command::Maintain => {
                if open.is_ok() {
                    if let Err(err) = maintain(conn, state) {
                        warn!(error = %err, "Queue housekeeping failed; will try again.");
                    }
                }
            }
            Command::MarkClock(marker) => {
                if let Err(err) =
                    open.and_then(|()| clock::mark(conn, &marker).map_err(unavailable))
                {
                    warn!(error = %err, "Recording the clock step failed; a reboot may misjudge the down time.");
                }
            }
            Command::Ping(reply) => self.pending.push(Pending::Done(reply, Ok(()))),
            Command::Probe(reply) => {
                let result = open.and_then(|()| probe(conn));
                state.reserve.refresh(conn);
                self.probed |= result.is_ok();
                self.pending.push(Pending::Done(reply, result));
            }
            Command::Close => {}
        }
    }
}

/// `BEGIN IMMEDIATE`, and note the first seq this group's events will get.
fn begin(conn: &Connection, state: &mut State) -> Result<(), StoreError> {
    exec_cached(conn, "BEGIN IMMEDIATE").map_err(unavailable)?;
    let above_stored: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM events")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(unavailable)?;
    state.next_seq = state.next_seq.max(above_stored);
    state.group_floor = state.next_seq;
    Ok(())
}

/// `COMMIT` an open transaction; on any failure make sure none is left open.
fn commit(conn: &Connection, open: Result<(), StoreError>) -> Result<(), StoreError> {
    let commit = open.and_then(|()| exec_cached(conn, "COMMIT").map_err(unavailable));
    if let Err(err) = &commit {
        if let Some(repeated) = COMMIT_FAILED.admit(&err.to_string()) {
            error!(error = %err, repeated, "Queue commit failed; callers are told to retry.");
        }
        // Also ends a transaction a failed COMMIT left open (SQLITE_BUSY); an error here
        // just means SQLite already rolled it back.
        let _ = conn.execute_batch("ROLLBACK");
    }
    commit
}

/// Set or clear [`State::failing`] from the group's outcome: a failed commit or a caller's
/// storage error sets it; only a commit that really wrote clears it.
fn record_health(state: &State, commit: &Result<(), StoreError>, pending: &[Pending], wrote: bool) {
    let mut failing = state.failing.lock().unwrap_or_else(|p| p.into_inner());
    match commit {
        Err(StoreError::Unavailable(why)) => *failing = Some(why.clone()),
        Err(e) => *failing = Some(e.to_string()),
        Ok(()) => {
            if let Some(f) = pending.iter().find_map(Pending::failure) {
                *failing = Some(f.to_owned());
            } else if wrote && failing.take().is_some() {
                let repeated = COMMIT_FAILED.clear_all().unwrap_or(0);
                info!(repeated, "Queue storage works again; accepting events.");
            }
        }
    }
}

/// After the commit: log and count committed drops, wake the workers if events arrived.
fn announce(state: &mut State, commit: &Result<(), StoreError>, tx: &Group) {
    if !state.dropping.is_empty() {
        let dropped = std::mem::take(&mut state.dropping);
        state
            .dropped
            .fetch_add(dropped.len() as u64, Ordering::Relaxed);
        for id in &dropped {
            warn!(event_id = %id, "Queue full (queue.when_full = \"drop_oldest\"): dropped the oldest event.");
        }
    }
    let stored = tx
        .pending
        .iter()
        .any(|p| matches!(p, Pending::Insert(_, Ok(_))));
    if commit.is_ok() && (tx.requeued || stored) {
        state.inserted.send_modify(|n| *n += 1);
    }
}

/// The [`Command::Probe`] write: rewrite `user_version` with its own value. It dirties
/// page 1, so the commit must append a WAL frame: a real write that changes nothing.
fn probe(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(unavailable)?;
    conn.pragma_update(None, "user_version", version)
        .map_err(unavailable)
}

fn complete(conn: &Connection, state: &mut State, updates: &[Update]) -> Result<(), StoreError> {
    let keep = !state.queue.keep_delivered.is_zero();
    for update in updates {
        let freed = deliveries::apply(conn, update, keep).map_err(unavailable)?;
        state.bytes = state.bytes.saturating_sub(freed);
    }
    Ok(())
}

/// Run `f` under its own savepoint: its failure undoes only its own changes.
fn savepoint<T>(
    conn: &Connection,
    f: impl FnOnce() -> rusqlite::Result<T>,
) -> Result<T, StoreError> {
    exec_cached(conn, "SAVEPOINT admin_call").map_err(unavailable)?;
    match f() {
        Ok(v) => {
            exec_cached(conn, "RELEASE admin_call").map_err(unavailable)?;
            Ok(v)
        }
        Err(err) => {
            let _ = conn.execute_batch("ROLLBACK TO admin_call; RELEASE admin_call");
            Err(unavailable(err))
        }
    }
}

/// Dead letters back to pending, due now and sorted after every older row.
fn retry_dead(conn: &Connection, state: &mut State, seqs: &[i64]) -> Result<u64, StoreError> {
    state.last_insert_ms = state.last_insert_ms.max(now_ms());
    let next_at = state.last_insert_ms;
    savepoint(conn, || admin::retry(conn, seqs, next_at))
}

fn purge_endpoint(conn: &Connection, state: &mut State, name: &str) -> Result<u64, StoreError> {
    let (n, freed) = savepoint(conn, || purge::endpoint(conn, name))?;
    state.bytes = state.bytes.saturating_sub(freed);
    Ok(n)
}

fn purge_dead(conn: &Connection, state: &mut State, seqs: &[i64]) -> Result<u64, StoreError> {
    let (n, freed) = savepoint(conn, || admin::purge(conn, seqs))?;
    state.bytes = state.bytes.saturating_sub(freed);
    Ok(n)
}

/// Run a transfer step: imported rows are due now (after every older row) and count
/// against `queue.max_bytes`.
fn transfer(
    conn: &Connection,
    state: &mut State,
    op: transfer::Op,
) -> Result<transfer::Done, StoreError> {
    state.last_insert_ms = state.last_insert_ms.max(now_ms());
    let room = state.queue.max_bytes.saturating_sub(state.bytes);
    let (next_at, mut next_seq) = (state.last_insert_ms, state.next_seq);
    let applied = savepoint(conn, || {
        transfer::apply(conn, op, next_at, room, &mut next_seq)
    })?;
    state.next_seq = next_seq;
    state.bytes = (state.bytes + applied.added).saturating_sub(applied.freed);
    Ok(applied.done)
}

fn maintain(conn: &Connection, state: &mut State) -> rusqlite::Result<()> {
    prune_dedupe(conn, state)?;
    let max_age = state.queue.max_age.map(|d| d.as_millis() as i64);
    let keep = state.queue.keep_delivered.as_millis() as i64;
    let freed = deliveries::expire(conn, max_age, keep)?;
    state.bytes = state.bytes.saturating_sub(freed);
    Ok(())
}

fn insert(
    conn: &Connection,
    state: &mut State,
    events: Vec<NewEvent>,
    atomic: bool,
) -> InsertReply {
    let bytes_before = state.bytes;
    let incoming = events.iter().map(|e| e.event.stored_size()).sum();
    state.reserve.admit(conn, incoming)?;
    exec_cached(conn, "SAVEPOINT insert_call").map_err(unavailable)?;
    let dropping_before = state.dropping.len();
    let mut results = Vec::with_capacity(events.len());
    for ev in &events {
        let result = insert_one(conn, state, ev);
        // A storage error may have left half an event: undo the whole call. Only a
        // full queue is a per-event answer (it is refused before anything is written).
        let undo = matches!(&result, Err(e) if atomic || !matches!(e, StoreError::Full { .. }));
        if undo {
            if let Err(err) = result {
                conn.execute_batch("ROLLBACK TO insert_call; RELEASE insert_call")
                    .map_err(unavailable)?;
                state.bytes = bytes_before;
                state.dropping.truncate(dropping_before);
                return Err(err);
            }
        }
        results.push(result);
    }
    exec_cached(conn, "RELEASE insert_call").map_err(unavailable)?;
    Ok(results)
}

fn insert_one(conn: &Connection, state: &mut State, ev: &NewEvent) -> Result<Inserted, StoreError> {
    let now = now_ms();
    let e = &ev.event;
    if !e.id_assigned && is_duplicate(conn, state, &e.id, now)? {
        return Ok(Inserted::Duplicate);
    }
    if ev.routes.len() > MAX_DELIVERIES_PER_EVENT {
        return Err(StoreError::Unavailable(format!(
            "an event can go to at most {MAX_DELIVERIES_PER_EVENT} endpoints; this one was routed to {}",
            ev.routes.len()
        )));
    }
    let size = e.stored_size();
    // Room first, then remember the id: a refused event must not be "seen".
    make_room(conn, state, size)?;
    if !e.id_assigned {
        remember(conn, &e.id, now)?;
    }
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO events(seq, id, type, timestamp, data, size, received_at, peer_uid, peer_gid, peer_pid)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(unavailable)?;
    let seq = state.next_seq;
    stmt.execute(params![
        seq,
        e.id,
        e.event_type,
        e.timestamp,
        e.data.get().as_bytes(),
        size as i64,
        now,
        ev.peer.uid,
        ev.peer.gid,
        ev.peer.pid,
    ])
    .map_err(unavailable)?;
    state.next_seq = seq + 1;
    state.last_insert_ms = state.last_insert_ms.max(now);
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO deliveries(seq, event_seq, endpoint, order_key, created_at, next_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(unavailable)?;
    for (i, route) in ev.routes.iter().enumerate() {
        stmt.execute(params![
            delivery_seq(seq, i),
            seq,
            route.endpoint,
            route.order_key,
            now,
            state.last_insert_ms
        ])
        .map_err(unavailable)?;
    }
    state.bytes += size;
    Ok(Inserted::Accepted)
}

/// Whether `id` was accepted within the dedupe window.
fn is_duplicate(conn: &Connection, state: &State, id: &str, now: i64) -> Result<bool, StoreError> {
    let window = state.queue.dedupe_window.as_millis() as i64;
    let seen: Option<i64> = conn
        .prepare_cached("SELECT received_at FROM dedupe WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
        .map_err(unavailable)?;
    Ok(matches!(seen, Some(at) if at > now - window))
}

/// Record `id` as seen now, for the dedupe window.
fn remember(conn: &Connection, id: &str, now: i64) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT OR REPLACE INTO dedupe(id, received_at) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![id, now]))
        .map_err(unavailable)?;
    Ok(())
}

/// Enforce `queue.max_bytes`: refuse, or drop the oldest events, per `when_full`.
///
/// Only events committed before this group are dropped (`seq < state.group_floor`): an
/// event stored earlier in the same group has a caller about to be told "accepted".
/// Dropped ids go to `state.dropping`, logged and counted once the group commits.
fn make_room(conn: &Connection, state: &mut State, size: u64) -> Result<(), StoreError> {
    let limit = state.queue.max_bytes;
    if state.bytes + size <= limit {
        return Ok(());
    }
    let full = |state: &State| StoreError::Full {
        used: state.bytes,
        limit,
    };
    if state.queue.when_full == WhenFull::Reject || size > limit {
        return Err(full(state));
    }
    while state.bytes + size > limit {
        let oldest: Option<(i64, i64, String)> = conn
            .prepare_cached("SELECT seq, size, id FROM events WHERE seq < ?1 ORDER BY seq LIMIT 1")
            .and_then(|mut s| {
                s.query_row([state.group_floor], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
            })
            .map_err(unavailable)?;
        let Some((seq, old_size, id)) = oldest else {
            // Only this group's own events are left: nothing older to drop.
            return Err(full(state));
        };
        conn.prepare_cached("DELETE FROM deliveries WHERE seq BETWEEN ?1 AND ?2")
            .and_then(|mut s| s.execute(deliveries_of(seq)))
            .and_then(|_| conn.prepare_cached("DELETE FROM events WHERE seq = ?1"))
            .and_then(|mut s| s.execute([seq]))
            .map_err(unavailable)?;
        state.bytes = state.bytes.saturating_sub(old_size as u64);
        state.dropping.push(id);
    }
    Ok(())
}

fn prune_dedupe(conn: &Connection, state: &State) -> rusqlite::Result<usize> {
    let cutoff = now_ms() - state.queue.dedupe_window.as_millis() as i64;
    conn.execute("DELETE FROM dedupe WHERE received_at <= ?1", [cutoff])
}

/// Run a statement that takes no parameters and returns no rows (transaction control),
/// parsed once per connection: `execute_batch` parsed it again for every group and every
/// insert call (5 % of the writer's instructions in the profile, BENCHMARKS.md).
fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// Every SQLite failure on the write path becomes "unavailable": the caller answers 503.
fn unavailable(err: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    let reason = match err.sqlite_error_code() {
        _ if is_corrupt(&err) => {
            "the queue database is corrupt (stop edgehook and move queue.db aside, see README \"Failure modes\")"
        }
        Some(ErrorCode::DiskFull) => "disk full (free space where daemon.state_dir is)",
        Some(ErrorCode::SystemIoFailure) => "I/O error",
        Some(ErrorCode::ReadOnly) => "database is read-only",
        _ => "database error",
    };
    StoreError::Unavailable(format!("{reason} ({err})"))
}

/// The [`WEDGE_ENV`] hang: callers wait forever, so the watchdog pings stop.
fn wedge_forever() -> ! {
    warn!("{WEDGE_ENV}=1: the store writer now hangs on purpose (test hook).");
    loop {
        std::thread::park();
    }
}
