//! One endpoint's delivery loop.
//!
//! The worker reads due deliveries from the store in `(next_at, seq)` order a page at a
//! time (never the whole backlog), keeps up to `concurrency` attempts in flight, and
//! records every outcome through the store's group commit before it forgets the
//! delivery, so a crash can only repeat an attempt, never lose one.
//!
//! Ordering is one mechanism, *keys*: a delivery with a key may start only when no other
//! delivery with that key is in flight or waiting out a retry. `ordering = "fifo"` gives
//! every delivery the same key, `order_key` takes the key from the event, and
//! `ordering = "none"` uses no keys. A keyed retry keeps its place in the queue (its
//! `next_at` is not moved); the key waits in memory. When a key is released the page
//! cursor restarts, so the oldest delivery of that key is found first.
//!
//! Endpoint states: **online**; **offline** after a connect-level failure — only the head
//! delivery is probed, on the backoff schedule, and those probes are not counted as
//! attempts (offline time is free); **held** (`gone` after a 410, or `paused`): nothing
//! is sent, deliveries keep queueing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt, Limited};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::client::HttpClient;
use super::rate::Bucket;
use super::request;
use super::retry::{self, Attempted};
use super::status::{Control, EndpointHandle, State};
use crate::config::{EndpointConfig, Ordering};
use crate::sign::Signer;
use crate::store::deliveries::{self, Due, Outcome, Update};
use crate::store::{now_ms, Committed, Store, StoreError};

/// Rows fetched per page; bounds memory per endpoint whatever the backlog.
const PAGE: usize = 256;
/// Bytes of an error response kept for the dead-letter record.
const DETAIL_BYTES: usize = 200;
/// Most bytes of a response body read (so the connection can be reused).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Upstream `Date` further than this from our clock is reported (SPEC §5).
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);
/// Re-check the queue at least this often even without a signal (clock changes, safety).
const IDLE_RECHECK: Duration = Duration::from_secs(30);
/// The cursor before the first row.
const START: (i64, i64) = (i64::MIN, i64::MIN);

/// Everything one worker needs; built by the dispatcher from the config.
pub struct Worker {
    pub endpoint: Arc<EndpointConfig>,
    pub client: HttpClient,
    pub signer: Option<Signer>,
    pub store: Store,
    pub handle: Arc<EndpointHandle>,
}

enum Mode {
    Online,
    Offline {
        probes: u32,
        next_probe: Instant,
        since: SystemTime,
    },
}

/// The loop's state between iterations.
struct Run {
    mode: Mode,
    hold: Option<String>,
    in_flight: HashSet<i64>,
    /// Keys in use: `None` while in flight, `Some(t)` while waiting out a retry until `t`.
    busy_keys: HashMap<String, Option<Instant>>,
    local: VecDeque<Due>,
    cursor: (i64, i64),
    /// The delivery sent as the offline probe, while it is in flight.
    probe: Option<i64>,
    bucket: Option<Bucket>,
    tasks: JoinSet<Finished>,
    /// Finished deliveries whose outcome is not committed yet: their slot is free, but
    /// they must not be fetched again until the commit lands.
    settling: HashSet<i64>,
    /// One task per settling delivery, resolving to its seq once committed.
    commits: JoinSet<i64>,
}

/// What an attempt task reports back.
struct Finished {
    seq: i64,
    key: Option<String>,
    attempt: u32,
    event_id: String,
    result: Attempted,
    outcome: Option<Outcome>,
    committed: Option<Committed>,
}

