//! `rate_limit = "N/s"`: a token bucket per endpoint, pure (time is passed in).
//!
//! The bucket holds at most `count` tokens (the burst bound: at most one period's worth
//! at once) and refills continuously at `count / per`.

use std::time::{Duration, Instant};

use crate::config::RateLimit;

#[derive(Debug)]
pub struct Bucket {
    capacity: f64,
    per_token: Duration,
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    pub fn new(limit: RateLimit, now: Instant) -> Bucket {
        let capacity = f64::from(limit.count.max(1));
        Bucket {
            capacity,
            per_token: limit.per.div_f64(capacity),
            tokens: capacity,
            updated: now,
        }
    }

    /// Take a token, or say when the next one will be there.
    pub fn take(&mut self, now: Instant) -> Result<(), Instant> {
        let elapsed = now.saturating_duration_since(self.updated);
        self.tokens =
            (self.tokens + elapsed.as_secs_f64() / self.per_token.as_secs_f64()).min(self.capacity);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(now + self.per_token.mul_f64(1.0 - self.tokens))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_is_bounded_and_rate_holds() {
        let t0 = Instant::now();
        let mut b = Bucket::new(
            RateLimit {
                count: 10,
                per: Duration::from_secs(1),
            },
            t0,
        );
        for _ in 0..10 {
            assert!(b.take(t0).is_ok());
        }
        let next = b.take(t0).unwrap_err();
        assert_eq!(next - t0, Duration::from_millis(100));
        // Over 10 simulated seconds, starting empty, exactly 100 more tokens are granted.
        let mut granted = 0;
        let mut now = t0;
        while now < t0 + Duration::from_secs(10) {
            match b.take(now) {
                Ok(()) => granted += 1,
                Err(at) => now = at,
            }
        }
        assert!((99..=101).contains(&granted), "{granted}");
    }
}
