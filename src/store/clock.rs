//! The queue's clock: every time stored in the queue follows elapsed time, never a step of
//! the wall clock (an RTC-less board that boots in 1970 or at its last shutdown time and
//! is set by NTP days later, an RTC that runs ahead and is corrected back).
//!
//! **Queue time** ([`now_ms`]) is milliseconds on a line that advances with
//! `CLOCK_BOOTTIME` (elapsed time, suspend included) and equals the wall clock when the
//! process starts: `queue = boottime + base`, `base` fixed at the first reading. Every
//! stored time is queue time (deliveries' `next_at`, `created_at`, `updated_at`, events'
//! `received_at`, the dedupe table's times, endpoint holds' `since`, imports'
//! `imported_at`; a new time column must join [`SHIFTED`]), so schedules (`next_at`) and
//! ages (`queue.max_age`, `dedupe_window`, `keep_delivered`) are differences of queue
//! times, which a wall-clock step does not move. The delivery worker's `Instant`s and the queue clock therefore
//! agree while the daemon runs, and nothing stored is rewritten then.
//!
//! **Restarts** ([`fold`], at open, before the writer starts): the row `clock` holds the
//! last run's boot id and `base`, and a (queue, wall) pair it saw. Within the same boot
//! the last run's queue clock still reads `boottime + base_then`, so every stored time
//! moves by `base_now - base_then`: exactly the steps made while the daemon was stopped
//! (or while it ran, folded in now). After a reboot elapsed time is unknown: the down time
//! is taken from the wall clock (now minus the last wall time seen, the newest event's or
//! the marker's), but counted as zero when either clock looks unset or the difference is
//! negative. The move is one transaction, logged with its size.
//!
//! **Steps while running** ([`Watch`], checked when the kernel reports the clock set, on
//! every wake of the maintenance task and on `status`: `daemon/maintenance.rs`) change
//! nothing stored; they
//! are logged with their size, shown in `status`, and recorded in the marker so that a
//! later reboot estimates the down time from the corrected wall clock. A wall clock before
//! the build time of this binary ([`built_ms`]) looks unset: reported once in the journal
//! and in `status`; the queue works as usual meanwhile.
//!
//! Times for people (`status`, dead letters) are converted back with [`wall_of`];
//! `webhook-timestamp` and signatures use the wall clock at the time of sending.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use nix::time::{clock_gettime, ClockId};
use rusqlite::{params, Connection, OptionalExtension};
use tracing::{info, warn};

/// Steps smaller than this are clock noise (NTP slews, not steps, below 128 ms): neither
/// logged nor folded into stored times (a fold rewrites every row).
const STEP_THRESHOLD_MS: i64 = 1_000;

/// Every stored time column, moved together by [`fold`].
const SHIFTED: &[(&str, &str)] = &[
    ("events", "received_at"),
    ("deliveries", "next_at"),
    ("deliveries", "created_at"),
    ("deliveries", "updated_at"),
    ("dedupe", "received_at"),
    ("endpoint_state", "since"),
    ("transfer_imported", "imported_at"),
];

/// Where Linux names the current boot; differs after every reboot.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// Queue time now, in milliseconds (see the module doc); the store's clock for every
/// stored time and for every comparison with one.
pub fn now_ms() -> i64 {
    boot_ms() + base_ms()
}

/// The wall clock now, in milliseconds since the Unix epoch (negative before 1970).
pub fn wall_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// A stored (queue) time as wall-clock milliseconds, for people: corrected by every step
/// made since this process started.
pub fn wall_of(queue_ms: i64) -> i64 {
    queue_ms + wall_ms() - now_ms()
}

/// When this binary was built (`build.rs`; `SOURCE_DATE_EPOCH` when set), in unix ms. A
/// wall clock before it is certainly wrong.
pub fn built_ms() -> i64 {
    env!("EDGEHOOK_BUILD_UNIX_SECS")
        .parse::<i64>()
        .map_or(0, |s| s * 1000)
}

/// Whether the wall time `wall_ms` looks unset (before this binary was built).
pub fn looks_unset(wall_ms: i64) -> bool {
    wall_ms < built_ms()
}