impl Worker {
    /// Deliver until `cancel` fires; then give in-flight attempts until `grace` runs out.
    pub async fn run(
        self,
        mut controls: mpsc::UnboundedReceiver<Control>,
        cancel: CancellationToken,
        grace: Duration,
    ) {
        let me = Arc::new(self);
        let name = me.endpoint.name.clone();
        let mut inserted = me.store.inserted();
        let hold = match me
            .store
            .read({
                let n = name.clone();
                move |c| deliveries::endpoint_hold(c, &n)
            })
            .await
        {
            Ok(h) => h,
            Err(err) => {
                error!(endpoint = %name, error = %err, "Cannot read endpoint state; delivery for it is stopped.");
                return;
            }
        };
        if let Some(h) = &hold {
            warn!(endpoint = %name, state = %h, "Endpoint is held; its deliveries queue until `edgehook resume`.");
        }
        let mut st = Run {
            mode: Mode::Online,
            hold,
            in_flight: HashSet::new(),
            busy_keys: HashMap::new(),
            local: VecDeque::new(),
            cursor: START,
            probe: None,
            bucket: me
                .endpoint
                .rate_limit
                .map(|r| Bucket::new(r, Instant::now())),
            tasks: JoinSet::new(),
            settling: HashSet::new(),
            commits: JoinSet::new(),
        };
        while !cancel.is_cancelled() {
            let wake = me.fill(&mut st).await;
            me.publish(&st);
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(joined) = st.tasks.join_next() => {
                    if let Ok(done) = joined {
                        me.finished(&mut st, done).await;
                    }
                }
                Some(Ok(seq)) = st.commits.join_next() => {
                    st.settling.remove(&seq);
                }
                Some(control) = controls.recv() => me.control(&mut st, control),
                Ok(()) = inserted.changed() => {}
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
        if !st.tasks.is_empty() || !st.commits.is_empty() {
            debug!(endpoint = %name, in_flight = st.tasks.len(), "Letting in-flight deliveries finish.");
            let drain = async {
                while let Some(done) = st.tasks.join_next().await {
                    if let Ok(Finished {
                        committed: Some(c), ..
                    }) = done
                    {
                        let _ = c.wait().await;
                    }
                }
                while st.commits.join_next().await.is_some() {}
            };
            if tokio::time::timeout(grace, drain).await.is_err() {
                warn!(endpoint = %name, cut = st.tasks.len(),
                    "Shutdown deadline reached; cut-off deliveries stay queued and will be sent again.");
                st.tasks.abort_all();
            }
        }
    }

    /// The ordering key of a delivery (see the module doc).
    fn key(&self, due: &Due) -> Option<String> {
        if self.endpoint.ordering == Ordering::Fifo {
            Some(String::new())
        } else if self.endpoint.order_key.is_some() {
            Some(due.order_key.clone().unwrap_or_default())
        } else {
            None
        }
    }

    /// Start as many attempts as the state allows; returns when to look again.
    async fn fill(&self, st: &mut Run) -> Instant {
        let now = Instant::now();
        let mut wake = now + IDLE_RECHECK;
        let released = st.busy_keys.len();
        st.busy_keys
            .retain(|_, until| until.is_none_or(|t| t > now));
        if st.busy_keys.len() != released {
            st.cursor = START;
            st.local.clear();
        }
        for t in st.busy_keys.values().flatten() {
            wake = wake.min(*t);
        }
        if st.hold.is_some() {
            return wake;
        }
        let capacity = match &st.mode {
            _ if self.endpoint.ordering == Ordering::Fifo && !st.busy_keys.is_empty() => 0,
            Mode::Online => self.endpoint.concurrency,
            Mode::Offline { next_probe, .. } if *next_probe <= now && st.in_flight.is_empty() => 1,
            Mode::Offline { next_probe, .. } => {
                wake = wake.min(*next_probe);
                0
            }
        };
        while st.in_flight.len() < capacity {
            if st.local.is_empty() {
                match self.fetch(st).await {
                    Ok(true) => {}
                    Ok(false) => {
                        if let Ok(Some(at)) = self.next_due().await {
                            wake = wake.min(instant_at(at));
                        }
                        break;
                    }
                    Err(err) => {
                        warn!(endpoint = %self.endpoint.name, error = %err, "Reading the queue failed; will retry.");
                        wake = wake.min(now + Duration::from_secs(1));
                        break;
                    }
                }
            }
            let Some(due) = st.local.front() else { break };
            let key = self.key(due);
            if key.as_ref().is_some_and(|k| st.busy_keys.contains_key(k)) {
                // Found again from the start once the key is released.
                st.local.pop_front();
                continue;
            }
            if let Some(bucket) = &mut st.bucket {
                if let Err(at) = bucket.take(Instant::now()) {
                    wake = wake.min(at);
                    break;
                }
            }
            let Some(due) = st.local.pop_front() else {
                break;
            };
            st.in_flight.insert(due.seq);
            if matches!(st.mode, Mode::Offline { .. }) {
                st.probe = Some(due.seq);
            }
            if let Some(k) = &key {
                st.busy_keys.insert(k.clone(), None);
            }
            let keep_place = key.is_some();
            let me = self.clone_parts();
            st.tasks
                .spawn(async move { me.attempt(due, key, keep_place).await });
        }
        wake
    }

    /// Load the next page (online) or the head (offline) into `st.local`; false if none.
    async fn fetch(&self, st: &mut Run) -> Result<bool, StoreError> {
        let offline = matches!(st.mode, Mode::Offline { .. });
        if st.in_flight.is_empty() && st.busy_keys.is_empty() {
            st.cursor = START;
        }
        let name = self.endpoint.name.clone();
        let cursor = st.cursor;
        let rows = self
            .store
            .read(move |c| {
                if offline {
                    Ok(deliveries::head(c, &name)?.into_iter().collect())
                } else {
                    deliveries::due(c, &name, now_ms(), cursor, PAGE)
                }
            })
            .await?;
        if let (false, Some(last)) = (offline, rows.last()) {
            st.cursor = (last.next_at, last.seq);
        }
        st.local.extend(
            rows.into_iter()
                .filter(|d| !st.in_flight.contains(&d.seq) && !st.settling.contains(&d.seq)),
        );
        Ok(!st.local.is_empty())
    }

    async fn next_due(&self) -> Result<Option<i64>, StoreError> {
        let name = self.endpoint.name.clone();
        self.store
            .read(move |c| deliveries::next_due_after(c, &name, now_ms()))
            .await
    }

    /// Account for a finished attempt: keys, endpoint state, holds, status.
    async fn finished(&self, st: &mut Run, mut done: Finished) {
        let name = &self.endpoint.name;
        st.in_flight.remove(&done.seq);
        if let Some(committed) = done.committed.take() {
            let seq = done.seq;
            st.settling.insert(seq);
            let endpoint = name.clone();
            st.commits.spawn(async move {
                if let Err(err) = committed.wait().await {
                    warn!(endpoint = %endpoint, error = %err,
                        "Recording a delivery outcome failed; the delivery stays queued and may be sent again.");
                }
                seq
            });
        }
        self.log(&done);
        if let Some(key) = &done.key {
            match (&done.outcome, st.busy_keys.get_mut(key)) {
                (Some(Outcome::Retry { next_at, .. }), Some(slot)) => {
                    *slot = Some(instant_at(*next_at))
                }
                _ => {
                    st.busy_keys.remove(key);
                    st.cursor = START;
                    st.local.clear();
                }
            }
        }
        let was_probe = st.probe == Some(done.seq);
        if was_probe {
            st.probe = None;
        }
        match (&done.result, &st.mode) {
            // An attempt started while online that fails after the endpoint went offline
            // is not a probe: it must not advance the probe backoff, or `concurrency`
            // failures at once would put the first probe at backoff(concurrency).
            (Attempted::Connect(_), Mode::Offline { .. }) if !was_probe => {}
            (Attempted::Connect(err), mode) => {
                let (probes, since) = match mode {
                    Mode::Offline { probes, since, .. } => (probes + 1, *since),
                    Mode::Online => (1, SystemTime::now()),
                };
                let delay = retry::backoff(&self.endpoint.retry, probes, rand::random());
                if matches!(mode, Mode::Online) {
                    warn!(endpoint = %name, error = %err, retry_in = ?delay,
                        "Endpoint offline; probing only its oldest delivery until it answers.");
                }
                st.mode = Mode::Offline {
                    probes,
                    next_probe: Instant::now() + delay,
                    since,
                };
                st.local.clear();
            }
            (Attempted::Status { .. }, Mode::Offline { .. }) => {
                info!(endpoint = %name, "Endpoint back online; draining its backlog.");
                st.mode = Mode::Online;
            }
            _ => {}
        }
        if let Attempted::Status { status: 410, .. } = done.result {
            warn!(endpoint = %name, "Endpoint answered 410 Gone: holding its deliveries (nothing is dropped) until `edgehook resume`.");
            if let Err(err) = self
                .store
                .set_hold(name, Some(("gone", "HTTP 410 Gone from upstream")))
                .await
            {
                warn!(endpoint = %name, error = %err, "Recording the gone state failed.");
            }
            st.hold = Some("gone".into());
            st.local.clear();
        }
        let (_, error) = retry::describe(&done.result);
        self.handle.update(|s| match &done.outcome {
            Some(Outcome::Delivered) => {
                s.delivered += 1;
                s.last_success_at = Some(SystemTime::now());
            }
            other => {
                match other {
                    Some(Outcome::Dead { .. }) => s.dead += 1,
                    Some(Outcome::Retry { .. }) => s.retried += 1,
                    _ => {}
                }
                s.last_error = Some(error);
                s.last_error_at = Some(SystemTime::now());
            }
        });
    }

    fn control(&self, st: &mut Run, control: Control) {
        let name = &self.endpoint.name;
        match control {
            Control::Wake => {
                if let Mode::Offline { next_probe, .. } = &mut st.mode {
                    info!(endpoint = %name, "Woken: probing now.");
                    *next_probe = Instant::now();
                }
            }
            Control::Hold(hold) => {
                match &hold {
                    Some(h) => {
                        info!(endpoint = %name, state = %h, "Deliveries held; events keep queueing.")
                    }
                    None => info!(endpoint = %name, "Deliveries resumed."),
                }
                st.hold = hold;
                st.local.clear();
                st.cursor = START;
            }
        }
    }

    /// Keep the handle's status snapshot current.
    fn publish(&self, st: &Run) {
        let state = match (&st.hold, &st.mode) {
            (Some(h), _) => State::Held(h.clone()),
            (None, Mode::Online) => State::Online,
            (
                None,
                Mode::Offline {
                    next_probe, since, ..
                },
            ) => State::Offline {
                since: *since,
                next_probe: SystemTime::now()
                    + next_probe.saturating_duration_since(Instant::now()),
            },
        };
        let in_flight = st.in_flight.len();
        self.handle.update(|s| {
            s.state = state;
            s.in_flight = in_flight;
        });
    }

    fn clone_parts(&self) -> Arc<Attempter> {
        Arc::new(Attempter {
            endpoint: self.endpoint.clone(),
            client: self.client.clone(),
            signer: self.signer.clone(),
            store: self.store.clone(),
            handle: self.handle.clone(),
        })
    }

    fn log(&self, done: &Finished) {
        let name = &self.endpoint.name;
        let (status, error) = retry::describe(&done.result);
        let status = status.unwrap_or(0);
        match &done.outcome {
            Some(Outcome::Delivered) => {
                debug!(endpoint = %name, event_id = %done.event_id, attempt = done.attempt, status, "Delivered.")
            }
            Some(Outcome::Retry { next_at, .. }) => {
                if (300..400).contains(&status) {
                    warn!(endpoint = %name, status, "Upstream answered with a redirect; redirects are not followed. Fix the endpoint url.");
                }
                warn!(endpoint = %name, event_id = %done.event_id, attempt = done.attempt, error = %error,
                    retry_in_ms = next_at - now_ms(), "Delivery failed, will retry.")
            }
            Some(Outcome::Dead { reason, .. }) => {
                error!(endpoint = %name, event_id = %done.event_id,
                attempt = done.attempt, error = %error, reason = %reason,
                "Delivery failed permanently; kept as a dead letter.")
            }
            None => debug!(endpoint = %name, event_id = %done.event_id, error = %error,
                "Endpoint-level failure; not counted as an attempt."),
        }
    }
}

/// The parts one attempt task needs (cheap clones of the worker's).
struct Attempter {
    endpoint: Arc<EndpointConfig>,
    client: HttpClient,
    signer: Option<Signer>,
    store: Store,
    handle: Arc<EndpointHandle>,
}

impl Attempter {
    /// One attempt: send, decide, record.
    async fn attempt(self: Arc<Self>, due: Due, key: Option<String>, keep_place: bool) -> Finished {
        let attempt = due.attempts + 1;
        let started = Instant::now();
        let result = self.send(&due, attempt).await;
        self.handle.observe_attempt(started.elapsed());
        let outcome = retry::decide(
            &self.endpoint,
            &result,
            due.attempts,
            now_ms(),
            rand::random(),
        );
        let mut committed = None;
        if let Some(o) = &outcome {
            let stored = match o {
                // A keyed retry keeps its place; the key waits out the backoff in memory.
                Outcome::Retry {
                    attempts,
                    status,
                    error,
                    ..
                } if keep_place => Outcome::Retry {
                    attempts: *attempts,
                    next_at: due.next_at,
                    status: *status,
                    error: error.clone(),
                },
                other => other.clone(),
            };
            let update = Update {
                seq: due.seq,
                outcome: stored,
            };
            committed = match self.store.complete(vec![update]).await {
                Ok(c) => Some(c),
                Err(err) => {
                    warn!(endpoint = %self.endpoint.name, error = %err,
                        "Recording a delivery outcome failed; the delivery stays queued and may be sent again.");
                    None
                }
            };
        }
        Finished {
            seq: due.seq,
            key,
            attempt,
            event_id: due.event_id,
            result,
            outcome,
            committed,
        }
    }

