//! Small helpers the benchmarks share: numbers from the environment, and polling a
//! receiver's counts until enough requests arrived.

use std::fmt::Debug;
use std::time::{Duration, Instant};

/// `$name` as a number, or `default` when unset or not a number.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Read `counts` every 5 ms until `done` holds; returns the last reading.
///
/// # Panics
/// After `timeout`, naming `what` and the last reading.
pub fn poll_until<T: Debug>(
    what: &str,
    timeout: Duration,
    mut counts: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let c = counts();
        if done(&c) {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {c:?} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
