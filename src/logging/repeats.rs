//! Repeated identical failures are logged once, then summarised at most once a minute with
//! a count (SPEC §12): a full disk or a dead link must not write a line per attempt.
//!
//! [`Repeats`] only decides; the caller logs with its own macro, level and fields, so
//! journal fields stay where they belong:
//!
//! ```
//! use edgehook::logging::repeats::Repeats;
//! static COMMIT_FAILED: Repeats = Repeats::new();
//! # let err = "disk full";
//! if let Some(repeated) = COMMIT_FAILED.admit(err) {
//!     tracing::error!(error = %err, repeated, "Queue commit failed; callers are told to retry.");
//! }
//! // … and once it works again, say how many were left out since the last line:
//! if let Some(repeated) = COMMIT_FAILED.clear_all() {
//!     tracing::info!(repeated, "Queue storage works again.");
//! }
//! ```
//!
//! A key is whatever makes two failures "identical" for the reader: the error text, or
//! `endpoint + error kind`. `repeated` is the number of occurrences of that key left out
//! since its previous line (0 on the first). Keys are kept in a small map; when it is
//! full the stalest key is forgotten (its next occurrence is logged as a first one).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest a repeating failure goes without a line (SPEC §12: at most once a minute).
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);
/// Distinct keys remembered at once: a few per endpoint and store path is plenty, and it
/// bounds memory when error texts vary (e.g. carry an address).
const MAX_KEYS: usize = 64;

/// One key's history: when its last line was written, and what was left out since.
#[derive(Debug, Clone, Copy)]
struct Seen {
    logged_at: Instant,
    suppressed: u64,
}

/// The log-once-then-summarise gate; `&self` methods, so it can be a `static` or shared.
#[derive(Debug)]
pub struct Repeats {
    every: Duration,
    seen: Mutex<BTreeMap<String, Seen>>,
}

impl Default for Repeats {
    fn default() -> Self {
        Repeats::new()
    }
}

impl Repeats {
    /// A gate that summarises every [`SUMMARY_INTERVAL`].
    pub const fn new() -> Repeats {
        Repeats::every(SUMMARY_INTERVAL)
    }

    /// A gate that summarises every `every` (tests, or a rarer summary).
    pub const fn every(every: Duration) -> Repeats {
        Repeats {
            every,
            seen: Mutex::new(BTreeMap::new()),
        }
    }

    /// Another occurrence of `key`: `Some(repeated)` when it should be logged now (the
    /// first one, or the first after [`SUMMARY_INTERVAL`] with `repeated` left out since
    /// the last line), `None` when it should be left out.
    pub fn admit(&self, key: &str) -> Option<u64> {
        self.admit_at(key, Instant::now())
    }

    /// [`Repeats::admit`] at a given time.
    pub fn admit_at(&self, key: &str, now: Instant) -> Option<u64> {
        let mut seen = self.lock();
        if let Some(s) = seen.get_mut(key) {
            if now.saturating_duration_since(s.logged_at) < self.every {
                s.suppressed += 1;
                return None;
            }
            let repeated = s.suppressed;
            *s = Seen {
                logged_at: now,
                suppressed: 0,
            };
            return Some(repeated);
        }
        if seen.len() >= MAX_KEYS {
            let stalest = seen
                .iter()
                .min_by_key(|(_, s)| s.logged_at)
                .map(|(k, _)| k.clone());
            if let Some(k) = stalest {
                seen.remove(&k);
            }
        }
        seen.insert(
            key.to_string(),
            Seen {
                logged_at: now,
                suppressed: 0,
            },
        );
        Some(0)
    }

    /// The failure `key` is over: forget it. `Some(repeated)` (occurrences left out since
    /// its last line) if it had been logged, so the recovery line can say so.
    pub fn clear(&self, key: &str) -> Option<u64> {
        self.lock().remove(key).map(|s| s.suppressed)
    }

    /// Every failure is over (storage works again): forget all keys. `Some(total left
    /// out)` if any had been logged, `None` if nothing was failing.
    pub fn clear_all(&self) -> Option<u64> {
        let mut seen = self.lock();
        if seen.is_empty() {
            return None;
        }
        let total = seen.values().map(|s| s.suppressed).sum();
        seen.clear();
        Some(total)
    }

    /// Whether any key is being tracked (a failure was logged and has not been cleared).
    pub fn active(&self) -> bool {
        !self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Seen>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_occurrence_is_logged_then_one_summary_a_minute_with_the_count() {
        let gate = Repeats::new();
        let t0 = Instant::now();
        assert_eq!(gate.admit_at("disk full", t0), Some(0));
        let lines: Vec<_> = (1..=1000)
            .map(|i| t0 + Duration::from_millis(i * 100)) // 100 s of one failure every 100 ms
            .filter_map(|t| gate.admit_at("disk full", t))
            .collect();
        assert_eq!(
            lines,
            [599],
            "one summary at 60 s, counting the 599 left out"
        );
        assert_eq!(
            gate.clear("disk full"),
            Some(400),
            "left out since the summary"
        );
        assert_eq!(
            gate.admit_at("disk full", t0),
            Some(0),
            "cleared: first again"
        );
    }

    #[test]
    fn different_keys_are_counted_apart() {
        let gate = Repeats::new();
        let t0 = Instant::now();
        assert_eq!(gate.admit_at("a", t0), Some(0));
        assert_eq!(gate.admit_at("b", t0), Some(0));
        assert_eq!(gate.admit_at("a", t0), None);
        assert_eq!(gate.admit_at("a", t0 + SUMMARY_INTERVAL), Some(1));
        assert_eq!(gate.admit_at("b", t0 + SUMMARY_INTERVAL), Some(0));
        assert!(gate.active());
        assert_eq!(gate.clear_all(), Some(0));
        assert!(!gate.active());
        assert_eq!(gate.clear_all(), None, "nothing was failing");
        assert_eq!(gate.clear("a"), None);
    }

    #[test]
    fn many_distinct_keys_stay_bounded_and_forget_the_stalest() {
        let gate = Repeats::new();
        let t0 = Instant::now();
        for i in 0..MAX_KEYS as u64 + 10 {
            let at = t0 + Duration::from_millis(i);
            assert_eq!(gate.admit_at(&format!("k{i}"), at), Some(0));
        }
        assert_eq!(gate.lock().len(), MAX_KEYS);
        assert_eq!(gate.admit_at("k0", t0), Some(0), "k0 was forgotten");
        let last = format!("k{}", MAX_KEYS as u64 + 9);
        assert_eq!(gate.admit_at(&last, t0), None, "recent keys are kept");
    }

    #[test]
    fn a_gate_can_be_a_static() {
        static GATE: Repeats = Repeats::every(Duration::from_secs(1));
        assert_eq!(GATE.admit("x"), Some(0));
        assert_eq!(GATE.admit("x"), None);
    }
}
