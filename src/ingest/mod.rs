//! Ingest: the two Unix sockets local apps write events to, and the core they share.
//!
//! `http.rs` serves HTTP/1.1 (`POST /v1/events`, `GET /v1/health`), `lines.rs` the line
//! protocol, `peer.rs` binds the sockets (mode, group, stale-socket replacement) and
//! checks `SO_PEERCRED`. Both protocols hand bytes to [`Ingest`], which parses, routes
//! against the current config snapshot, and stores through the [`Store`]'s group commit.
//! Ingest never talks to delivery; new rows reach the workers through the store.

pub mod http;
pub mod lines;
pub mod peer;
pub mod route;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::config::Live;
use crate::event::{Event, EventError};
use crate::metrics::Received;
use crate::store::{Inserted, NewEvent, Peer, Store, StoreError};

pub use crate::reply::ApiError;
use crate::reply::RETRY_AFTER_SECS;
pub use route::route;

impl From<EventError> for ApiError {
    fn from(e: EventError) -> Self {
        ApiError::new(400, e.code.as_str(), e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Full { .. } => ApiError {
                retry_after: Some(RETRY_AFTER_SECS),
                ..ApiError::new(507, "queue_full", e.to_string())
            },
            StoreError::Unavailable(_) | StoreError::Reserve { .. } => {
                ApiError::unavailable(format!(
                    "{e}; the event was not accepted, retry later (nothing already accepted is lost)"
                ))
            }
            StoreError::Closed => ApiError::unavailable("edgehook is shutting down; retry later"),
        }
    }
}

/// A parsed, routed event (or why not), before storage.
pub type Prepared = Result<NewEvent, ApiError>;

/// The outcome of one stored event, for the reply.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub id: String,
    pub endpoints: Vec<Arc<str>>,
    pub duplicate: bool,
}

/// The ingest core both protocols use.
pub struct Ingest {
    store: Store,
    config: Live,
    shutting_down: AtomicBool,
    /// Events by result, for `edgehook_events_received_total`.
    received: Arc<Received>,
}

impl Ingest {
    pub fn new(store: Store, config: Live) -> Arc<Ingest> {
        Arc::new(Ingest {
            store,
            config,
            shutting_down: AtomicBool::new(false),
            received: Arc::default(),
        })
    }

    /// The counters of events received, by result (shared with metrics).
    pub fn received(&self) -> Arc<Received> {
        self.received.clone()
    }

    pub fn config(&self) -> Arc<crate::config::Config> {
        self.config.load()
    }

    /// From now on every request is answered 503 (SIGTERM received).
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Why ingest cannot accept events right now (shutting down, storage failing), if so.
    pub fn unhealthy(&self) -> Option<String> {
        if self.is_shutting_down() {
            return Some("shutting down".into());
        }
        self.store.failure()
    }

    /// Parse and route one event's bytes against the current config.
    pub fn prepare(&self, bytes: &[u8], peer: Peer) -> Prepared {
        let config = self.config.load();
        if bytes.len() > config.ingest.max_event_bytes {
            return Err(ApiError::too_large(
                "event",
                config.ingest.max_event_bytes,
                "ingest.max_event_bytes",
            ));
        }
        let event = Event::parse(bytes)?;
        let routes = route(&config, &event)?;
        Ok(NewEvent {
            event,
            routes,
            peer,
        })
    }

    /// Store prepared events and answer each; `atomic`: all or nothing.
    ///
    /// Events no endpoint wants are answered without being stored. With `atomic`, any
    /// failure fails the whole call; otherwise each item has its own result.
    pub async fn accept(
        &self,
        items: Vec<Prepared>,
        atomic: bool,
    ) -> Result<Vec<Result<Accepted, ApiError>>, ApiError> {
        let n = items.len() as u64;
        let answers = self.store_items(items, atomic).await;
        match &answers {
            Ok(answers) => {
                let dup = answers
                    .iter()
                    .filter(|a| matches!(a, Ok(a) if a.duplicate))
                    .count() as u64;
                let bad = answers.iter().filter(|a| a.is_err()).count() as u64;
                self.received.add(n - dup - bad, dup, bad);
            }
            Err(_) => self.received.add(0, 0, n),
        }
        answers
    }

    /// Count events rejected before [`Ingest::accept`] (an NDJSON batch with bad lines).
    pub fn count_rejected(&self, n: usize) {
        self.received.add(0, 0, n as u64);
    }

    async fn store_items(
        &self,
        items: Vec<Prepared>,
        atomic: bool,
    ) -> Result<Vec<Result<Accepted, ApiError>>, ApiError> {
        if self.is_shutting_down() {
            return Err(ApiError::from(StoreError::Closed));
        }
        let mut answers: Vec<Result<Accepted, ApiError>> = Vec::with_capacity(items.len());
        let mut to_store = Vec::new();
        let mut slots = Vec::new();
        for item in items {
            match item {
                Ok(new) => {
                    answers.push(Ok(Accepted {
                        id: new.event.id.clone(),
                        endpoints: new.routes.iter().map(|r| r.endpoint.clone()).collect(),
                        duplicate: false,
                    }));
                    if !new.routes.is_empty() {
                        slots.push(answers.len() - 1);
                        to_store.push(new);
                    }
                }
                Err(e) if atomic => return Err(e),
                Err(e) => answers.push(Err(e)),
            }
        }
        if to_store.is_empty() {
            return Ok(answers);
        }
        let results = self.store.insert(to_store, atomic).await?;
        for (slot, result) in slots.into_iter().zip(results) {
            match result {
                Ok(Inserted::Accepted) => {}
                Ok(Inserted::Duplicate) => {
                    if let Ok(a) = &mut answers[slot] {
                        a.duplicate = true;
                    }
                }
                Err(e) if atomic => return Err(e.into()),
                Err(e) => answers[slot] = Err(e.into()),
            }
        }
        Ok(answers)
    }
}
