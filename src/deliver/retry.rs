//! Retry rules, pure: an attempt's result → what happens next (SPEC §5).
//!
//! [`classify`] sorts a result into success, retry, permanent failure, gone, or
//! endpoint-offline; [`decide`] turns that plus the delivery's history into one
//! [`Verdict`] (what to record, and what it says about the endpoint); [`backoff`] is `initial × multiplier^(n-1)` capped at `max`, ± `jitter`.

use std::time::{Duration, SystemTime};

use crate::config::{EndpointConfig, RetryConfig};
use crate::store::deliveries::Outcome;

/// What one attempt produced, as far as retry rules care.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempted {
    /// The upstream answered.
    Status {
        status: u16,
        retry_after: Option<Duration>,
        /// A short excerpt of the body, for the dead-letter record.
        detail: String,
    },
    /// No connection (refused, unreachable, DNS, TLS handshake): an endpoint-level failure.
    Connect(String),
    /// Connected, but no complete answer within `timeout`, or the exchange broke.
    Failed(String),
}

/// The class of a result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Class {
    Success,
    Retry { retry_after: Option<Duration> },
    Permanent,
    Gone,
    Offline,
}

pub fn classify(result: &Attempted, permanent_status: &[u16]) -> Class {
    match result {
        Attempted::Status {
            status,
            retry_after,
            ..
        } => match *status {
            200..=299 => Class::Success,
            410 => Class::Gone,
            s if permanent_status.contains(&s) => Class::Permanent,
            _ => Class::Retry {
                retry_after: *retry_after,
            },
        },
        Attempted::Connect(_) => Class::Offline,
        Attempted::Failed(_) => Class::Retry { retry_after: None },
    }
}

/// Delay before retry `attempt` (1-based count of attempts made so far).
/// `unit` is a uniform sample in `[0, 1)` for the jitter.
pub fn backoff(retry: &RetryConfig, attempt: u32, unit: f64) -> Duration {
    let exp = retry
        .multiplier
        .powi(attempt.saturating_sub(1).min(1000) as i32);
    let base = (retry.initial.as_secs_f64() * exp).min(retry.max.as_secs_f64());
    let jittered = base * (1.0 + retry.jitter * (2.0 * unit - 1.0));
    Duration::from_secs_f64(jittered.clamp(0.0, retry.max.as_secs_f64()))
}

/// Everything an attempt's result means: what to record for the delivery, and what it
/// says about the endpoint. Decided once, here; the scheduler and the worker only act on it.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// 2xx: the delivery is done.
    Delivered,
    /// Counted attempt `attempts`; try again in `retry_in`. `status` is `None` when there
    /// was no HTTP answer (a timeout or reset after the request was written).
    Retry {
        attempts: u32,
        retry_in: Duration,
        status: Option<u16>,
        error: String,
    },
    /// Given up: kept as a dead letter with its reason.
    Dead {
        attempts: u32,
        status: Option<u16>,
        error: String,
        reason: String,
    },
    /// Connect-level failure: the endpoint is offline; nothing is recorded and the attempt
    /// is not counted.
    Offline { error: String },
    /// 410: the endpoint is held as `gone`; nothing is recorded for the delivery.
    Gone,
}

impl Verdict {
    /// Whether an outcome is recorded for the delivery.
    pub fn records(&self) -> bool {
        matches!(
            self,
            Verdict::Delivered | Verdict::Retry { .. } | Verdict::Dead { .. }
        )
    }

    /// Whether the upstream answered over HTTP (which proves the endpoint is reachable).
    pub fn answered(&self) -> bool {
        match self {
            Verdict::Delivered | Verdict::Gone => true,
            Verdict::Retry { status, .. } | Verdict::Dead { status, .. } => status.is_some(),
            Verdict::Offline { .. } => false,
        }
    }

