//! One endpoint's delivery loop: the I/O shell around the [`Scheduler`].
//!
//! The worker asks the scheduler what to do, does it — reads the store, spawns attempt
//! tasks ([`Attempter`]), waits — and reports every result back. It keeps no scheduling
//! state of its own; the rules (ordering keys, offline probing, holds, paging, the rate
//! limit) live in `scheduler.rs` with their unit tests. Every outcome is recorded through
//! the store's group commit (`outbox.rs`) before the scheduler forgets the delivery, so
//! a crash can only repeat an attempt, never lose one.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::attempt::{Attempter, Finished};
use super::outbox::Outbox;
use super::retry::Verdict;
use super::scheduler::{Action, Fetch, Fetched, Now, Scheduler, Settings, Transition};
use super::status::{Control, EndpointHandle};
use crate::logging::repeats::Repeats;
use crate::store::deliveries;
use crate::store::{now_ms, Hold, StoreError};

/// A failing read fails the same way every second: one line, then a summary a minute.
static READ_FAILED: Repeats = Repeats::new();
/// A failing store fails every outcome the same way: one line, then a summary a minute.
static RECORD_FAILED: Repeats = Repeats::new();

/// One endpoint's loop; its parts (config, client, signer, store, handle) are the ones
/// every attempt task shares.
pub struct Worker {
    parts: Arc<Attempter>,
}

impl Worker {
    pub fn new(parts: Attempter) -> Worker {
        Worker {
            parts: Arc::new(parts),
        }
    }

    pub fn handle(&self) -> &Arc<EndpointHandle> {
        &self.parts.handle
    }

