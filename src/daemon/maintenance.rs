//! The maintenance task: housekeeping on its interval, storage probes while storage
//! fails, and the wall-clock watch — with no wake-up that has nothing to do (an idle board
//! sleeps; BENCHMARKS.md, "Footprint").
//!
//! [`run`] sleeps until the earliest of its real deadlines: the next housekeeping run
//! ([`interval`] of the current config), and while the store reports a failure (disk
//! full, I/O error, free space below `queue.reserve`) the next one-page probe write. It
//! is woken early by what can move those deadlines: a published config (a shorter
//! `max_age`), the store's health turning bad, and a step of the wall clock.
//!
//! **Clock steps.** [`ClockSet`] waits on a `timerfd` on `CLOCK_REALTIME` armed with
//! `TFD_TIMER_CANCEL_ON_SET`: the kernel wakes it when the wall clock is set
//! (`settimeofday`, `clock_settime`: NTP's step, an RTC correction, `date -s`) and at no
//! other time. Every wake of this task, for whatever reason, also checks the wall clock
//! against elapsed time (`Store::watch_clock`), and so does `status`; a slow drift
//! (slewing, or a clock faked inside the process as libfaketime does in the tests) is
//! therefore seen at the next housekeeping run at the latest. Seeing a step late changes
//! only when it is logged and recorded: queue times follow `CLOCK_BOOTTIME`, so no
//! schedule or age depends on it (`store/clock.rs`).

use std::io;
use std::time::Duration;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::config::{self, Live};
use crate::store::{Store, StoreError};

/// How often expired dedupe entries are pruned and old rows expired, at most: often
/// enough that nobody waits for it, rarely enough to cost nothing on a big queue. Shorter
/// `queue.max_age` or `keep_delivered` make it shorter ([`interval`]).
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);
/// The shortest maintenance interval: each run is one short write transaction.
const MIN_MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);
/// While storage fails (disk full), how often a one-page probe write checks whether it
/// works again, so health and ingest recover by themselves within about this time.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How far ahead the clock-set timer is armed: it is there to be cancelled by a clock set;
/// expiring (and being armed again) once a day costs nothing. Short enough that adding it
/// to the wall clock cannot overflow a 32-bit `time_t` (armhf) before 2038 does.
const CLOCK_SET_HORIZON: Duration = Duration::from_secs(86_400);
/// The clock thread only blocks in `read(2)`, sends on a channel and may log a line.
const CLOCK_THREAD_STACK: usize = 256 * 1024;

/// How often housekeeping runs for `queue`: `MAINTENANCE_INTERVAL`, or half of
/// `max_age` / `keep_delivered` when that is shorter (so a row expires at most half its
/// limit late), but never more often than `MIN_MAINTENANCE_INTERVAL`.
fn interval(queue: &config::QueueConfig) -> Duration {
    let limits = [queue.max_age, Some(queue.keep_delivered)];
    limits
        .into_iter()
        .flatten()
        .filter(|d| !d.is_zero())
        .map(|d| d / 2)
        .fold(MAINTENANCE_INTERVAL, Duration::min)
        .max(MIN_MAINTENANCE_INTERVAL)
}

/// Housekeeping on [`interval`] of the current config (a first run at start); while
/// storage fails, also a probe write every [`PROBE_INTERVAL`] so the failure clears once
/// it works again. Every wake also checks the wall clock (module doc).
pub(super) async fn run(store: Store, mut config: Live, cancel: CancellationToken) {
    let mut clock_set = ClockSet::new()
        .inspect_err(|err| {
            warn!(error = %err, "Cannot watch for wall-clock steps (timerfd); steps are seen at the next housekeeping run.");
        })
        .ok();
    let mut health = store.health();
    let mut housekept: Option<Instant> = None;
    // While storage fails: when to probe next (a second after it began failing, as a
    // refused insert clears the reserve's verdict only once the drain made room).
    let mut probe_at: Option<Instant> = None;
    loop {
        if store.watch_clock().await.is_err() {
            return;
        }
        let failing = *health.borrow_and_update();
        probe_at = match probe_at {
            _ if !failing => None,
            None => Some(Instant::now() + PROBE_INTERVAL),
            Some(at) if at <= Instant::now() => {
                // A failed probe needs no handling: the writer logged it, health says so.
                if let Err(StoreError::Closed) = store.probe().await {
                    return;
                }
                Some(Instant::now() + PROBE_INTERVAL)
            }
            later => later,
        };
        let every = interval(&config.load().queue);
        if housekept.is_none_or(|at| at.elapsed() >= every) {
            housekept = Some(Instant::now());
            if store.maintain().await.is_err() {
                return;
            }
        }
        let mut wake = housekept.map_or_else(Instant::now, |at| at + every);
        if let Some(at) = probe_at {
            wake = wake.min(at);
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep_until(wake) => {}
            changed = health.changed() => if changed.is_err() { return },
            more = config.changed() => if !more { return },
            _ = ClockSet::wait(&mut clock_set) => {}
        }
    }
}

