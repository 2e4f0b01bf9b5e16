//! The queue: a SQLite database (`<state_dir>/queue.db`, WAL mode) and the [`Store`]
//! handle every other module uses to reach it.
//!
//! All writes go through one writer thread (`writer.rs`) that does **group commit**: it
//! takes every command waiting in its channel, applies them in one transaction, commits
//! (one fsync with `durability = "full"`), and only then answers each caller. Many
//! concurrent clients therefore share one fsync, and no caller is told "accepted" before
//! its rows are durable. Reads that must not wait behind a commit use a second
//! connection (`Store::read`) on its own thread (`reader.rs`), which WAL lets run beside
//! the writer; operator queries (`admin.rs`: status, metrics, dead letters) have a third,
//! so they never hold up a worker.

pub mod admin;
pub mod clock;
pub mod deliveries;
pub mod files;
mod hold;
mod purge;
mod reader;
mod reserve;
mod schema;
pub mod transfer;
mod writer;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use crate::config::{Durability, QueueConfig};
use crate::event::Event;

pub use clock::now_ms;
pub use hold::Hold;
pub use schema::{STATE_DEAD, STATE_DELIVERED, STATE_EXPORTED, STATE_PENDING};

/// How many commands may wait for the writer before senders feel backpressure.
const CHANNEL_CAPACITY: usize = 4096;

/// Page size of a new queue database. Flash wear: one client's event is its own commit,
/// which appends one WAL frame (page + 24 bytes) for each B-tree it touches (events,
/// deliveries and two indexes; measured 4.4 frames a commit); with 4 KiB pages that wrote
/// 22 KB per event, with 1 KiB pages 10 KB (BENCHMARKS.md, "Flash wear"). An existing
/// database keeps the page size it was created with.
const PAGE_SIZE: u32 = 1024;

/// Who handed us an event (`SO_PEERCRED`), recorded with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

/// One delivery to create for an event: the endpoint and, for `order_key`, the key value.
/// The name is the config's own (`Arc`): an event routed to 100 endpoints holds 100
/// pointers, not 100 copies (fan-out memory, BENCHMARKS.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub endpoint: Arc<str>,
    pub order_key: Option<String>,
}

/// An event routed at ingest, ready to be stored with its deliveries.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event: Event,
    pub routes: Vec<Route>,
    pub peer: Peer,
}

/// What happened to one event handed to [`Store::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Accepted,
    /// An event with this id was accepted within `dedupe_window`; nothing was stored.
    Duplicate,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("queue is full: {used} of {limit} bytes used (queue.max_bytes); deliveries must drain first, or raise queue.max_bytes")]
    Full { used: u64, limit: u64 },
    #[error("storage is failing: {0}")]
    Unavailable(String),
    #[error("the disk is nearly full: {} left for the queue on the file system of {dir}, less than queue.reserve ({}) plus the event; events are refused while deliveries drain the queue (or free space on that file system)", crate::config::units::format_size(*room), crate::config::units::format_size(*reserve))]
    Reserve {
        room: u64,
        reserve: u64,
        dir: String,
    },
    #[error("the queue is shutting down")]
    Closed,
}

/// Outcomes handed to the writer, not yet known to be committed: resolves with the
/// commit's result.
pub struct Committed(oneshot::Receiver<Result<(), StoreError>>);

impl Future for Committed {
    type Output = Result<(), StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.map_err(|_| StoreError::Closed).and_then(|r| r))
    }
}

/// Cloneable handle to the queue database.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    tx: mpsc::Sender<writer::Command>,
    reader: reader::Reader,
    admin_reader: reader::Reader,
    thread: Mutex<Option<JoinHandle<()>>>,
    inserted: tokio::sync::watch::Receiver<u64>,
    /// Queue bytes as of the writer's last commit.
    bytes: Arc<AtomicU64>,
    /// Set by the writer while storage fails (disk full, I/O error).
    failing: Arc<Mutex<Option<String>>>,
    /// Set by the writer while free space is below `queue.reserve`.
    low: Arc<Mutex<Option<String>>>,
    /// `failing` or `low` is set, as of the writer's last group.
    unhealthy: tokio::sync::watch::Receiver<bool>,
    /// Events dropped by `when_full = "drop_oldest"` since start.
    dropped: Arc<AtomicU64>,
    /// Wall-clock steps and an unset clock, reported once each.
    clock: Mutex<clock::Watch>,
}

