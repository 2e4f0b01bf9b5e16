//! Retry rules, pure: an attempt's result → what happens next (SPEC §5).
//!
//! [`classify`] sorts a result into success, retry, permanent failure, gone, or
//! endpoint-offline; [`decide`] turns that plus the delivery's history into the stored
//! [`Outcome`]; [`backoff`] is `initial × multiplier^(n-1)` capped at `max`, ± `jitter`.

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

/// The stored outcome for a delivery that had made `attempts_before` attempts; `None`
/// for endpoint-level results (offline, gone), which hold the endpoint and leave the
/// delivery as it was. `now_ms` is the wall clock; `unit` feeds the jitter.
pub fn decide(
    endpoint: &EndpointConfig,
    result: &Attempted,
    attempts_before: u32,
    now_ms: i64,
    unit: f64,
) -> Option<Outcome> {
    let attempts = attempts_before + 1;
    let (status, error) = describe(result);
    let outcome = match classify(result, &endpoint.permanent_status) {
        Class::Success => Outcome::Delivered,
        Class::Permanent => Outcome::Dead {
            attempts,
            status,
            error,
            reason: format!(
                "permanent status {} (permanent_status)",
                status.unwrap_or(0)
            ),
        },
        Class::Retry { .. } if endpoint.max_attempts.is_some_and(|max| attempts >= max) => {
            Outcome::Dead {
                attempts,
                status,
                error,
                reason: format!("max_attempts ({attempts}) reached"),
            }
        }
        Class::Retry { retry_after } => {
            let delay = match retry_after {
                Some(after) => after.min(endpoint.retry.max),
                None => backoff(&endpoint.retry, attempts, unit),
            };
            Outcome::Retry {
                attempts,
                next_at: now_ms + delay.as_millis() as i64,
                status,
                error,
            }
        }
        Class::Gone | Class::Offline => return None,
    };
    Some(outcome)
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
        match decide(&e, &status(500), 0, 1_000, 0.5).unwrap() {
            Outcome::Retry {
                attempts,
                next_at,
                status,
                ..
            } => {
                assert_eq!((attempts, next_at, status), (1, 2_000, Some(500)));
            }
            other => panic!("{other:?}"),
        }
        let r = Attempted::Status {
            status: 429,
            retry_after: Some(Duration::from_secs(3)),
            detail: String::new(),
        };
        assert!(matches!(
            decide(&e, &r, 4, 0, 0.5),
            Some(Outcome::Retry { next_at: 3_000, .. })
        ));
        let r = Attempted::Status {
            status: 429,
            retry_after: Some(Duration::from_secs(86_400)),
            detail: String::new(),
        };
        assert!(matches!(
            decide(&e, &r, 0, 0, 0.5),
            Some(Outcome::Retry {
                next_at: 600_000,
                ..
            })
        ));
        assert!(matches!(
            decide(&e, &status(400), 0, 0, 0.5),
            Some(Outcome::Dead { attempts: 1, .. })
        ));
        assert_eq!(decide(&e, &status(410), 0, 0, 0.5), None);
        assert_eq!(
            decide(&e, &status(201), 3, 0, 0.5),
            Some(Outcome::Delivered)
        );
        let limited = endpoint("max_attempts = 3");
        assert!(matches!(
            decide(&limited, &status(500), 1, 0, 0.5),
            Some(Outcome::Retry { .. })
        ));
        match decide(&limited, &status(500), 2, 0, 0.5).unwrap() {
            Outcome::Dead { reason, .. } => assert!(reason.contains("max_attempts"), "{reason}"),
            other => panic!("{other:?}"),
        }
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