/// `CLOCK_BOOTTIME` in milliseconds: elapsed since boot, suspend included, never stepped.
#[allow(clippy::useless_conversion)] // i64 from i32 on armhf
fn boot_ms() -> i64 {
    // CLOCK_BOOTTIME exists on every Linux edgehook supports; a failure is a broken
    // invariant of the platform, and MONOTONIC is the next best elapsed-time clock.
    let t = clock_gettime(ClockId::CLOCK_BOOTTIME)
        .or_else(|_| clock_gettime(ClockId::CLOCK_MONOTONIC))
        .expect("clock_gettime(CLOCK_MONOTONIC) cannot fail on Linux");
    // time_t and c_long are i32 on armhf: widen before multiplying (an i32 of milliseconds
    // overflows after 24 days of uptime).
    i64::from(t.tv_sec()) * 1000 + i64::from(t.tv_nsec()) / 1_000_000
}

/// `queue - boottime` of this process, fixed at the first reading.
fn base_ms() -> i64 {
    static BASE: OnceLock<i64> = OnceLock::new();
    *BASE.get_or_init(|| wall_ms() - boot_ms())
}

fn boot_id() -> String {
    std::fs::read_to_string(BOOT_ID)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// A step's size for people: `+2d 00:00:00`, `-365d 00:00:00`, `+00:00:05`.
pub fn format_step(ms: i64) -> String {
    let sign = if ms < 0 { '-' } else { '+' };
    let secs = (ms.unsigned_abs() + 500) / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let hms = format!("{:02}:{:02}:{:02}", rest / 3600, rest / 60 % 60, rest % 60);
    if days > 0 {
        format!("{sign}{days}d {hms}")
    } else {
        format!("{sign}{hms}")
    }
}

fn rfc3339(ms: i64) -> String {
    let t = if ms >= 0 {
        UNIX_EPOCH + std::time::Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH
    };
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The `clock` row: what the last run knew of its clocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Marker {
    boot_id: String,
    /// `queue - boottime` of the run that wrote it.
    base_ms: i64,
    /// A queue time that run reached, and the wall clock then.
    queue_ms: i64,
    wall_ms: i64,
}

impl Marker {
    fn now() -> Marker {
        Marker {
            boot_id: boot_id(),
            base_ms: base_ms(),
            queue_ms: now_ms(),
            wall_ms: wall_ms(),
        }
    }
}

/// Write the marker (at open, and by the writer after a step).
pub(super) fn mark(conn: &Connection, m: &Marker) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO clock(id, boot_id, base_ms, queue_ms, wall_ms) VALUES (1, ?1, ?2, ?3, ?4)",
    )?
    .execute(params![m.boot_id, m.base_ms, m.queue_ms, m.wall_ms])?;
    Ok(())
}

fn load_marker(conn: &Connection) -> rusqlite::Result<Option<Marker>> {
    conn.query_row(
        "SELECT boot_id, base_ms, queue_ms, wall_ms FROM clock WHERE id = 1",
        [],
        |r| {
            Ok(Marker {
                boot_id: r.get(0)?,
                base_ms: r.get(1)?,
                queue_ms: r.get(2)?,
                wall_ms: r.get(3)?,
            })
        },
    )
    .optional()
}

/// How the stored times must move at open, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fold {
    /// The same boot: the wall clock stepped by `shift` since the last run started.
    SameBoot { shift: i64 },
    /// A reboot: `shift` puts the last run's times on this run's clock with `down`
    /// milliseconds of down time counted.
    NewBoot { shift: i64, down: i64 },
}

impl Fold {
    fn shift(self) -> i64 {
        match self {
            Fold::SameBoot { shift } | Fold::NewBoot { shift, .. } => shift,
        }
    }
}

/// The pure rule of the module doc. `last` is the last run's marker, `newest` the queue
/// time of the newest stored event, `now` this run's marker, `built` the build time.
fn plan(last: &Marker, newest: Option<i64>, now: &Marker, built: i64) -> Fold {
    if !last.boot_id.is_empty() && last.boot_id == now.boot_id {
        return Fold::SameBoot {
            shift: now.base_ms - last.base_ms,
        };
    }
    let last_queue = newest.map_or(last.queue_ms, |n| n.max(last.queue_ms));
    let last_wall = last_queue + (last.wall_ms - last.queue_ms);
    let down = if last_wall >= built && now.wall_ms >= built {
        (now.wall_ms - last_wall).max(0)
    } else {
        0
    };
    Fold::NewBoot {
        shift: now.queue_ms - (last_queue + down),
        down,
    }
}

