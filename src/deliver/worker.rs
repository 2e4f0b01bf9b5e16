//! One endpoint's delivery loop.
//!
//! The worker reads due deliveries from the store in `(next_at, seq)` order a page at a
//! time (never the whole backlog), keeps up to `concurrency` attempts in flight (one with
//! `ordering = "fifo"`), and records every outcome through the store's group commit
//! before it forgets the delivery, so a crash can only repeat an attempt, never lose one.
//!
//! Endpoint states: **online** (full concurrency); **offline** after a connect-level
//! failure — only the head delivery is probed, on the backoff schedule, and those probes
//! are not counted as attempts (offline time is free); **held** (`gone` after a 410):
//! nothing is sent, deliveries keep queueing.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt, Limited};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::client::HttpClient;
use super::request;
use super::retry::{self, Attempted};
use crate::config::{EndpointConfig, Ordering};
use crate::sign::Signer;
use crate::store::deliveries::{self, Due, Outcome, Update};
use crate::store::{now_ms, Store};

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

/// Everything one worker needs; built by the dispatcher from the config.
pub struct Worker {
    pub endpoint: Arc<EndpointConfig>,
    pub client: HttpClient,
    pub signer: Option<Signer>,
    pub store: Store,
}

enum Mode {
    Online,
    Offline { probes: u32, next_probe: Instant },
}

/// What an attempt task reports back.
struct Finished {
    seq: i64,
    attempt: u32,
    event_id: String,
    result: Attempted,
    outcome: Option<Outcome>,
}