    /// Deliver until `cancel` fires; then give in-flight attempts until `grace` runs out.
    pub async fn run(
        self,
        mut controls: mpsc::UnboundedReceiver<Control>,
        cancel: CancellationToken,
        grace: Duration,
    ) {
        let name = self.parts.endpoint.name.clone();
        let mut inserted = self.parts.store.inserted();
        let hold = match self
            .parts
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
        if let Some(h) = hold {
            warn!(endpoint = %name, state = %h, "Endpoint is held; its deliveries queue until `edgehook resume`.");
        }
        let mut sched = Scheduler::new(Settings::of(&self.parts.endpoint), hold, Now::read().mono);
        let mut tasks: JoinSet<Finished> = JoinSet::new();
        let mut outbox = Outbox::default();
        while !cancel.is_cancelled() {
            let wake = loop {
                match sched.poll(Now::read()) {
                    Action::Start(start) => {
                        tasks.spawn(self.parts.clone().run(start));
                    }
                    Action::Fetch(fetch) => match self.fetch(fetch).await {
                        Ok(found) => sched.fetched(fetch, found, Now::read()),
                        Err(err) => {
                            if let Some(repeated) = READ_FAILED.admit(&format!("{name}: {err}")) {
                                warn!(endpoint = %name, error = %err, repeated, "Reading the queue failed; will retry.");
                            }
                            sched.fetch_failed(Now::read());
                        }
                    },
                    Action::Wait(at) => break at,
                }
            };
            self.publish(&sched);
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(joined) = tasks.join_next() => {
                    if let Ok(done) = joined {
                        self.finished(&mut sched, &mut outbox, done).await;
                    }
                }
                Some((seq, ok)) = outbox.committed() => sched.settled(seq, ok),
                Some(control) = controls.recv() => {
                    self.log_control(&control, sched.is_offline());
                    sched.control(&control, Now::read());
                }
                Ok(()) = inserted.changed() => sched.notified(),
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
        if !tasks.is_empty() || !outbox.is_empty() {
            debug!(endpoint = %name, in_flight = tasks.len(), "Letting in-flight deliveries finish.");
            let drain = async {
                while let Some(done) = tasks.join_next().await {
                    if let Ok(Finished {
                        update: Some(u), ..
                    }) = done
                    {
                        // A closed store leaves the row pending: sent again after restart.
                        let _ = outbox.send(&self.parts.store, u).await;
                    }
                }
                outbox.drain().await;
            };
            if tokio::time::timeout(grace, drain).await.is_err() {
                warn!(endpoint = %name, cut = tasks.len(),
                    "Shutdown deadline reached; cut-off deliveries stay queued and will be sent again.");
                tasks.abort_all();
            }
        }
    }

    /// Perform a read the scheduler asked for.
    async fn fetch(&self, fetch: Fetch) -> Result<Fetched, StoreError> {
        let name = self.parts.endpoint.name.clone();
        self.parts
            .store
            .read(move |c| {
                let now = now_ms();
                match fetch {
                    Fetch::Head => Ok(Fetched {
                        rows: deliveries::head(c, &name)?.into_iter().collect(),
                        next_due_at: None,
                    }),
                    Fetch::Page { after, limit } => {
                        let rows = deliveries::due(c, &name, now, after, limit)?;
                        let next_due_at = if rows.is_empty() {
                            deliveries::next_due_after(c, &name, now)?
                        } else {
                            None
                        };
                        Ok(Fetched { rows, next_due_at })
                    }
                }
            })
            .await
    }

    /// Hand a finished attempt's outcome to the store (after the scheduler has it as
    /// settling); if the store cannot take it, the row is still pending and is read again.
    async fn record(&self, sched: &mut Scheduler, outbox: &mut Outbox, update: deliveries::Update) {
        let seq = update.seq;
        if let Err(err) = outbox.send(&self.parts.store, update).await {
            let name = &self.parts.endpoint.name;
            if let Some(repeated) = RECORD_FAILED.admit(&format!("{name}: {err}")) {
                warn!(endpoint = %name, error = %err, repeated,
                    "Recording a delivery outcome failed; the delivery stays queued and may be sent again.");
            }
            sched.settled(seq, false);
        }
    }

    /// Account for a finished attempt: the scheduler, its outcome to record, the log,
    /// holds, the status counters.
    async fn finished(&self, sched: &mut Scheduler, outbox: &mut Outbox, mut done: Finished) {
        let name = &self.parts.endpoint.name;
        self.log(&done);
        let transition = sched.finished(
            done.seq,
            &done.verdict,
            done.latency,
            Now::read(),
            rand::random(),
        );
        match transition {
            Some(Transition::WentOffline { retry_in }) => {
                warn!(endpoint = %name, event_id = %done.event_id, attempt = done.attempt,
                    error = %error_of(&done.verdict), retry_in = ?retry_in,
                    "Endpoint offline; probing only its oldest delivery until it answers.");
            }
            Some(Transition::ProbeFailed { retry_in }) => {
                debug!(endpoint = %name, event_id = %done.event_id, retry_in = ?retry_in,
                    "Endpoint still offline.");
            }
            Some(Transition::BackOnline) => {
                info!(endpoint = %name, "Endpoint back online; draining its backlog.");
            }
            Some(Transition::Gone) => {
                if let Err(err) = self.parts.store.set_hold(name, Some(Hold::Gone)).await {
                    warn!(endpoint = %name, error = %err, "Recording the gone state failed.");
                }
            }
            None => {}
        }
        if let Some(update) = done.update.take() {
            self.record(sched, outbox, update).await;
        }
        self.count(&done);
    }

    fn count(&self, done: &Finished) {
        self.parts.handle.update(|s| match &done.verdict {
            Verdict::Delivered => {
                s.delivered += 1;
                s.last_success_at = Some(SystemTime::now());
            }
            other => {
                match other {
                    Verdict::Dead { .. } => s.dead += 1,
                    Verdict::Retry { .. } => s.retried += 1,
                    _ => {}
                }
                s.last_error = Some(error_of(other));
                s.last_error_at = Some(SystemTime::now());
            }
        });
    }

    fn log_control(&self, control: &Control, offline: bool) {
        let name = &self.parts.endpoint.name;
        match control {
            Control::Wake if offline => info!(endpoint = %name, "Woken: probing now."),
            Control::Wake => {}
            Control::Hold(Some(h)) => {
                info!(endpoint = %name, state = %h, "Deliveries held; events keep queueing.")
            }
            Control::Hold(None) => info!(endpoint = %name, "Deliveries resumed."),
        }
    }

    /// Keep the handle's status snapshot current.
    fn publish(&self, sched: &Scheduler) {
        let (state, in_flight) = sched.state(Now::read());
        let limit = sched.limit();
        self.parts.handle.update(|s| {
            s.state = state;
            s.in_flight = in_flight;
            s.concurrency_limit = limit;
        });
    }

    /// One line per delivery outcome, with the journal fields ENDPOINT, EVENT_ID, ATTEMPT
    /// and (when there was an answer) STATUS (SPEC §12).
    fn log(&self, done: &Finished) {
        let name = &self.parts.endpoint.name;
        let (event_id, attempt) = (&done.event_id, done.attempt);
        let status = done.status;
        match &done.verdict {
            Verdict::Delivered => {
                debug!(endpoint = %name, event_id = %event_id, attempt, status, "Delivered.")
            }
            Verdict::Retry {
                retry_in, error, ..
            } => {
                if status.is_some_and(|s| (300..400).contains(&s)) {
                    warn!(endpoint = %name, status, "Upstream answered with a redirect; redirects are not followed. Fix the endpoint url.");
                }
                warn!(endpoint = %name, event_id = %event_id, attempt, status, error = %error,
                    retry_in_ms = retry_in.as_millis() as u64, "Delivery failed, will retry.")
            }
            Verdict::Dead { error, reason, .. } => {
                error!(endpoint = %name, event_id = %event_id, attempt, status, error = %error,
                    reason = %reason, "Delivery failed permanently; kept as a dead letter.")
            }
            Verdict::Offline { error } => {
                debug!(endpoint = %name, event_id = %event_id, attempt, error = %error,
                    "Endpoint-level failure; not counted as an attempt.")
            }
            Verdict::Gone => {
                warn!(endpoint = %name, event_id = %event_id, attempt, status,
                    "Endpoint answered 410 Gone: holding its deliveries (nothing is dropped) until `edgehook resume`.")
            }
        }
    }
}

/// The one-line error text of a verdict, for status.
fn error_of(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Delivered => String::new(),
        Verdict::Retry { error, .. } | Verdict::Dead { error, .. } | Verdict::Offline { error } => {
            error.clone()
        }
        Verdict::Gone => "HTTP 410 Gone".into(),
    }
}
