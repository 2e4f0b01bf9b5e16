//! `concurrency = "adaptive"` (SPEC §12): how many attempts an endpoint may have in flight,
//! learned from the receiver's answers. Pure: attempts' latencies and signals in, a limit
//! out.
//!
//! The idea is Vector's adaptive request concurrency, done as TCP Vegas does it: the
//! lowest round-trip time seen (`base`) is what the receiver costs unloaded; a window's
//! mean latency above it means requests are queueing at the receiver, about
//! `limit × (mean − base) / mean` of them (less [`NOISE`], half a millisecond that a fast
//! receiver's latency moves by without any queue). Each window (one limit's worth of finished
//! attempts):
//! - back-pressure (429, 503, a timeout) cuts the limit by a quarter at once;
//! - fewer than [`QUEUE_LOW`] queued requests and the limit in use: grow (doubling until
//!   the first sign of queueing, then one at a time);
//! - more than [`QUEUE_HIGH`] queued: shrink by one.
//!
//! So a fast receiver takes the limit to `max_concurrency`, one whose latency grows with
//! load holds it near the point where latency starts to rise (its knee), and a fleet of
//! relays coming back at once starts each from one request in flight and backs off together
//! on the 503s of a receiver that cannot keep up. The base drifts up slowly
//! ([`BASE_DRIFT`] per window), so a receiver that becomes slower for good is re-learned.

use std::time::Duration;

/// Queued requests (beyond the base) below which the limit grows.
const QUEUE_LOW: f64 = 2.0;
/// Queued requests above which the limit shrinks.
const QUEUE_HIGH: f64 = 4.0;
/// The cut on back-pressure.
const BACKOFF: f64 = 0.75;
/// Latency above the base that is not counted as queueing. Over loopback or a LAN a
/// request takes a fraction of a millisecond and the relay's own CPU moves that by as
/// much as the receiver does: without an allowance such a receiver looks loaded at a
/// handful of requests in flight (BENCHMARKS.md, "Adaptive concurrency").
const NOISE: Duration = Duration::from_micros(500);
/// How much the base may rise per window when every window is slower than it.
const BASE_DRIFT: f64 = 1.001;

/// What an attempt's result says about the receiver's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// An answer that measures the receiver's latency (2xx, and errors that are not load).
    Latency,
    /// The receiver is overloaded: 429, 503, or no answer within `timeout`.
    Pressure,
    /// Says nothing about load (connect-level failures: the endpoint is offline).
    None,
}

/// The adaptive limit of one endpoint.
#[derive(Debug, Clone)]
pub struct Adaptive {
    max: usize,
    limit: usize,
    /// The lowest window mean latency seen (drifting up slowly).
    base: Option<Duration>,
    /// Until the first sign of queueing the limit doubles per window (slow start).
    slow_start: bool,
    window: Window,
}

#[derive(Debug, Clone, Default)]
struct Window {
    samples: usize,
    total: Duration,
    pressure: bool,
    /// Whether attempts were ever in flight at the full limit during the window.
    saturated: bool,
}

impl Adaptive {
    /// Start with one attempt in flight, growing up to `max`.
    pub fn new(max: usize) -> Adaptive {
        Adaptive {
            max: max.max(1),
            limit: 1,
            base: None,
            slow_start: true,
            window: Window::default(),
        }
    }

    /// Attempts allowed in flight now.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// An attempt finished after `latency`; `in_flight` is how many were in flight when
    /// it started (including itself).
    pub fn observe(&mut self, latency: Duration, signal: Signal, in_flight: usize) {
        match signal {
            Signal::None => return,
            Signal::Pressure => self.window.pressure = true,
            Signal::Latency => {
                self.window.samples += 1;
                self.window.total += latency;
            }
        }
        self.window.saturated |= in_flight >= self.limit;
        if self.window.pressure || self.window.samples >= self.limit {
            self.close_window();
        }
    }

    /// Start again from one in flight (the endpoint went offline: whatever was learned
    /// may not hold when it comes back).
    pub fn reset(&mut self) {
        *self = Adaptive::new(self.max);
    }