    async fn send(&self, due: &Due, attempt: u32) -> Attempted {
        let now_secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let req = match request::build(&self.endpoint, self.signer.as_ref(), due, attempt, now_secs)
        {
            Ok(r) => r,
            Err(e) => return Attempted::Failed(format!("building the request: {e}")),
        };
        let exchange = async {
            let resp = self.client.request(req).await?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, hyper_util::client::legacy::Error>((status, headers, body))
        };
        match tokio::time::timeout(self.endpoint.timeout, exchange).await {
            Err(_) => Attempted::Failed(format!(
                "no answer within {:?} (timeout)",
                self.endpoint.timeout
            )),
            Ok(Err(err)) if err.is_connect() => Attempted::Connect(error_chain(&err)),
            Ok(Err(err)) => Attempted::Failed(error_chain(&err)),
            Ok(Ok((status, headers, body))) => {
                self.check_clock(&headers);
                let retry_after = headers
                    .get(hyper::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
                let detail = if (200..300).contains(&status) {
                    String::new()
                } else {
                    String::from_utf8_lossy(&body[..body.len().min(DETAIL_BYTES)])
                        .trim()
                        .to_string()
                };
                Attempted::Status {
                    status,
                    retry_after,
                    detail,
                }
            }
        }
    }

    /// Warn when the upstream's `Date` is far from our clock: receivers reject stale
    /// `webhook-timestamp`s, and an edge box with a bad RTC must learn why.
    fn check_clock(&self, headers: &hyper::HeaderMap) {
        let Some(date) = headers
            .get(hyper::header::DATE)
            .and_then(|v| v.to_str().ok())
        else {
            return;
        };
        let Ok(theirs) = httpdate::parse_http_date(date) else {
            return;
        };
        let skew = match theirs.duration_since(SystemTime::now()) {
            Ok(ahead) => ahead.as_secs() as i64,
            Err(behind) => -(behind.duration().as_secs() as i64),
        };
        if skew.unsigned_abs() > MAX_CLOCK_SKEW.as_secs() {
            warn!(endpoint = %self.endpoint.name, skew_secs = skew, upstream_date = %date,
                "Local clock differs from the upstream's by more than 5 minutes; receivers may reject webhook-timestamp. Check NTP.");
            self.handle.update(|s| s.clock_skew_secs = Some(skew));
        } else {
            self.handle.update(|s| s.clock_skew_secs = None);
        }
    }
}

/// The `Instant` at which the wall-clock time `at_ms` arrives.
fn instant_at(at_ms: i64) -> Instant {
    let delta = at_ms - now_ms();
    Instant::now() + Duration::from_millis(delta.max(0) as u64)
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