impl Store {
    /// Open (creating if needed) and migrate the queue database, and start the writer.
    ///
    /// Errors name the file and, for a corrupt database, how to move it aside.
    pub fn open(path: &Path, queue: &QueueConfig) -> anyhow::Result<Store> {
        let mut conn = open_connection(path, queue.durability)?;
        schema::migrate(&mut conn).map_err(|e| corrupt_or(path, e))?;
        clock::fold(&mut conn).map_err(|e| corrupt_or(path, e))?;
        let (inserted_tx, inserted) = tokio::sync::watch::channel(0);
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let reserve = reserve::Reserve::new(dir, queue.reserve);
        let low = reserve.low();
        let state = writer::State::load(&conn, queue, inserted_tx, reserve)
            .map_err(|e| corrupt_or(path, e.into()))?;
        // Their threads end when the last handle is dropped.
        let (reader, _) =
            reader::Reader::spawn("edgehook-read", open_connection(path, queue.durability)?)?;
        let (admin_reader, _) = reader::Reader::spawn(
            "edgehook-admin-read",
            open_connection(path, queue.durability)?,
        )?;
        let bytes = state.published_bytes();
        let failing = state.failing();
        let unhealthy = state.unhealthy();
        let dropped = state.dropped();
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let thread = std::thread::Builder::new()
            .name("edgehook-store".into())
            .spawn(move || writer::run(conn, rx, state))?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                tx,
                reader,
                admin_reader,
                thread: Mutex::new(Some(thread)),
                inserted,
                bytes,
                failing,
                low,
                unhealthy,
                dropped,
                clock: Mutex::new(clock::Watch::start()),
            }),
        })
    }

    /// Why storage refuses events right now (the last commit's error, or free space
    /// below `queue.reserve`), or `None` when healthy. Clears by itself once a commit
    /// succeeds again or the drain has made room.
    pub fn failure(&self) -> Option<String> {
        let read = |m: &Mutex<Option<String>>| m.lock().unwrap_or_else(|p| p.into_inner()).clone();
        read(&self.inner.failing)
            .map(|e| format!("storage is failing: {e}"))
            .or_else(|| read(&self.inner.low))
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Store events with their deliveries in one transaction shared with other callers.
    ///
    /// `atomic`: all or nothing — the first failing event fails the whole call (NDJSON
    /// batches). Otherwise each event gets its own result (line socket). Answers only
    /// after the commit is durable.
    pub async fn insert(
        &self,
        events: Vec<NewEvent>,
        atomic: bool,
    ) -> Result<Vec<Result<Inserted, StoreError>>, StoreError> {
        self.call(|reply| writer::Command::Insert {
            events,
            atomic,
            reply,
        })
        .await?
    }

    /// Hand delivery outcomes to the writer (batched with others' into one commit). The
    /// returned [`Committed`] resolves once they are committed; callers that need not wait
    /// (a delivery worker, which goes on delivering) await it elsewhere.
    pub async fn complete(
        &self,
        updates: Vec<deliveries::Update>,
    ) -> Result<Committed, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(writer::Command::Complete { updates, reply })
            .await?;
        Ok(Committed(rx))
    }

    /// Hold an endpoint (`Some(hold)`) or release it (`None`).
    pub async fn set_hold(&self, endpoint: &str, hold: Option<Hold>) -> Result<(), StoreError> {
        self.call(|reply| writer::Command::SetHold {
            endpoint: endpoint.to_string(),
            hold,
            reply,
        })
        .await?
    }

    /// A receiver that changes after every commit that stored new events.
    pub fn inserted(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.inserted.clone()
    }

    /// Apply changed queue settings (reload) to the writer.
    pub async fn configure(&self, queue: QueueConfig) -> Result<(), StoreError> {
        self.send(writer::Command::Configure(queue)).await
    }

    /// Prove the writer makes progress: a no-op that is answered only after the writer
    /// committed the group it joined. Fails when no answer comes within `timeout` (a wedged
    /// writer or a dead disk) or the store is closed. The systemd watchdog calls it.
    pub async fn ping(&self, timeout: std::time::Duration) -> Result<(), StoreError> {
        let round_trip = async { self.call(writer::Command::Ping).await? };
        tokio::time::timeout(timeout, round_trip)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "the store writer did not answer within {}",
                    humantime::format_duration(timeout)
                )))
            })
    }

    /// Try a one-page write and commit it: clears [`Store::failure`] when storage works
    /// again. The maintenance task calls it every second while storage is failing.
    pub async fn probe(&self) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(writer::Command::Probe(reply)).await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Log a wall-clock step or an unset clock (once each) and record a step in the
    /// queue's clock marker. The maintenance task calls it on every wake (and at once when
    /// the kernel reports the clock set); nothing stored moves.
    pub async fn watch_clock(&self) -> Result<(), StoreError> {
        let step = self.clock_watch().check();
        match step {
            Some(marker) => self.send(writer::Command::MarkClock(marker)).await,
            None => Ok(()),
        }
    }

    /// The wall clock as `status` shows it: unset?, steps since start. Checks for a step
    /// first, so `status` is current between the maintenance task's wakes.
    pub async fn clock(&self) -> Result<clock::Report, StoreError> {
        self.watch_clock().await?;
        Ok(self.clock_watch().report())
    }

    /// `true` while storage fails or free space is below `queue.reserve` (what
    /// [`Store::failure`] explains); changes after the writer's group that changed it.
    pub fn health(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.unhealthy.clone()
    }

    fn clock_watch(&self) -> std::sync::MutexGuard<'_, clock::Watch> {
        self.inner.clock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Events dropped to make room (`queue.when_full = "drop_oldest"`) since start.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Prune expired dedupe entries and similar housekeeping.
    pub async fn maintain(&self) -> Result<(), StoreError> {
        self.send(writer::Command::Maintain).await
    }

    /// Run a read-only query on the reader connection's thread (queries run one at a
    /// time, in the order they were asked).
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.inner.reader.query(f).await
    }

    /// The queue's size in bytes (sum of stored events), as of the last commit.
    pub fn queue_bytes(&self) -> u64 {
        self.inner.bytes.load(Ordering::Relaxed)
    }

    /// Like [`Store::read`], on the operators' own connection.
    pub async fn read_admin<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.inner.admin_reader.query(f).await
    }

    /// Pending and dead counts of every endpoint that has any (configured or not).
    pub async fn counts(&self) -> Result<Vec<admin::EndpointCounts>, StoreError> {
        self.read_admin(admin::counts).await
    }

    /// Up to `limit` dead letters matching `filter`, oldest first, and the total matching.
    pub async fn dead_letters(
        &self,
        filter: admin::DeadFilter,
        limit: usize,
    ) -> Result<(Vec<admin::DeadLetter>, u64), StoreError> {
        self.read_admin(move |c| admin::dead_letters(c, &filter, limit))
            .await
    }

    /// The delivery rows (seq) of the dead letters matching `filter` now: the snapshot a
    /// retry or purge works through, batch by batch (`admin/dead.rs`).
    pub async fn dead_seqs(&self, filter: admin::DeadFilter) -> Result<Vec<i64>, StoreError> {
        self.read_admin(move |c| admin::dead_seqs(c, &filter)).await
    }

    /// Queue the dead deliveries `seqs` again, as new (attempts 0), and wake the workers;
    /// rows no longer dead are skipped. One writer command: the caller bounds `seqs`.
    /// Returns how many.
    pub async fn retry_dead(&self, seqs: Vec<i64>) -> Result<u64, StoreError> {
        if seqs.is_empty() {
            return Ok(0);
        }
        self.call(|reply| writer::Command::RetryDead { seqs, reply })
            .await?
    }

    /// Delete the dead deliveries `seqs` (and events nothing else needs); rows no longer
    /// dead are skipped. One writer command: the caller bounds `seqs`. Returns how many.
    pub async fn purge_dead(&self, seqs: Vec<i64>) -> Result<u64, StoreError> {
        if seqs.is_empty() {
            return Ok(0);
        }
        self.call(|reply| writer::Command::PurgeDead { seqs, reply })
            .await?
    }

    /// Delete every pending, dead and exported delivery of `endpoint` (and events nothing
    /// else needs), freeing their bytes (`edgehook purge`). Returns how many deliveries.
    pub async fn purge_endpoint(&self, endpoint: &str) -> Result<u64, StoreError> {
        let endpoint = endpoint.to_string();
        self.call(|reply| writer::Command::PurgeEndpoint { endpoint, reply })
            .await?
    }

    /// Run an air-gapped transfer step on the writer (see `transfer.rs`); imports wake
    /// the delivery workers.
    pub async fn transfer(&self, op: transfer::Op) -> Result<transfer::Done, StoreError> {
        self.call(|reply| writer::Command::Transfer { op, reply })
            .await?
    }

    /// Persisted endpoint holds (`paused`, `gone`), by endpoint.
    pub async fn holds(&self) -> Result<Vec<(String, Hold)>, StoreError> {
        self.read_admin(admin::holds).await
    }

    /// Stop the writer after it has committed everything already sent, checkpoint the WAL.
    pub fn close(self) {
        let thread = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let _ = self.inner.tx.try_send(writer::Command::Close);
        drop(self);
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// Send a command that answers through a oneshot, and wait for the answer.
    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> writer::Command,
    ) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(make(reply)).await?;
        rx.await.map_err(|_| StoreError::Closed)
    }

    async fn send(&self, cmd: writer::Command) -> Result<(), StoreError> {
        self.inner
            .tx
            .send(cmd)
            .await
            .map_err(|_| StoreError::Closed)
    }
}

