//! One delivery attempt's I/O: build the request, send it within the endpoint's
//! timeouts, read the answer and decide ([`retry::decide`]) what to record. Everything
//! here runs in its own task; the worker learns the [`Finished`] report and records the
//! outcome (`outbox.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt, Limited};
use tracing::warn;

use super::client::HttpClient;
use super::request;
use super::retry::{self, Attempted, Verdict};
use super::scheduler::Start;
use super::status::EndpointHandle;
use crate::config::EndpointConfig;
use crate::sign::Signer;
use crate::store::deliveries::Update;
use crate::store::{now_ms, Store};

/// Bytes of an error response kept for the dead-letter record.
const DETAIL_BYTES: usize = 200;
/// Most bytes of a response body read (so the connection can be reused).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Upstream `Date` further than this from our clock is reported (SPEC §5).
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// What an attempt task reports back.
pub struct Finished {
    pub seq: i64,
    pub attempt: u32,
    pub event_id: String,
    pub verdict: Verdict,
    /// The HTTP status, when there was an answer (logged as the journal's STATUS field).
    pub status: Option<u16>,
    /// The outcome to record (`None` when the verdict records nothing: offline, gone).
    pub update: Option<Update>,
    /// How long the exchange took (the adaptive limit learns from it).
    pub latency: Duration,
}

/// The parts one attempt task needs (cheap clones of the worker's).
pub struct Attempter {
    pub endpoint: Arc<EndpointConfig>,
    pub client: HttpClient,
    pub signer: Option<Signer>,
    pub store: Store,
    pub handle: Arc<EndpointHandle>,
}

impl Attempter {
    /// One attempt: send and decide.
    pub async fn run(self: Arc<Self>, start: Start) -> Finished {
        let due = &start.due;
        let attempt = due.attempts + 1;
        let started = Instant::now();
        let result = self.send(&start, attempt).await;
        let latency = started.elapsed();
        self.handle.observe_attempt(latency);
        let verdict = retry::decide(&self.endpoint, &result, due.attempts, rand::random());
        let (status, _) = retry::describe(&result);
        let update = verdict
            .outcome(now_ms(), start.keep_place())
            .map(|outcome| Update {
                seq: due.seq,
                outcome,
            });
        Finished {
            seq: due.seq,
            attempt,
            event_id: start.due.event_id,
            verdict,
            status,
            update,
            latency,
        }
    }

    async fn send(&self, start: &Start, attempt: u32) -> Attempted {
        let now_secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let req = match request::build(
            &self.endpoint,
            self.signer.as_ref(),
            &start.due,
            attempt,
            now_secs,
        ) {
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
        // Opening a connection is bounded by connect_timeout inside the client (and fails
        // as a connect error, see connect.rs); the exchange after it by timeout. The outer
        // deadline is their sum, so it can only fire once a connection was up.
        let deadline = self.endpoint.connect_timeout + self.endpoint.timeout;
        match tokio::time::timeout(deadline, exchange).await {
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