/// At open: put the stored times on this run's queue clock (module doc) and write the
/// marker, in one transaction. A database without a marker (new, or written by an
/// edgehook before this rule) holds wall-clock times, which is this run's clock.
pub(super) fn fold(conn: &mut Connection) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    let now = Marker::now();
    let last = load_marker(&tx).context("reading the clock marker")?;
    if let Some(last) = last {
        let newest: Option<i64> = tx
            .query_row(
                "SELECT received_at FROM events ORDER BY seq DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        let fold = plan(&last, newest, &now, built_ms());
        let shift = fold.shift();
        if shift.abs() >= STEP_THRESHOLD_MS {
            let mut rows = 0;
            for (table, column) in SHIFTED {
                rows += tx
                    .execute(
                        &format!("UPDATE {table} SET {column} = {column} + ?1 WHERE {column} IS NOT NULL"),
                        [shift],
                    )
                    .with_context(|| format!("moving {table}.{column} by {shift} ms"))?;
            }
            let step = format_step(shift);
            match fold {
                Fold::SameBoot { .. } => warn!(step = %step, step_ms = shift, rows,
                    "Wall clock stepped while edgehook was stopped by {step}; moved the stored times with it, so schedules and ages follow elapsed time."),
                Fold::NewBoot { down, .. } => {
                    warn!(step = %step, step_ms = shift, rows, down_secs = down / 1000,
                    "Moved the stored times by {step} onto this boot's clock (down time taken from the wall clock, zero when it looked unset or went back).")
                }
            }
        }
    }
    mark(&tx, &now).context("writing the clock marker")?;
    tx.commit()?;
    Ok(())
}

/// A step seen while running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Wall time just after it (unix ms).
    pub at_ms: i64,
    pub size_ms: i64,
}

/// The clock as `status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub wall_ms: i64,
    pub built_ms: i64,
    pub unset: bool,
    /// All steps since this process started, summed (wall minus queue time).
    pub stepped_ms: i64,
    pub last_step: Option<Step>,
}

/// Watches the wall clock against elapsed time while the daemon runs (module doc).
#[derive(Debug, Default)]
pub(super) struct Watch {
    /// Wall minus queue time as last reported.
    reported_ms: i64,
    unset: bool,
    last_step: Option<Step>,
}

impl Watch {
    /// A watch that has checked once (an unset clock at start is reported now).
    pub(super) fn start() -> Watch {
        let mut w = Watch {
            reported_ms: wall_ms() - now_ms(),
            ..Watch::default()
        };
        w.check();
        w
    }

    /// Log a step or an unset clock once; returns the marker to record after a step.
    pub(super) fn check(&mut self) -> Option<Marker> {
        let now = Marker::now();
        let stepped = now.wall_ms - now.queue_ms;
        let size = stepped - self.reported_ms;
        let mut mark = None;
        if size.abs() >= STEP_THRESHOLD_MS {
            let step = format_step(size);
            warn!(step = %step, step_ms = size, now = %rfc3339(now.wall_ms),
                "Wall clock stepped by {step}; queue schedules and ages follow elapsed time and are unaffected.");
            self.reported_ms = stepped;
            self.last_step = Some(Step {
                at_ms: now.wall_ms,
                size_ms: size,
            });
            mark = Some(now.clone());
        }
        let unset = looks_unset(now.wall_ms);
        if unset && !self.unset {
            warn!(now = %rfc3339(now.wall_ms), built = %rfc3339(built_ms()),
                "Wall clock looks unset: it is before this edgehook was built. Events are accepted and schedules follow elapsed time, but HTTPS certificate checks fail and new events' timestamps are wrong until the clock is set (check NTP or the RTC).");
        } else if !unset && self.unset {
            info!(now = %rfc3339(now.wall_ms), "Wall clock is set now.");
        }
        self.unset = unset;
        mark
    }

