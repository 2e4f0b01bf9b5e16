//! One endpoint's delivery scheduling, sans-IO (ntpd-rs style): the state and the rules,
//! no store, no network, no clock of its own.
//!
//! The worker (`worker.rs`) asks [`Scheduler::poll`] "what next" with the current time and
//! performs the answer — start an attempt, read the queue, or wait — then reports back what
//! happened ([`Scheduler::fetched`], [`Scheduler::finished`], [`Scheduler::settled`],
//! [`Scheduler::control`], [`Scheduler::notified`]). Every rule below is therefore a unit
//! test away.
//!
//! **Ordering keys.** A delivery with a key may start only when no other delivery with that
//! key is in flight or waiting out a retry. `ordering = "fifo"` gives every delivery the same
//! key, `order_key` takes the key from the event, `ordering = "none"` uses none. A keyed
//! retry keeps its place in the queue (its `next_at` is not moved); the key waits in memory.
//! When a key is released the page cursor restarts, so the oldest delivery of that key is
//! found first.
//!
//! **Endpoint modes.** *Online*: up to `concurrency` attempts, read a page at a time in
//! `(next_at, seq)` order. *Offline* after a connect-level failure: only the head delivery
//! is probed, on the backoff schedule; probes are not counted as attempts. An attempt that
//! started while online and fails after the endpoint went offline is not a probe: it does
//! not advance the probe backoff. Any HTTP answer brings the endpoint back online. *Held*
//! (`gone` after a 410, `paused`): nothing starts; deliveries keep queueing.
//!
//! **Settling.** A finished attempt frees its slot at once, but its row must not be read
//! again until its outcome is committed: it is *settling* until [`Scheduler::settled`].
//!
//! **Idle.** When a read finds nothing due, the scheduler waits until the next row falls
//! due, a retry it scheduled falls due, or [`Scheduler::notified`] says the queue changed —
//! never re-reading in a loop.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use super::adaptive::{Adaptive, Signal};
use super::rate::Bucket;
use super::retry::{self, Verdict};
use super::status::{Control, State};
use crate::config::{EndpointConfig, Ordering, RateLimit, RetryConfig};
use crate::store::deliveries::Due;
use crate::store::Hold;

/// Rows read per page at most; bounds memory per endpoint whatever the backlog.
pub const PAGE: usize = 256;
/// Rows read per page for each attempt the endpoint may have in flight (up to [`PAGE`]):
/// an endpoint that starts one attempt at a time (adaptive concurrency's first window, a
/// `fifo` endpoint) reads a few rows, not a full page. A hundred endpoints that wake at
/// once to a new backlog and go offline at their first attempt so hold ~16 rows each,
/// not 256 (BENCHMARKS.md, "Threads with 100 endpoints").
const PAGE_PER_SLOT: usize = 16;
/// Look at the queue at least this often even without a signal (a safety net only: every
/// change the scheduler can know of wakes it sooner). Long, because each look wakes an
/// idle board (BENCHMARKS.md, "Footprint": idle wake-ups).
const IDLE_RECHECK: Duration = Duration::from_secs(300);
/// After a failed read, try again this soon.
const READ_RETRY: Duration = Duration::from_secs(1);
/// The cursor before the first row.
const START: (i64, i64) = (i64::MIN, i64::MIN);

/// The time, as the scheduler needs it: monotonic for schedules, the store's clock for
/// the rows' times, wall for people.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub mono: Instant,
    pub wall: SystemTime,
    /// [`crate::store::now_ms`]: elapsed time, not moved by wall-clock steps.
    pub store_ms: i64,
}

impl Now {
    pub fn read() -> Now {
        Now {
            mono: Instant::now(),
            wall: SystemTime::now(),
            store_ms: crate::store::now_ms(),
        }
    }
}

/// How deliveries are keyed for ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    None,
    /// One key for everything.
    Fifo,
    /// The key stored with each delivery (`order_key`).
    PerDelivery,
}

/// What the scheduler needs of the endpoint's config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub keys: Keys,
    /// Most attempts in flight (the cap of the adaptive limit when `adaptive`).
    pub concurrency: usize,
    pub adaptive: bool,
    pub retry: RetryConfig,
    pub rate_limit: Option<RateLimit>,
}