    fn close_window(&mut self) {
        let w = std::mem::take(&mut self.window);
        if w.pressure {
            self.limit = ((self.limit as f64 * BACKOFF).floor() as usize).max(1);
            self.slow_start = false;
            return;
        }
        let mean = w.total / w.samples.max(1) as u32;
        let base = match self.base {
            Some(b) => mean.min(b.mul_f64(BASE_DRIFT)),
            None => mean,
        };
        self.base = Some(base);
        // Requests queued at the receiver: the share of the mean above the base (less the
        // noise allowance), times the requests in flight.
        let excess = mean.saturating_sub(base + NOISE);
        let queued = if mean.is_zero() {
            0.0
        } else {
            self.limit as f64 * excess.as_secs_f64() / mean.as_secs_f64()
        };
        if queued > QUEUE_HIGH {
            self.slow_start = false;
            self.limit = (self.limit - 1).max(1);
        } else if queued < QUEUE_LOW && w.saturated {
            self.limit = if self.slow_start {
                self.limit * 2
            } else {
                self.limit + 1
            }
            .min(self.max);
        } else if queued >= QUEUE_LOW {
            self.slow_start = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A closed loop: `limit` attempts always in flight against a receiver whose latency
    /// is `latency(in_flight)`; returns the limit after `rounds` windows, and the limits
    /// seen over the last half.
    fn simulate(
        a: &mut Adaptive,
        rounds: usize,
        latency: impl Fn(usize) -> Duration,
    ) -> (usize, Vec<usize>) {
        let mut seen = Vec::new();
        for round in 0..rounds {
            let n = a.limit();
            for _ in 0..n {
                a.observe(latency(n), Signal::Latency, n);
            }
            if round >= rounds / 2 {
                seen.push(a.limit());
            }
        }
        (a.limit(), seen)
    }

    #[test]
    fn a_fast_receiver_takes_the_limit_to_the_maximum() {
        let mut a = Adaptive::new(64);
        let (limit, _) = simulate(&mut a, 40, |_| Duration::from_millis(2));
        assert_eq!(limit, 64);
        // Slow start: doubling, so the maximum is reached within a few windows.
        let mut a = Adaptive::new(64);
        simulate(&mut a, 7, |_| Duration::from_millis(2));
        assert_eq!(a.limit(), 64);
    }

    #[test]
    fn a_receiver_that_slows_under_load_holds_the_limit_near_its_knee() {
        // Flat 10 ms up to 16 in flight, then every request beyond queues (M/D/1-like:
        // latency grows linearly past the knee, throughput stays at 1.6 req/ms).
        const KNEE: usize = 16;
        let latency = |n: usize| Duration::from_micros(10_000 * n.max(KNEE) as u64 / KNEE as u64);
        let mut a = Adaptive::new(64);
        let (_, seen) = simulate(&mut a, 200, latency);
        let (lo, hi) = (*seen.iter().min().unwrap(), *seen.iter().max().unwrap());
        assert!(
            lo >= KNEE - 4 && hi <= KNEE + 8,
            "limits over the last 100 windows: {lo}..={hi}"
        );
    }

    #[test]
    fn sub_millisecond_latency_growth_is_not_taken_for_a_queue() {
        // Loopback to a fast receiver on a busy 2-core box: 60 µs alone, +10 µs per
        // request in flight (the relay and the receiver share the CPU). Counting that as
        // queueing held the limit at 5–6 and cost 13 % of the throughput against nginx.
        let latency = |n: usize| Duration::from_micros(50 + 10 * n as u64);
        let mut a = Adaptive::new(64);
        let (_, seen) = simulate(&mut a, 200, latency);
        let lo = *seen.iter().min().unwrap();
        assert!(
            lo >= 32,
            "limits over the last 100 windows reach down to {lo}"
        );
    }

    #[test]
    fn back_pressure_cuts_the_limit_and_it_recovers() {
        let mut a = Adaptive::new(64);
        simulate(&mut a, 10, |_| Duration::from_millis(2));
        assert_eq!(a.limit(), 64);
        a.observe(Duration::from_millis(2), Signal::Pressure, 64);
        assert_eq!(a.limit(), 48);
        for _ in 0..20 {
            a.observe(Duration::from_millis(2), Signal::Pressure, 1);
        }
        assert_eq!(a.limit(), 1, "never below one");
        // Recovery is additive after pressure (no second slow start).
        simulate(&mut a, 3, |_| Duration::from_millis(2));
        assert_eq!(a.limit(), 4);
    }

    #[test]
    fn the_limit_grows_only_when_it_is_used() {
        let mut a = Adaptive::new(64);
        for _ in 0..100 {
            a.observe(Duration::from_millis(2), Signal::Latency, 0);
        }
        assert_eq!(a.limit(), 1);
    }

    #[test]
    fn offline_results_say_nothing_and_reset_starts_over() {
        let mut a = Adaptive::new(8);
        simulate(&mut a, 10, |_| Duration::from_millis(2));
        assert_eq!(a.limit(), 8);
        for _ in 0..100 {
            a.observe(Duration::from_secs(5), Signal::None, 8);
        }
        assert_eq!(a.limit(), 8);
        a.reset();
        assert_eq!(a.limit(), 1);
    }

    #[test]
    fn a_receiver_that_becomes_slower_for_good_is_relearned() {
        let mut a = Adaptive::new(64);
        simulate(&mut a, 20, |_| Duration::from_millis(2));
        assert_eq!(a.limit(), 64);
        // Ten times slower, flat: not a queue, once the base has drifted up.
        let (_, seen) = simulate(&mut a, 4_000, |_| Duration::from_millis(20));
        assert_eq!(*seen.last().unwrap(), 64, "{:?}", &seen[seen.len() - 10..]);
    }
}