    pub(super) fn report(&self) -> Report {
        let wall = wall_ms();
        Report {
            wall_ms: wall,
            built_ms: built_ms(),
            unset: looks_unset(wall),
            stepped_ms: wall - now_ms(),
            last_step: self.last_step,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;
    const BUILT: i64 = 1_750_000_000_000;

    fn marker(boot: &str, base: i64, queue: i64, wall: i64) -> Marker {
        Marker {
            boot_id: boot.into(),
            base_ms: base,
            queue_ms: queue,
            wall_ms: wall,
        }
    }

    #[test]
    fn same_boot_moves_by_the_step_made_while_stopped() {
        let last = marker("a", 1_000 * DAY, 1_000 * DAY + 5_000, 1_000 * DAY + 5_000);
        // Stopped, then the wall clock went back a year: this run's base is a year less.
        let now = marker("a", 635 * DAY, 635 * DAY + 9_000, 635 * DAY + 9_000);
        assert_eq!(
            plan(&last, Some(999 * DAY), &now, BUILT),
            Fold::SameBoot { shift: -365 * DAY }
        );
    }

    #[test]
    fn same_boot_without_a_step_moves_nothing() {
        let last = marker("a", 7, 100, 100);
        let now = marker("a", 7, 900, 900);
        assert_eq!(plan(&last, None, &now, BUILT).shift(), 0);
    }

    #[test]
    fn new_boot_with_a_good_clock_counts_the_down_time() {
        let t = BUILT + 10 * DAY;
        let last = marker("a", 0, t, t);
        // Newest event an hour after the marker; three days down; wall clock right.
        let now = marker("b", 0, t + 3 * DAY, t + 3 * DAY);
        assert_eq!(
            plan(&last, Some(t + 3_600_000), &now, BUILT),
            Fold::NewBoot {
                shift: 0,
                down: 3 * DAY - 3_600_000
            }
        );
    }

    #[test]
    fn new_boot_counts_no_down_time_when_a_clock_looks_unset() {
        let t = BUILT + 10 * DAY;
        // Last run in 2026; this boot starts in 1970: the times move back, ages kept.
        let last = marker("a", 0, t, t);
        let now = marker("b", 0, 10_000, 10_000);
        assert_eq!(
            plan(&last, Some(t), &now, BUILT),
            Fold::NewBoot {
                shift: 10_000 - t,
                down: 0
            }
        );
        // Last run in 1970 (queue and wall alike), this boot set: no down time either.
        let last = marker("a", 0, 50_000, 50_000);
        let now = marker("b", 0, t, t);
        assert_eq!(
            plan(&last, None, &now, BUILT),
            Fold::NewBoot {
                shift: t - 50_000,
                down: 0
            }
        );
    }

    #[test]
    fn new_boot_uses_the_wall_clock_the_last_run_corrected_to() {
        let t = BUILT + 400 * DAY;
        // The last run started 11 months slow (queue = wall then), NTP stepped it by
        // +330 days while it ran (the marker recorded that), then it lost power.
        let last = marker("a", 0, t - 330 * DAY + 60_000, t + 60_000);
        let newest = t - 330 * DAY + 120_000;
        // Rebooted 10 minutes after the newest event, with the right time.
        let now = marker("b", 0, t + 720_000, t + 720_000);
        let fold = plan(&last, Some(newest), &now, BUILT);
        assert_eq!(
            fold,
            Fold::NewBoot {
                shift: 330 * DAY,
                down: 600_000
            }
        );
    }

    #[test]
    fn new_boot_with_the_clock_gone_back_counts_no_down_time() {
        let t = BUILT + 400 * DAY;
        let last = marker("a", 0, t, t);
        let now = marker("b", 0, t - 365 * DAY, t - 365 * DAY);
        assert_eq!(
            plan(&last, None, &now, BUILT),
            Fold::NewBoot {
                shift: -365 * DAY,
                down: 0
            }
        );
    }

    #[test]
    fn fold_moves_every_stored_time_in_one_go() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        conn.execute_batch(
            "INSERT INTO events(seq, id, type, timestamp, data, size, received_at) VALUES (1, 'a', 'T', 't', x'7b7d', 2, 1000);
             INSERT INTO deliveries(seq, event_seq, endpoint, created_at, next_at, updated_at) VALUES (65536, 1, 'e', 1000, 2000, NULL);
             INSERT INTO dedupe(id, received_at) VALUES ('a', 1000);
             INSERT INTO endpoint_state(endpoint, state, since) VALUES ('e', 'paused', 1000);",
        )
        .unwrap();
        // The last run was this boot with a base 5 s above ours: the clock stepped back.
        let mut last = Marker::now();
        last.base_ms += 5_000;
        mark(&conn, &last).unwrap();
        fold(&mut conn).unwrap();
        let times: (i64, i64, i64, Option<i64>, i64, i64) = conn
            .query_row(
                "SELECT e.received_at, d.created_at, d.next_at, d.updated_at,
                        (SELECT received_at FROM dedupe), (SELECT since FROM endpoint_state)
                 FROM events e JOIN deliveries d ON d.event_seq = e.seq",
                [],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .unwrap();
        assert_eq!(times, (-4000, -4000, -3000, None, -4000, -4000));
        assert_eq!(load_marker(&conn).unwrap().unwrap().base_ms, base_ms());
    }

    #[test]
    fn steps_are_formatted_in_days_and_seconds() {
        assert_eq!(format_step(2 * DAY), "+2d 00:00:00");
        assert_eq!(format_step(-365 * DAY - 12), "-365d 00:00:00");
        assert_eq!(format_step(5_400), "+00:00:05");
        assert_eq!(format_step(-3_723_000), "-01:02:03");
    }
}