impl Settings {
    pub fn of(endpoint: &EndpointConfig) -> Settings {
        let keys = match (endpoint.ordering, &endpoint.order_key) {
            (Ordering::Fifo, _) => Keys::Fifo,
            (Ordering::None, Some(_)) => Keys::PerDelivery,
            (Ordering::None, None) => Keys::None,
        };
        Settings {
            keys,
            concurrency: endpoint.concurrency,
            adaptive: endpoint.adaptive,
            retry: endpoint.retry,
            rate_limit: endpoint.rate_limit,
        }
    }
}

/// What the worker should do next.
#[derive(Debug)]
pub enum Action {
    /// Start this attempt now.
    Start(Start),
    /// Read the queue and hand the result to [`Scheduler::fetched`].
    Fetch(Fetch),
    /// Nothing to do before this instant, unless an input arrives first.
    Wait(Instant),
}

/// One attempt to start.
#[derive(Debug)]
pub struct Start {
    pub due: Due,
    pub key: Option<String>,
}

impl Start {
    /// A keyed retry keeps its place in the queue: the `next_at` to record, if so.
    pub fn keep_place(&self) -> Option<i64> {
        self.key.is_some().then_some(self.due.next_at)
    }
}

/// A read of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    /// Up to `limit` rows due by now, strictly after the `(next_at, seq)` keyset `after`;
    /// when none, also when the next one falls due.
    Page { after: (i64, i64), limit: usize },
    /// The oldest pending row, due or not (the offline probe).
    Head,
}

/// What a [`Fetch`] found.
#[derive(Debug, Default)]
pub struct Fetched {
    pub rows: Vec<Due>,
    /// With an empty page: when the next pending row falls due (unix ms), if any.
    pub next_due_at: Option<i64>,
}

/// A change of the endpoint's state worth telling the operator (and the store, for gone).
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// The first connect-level failure: only the head is probed from now on.
    WentOffline { retry_in: Duration },
    /// A probe failed again.
    ProbeFailed { retry_in: Duration },
    /// An answer while offline.
    BackOnline,
    /// 410: the endpoint is held as `gone`; the worker records it.
    Gone,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Online,
    Offline {
        probes: u32,
        next_probe: Instant,
        since: SystemTime,
    },
}

#[derive(Debug)]
struct Flight {
    key: Option<String>,
    probe: bool,
    /// Attempts in flight when it started, itself included (for the adaptive limit).
    alongside: usize,
}

/// The scheduling state of one endpoint.
#[derive(Debug)]
pub struct Scheduler {
    settings: Settings,
    mode: Mode,
    hold: Option<Hold>,
    in_flight: HashMap<i64, Flight>,
    /// Keys in use: `None` while in flight, `Some(t)` while waiting out a retry until `t`.
    busy_keys: HashMap<String, Option<Instant>>,
    /// Rows read and not started yet, in queue order.
    local: VecDeque<Due>,
    cursor: (i64, i64),
    bucket: Option<Bucket>,
    /// The learned limit when `concurrency = "adaptive"`.
    adaptive: Option<Adaptive>,
    /// Finished rows whose outcome is not committed yet.
    settling: HashSet<i64>,
    /// Set when a read found nothing to start: look again at this instant (or when told).
    idle_until: Option<Instant>,
}

impl Scheduler {
    pub fn new(settings: Settings, hold: Option<Hold>, now: Instant) -> Scheduler {
        let bucket = settings.rate_limit.map(|r| Bucket::new(r, now));
        let adaptive = settings
            .adaptive
            .then(|| Adaptive::new(settings.concurrency));
        Scheduler {
            adaptive,
            settings,
            mode: Mode::Online,
            hold,
            in_flight: HashMap::new(),
            busy_keys: HashMap::new(),
            local: VecDeque::new(),
            cursor: START,
            bucket,
            settling: HashSet::new(),
            idle_until: None,
        }
    }

