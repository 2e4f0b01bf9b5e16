//! The disk reserve (SPEC §12 `queue.reserve`): ingest is refused while the room left
//! for the queue is below it, so that the bookkeeping that frees space (recording
//! outcomes, deleting delivered rows, WAL checkpoints) always has pages to write. A queue
//! that filled its own disk therefore drains by itself, and ingest resumes as soon as
//! the drain has made room again, without an operator.
//!
//! "Room" is the free space of the file system holding the queue (`statvfs`, what an
//! unprivileged user may use) **plus** the database's free pages: SQLite keeps the pages
//! of deleted rows in the file and reuses them before it grows the file, so a drained
//! queue is room again even though the file system's free space did not change.
//!
//! The writer checks before each insert call, counting that call's bytes, and again at
//! every probe (once a second while refusing, see `daemon/maintenance.rs`), so health turns
//! 200 by itself. Entering and leaving the refusing state are logged through
//! [`Repeats`], at most once a minute each, however often the queue crosses the line.

use std::cell::Cell;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tracing::{info, warn};

use super::StoreError;
use crate::logging::repeats::Repeats;

/// The refusing state's transitions, each logged at most once a minute.
static CROSSINGS: Repeats = Repeats::new();
/// While refusing, how often the WAL is checkpointed and truncated to give its file space
/// back: as often as the daemon probes, so a drain is noticed within about a second.
const RECLAIM_INTERVAL: Duration = Duration::from_secs(1);

/// The reserve check and its current verdict (shared with health).
pub(super) struct Reserve {
    /// The directory whose file system holds the queue.
    dir: PathBuf,
    /// `queue.reserve` in bytes.
    pub(super) bytes: u64,
    /// Why ingest is refused now, `None` while there is room; read by `Store::failure`.
    low: Arc<Mutex<Option<String>>>,
    /// When [`Reserve::reclaim`] last truncated the WAL.
    reclaimed: Cell<Option<Instant>>,
}

impl Reserve {
    pub(super) fn new(dir: PathBuf, bytes: u64) -> Reserve {
        Reserve {
            dir,
            bytes,
            low: Arc::default(),
            reclaimed: Cell::new(None),
        }
    }

    /// The shared verdict, for health checks.
    pub(super) fn low(&self) -> Arc<Mutex<Option<String>>> {
        self.low.clone()
    }

    /// Whether ingest is refused for lack of room now.
    pub(super) fn is_low(&self) -> bool {
        self.low.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// May `incoming` more bytes of events be stored? Refuses (`StoreError::Reserve`)
    /// when that would leave less than the reserve. `reserve = 0` turns the check off.
    pub(super) fn admit(&self, conn: &Connection, incoming: u64) -> Result<(), StoreError> {
        if self.bytes == 0 {
            self.set_low(None);
            return Ok(());
        }
        match self.room(conn) {
            Some(room) if room < self.bytes.saturating_add(incoming) => {
                let err = StoreError::Reserve {
                    room,
                    reserve: self.bytes,
                    dir: self.dir.display().to_string(),
                };
                self.set_low(Some(err.to_string()));
                Err(err)
            }
            // Room, or no way to tell (statvfs failed): the commit itself will say.
            _ => {
                self.set_low(None);
                Ok(())
            }
        }
    }

    /// Re-evaluate without storing anything (the probe): clears the refusing state once
    /// the drain has made room.
    pub(super) fn refresh(&self, conn: &Connection) {
        let _ = self.admit(conn, 0);
    }

    /// While refusing, after a commit: checkpoint the WAL and truncate it (at most every
    /// [`RECLAIM_INTERVAL`]). The WAL is the queue's scratch space, up to SQLite's 1000-page
    /// auto-checkpoint (4 MiB); on a small disk that is what stands between a drained
    /// queue and the reserve. Outside a transaction only; a busy reader just postpones it.
    pub(super) fn reclaim(&self, conn: &Connection) {
        let due = self
            .reclaimed
            .get()
            .is_none_or(|at| at.elapsed() >= RECLAIM_INTERVAL);
        if !due || !self.is_low() {
            return;
        }
        self.reclaimed.set(Some(Instant::now()));
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }

    /// Bytes the queue can still grow by: the file system's free space for this user
    /// plus the database's free pages. `None` if the file system cannot be asked.
    fn room(&self, conn: &Connection) -> Option<u64> {
        let fs = nix::sys::statvfs::statvfs(&self.dir).ok()?;
        let free = (fs.blocks_available() as u64).saturating_mul(fs.fragment_size() as u64);
        // Kept prepared: this runs before every insert call (each HTTP request).
        let ask = |pragma: &str| -> i64 {
            conn.prepare_cached(pragma)
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .unwrap_or(0)
        };
        let (pages, page_size) = (ask("PRAGMA freelist_count"), ask("PRAGMA page_size"));
        Some(free.saturating_add((pages.max(0) as u64).saturating_mul(page_size.max(0) as u64)))
    }

    fn set_low(&self, why: Option<String>) {
        let mut low = self.low.lock().unwrap_or_else(|p| p.into_inner());
        match (&*low, &why) {
            (None, Some(why)) => {
                if let Some(repeated) = CROSSINGS.admit("low") {
                    warn!(reason = %why, repeated, "Free space is below queue.reserve: refusing events (503) while deliveries drain the queue.");
                }
            }
            (Some(_), None) => {
                if let Some(repeated) = CROSSINGS.admit("room") {
                    info!(
                        repeated,
                        "Free space is above queue.reserve again; accepting events."
                    );
                }
            }
            _ => {}
        }
        *low = why;
    }
}