impl Worker {
    /// Deliver until `cancel` fires; then give in-flight attempts until `grace` runs out.
    pub async fn run(self, cancel: CancellationToken, grace: Duration) {
        let name = self.endpoint.name.clone();
        let me = Arc::new(self);
        let mut inserted = me.store.inserted();
        let mut hold = match me
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
        let mut mode = Mode::Online;
        let mut in_flight: HashSet<i64> = HashSet::new();
        let mut local: VecDeque<Due> = VecDeque::new();
        let mut cursor = (i64::MIN, i64::MIN);
        let mut blocked_until: Option<Instant> = None;
        let mut tasks: JoinSet<Finished> = JoinSet::new();
        let fifo = me.endpoint.ordering == Ordering::Fifo;
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let now = Instant::now();
            let mut wake = now + IDLE_RECHECK;
            if hold.is_none() {
                let capacity = match &mode {
                    Mode::Online if blocked_until.is_some_and(|t| t > now) => 0,
                    Mode::Online if fifo => 1,
                    Mode::Online => me.endpoint.concurrency,
                    Mode::Offline { next_probe, .. }
                        if *next_probe <= now && in_flight.is_empty() =>
                    {
                        1
                    }
                    Mode::Offline { .. } => 0,
                };
                if let Some(t) = blocked_until.filter(|t| *t > now) {
                    wake = wake.min(t);
                }
                if let Mode::Offline { next_probe, .. } = &mode {
                    wake = wake.min(*next_probe);
                }
                while in_flight.len() < capacity {
                    if local.is_empty() {
                        if in_flight.is_empty() {
                            cursor = (i64::MIN, i64::MIN);
                        }
                        let offline = matches!(mode, Mode::Offline { .. });
                        match me.fetch(offline, cursor).await {
                            Ok(rows) => {
                                if let Some(last) = rows.last() {
                                    cursor = (last.next_at, last.seq);
                                }
                                local.extend(
                                    rows.into_iter().filter(|d| !in_flight.contains(&d.seq)),
                                );
                            }
                            Err(err) => {
                                warn!(endpoint = %name, error = %err, "Reading the queue failed; will retry.");
                                wake = wake.min(now + Duration::from_secs(1));
                                break;
                            }
                        }
                        if local.is_empty() {
                            if let Ok(Some(at)) = me.next_due().await {
                                wake = wake.min(instant_at(at));
                            }
                            break;
                        }
                    }
                    let Some(due) = local.pop_front() else { break };
                    in_flight.insert(due.seq);
                    tasks.spawn(me.clone().attempt(due, fifo));
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(joined) = tasks.join_next() => {
                    let Ok(done) = joined else { continue };
                    in_flight.remove(&done.seq);
                    me.log(&done);
                    match (&done.result, &mode) {
                        (Attempted::Connect(err), _) => {
                            let probes = match mode { Mode::Offline { probes, .. } => probes + 1, Mode::Online => 1 };
                            let delay = retry::backoff(&me.endpoint.retry, probes, rand::random());
                            if matches!(mode, Mode::Online) {
                                warn!(endpoint = %name, error = %err, retry_in = ?delay,
                                    "Endpoint offline; probing only its oldest delivery until it answers.");
                            }
                            mode = Mode::Offline { probes, next_probe: Instant::now() + delay };
                            local.clear();
                        }
                        (Attempted::Status { .. }, Mode::Offline { .. }) => {
                            info!(endpoint = %name, "Endpoint back online; draining its backlog.");
                            mode = Mode::Online;
                        }
                        _ => {}
                    }
                    if let Attempted::Status { status: 410, .. } = done.result {
                        warn!(endpoint = %name, "Endpoint answered 410 Gone: holding its deliveries (nothing is dropped) until `edgehook resume`.");
                        if let Err(err) = me.store.set_hold(&name, Some(("gone", "HTTP 410 Gone from upstream"))).await {
                            warn!(endpoint = %name, error = %err, "Recording the gone state failed.");
                        }
                        hold = Some("gone".into());
                        local.clear();
                    }
                    if fifo {
                        blocked_until = match &done.outcome {
                            Some(Outcome::Retry { next_at, .. }) => Some(instant_at(*next_at)),
                            _ => None,
                        };
                    }
                }
                _ = inserted.changed() => {}
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
        if !tasks.is_empty() {
            debug!(endpoint = %name, in_flight = tasks.len(), "Letting in-flight deliveries finish.");
            if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
                .await
                .is_err()
            {
                warn!(endpoint = %name, cut = tasks.len(),
                    "Shutdown deadline reached; cut-off deliveries stay queued and will be sent again.");
                tasks.abort_all();
            }
        }
    }

    /// The next page of due rows (online), or just the head (offline probe).
    async fn fetch(
        &self,
        offline: bool,
        cursor: (i64, i64),
    ) -> Result<Vec<Due>, crate::store::StoreError> {
        let name = self.endpoint.name.clone();
        let fifo = self.endpoint.ordering == Ordering::Fifo;
        self.store
            .read(move |c| {
                if offline || fifo {
                    Ok(deliveries::head(c, &name)?
                        .filter(|d| (d.next_at, d.seq) > cursor)
                        .into_iter()
                        .collect())
                } else {
                    deliveries::due(c, &name, now_ms(), cursor, PAGE)
                }
            })
            .await
    }

    async fn next_due(&self) -> Result<Option<i64>, crate::store::StoreError> {
        let name = self.endpoint.name.clone();
        self.store
            .read(move |c| deliveries::next_due_after(c, &name, now_ms()))
            .await
    }

    /// One attempt: send, decide, record. Runs as its own task.
    async fn attempt(self: Arc<Self>, due: Due, fifo: bool) -> Finished {
        let attempt = due.attempts + 1;
        let result = self.send(&due, attempt).await;
        let outcome = retry::decide(
            &self.endpoint,
            &result,
            due.attempts,
            now_ms(),
            rand::random(),
        );
        if let (
            true,
            Some(Outcome::Retry {
                attempts,
                status,
                error,
                ..
            }),
        ) = (fifo, &outcome)
        {
            // FIFO keeps the head in place; the worker waits out the backoff in memory.
            let stored = Outcome::Retry {
                attempts: *attempts,
                next_at: due.next_at,
                status: *status,
                error: error.clone(),
            };
            self.record(due.seq, stored).await;
        } else if let Some(o) = &outcome {
            self.record(due.seq, o.clone()).await;
        }
        Finished {
            seq: due.seq,
            attempt,
            event_id: due.event_id,
            result,
            outcome,
        }
    }

    async fn record(&self, seq: i64, outcome: Outcome) {
        if let Err(err) = self.store.complete(vec![Update { seq, outcome }]).await {
            warn!(endpoint = %self.endpoint.name, error = %err,
                "Recording a delivery outcome failed; the delivery stays queued and may be sent again.");
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
        let ours = SystemTime::now();
        let skew = ours
            .duration_since(theirs)
            .or_else(|e| Ok::<_, ()>(e.duration()))
            .unwrap_or_default();
        if skew > MAX_CLOCK_SKEW {
            warn!(endpoint = %self.endpoint.name, skew_secs = skew.as_secs(), upstream_date = %date,
                "Local clock differs from the upstream's by more than 5 minutes; receivers may reject webhook-timestamp. Check NTP.");
        }
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
                error!(endpoint = %name, event_id = %done.event_id, attempt = done.attempt,
                error = %error, reason = %reason, "Delivery failed permanently; kept as a dead letter.")
            }
            None => {
                debug!(endpoint = %name, event_id = %done.event_id, error = %error, "Endpoint-level failure; not counted as an attempt.")
            }
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