    /// What to do now. Call again after doing it, until it answers [`Action::Wait`].
    pub fn poll(&mut self, now: Now) -> Action {
        let held_keys = self.busy_keys.len();
        self.busy_keys
            .retain(|_, until| until.is_none_or(|t| t > now.mono));
        if self.busy_keys.len() != held_keys {
            self.rescan();
        }
        let mut wake = now.mono + IDLE_RECHECK;
        for t in self.busy_keys.values().flatten() {
            wake = wake.min(*t);
        }
        if self.hold.is_some() {
            return Action::Wait(wake);
        }
        let capacity = match self.mode {
            _ if self.settings.keys == Keys::Fifo && !self.busy_keys.is_empty() => 0,
            Mode::Online => self.limit(),
            Mode::Offline { next_probe, .. }
                if next_probe <= now.mono && self.in_flight.is_empty() =>
            {
                1
            }
            Mode::Offline { next_probe, .. } => {
                wake = wake.min(next_probe);
                0
            }
        };
        while self.in_flight.len() < capacity {
            let Some(due) = self.local.front() else {
                match self.idle_until {
                    Some(t) if t > now.mono => return Action::Wait(wake.min(t)),
                    _ => self.idle_until = None,
                }
                return Action::Fetch(self.next_fetch(now));
            };
            let key = self.key(due);
            if key.as_ref().is_some_and(|k| self.busy_keys.contains_key(k)) {
                // Found again from the start once the key is released.
                self.local.pop_front();
                continue;
            }
            if let Some(bucket) = &mut self.bucket {
                if let Err(at) = bucket.take(now.mono) {
                    return Action::Wait(wake.min(at));
                }
            }
            let due = self.local.pop_front().expect("front() was Some");
            let probe = matches!(self.mode, Mode::Offline { .. });
            if let Some(k) = &key {
                self.busy_keys.insert(k.clone(), None);
            }
            self.in_flight.insert(
                due.seq,
                Flight {
                    key: key.clone(),
                    probe,
                    alongside: self.in_flight.len() + 1,
                },
            );
            return Action::Start(Start { due, key });
        }
        Action::Wait(wake)
    }

    fn next_fetch(&mut self, now: Now) -> Fetch {
        if matches!(self.mode, Mode::Offline { .. }) {
            return Fetch::Head;
        }
        // With nothing in flight, settling or waiting, start from the beginning; a cursor
        // in the future means the wall clock went back, and the rows' times with it. (Not
        // while rows settle: the page would hold them again, and the worker, reading in a
        // loop, would never learn that their outcomes were committed.)
        let idle =
            self.in_flight.is_empty() && self.busy_keys.is_empty() && self.settling.is_empty();
        if idle || self.cursor.0 > now.store_ms {
            self.cursor = START;
        }
        Fetch::Page {
            after: self.cursor,
            limit: self.limit().saturating_mul(PAGE_PER_SLOT).clamp(1, PAGE),
        }
    }

    /// The result of the read `fetch` asked for by the last [`Action::Fetch`].
    pub fn fetched(&mut self, fetch: Fetch, found: Fetched, now: Now) {
        if fetch == Fetch::Head && matches!(self.mode, Mode::Online) {
            return; // The endpoint came back while the read ran; the next poll pages.
        }
        let read_any = !found.rows.is_empty();
        if let (Fetch::Page { .. }, Some(last)) = (fetch, found.rows.last()) {
            self.cursor = (last.next_at, last.seq);
        }
        let (in_flight, settling) = (&self.in_flight, &self.settling);
        self.local.extend(
            found
                .rows
                .into_iter()
                .filter(|d| !in_flight.contains_key(&d.seq) && !settling.contains(&d.seq)),
        );
        if self.local.is_empty() && (!read_any || fetch == Fetch::Head) {
            let next = found
                .next_due_at
                .map(|at| now.mono + Duration::from_millis((at - now.store_ms).max(0) as u64));
            self.idle_until = Some(next.unwrap_or(now.mono + IDLE_RECHECK));
        }
    }

    /// The read failed; try again shortly.
    pub fn fetch_failed(&mut self, now: Now) {
        self.idle_until = Some(now.mono + READ_RETRY);
    }

