//! The scheduler's rules, one transition at a time, with explicit instants (no clock, no
//! store): a tiny in-memory queue stands in for the rows the worker would read.

use std::time::{Duration, Instant, SystemTime};

use super::*;
use crate::config::RetryConfig;

const S: Duration = Duration::from_secs(1);
/// The latency of every attempt (only the adaptive limit looks at it).
const MS: Duration = Duration::from_millis(1);

fn settings(keys: Keys, concurrency: usize) -> Settings {
    Settings {
        keys,
        concurrency,
        adaptive: false,
        retry: RetryConfig {
            initial: S,
            multiplier: 2.0,
            max: Duration::from_secs(60),
            jitter: 0.0,
        },
        rate_limit: None,
    }
}

/// A test clock: monotonic and wall advance together.
#[derive(Clone, Copy)]
struct Clock {
    mono: Instant,
    wall: SystemTime,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            mono: Instant::now(),
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }
    fn now(&self) -> Now {
        Now {
            mono: self.mono,
            wall: self.wall,
            store_ms: self
                .wall
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        }
    }
    fn advance(&mut self, d: Duration) {
        self.mono += d;
        self.wall += d;
    }
    fn ms(&self) -> i64 {
        self.now().store_ms
    }
}

fn row(seq: i64, next_at: i64, key: Option<&str>) -> Due {
    Due {
        seq,
        next_at,
        attempts: 0,
        created_at: next_at,
        order_key: key.map(str::to_string),
        event_id: format!("ev{seq}"),
        event_type: "t".into(),
        timestamp: String::new(),
        data: b"{}".to_vec(),
    }
}

/// Pending rows as the store would hold them, answering the scheduler's reads.
struct Queue(Vec<Due>);

impl Queue {
    fn of(n: i64, at: i64) -> Queue {
        Queue((1..=n).map(|s| row(s, at, None)).collect())
    }
    fn answer(&self, fetch: Fetch, now_ms: i64) -> Fetched {
        let mut rows: Vec<Due> = self.0.clone();
        rows.sort_by_key(|d| (d.next_at, d.seq));
        match fetch {
            Fetch::Head => Fetched {
                rows: rows.into_iter().take(1).collect(),
                next_due_at: None,
            },
            Fetch::Page { after, limit } => {
                let due: Vec<Due> = rows
                    .iter()
                    .filter(|d| d.next_at <= now_ms && (d.next_at, d.seq) > after)
                    .take(limit)
                    .cloned()
                    .collect();
                let next_due_at = if due.is_empty() {
                    rows.iter().map(|d| d.next_at).find(|&at| at > now_ms)
                } else {
                    None
                };
                Fetched {
                    rows: due,
                    next_due_at,
                }
            }
        }
    }
    fn remove(&mut self, seq: i64) {
        self.0.retain(|d| d.seq != seq);
    }
}

/// Poll until the scheduler waits, answering reads from `q`; returns the started seqs,
/// the reads made and the wait.
fn run(s: &mut Scheduler, q: &Queue, c: &Clock) -> (Vec<i64>, Vec<Fetch>, Instant) {
    let (mut started, mut reads) = (Vec::new(), Vec::new());
    for _ in 0..10_000 {
        match s.poll(c.now()) {
            Action::Start(st) => started.push(st.due.seq),
            Action::Fetch(f) => {
                reads.push(f);
                s.fetched(f, q.answer(f, c.ms()), c.now());
            }
            Action::Wait(at) => return (started, reads, at),
        }
    }
    panic!("the scheduler never waits");
}

fn status(code: u16) -> Verdict {
    Verdict::Retry {
        attempts: 1,
        retry_in: 5 * S,
        status: Some(code),
        error: format!("HTTP {code}"),
    }
}

fn offline() -> Verdict {
    Verdict::Offline {
        error: "refused".into(),
    }
}

#[test]
fn online_starts_up_to_concurrency_in_queue_order() {
    let c = Clock::new();
    let q = Queue::of(10, c.ms());
    let mut s = Scheduler::new(settings(Keys::None, 3), None, c.mono);
    let (started, reads, _) = run(&mut s, &q, &c);
    assert_eq!(started, [1, 2, 3]);
    assert_eq!(reads.len(), 1);
    assert_eq!(s.state(c.now()), (State::Online, 3));
    // A finished attempt frees its slot at once; the next row comes from memory.
    assert_eq!(s.finished(1, &Verdict::Delivered, MS, c.now(), 0.5), None);
    let (started, reads, _) = run(&mut s, &q, &c);
    assert_eq!((started, reads.len()), (vec![4], 0));
}