fn open_connection(path: &Path, durability: Durability) -> anyhow::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| {
        anyhow::anyhow!(
            "cannot open queue database {}: {e}; check that daemon.state_dir exists and is writable by this user",
            path.display()
        )
    })?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    // page_size first: it only takes effect before the database's first page is written.
    conn.execute_batch(&format!(
        "PRAGMA page_size = {PAGE_SIZE}; PRAGMA journal_mode = WAL; \
         PRAGMA synchronous = {sync}; PRAGMA busy_timeout = 5000;"
    ))
    .map_err(|e| corrupt_or(path, e.into()))?;
    Ok(conn)
}

/// Word an open-time failure; corruption gets instructions, never an automatic delete.
fn corrupt_or(path: &Path, err: anyhow::Error) -> anyhow::Error {
    let corrupt = err
        .chain()
        .filter_map(|e| e.downcast_ref::<rusqlite::Error>())
        .any(is_corrupt);
    let p = path.display();
    if corrupt {
        anyhow::anyhow!(
            "queue database {p} is corrupt ({err:#}). edgehook will not touch it. \
             Stop edgehook, move it aside with `mv {p} {p}.corrupt` (and {p}-wal, {p}-shm if present), \
             then start edgehook again with an empty queue; the moved file can be inspected with sqlite3 \
             (`.recover`) to salvage events"
        )
    } else {
        anyhow::anyhow!("queue database {p}: {err:#}")
    }
}