/// Wakes when the kernel reports the wall clock set (module doc): a thread blocked in
/// `read(2)` on a `timerfd` armed with `TFD_TIMER_CANCEL_ON_SET`, which costs no wake-up
/// until then. (A thread rather than tokio's reactor: registering a raw fd with it is
/// `unsafe` now, and the crate forbids `unsafe`.)
struct ClockSet(mpsc::Receiver<()>);

impl ClockSet {
    fn new() -> io::Result<ClockSet> {
        let timer = TimerFd::new(ClockId::CLOCK_REALTIME, TimerFlags::TFD_CLOEXEC)?;
        arm(&timer)?;
        let (tx, rx) = mpsc::channel(1);
        std::thread::Builder::new()
            .name("edgehook-clock".into())
            .stack_size(CLOCK_THREAD_STACK)
            .spawn(move || watch_clock_sets(&timer, &tx))?;
        Ok(ClockSet(rx))
    }

    /// Resolves when the wall clock was set; never without a working timer.
    async fn wait(set: &mut Option<ClockSet>) {
        let Some(ClockSet(rx)) = set else {
            return std::future::pending().await;
        };
        if rx.recv().await.is_none() {
            *set = None; // The thread logged why it stopped.
        }
    }
}

/// The clock thread: block until the timer is cancelled by a clock set (or expires), arm
/// it again, tell the task; end when the task is gone or the timer fails.
fn watch_clock_sets(timer: &TimerFd, tx: &mpsc::Sender<()>) {
    loop {
        if let Err(err) = timer.wait().and_then(|()| arm(timer)) {
            warn!(error = %err, "The wall-clock step watch failed; steps are seen at the next housekeeping run.");
            return;
        }
        // Full: a wake is already pending, which is as good.
        if let Err(mpsc::error::TrySendError::Closed(())) = tx.try_send(()) {
            return;
        }
    }
}

/// Arm `timer` for [`CLOCK_SET_HORIZON`] from now, cancelled by a clock set.
fn arm(timer: &TimerFd) -> nix::Result<()> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)?;
    let at = now + TimeSpec::from_duration(CLOCK_SET_HORIZON);
    let flags = TimerSetTimeFlags::TFD_TIMER_ABSTIME | TimerSetTimeFlags::TFD_TIMER_CANCEL_ON_SET;
    timer.set(Expiration::OneShot(at), flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(max_age: Option<u64>, keep_delivered: u64) -> config::QueueConfig {
        config::QueueConfig {
            durability: config::Durability::Full,
            max_bytes: 1 << 30,
            when_full: config::WhenFull::Reject,
            max_age: max_age.map(Duration::from_secs),
            dedupe_window: Duration::from_secs(86_400),
            keep_delivered: Duration::from_secs(keep_delivered),
            reserve: 4 << 20,
        }
    }

    #[test]
    fn interval_follows_the_shortest_limit() {
        let secs = |q| interval(&q).as_secs_f64();
        assert_eq!(secs(queue(None, 0)), 60.0, "defaults: once a minute");
        assert_eq!(secs(queue(Some(30 * 86_400), 0)), 60.0, "30d: no faster");
        assert_eq!(secs(queue(Some(10), 0)), 5.0, "half of max_age");
        assert_eq!(secs(queue(Some(10), 4)), 2.0, "half of keep_delivered");
        assert_eq!(secs(queue(Some(1), 0)), 1.0, "never under a second");
        assert_eq!(secs(queue(None, 90)), 45.0);
    }

    #[tokio::test]
    async fn the_clock_set_timer_stays_quiet_while_nobody_sets_the_clock() {
        let mut set = Some(ClockSet::new().expect("timerfd on CLOCK_REALTIME"));
        let quiet = tokio::time::timeout(Duration::from_millis(200), ClockSet::wait(&mut set));
        assert!(quiet.await.is_err(), "woke without a clock set");
        assert!(set.is_some());
    }
}