#[test]
fn pages_follow_the_cursor_and_settling_rows_are_not_read_again() {
    let c = Clock::new();
    let mut q = Queue::of(PAGE as i64 + 2, c.ms());
    let mut s = Scheduler::new(settings(Keys::None, PAGE + 10), None, c.mono);
    let (started, reads, _) = run(&mut s, &q, &c);
    assert_eq!(started.len(), PAGE + 2);
    assert_eq!(reads.len(), 3, "two pages and an empty one: {reads:?}");
    assert!(matches!(reads[1], Fetch::Page { after: (_, seq), .. } if seq == PAGE as i64));
    // Delivered but not yet committed: still in the table, must not start again.
    s.finished(1, &Verdict::Delivered, MS, c.now(), 0.5);
    let (started, _, _) = run(&mut s, &q, &c);
    assert!(started.is_empty(), "{started:?}");
    s.settled(1, true);
    q.remove(1);
    let (started, _, _) = run(&mut s, &q, &c);
    assert!(started.is_empty(), "{started:?}");
}

#[test]
fn an_empty_queue_waits_for_the_next_due_row_or_a_notification() {
    let c = Clock::new();
    let mut q = Queue(vec![row(1, c.ms() + 7_000, None)]);
    let mut s = Scheduler::new(settings(Keys::None, 8), None, c.mono);
    let (started, reads, wait) = run(&mut s, &q, &c);
    assert!(started.is_empty());
    assert_eq!(reads.len(), 1);
    assert_eq!(wait, c.mono + 7 * S);
    // Polling again before then does not read again.
    let (_, reads, _) = run(&mut s, &q, &c);
    assert!(reads.is_empty());
    // A new row announced by the store is read at once.
    q.0.push(row(2, c.ms(), None));
    s.notified();
    let (started, _, _) = run(&mut s, &q, &c);
    assert_eq!(started, [2]);
}

#[test]
fn a_retry_wakes_the_scheduler_when_it_falls_due() {
    let mut c = Clock::new();
    let mut q = Queue::of(1, c.ms());
    let mut s = Scheduler::new(settings(Keys::None, 8), None, c.mono);
    run(&mut s, &q, &c);
    s.finished(1, &status(500), MS, c.now(), 0.5);
    s.settled(1, true);
    q.0[0].next_at = c.ms() + 5_000;
    let (started, _, wait) = run(&mut s, &q, &c);
    assert!(started.is_empty());
    assert_eq!(wait, c.mono + 5 * S);
    c.advance(5 * S);
    let (started, _, _) = run(&mut s, &q, &c);
    assert_eq!(started, [1]);
}

#[test]
fn a_failed_commit_makes_the_row_found_again() {
    let c = Clock::new();
    let q = Queue::of(1, c.ms());
    let mut s = Scheduler::new(settings(Keys::None, 8), None, c.mono);
    run(&mut s, &q, &c);
    s.finished(1, &Verdict::Delivered, MS, c.now(), 0.5);
    s.settled(1, false);
    let (started, _, _) = run(&mut s, &q, &c);
    assert_eq!(started, [1]);
}

#[test]
fn a_failed_read_is_retried_after_a_second() {
    let c = Clock::new();
    let mut s = Scheduler::new(settings(Keys::None, 8), None, c.mono);
    assert!(matches!(s.poll(c.now()), Action::Fetch(_)));
    s.fetch_failed(c.now());
    assert!(matches!(s.poll(c.now()), Action::Wait(t) if t == c.mono + S));
}

