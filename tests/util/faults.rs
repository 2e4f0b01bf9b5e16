//! Fault injection for the demo receiver: the upstream the delivery tests program to
//! misbehave. It lives here, not in edgehook, so the product's receiver stays plain
//! (`src/demo/receiver.rs` answers through a [`Responder`]; this is the tests' one).
//!
//! [`Faults`] answers a default status, a FIFO script of responses (with headers such as
//! `Retry-After` or `Date`), failures aimed at the requests whose body contains some text
//! ([`TestReceiver::fail_matching`], e.g. one ordering key's events), and a "refuse" mode
//! that accepts TCP and drops it before TLS (an unusable endpoint whose connection attempts
//! the receiver still counts). [`TestReceiver`] is the receiver with these knobs.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use edgehook::demo::receiver::{Receiver, Recorded, Reply, Responder};

/// What to answer, consulted in this order: matching, script, default.
pub struct Faults {
    state: Mutex<Script>,
    refuse: AtomicBool,
}

struct Script {
    /// Consulted before the script: see [`TestReceiver::fail_matching`].
    matching: Vec<Matching>,
    script: VecDeque<Reply>,
    default: Reply,
}

/// Answer `reply` to the next `remaining` requests whose body contains `needle`.
struct Matching {
    needle: Vec<u8>,
    reply: Reply,
    remaining: usize,
}

impl Faults {
    /// 200 to everything, every connection admitted, until told otherwise.
    pub fn new() -> Faults {
        Faults {
            state: Mutex::new(Script {
                matching: Vec::new(),
                script: VecDeque::new(),
                default: Reply::new(200, &[]).expect("200 is a status"),
            }),
            refuse: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Script> {
        // A panicking test thread cannot leave `Script` half-updated in a way that matters.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Responder for Faults {
    fn admit(&self) -> bool {
        !self.refuse.load(Ordering::SeqCst)
    }

    fn respond(&self, request: &Recorded) -> Reply {
        let mut state = self.lock();
        let state = &mut *state;
        let matched = state
            .matching
            .iter_mut()
            .find(|m| m.remaining > 0 && contains(&request.body, &m.needle));
        if let Some(m) = matched {
            m.remaining -= 1;
            return m.reply.clone();
        }
        let default = state.default.clone();
        state.script.pop_front().unwrap_or(default)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// The demo receiver answering through [`Faults`]; derefs to the [`Receiver`].
pub struct TestReceiver {
    receiver: Receiver,
    faults: Arc<Faults>,
}

impl TestReceiver {
    pub fn new(receiver: Receiver, faults: Arc<Faults>) -> TestReceiver {
        TestReceiver { receiver, faults }
    }

    /// Answer every request that the script doesn't cover with `status` (initially 200).
    pub fn set_response(&self, status: u16) -> anyhow::Result<()> {
        self.faults.lock().default = Reply::new(status, &[])?;
        Ok(())
    }

    /// Queue responses, consumed one per request before the default applies, e.g.
    /// `&[(500, &[]), (429, &[("retry-after", "2")])]`.
    pub fn push_responses(&self, script: &[(u16, &[(&str, &str)])]) -> anyhow::Result<()> {
        let replies = script
            .iter()
            .map(|(status, headers)| Reply::new(*status, headers))
            .collect::<anyhow::Result<Vec<_>>>()?;
        self.faults.lock().script.extend(replies);
        Ok(())
    }

    /// Answer `status` to the next `times` requests whose body contains `needle`, ahead of
    /// the script and the default (which the other requests keep getting). Aims failures
    /// at some events only, e.g. those of one `order_key` value.
    pub fn fail_matching(&self, needle: &str, status: u16, times: usize) -> anyhow::Result<()> {
        let reply = Reply::new(status, &[])?;
        self.faults.lock().matching.push(Matching {
            needle: needle.as_bytes().to_vec(),
            reply,
            remaining: times,
        });
        Ok(())
    }

    /// While on, accept each TCP connection, count it and drop it before TLS.
    pub fn set_refuse(&self, refuse: bool) {
        self.faults.refuse.store(refuse, Ordering::SeqCst);
    }
}

impl Deref for TestReceiver {
    type Target = Receiver;
    fn deref(&self) -> &Receiver {
        &self.receiver
    }
}

impl DerefMut for TestReceiver {
    fn deref_mut(&mut self) -> &mut Receiver {
        &mut self.receiver
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str) -> Recorded {
        Recorded {
            method: "POST".into(),
            path_and_query: "/".into(),
            headers: Vec::new(),
            body: body.to_owned().into(),
            http_version: "HTTP/1.1".into(),
            tls_version: "TLSv1_3".into(),
            signature_ok: None,
            at: std::time::Instant::now(),
        }
    }

    fn statuses(faults: &Faults, bodies: &[&str]) -> Vec<u16> {
        let answer = |b: &&str| faults.respond(&request(b)).status.as_u16();
        bodies.iter().map(answer).collect()
    }

    #[test]
    fn script_then_default_then_a_new_default() {
        let faults = Faults::new();
        faults.lock().script.extend([
            Reply::new(500, &[]).unwrap(),
            Reply::new(429, &[("retry-after", "2")]).unwrap(),
        ]);
        assert_eq!(statuses(&faults, &["{}"]), [500]);
        let second = faults.respond(&request("{}"));
        assert_eq!(second.status, 429);
        assert_eq!(second.headers["retry-after"], "2");
        assert_eq!(statuses(&faults, &["{}"]), [200]);
        faults.lock().default = Reply::new(503, &[]).unwrap();
        assert_eq!(statuses(&faults, &["{}"]), [503]);
    }

    #[test]
    fn matching_goes_first_without_consuming_the_script_then_runs_out() {
        let faults = Faults::new();
        faults.lock().matching.push(Matching {
            needle: br#""key":"A""#.to_vec(),
            reply: Reply::new(500, &[]).unwrap(),
            remaining: 2,
        });
        faults
            .lock()
            .script
            .push_back(Reply::new(503, &[]).unwrap());
        let bodies = [
            r#"{"key":"A"}"#,
            r#"{"key":"B"}"#,
            r#"{"key":"B"}"#,
            r#"{"key":"A"}"#,
            r#"{"key":"A"}"#,
        ];
        assert_eq!(statuses(&faults, &bodies), [500, 503, 200, 500, 200]);
    }

    #[test]
    fn refuse_turns_admission_off_and_on() {
        let faults = Faults::new();
        assert!(faults.admit());
        faults.refuse.store(true, Ordering::SeqCst);
        assert!(!faults.admit());
    }
}