    /// The outcome to store, at wall time `now_ms`. `keep_place` is the delivery's current
    /// `next_at` when a retry keeps its place in the queue (a keyed delivery: its key waits
    /// out the backoff in memory instead).
    pub fn outcome(&self, now_ms: i64, keep_place: Option<i64>) -> Option<Outcome> {
        Some(match self {
            Verdict::Delivered => Outcome::Delivered,
            Verdict::Retry {
                attempts,
                retry_in,
                status,
                error,
            } => Outcome::Retry {
                attempts: *attempts,
                next_at: keep_place.unwrap_or(now_ms + retry_in.as_millis() as i64),
                status: *status,
                error: error.clone(),
            },
            Verdict::Dead {
                attempts,
                status,
                error,
                reason,
            } => Outcome::Dead {
                attempts: *attempts,
                status: *status,
                error: error.clone(),
                reason: reason.clone(),
            },
            Verdict::Offline { .. } | Verdict::Gone => return None,
        })
    }
}

/// The verdict on `result` for a delivery that had made `attempts_before` attempts.
/// `unit` in `[0, 1)` feeds the jitter.
pub fn decide(
    endpoint: &EndpointConfig,
    result: &Attempted,
    attempts_before: u32,
    unit: f64,
) -> Verdict {
    let attempts = attempts_before + 1;
    let (status, error) = describe(result);
    match classify(result, &endpoint.permanent_status) {
        Class::Success => Verdict::Delivered,
        Class::Gone => Verdict::Gone,
        Class::Offline => Verdict::Offline { error },
        Class::Permanent => Verdict::Dead {
            attempts,
            status,
            error,
            reason: format!(
                "permanent status {} (permanent_status)",
                status.unwrap_or(0)
            ),
        },
        Class::Retry { .. } if endpoint.max_attempts.is_some_and(|max| attempts >= max) => {
            Verdict::Dead {
                attempts,
                status,
                error,
                reason: format!("max_attempts ({attempts}) reached"),
            }
        }
        Class::Retry { retry_after } => Verdict::Retry {
            attempts,
            retry_in: match retry_after {
                Some(after) => after.min(endpoint.retry.max),
                None => backoff(&endpoint.retry, attempts, unit),
            },
            status,
            error,
        },
    }
}

/// Status and one-line error text for the record.
pub fn describe(result: &Attempted) -> (Option<u16>, String) {
    match result {
        Attempted::Status { status, detail, .. } if detail.is_empty() => {
            (Some(*status), format!("HTTP {status}"))
        }
        Attempted::Status { status, detail, .. } => {
            (Some(*status), format!("HTTP {status}: {detail}"))
        }
        Attempted::Connect(e) => (None, format!("connect: {e}")),
        Attempted::Failed(e) => (None, e.clone()),
    }
}