#[test]
fn connect_failure_goes_offline_and_probes_only_the_head_on_backoff() {
    let mut c = Clock::new();
    let q = Queue::of(5, c.ms());
    let mut s = Scheduler::new(settings(Keys::None, 5), None, c.mono);
    assert_eq!(run(&mut s, &q, &c).0, [1, 2, 3, 4, 5]);
    assert_eq!(
        s.finished(1, &offline(), MS, c.now(), 0.5),
        Some(Transition::WentOffline { retry_in: S })
    );
    // The other four were started while online: their failures are not probes, and do
    // not push the first probe out to backoff(5).
    for seq in 2..=5 {
        assert_eq!(s.finished(seq, &offline(), MS, c.now(), 0.5), None);
    }
    let (state, in_flight) = s.state(c.now());
    assert!(matches!(state, State::Offline { next_probe, .. } if next_probe == c.wall + S));
    assert_eq!(in_flight, 0);
    let (started, _, wait) = run(&mut s, &q, &c);
    assert!(started.is_empty());
    assert_eq!(wait, c.mono + S);
    c.advance(S);
    let (started, reads, _) = run(&mut s, &q, &c);
    assert_eq!((started, reads), (vec![1], vec![Fetch::Head]));
    // Only one probe at a time.
    let (started, _, _) = run(&mut s, &q, &c);
    assert!(started.is_empty());
    assert_eq!(
        s.finished(1, &offline(), MS, c.now(), 0.5),
        Some(Transition::ProbeFailed { retry_in: 2 * S })
    );
    c.advance(2 * S);
    assert_eq!(run(&mut s, &q, &c).0, [1]);
    assert_eq!(
        s.finished(1, &offline(), MS, c.now(), 0.5),
        Some(Transition::ProbeFailed { retry_in: 4 * S })
    );
}

#[test]
fn an_answer_brings_the_endpoint_back_online_and_it_drains() {
    let mut c = Clock::new();
    let mut q = Queue::of(4, c.ms());
    let mut s = Scheduler::new(settings(Keys::None, 4), None, c.mono);
    run(&mut s, &q, &c);
    s.finished(1, &offline(), MS, c.now(), 0.5);
    for seq in 2..=4 {
        s.finished(seq, &offline(), MS, c.now(), 0.5);
    }
    c.advance(S);
    assert_eq!(run(&mut s, &q, &c).0, [1]);
    assert_eq!(
        s.finished(1, &Verdict::Delivered, MS, c.now(), 0.5),
        Some(Transition::BackOnline)
    );
    s.settled(1, true);
    q.remove(1);
    assert_eq!(run(&mut s, &q, &c).0, [2, 3, 4]);
    assert_eq!(s.state(c.now()).0, State::Online);
}

#[test]
fn an_error_status_is_an_answer_but_a_timeout_is_not() {
    let mut c = Clock::new();
    let q = Queue::of(1, c.ms());
    let mut s = Scheduler::new(settings(Keys::None, 1), None, c.mono);
    run(&mut s, &q, &c);
    s.finished(1, &offline(), MS, c.now(), 0.5);
    c.advance(S);
    run(&mut s, &q, &c);
    let timeout = Verdict::Retry {
        attempts: 1,
        retry_in: S,
        status: None,
        error: "timeout".into(),
    };
    assert_eq!(s.finished(1, &timeout, MS, c.now(), 0.5), None);
    assert!(s.is_offline());
    s.settled(1, true);
    run(&mut s, &q, &c);
    assert_eq!(
        s.finished(1, &status(503), MS, c.now(), 0.5),
        Some(Transition::BackOnline)
    );
}

#[test]
fn wake_probes_at_once() {
    for concurrency in [1, 8] {
        let c = Clock::new();
        let q = Queue::of(1, c.ms());
        let mut s = Scheduler::new(settings(Keys::None, concurrency), None, c.mono);
        run(&mut s, &q, &c);
        s.finished(1, &offline(), MS, c.now(), 0.5);
        assert!(run(&mut s, &q, &c).0.is_empty());
        s.control(&Control::Wake, c.now());
        assert_eq!(run(&mut s, &q, &c).0, [1], "concurrency {concurrency}");
    }
}

#[test]
fn holds_stop_starting_and_resume_restarts_from_the_head() {
    let c = Clock::new();
    let q = Queue::of(3, c.ms());
    let mut s = Scheduler::new(settings(Keys::None, 1), Some(Hold::Paused), c.mono);
    let (started, reads, _) = run(&mut s, &q, &c);
    assert!(started.is_empty() && reads.is_empty());
    assert_eq!(s.state(c.now()).0, State::Held(Hold::Paused));
    s.control(&Control::Hold(None), c.now());
    assert_eq!(run(&mut s, &q, &c).0, [1]);
    s.control(&Control::Hold(Some(Hold::Paused)), c.now());
    s.finished(1, &Verdict::Delivered, MS, c.now(), 0.5);
    assert!(run(&mut s, &q, &c).0.is_empty());
}