    /// An attempt finished with `verdict` after `latency`. When the verdict records an
    /// outcome the row is settling until [`Scheduler::settled`]. `unit` in `[0, 1)` feeds
    /// the probe jitter.
    pub fn finished(
        &mut self,
        seq: i64,
        verdict: &Verdict,
        latency: Duration,
        now: Now,
        unit: f64,
    ) -> Option<Transition> {
        let flight = self.in_flight.remove(&seq)?;
        if let Some(a) = &mut self.adaptive {
            a.observe(latency, signal(verdict), flight.alongside);
        }
        if verdict.records() {
            self.settling.insert(seq);
        }
        if let Verdict::Retry { retry_in, .. } = verdict {
            // The row falls due again then (if unkeyed; a keyed one waits on its key).
            let due = now.mono + *retry_in;
            self.idle_until = self.idle_until.map(|t| t.min(due));
        }
        if let Some(key) = &flight.key {
            match (verdict, self.busy_keys.get_mut(key)) {
                (Verdict::Retry { retry_in, .. }, Some(slot)) => *slot = Some(now.mono + *retry_in),
                _ => {
                    self.busy_keys.remove(key);
                    self.rescan();
                }
            }
        }
        let transition = match (verdict, self.mode) {
            (Verdict::Offline { .. }, Mode::Offline { .. }) if !flight.probe => None,
            (Verdict::Offline { .. }, mode) => {
                let (probes, since, first) = match mode {
                    Mode::Offline { probes, since, .. } => (probes + 1, since, false),
                    Mode::Online => (1, now.wall, true),
                };
                let retry_in = retry::backoff(&self.settings.retry, probes, unit);
                self.mode = Mode::Offline {
                    probes,
                    next_probe: now.mono + retry_in,
                    since,
                };
                // From now on the head is read instead of pages; what was learned of the
                // receiver's load may not hold when it comes back.
                self.rescan();
                if let Some(a) = &mut self.adaptive {
                    a.reset();
                }
                Some(if first {
                    Transition::WentOffline { retry_in }
                } else {
                    Transition::ProbeFailed { retry_in }
                })
            }
            (v, Mode::Offline { .. }) if v.answered() => {
                self.mode = Mode::Online;
                self.rescan();
                Some(Transition::BackOnline)
            }
            _ => None,
        };
        if matches!(verdict, Verdict::Gone) {
            self.hold = Some(Hold::Gone);
            self.local.clear();
            return Some(Transition::Gone);
        }
        transition
    }

    /// The outcome of `seq` was committed (`ok`), or recording it failed: the row is still
    /// pending then, and must be found again. Either way, look again: a read made while
    /// the row was settling saw its old state (a retry's new `next_at` only now counts).
    pub fn settled(&mut self, seq: i64, ok: bool) {
        self.settling.remove(&seq);
        self.idle_until = None;
        if !ok {
            self.rescan();
        }
    }

    /// An operator's instruction.
    pub fn control(&mut self, control: &Control, now: Now) {
        match control {
            Control::Wake => {
                if let Mode::Offline { next_probe, .. } = &mut self.mode {
                    *next_probe = now.mono;
                    self.idle_until = None;
                }
            }
            Control::Hold(hold) => {
                self.hold = *hold;
                self.rescan();
            }
        }
    }

    /// The queue changed (new rows, or stored times were shifted): look again.
    pub fn notified(&mut self) {
        self.idle_until = None;
    }

    /// Whether an offline endpoint may be woken (`edgehook wake` reports it).
    pub fn is_offline(&self) -> bool {
        matches!(self.mode, Mode::Offline { .. })
    }

    /// Attempts allowed in flight while online (the adaptive limit, or `concurrency`).
    pub fn limit(&self) -> usize {
        self.adaptive
            .as_ref()
            .map_or(self.settings.concurrency, Adaptive::limit)
    }

    /// The state status shows, and how many attempts are in flight.
    pub fn state(&self, now: Now) -> (State, usize) {
        let state = match (self.hold, self.mode) {
            (Some(h), _) => State::Held(h),
            (None, Mode::Online) => State::Online,
            (
                None,
                Mode::Offline {
                    next_probe, since, ..
                },
            ) => State::Offline {
                since,
                next_probe: now.wall + next_probe.saturating_duration_since(now.mono),
            },
        };
        (state, self.in_flight.len())
    }

    /// Forget what was read and start over from the oldest row.
    fn rescan(&mut self) {
        self.local.clear();
        self.cursor = START;
        self.idle_until = None;
    }

    fn key(&self, due: &Due) -> Option<String> {
        match self.settings.keys {
            Keys::None => None,
            Keys::Fifo => Some(String::new()),
            Keys::PerDelivery => Some(due.order_key.clone().unwrap_or_default()),
        }
    }
}

/// What a verdict says about the receiver's load.
fn signal(verdict: &Verdict) -> Signal {
    match verdict {
        Verdict::Delivered => Signal::Latency,
        Verdict::Retry { status, .. } | Verdict::Dead { status, .. } => match status {
            None | Some(429) | Some(503) => Signal::Pressure,
            Some(_) => Signal::Latency,
        },
        Verdict::Offline { .. } | Verdict::Gone => Signal::None,
    }
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