/// Whether SQLite says the database file is damaged (or not a database at all): the one
/// corruption check, for open-time errors and the writer's alike.
fn is_corrupt(err: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    matches!(
        err.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_size(conn: &Connection) -> u32 {
        conn.query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn new_queue_gets_small_pages_and_an_old_one_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let new = open_connection(&dir.path().join("new.db"), Durability::Full).unwrap();
        new.execute_batch("CREATE TABLE t(x)").unwrap();
        assert_eq!(page_size(&new), PAGE_SIZE);

        let old_path = dir.path().join("old.db");
        let old = Connection::open(&old_path).unwrap();
        old.execute_batch(
            "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1)",
        )
        .unwrap();
        drop(old);
        let reopened = open_connection(&old_path, Durability::Full).unwrap();
        assert_eq!(page_size(&reopened), 4096);
        let x: i64 = reopened
            .query_row("SELECT x FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(x, 1);
    }
}

#[cfg(test)]
mod seq_tests {
    use super::*;

    /// SQLite hands out the rowid of a deleted newest row again; the writer must not: a
    /// delivery worker still waiting for the delivered row's outcome to commit matches it
    /// by seq, and would take the new event's delivery for the old one (and skip it).
    #[tokio::test]
    async fn a_delivered_newest_event_does_not_give_its_seq_to_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::parse("", &dir.path().join("edgehook.toml")).unwrap();
        let store = Store::open(&dir.path().join("queue.db"), &config.queue).unwrap();
        let event = |id: &str| NewEvent {
            event: Event::parse(format!(r#"{{"id":"{id}","type":"T","data":{{}}}}"#).as_bytes())
                .unwrap(),
            routes: vec![Route {
                endpoint: "e".into(),
                order_key: None,
            }],
            peer: Peer::default(),
        };
        let newest = || {
            store.read(|c| {
                c.query_row("SELECT MAX(seq) FROM deliveries", [], |r| {
                    r.get::<_, i64>(0)
                })
            })
        };
        store.insert(vec![event("a")], true).await.unwrap();
        let first = newest().await.unwrap();
        let update = deliveries::Update {
            seq: first,
            outcome: deliveries::Outcome::Delivered,
        };
        store.complete(vec![update]).await.unwrap().await.unwrap();
        store.insert(vec![event("b")], true).await.unwrap();
        let second = newest().await.unwrap();
        assert!(second > first, "seq {first} given out again: {second}");
    }
}