#[test]
fn gone_holds_the_endpoint() {
    let c = Clock::new();
    let q = Queue::of(3, c.ms());
    let mut s = Scheduler::new(settings(Keys::None, 1), None, c.mono);
    run(&mut s, &q, &c);
    assert_eq!(
        s.finished(1, &Verdict::Gone, MS, c.now(), 0.5),
        Some(Transition::Gone)
    );
    assert_eq!(s.state(c.now()).0, State::Held(Hold::Gone));
    assert!(run(&mut s, &q, &c).0.is_empty());
    // `edgehook resume` releases it, and the same delivery is tried again (nothing was
    // recorded for it).
    s.control(&Control::Hold(None), c.now());
    assert_eq!(run(&mut s, &q, &c).0, [1]);
}

#[test]
fn fifo_sends_one_at_a_time_and_a_retry_blocks_the_queue_in_memory() {
    let mut c = Clock::new();
    let q = Queue::of(3, c.ms());
    let mut s = Scheduler::new(settings(Keys::Fifo, 8), None, c.mono);
    assert_eq!(run(&mut s, &q, &c).0, [1]);
    s.finished(1, &status(500), MS, c.now(), 0.5);
    s.settled(1, true);
    // The row keeps its place (its next_at was not moved) and nothing else overtakes it.
    let (started, _, wait) = run(&mut s, &q, &c);
    assert!(started.is_empty());
    assert_eq!(wait, c.mono + 5 * S);
    c.advance(5 * S);
    assert_eq!(run(&mut s, &q, &c).0, [1]);
}

#[test]
fn order_keys_serialise_per_key_only() {
    let c = Clock::new();
    let at = c.ms();
    let mut q = Queue(vec![
        row(1, at, Some("a")),
        row(2, at, Some("a")),
        row(3, at, Some("b")),
        row(4, at, Some("a")),
        row(5, at, Some("c")),
    ]);
    let mut s = Scheduler::new(settings(Keys::PerDelivery, 8), None, c.mono);
    assert_eq!(run(&mut s, &q, &c).0, [1, 3, 5]);
    // A delivered head releases its key: the scan restarts and finds the key's next row.
    s.finished(1, &Verdict::Delivered, MS, c.now(), 0.5);
    s.settled(1, true);
    q.remove(1);
    assert_eq!(run(&mut s, &q, &c).0, [2]);
    // A retry holds key "b" but not the others.
    s.finished(3, &status(503), MS, c.now(), 0.5);
    s.settled(3, true);
    assert!(run(&mut s, &q, &c).0.is_empty());
    s.finished(2, &Verdict::Delivered, MS, c.now(), 0.5);
    s.settled(2, true);
    q.remove(2);
    assert_eq!(run(&mut s, &q, &c).0, [4]);
}

#[test]
fn the_rate_limit_spaces_starts() {
    let mut c = Clock::new();
    let q = Queue::of(10, c.ms());
    let mut st = settings(Keys::None, 10);
    st.rate_limit = Some(RateLimit { count: 2, per: S });
    let mut s = Scheduler::new(st, None, c.mono);
    let (started, _, wait) = run(&mut s, &q, &c);
    assert_eq!(started, [1, 2]);
    assert_eq!(wait, c.mono + S / 2);
    c.advance(S / 2);
    assert_eq!(run(&mut s, &q, &c).0, [3]);
}

#[test]
fn a_cursor_from_the_future_restarts_the_scan() {
    // The wall clock went back (and the store shifted the rows with it): the old cursor
    // would skip every row.
    let mut c = Clock::new();
    let q = Queue::of(3, c.ms());
    let mut s = Scheduler::new(settings(Keys::None, 2), None, c.mono);
    assert_eq!(run(&mut s, &q, &c).0, [1, 2]);
    c.wall -= Duration::from_secs(365 * 86_400);
    let mut q2 = Queue(q.0.clone());
    for d in &mut q2.0 {
        d.next_at -= 365 * 86_400_000;
    }
    s.notified();
    s.finished(1, &Verdict::Delivered, MS, c.now(), 0.5);
    assert_eq!(run(&mut s, &q2, &c).0, [3]);
}