/// `Retry-After`: delay-seconds or an HTTP-date, relative to `now`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(extra: &str) -> EndpointConfig {
        let toml = format!("[[endpoint]]\nname = \"e\"\nurl = \"https://x.example/h\"\n{extra}");
        let c = crate::config::parse(&toml, std::path::Path::new("/t.toml")).unwrap();
        (*c.endpoints[0]).clone()
    }

    fn status(s: u16) -> Attempted {
        Attempted::Status {
            status: s,
            retry_after: None,
            detail: String::new(),
        }
    }

    #[test]
    fn classification_follows_the_contract() {
        let p = [400, 413, 422];
        assert_eq!(classify(&status(200), &p), Class::Success);
        assert_eq!(classify(&status(204), &p), Class::Success);
        for s in [301, 302, 408, 425, 429, 500, 502, 503, 401, 403, 404] {
            assert!(
                matches!(classify(&status(s), &p), Class::Retry { .. }),
                "{s}"
            );
        }
        for s in p {
            assert_eq!(classify(&status(s), &p), Class::Permanent);
        }
        assert_eq!(classify(&status(410), &p), Class::Gone);
        assert_eq!(
            classify(&Attempted::Connect("refused".into()), &p),
            Class::Offline
        );
        assert!(matches!(
            classify(&Attempted::Failed("timeout".into()), &p),
            Class::Retry { .. }
        ));
    }

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let r = RetryConfig {
            initial: Duration::from_secs(1),
            multiplier: 2.0,
            max: Duration::from_secs(600),
            jitter: 0.2,
        };
        assert_eq!(backoff(&r, 1, 0.5), Duration::from_secs(1));
        assert_eq!(backoff(&r, 2, 0.5), Duration::from_secs(2));
        assert_eq!(backoff(&r, 4, 0.5), Duration::from_secs(8));
        assert_eq!(backoff(&r, 30, 0.5), Duration::from_secs(600));
        assert_eq!(backoff(&r, 1000, 0.99), Duration::from_secs(600));
        assert_eq!(backoff(&r, 1, 0.0), Duration::from_millis(800));
        let hi = backoff(&r, 3, 0.999_999);
        assert!(
            hi > Duration::from_millis(4790) && hi <= Duration::from_millis(4800),
            "{hi:?}"
        );
    }

    #[test]
    fn decide_retry_dead_and_retry_after() {
        let e = endpoint("");
        let v = decide(&e, &status(500), 0, 0.5);
        assert_eq!(
            v,
            Verdict::Retry {
                attempts: 1,
                retry_in: Duration::from_secs(1),
                status: Some(500),
                error: "HTTP 500".into()
            }
        );
        assert!(matches!(
            v.outcome(1_000, None),
            Some(Outcome::Retry {
                attempts: 1,
                next_at: 2_000,
                status: Some(500),
                ..
            })
        ));
        // A keyed retry keeps its place: its stored next_at does not move.
        assert!(matches!(
            v.outcome(1_000, Some(7)),
            Some(Outcome::Retry { next_at: 7, .. })
        ));
        let r = Attempted::Status {
            status: 429,
            retry_after: Some(Duration::from_secs(3)),
            detail: String::new(),
        };
        assert!(matches!(
            decide(&e, &r, 4, 0.5),
            Verdict::Retry { retry_in, attempts: 5, .. } if retry_in == Duration::from_secs(3)
        ));
        let r = Attempted::Status {
            status: 429,
            retry_after: Some(Duration::from_secs(86_400)),
            detail: String::new(),
        };
        assert!(matches!(
            decide(&e, &r, 0, 0.5),
            Verdict::Retry { retry_in, .. } if retry_in == Duration::from_secs(600)
        ));
        assert!(matches!(
            decide(&e, &status(400), 0, 0.5),
            Verdict::Dead { attempts: 1, .. }
        ));
        assert_eq!(decide(&e, &status(201), 3, 0.5), Verdict::Delivered);
        let limited = endpoint("max_attempts = 3");
        assert!(matches!(
            decide(&limited, &status(500), 1, 0.5),
            Verdict::Retry { .. }
        ));
        match decide(&limited, &status(500), 2, 0.5) {
            Verdict::Dead { reason, .. } => assert!(reason.contains("max_attempts"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn endpoint_level_verdicts_record_nothing() {
        let e = endpoint("max_attempts = 1");
        let gone = decide(&e, &status(410), 0, 0.5);
        assert_eq!(gone, Verdict::Gone);
        assert!(gone.answered() && !gone.records() && gone.outcome(0, None).is_none());
        let offline = decide(&e, &Attempted::Connect("refused".into()), 0, 0.5);
        assert!(matches!(offline, Verdict::Offline { ref error } if error.contains("refused")));
        assert!(!offline.answered() && !offline.records() && offline.outcome(0, None).is_none());
        // A timeout after the request was written is a counted attempt without an answer.
        let timed_out = decide(&e, &Attempted::Failed("timeout".into()), 0, 0.5);
        assert!(matches!(timed_out, Verdict::Dead { status: None, .. }));
        assert!(timed_out.records() && !timed_out.answered());
    }

    #[test]
    fn retry_after_formats() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