#[test]
fn adaptive_concurrency_starts_at_one_grows_and_restarts_after_an_outage() {
    let c = Clock::new();
    let q = Queue::of(100, c.ms());
    let mut st = settings(Keys::None, 16);
    st.adaptive = true;
    let mut s = Scheduler::new(st, None, c.mono);
    assert_eq!(run(&mut s, &q, &c).0, [1]);
    s.finished(1, &Verdict::Delivered, MS, c.now(), 0.5);
    assert_eq!(s.limit(), 2);
    assert_eq!(run(&mut s, &q, &c).0.len(), 2);
    let (_, in_flight) = s.state(c.now());
    assert_eq!(in_flight, 2);
    // 503s cut the limit.
    s.finished(2, &status(503), MS, c.now(), 0.5);
    assert_eq!(s.limit(), 1);
    // Going offline forgets what was learned.
    s.finished(3, &offline(), MS, c.now(), 0.5);
    assert!(s.is_offline());
    assert_eq!(s.limit(), 1);
}

#[test]
fn a_page_is_sized_by_the_attempts_allowed_in_flight() {
    let c = Clock::new();
    let limit_of_first_read = |s: &mut Scheduler| match s.poll(c.now()) {
        Action::Fetch(Fetch::Page { limit, .. }) => limit,
        other => panic!("expected a page read, got {other:?}"),
    };
    let mut one = Scheduler::new(settings(Keys::None, 1), None, c.mono);
    assert_eq!(limit_of_first_read(&mut one), PAGE_PER_SLOT);
    let mut many = Scheduler::new(settings(Keys::None, 64), None, c.mono);
    assert_eq!(limit_of_first_read(&mut many), PAGE);
    // Adaptive starts from one attempt in flight: a hundred endpoints waking to a new
    // backlog read a few rows each, not a page.
    let mut adaptive = settings(Keys::None, 64);
    adaptive.adaptive = true;
    let mut adaptive = Scheduler::new(adaptive, None, c.mono);
    assert_eq!(limit_of_first_read(&mut adaptive), PAGE_PER_SLOT);
}

#[test]
fn a_settling_row_alone_does_not_make_the_scheduler_read_in_a_loop() {
    // The last delivery finished and its outcome is not committed yet: the page holds only
    // that row. The scheduler must wait (for the commit, or a new row), not re-read the
    // same page until the commit lands: the worker learns of the commit only while waiting.
    let c = Clock::new();
    let mut q = Queue::of(1, c.ms());
    let mut s = Scheduler::new(settings(Keys::None, 1), None, c.mono);
    let (started, _, _) = run(&mut s, &q, &c);
    assert_eq!(started, vec![1]);
    s.finished(1, &Verdict::Delivered, MS, c.now(), 0.5);
    let (started, _, _) = run(&mut s, &q, &c);
    assert!(started.is_empty(), "{started:?}");
    // A new row arrives before the commit: it starts; the settling row does not.
    q.0.push(row(2, c.ms(), None));
    s.notified();
    let (started, _, _) = run(&mut s, &q, &c);
    assert_eq!(started, vec![2]);
    s.settled(1, true);
    q.remove(1);
}

#[test]
fn a_retry_is_found_when_it_falls_due_even_if_read_while_settling() {
    // Attempt 1 answers 503; before its outcome commits, the scheduler reads and finds the
    // row at its old place (skipped: settling), nothing else due. Once the commit lands the
    // row's next_at is the retry time: the scheduler must look again and wake then.
    let mut c = Clock::new();
    let mut q = Queue::of(1, c.ms());
    let mut s = Scheduler::new(settings(Keys::None, 1), None, c.mono);
    let (started, _, _) = run(&mut s, &q, &c);
    assert_eq!(started, vec![1]);
    s.finished(1, &status(503), MS, c.now(), 0.5);
    let (started, _, _) = run(&mut s, &q, &c);
    assert!(started.is_empty());
    // The commit moves the row to the retry time (5 s), then settles.
    q.0[0].next_at = c.ms() + 5_000;
    s.settled(1, true);
    let (started, _, wake) = run(&mut s, &q, &c);
    assert!(started.is_empty());
    assert!(
        wake <= c.mono + 5 * S,
        "sleeps past the retry: {:?}",
        wake - c.mono
    );
    c.advance(5 * S);
    let (started, _, _) = run(&mut s, &q, &c);
    assert_eq!(started, vec![1]);
}
