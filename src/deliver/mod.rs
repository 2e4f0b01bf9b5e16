//! Delivery: one worker per endpoint turns queued deliveries into signed HTTPS POSTs.
//!
//! `scheduler.rs` is the per-endpoint scheduling state machine, sans-IO (paging,
//! concurrency, ordering keys, offline probing, holds), `worker.rs` the I/O loop around it,
//! `attempt.rs` one attempt's send/decide/record, `retry.rs` the pure retry rules, `rate.rs` the token bucket,
//! `request.rs` the wire format, `client.rs` the TLS client, `status.rs` what a worker
//! shows and accepts from outside. Delivery reads and writes only through the [`Store`];
//! it never talks to ingest (new rows announce themselves through [`Store::inserted`]).

mod adaptive;
mod attempt;
mod client;
mod connect;
mod outbox;
mod proxy;
mod rate;
pub mod request;
pub mod retry;
mod scheduler;
pub mod status;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, EndpointConfig};
use crate::sign::Signer;
use crate::store::Store;
use attempt::Attempter;
use status::EndpointHandle;
use worker::Worker;

/// A worker ready to start: its client and signer were built successfully.
pub struct Prepared {
    worker: Worker,
    controls: tokio::sync::mpsc::UnboundedReceiver<status::Control>,
}

/// Build a worker for every endpoint of `config` without starting any, so a reload can
/// be refused before anything changes. Fails (naming the endpoint) when an endpoint's
/// TLS material or signing secret cannot be used.
pub fn prepare(config: &Config, store: &Store) -> anyhow::Result<Vec<Prepared>> {
    let mut prepared = Vec::new();
    let mut system = client::SystemRoots::default();
    for endpoint in &config.endpoints {
        let (client, signer) = parts(endpoint, &mut system)?;
        let (handle, controls) = EndpointHandle::new(endpoint.name.to_string());
        let worker = Worker::new(Attempter {
            endpoint: endpoint.clone(),
            client,
            signer,
            store: store.clone(),
            handle: Arc::new(handle),
        });
        prepared.push(Prepared { worker, controls });
    }
    Ok(prepared)
}

/// Whether every endpoint's client and signer can be built (`preflight`, check-config):
/// the same errors [`prepare`] would meet.
pub fn check(config: &Config) -> anyhow::Result<()> {
    let mut system = client::SystemRoots::default();
    for endpoint in &config.endpoints {
        parts(endpoint, &mut system)?;
    }
    Ok(())
}

/// An endpoint's HTTP client (TLS files read here) and signer.
fn parts(
    endpoint: &EndpointConfig,
    system: &mut client::SystemRoots,
) -> anyhow::Result<(client::HttpClient, Option<Signer>)> {
    let client = client::build(endpoint, system)?;
    let signer = endpoint
        .signing
        .as_ref()
        .map(Signer::new)
        .transpose()
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("endpoint {:?}: signing", endpoint.name))?;
    Ok((client, signer))
}

/// The running workers: started, replaced on reload, stopped on shutdown.
pub struct Dispatcher {
    grace: Duration,
    running: Vec<Running>,
    handles: Arc<ArcSwap<Vec<Arc<EndpointHandle>>>>,
}

struct Running {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Dispatcher {
    /// `grace`: how long in-flight attempts may finish when a worker stops.
    pub fn new(grace: Duration) -> Dispatcher {
        Dispatcher {
            grace,
            running: Vec::new(),
            handles: Arc::default(),
        }
    }

    /// The live list of endpoint handles (status, controls), updated on every replace.
    pub fn handles(&self) -> Arc<ArcSwap<Vec<Arc<EndpointHandle>>>> {
        self.handles.clone()
    }

    /// Stop the running workers (their in-flight attempts finish or are cut at `grace`;
    /// cut ones stay queued), then start `prepared`. A worker never overlaps its
    /// successor, so no delivery is in flight twice.
    pub async fn replace(&mut self, prepared: Vec<Prepared>) {
        self.stop().await;
        let mut handles = Vec::new();
        for Prepared { worker, controls } in prepared {
            handles.push(worker.handle().clone());
            let cancel = CancellationToken::new();
            let handle = worker.handle().clone();
            let run = tokio::spawn(worker.run(controls, cancel.clone(), self.grace));
            // The supervisor turns a panic into a logged, visible state: the watchdog
            // withholds its ping and systemd restarts the service.
            let task = tokio::spawn(async move {
                if let Err(err) = run.await {
                    if err.is_panic() {
                        tracing::error!(endpoint = %handle.name, "Delivery worker crashed; its deliveries stopped. The watchdog will have the service restarted.");
                        handle.mark_crashed();
                    }
                }
            });
            self.running.push(Running { cancel, task });
        }
        self.handles.store(Arc::new(handles));
    }

    /// Stop every worker and wait for them.
    pub async fn stop(&mut self) {
        for r in &self.running {
            r.cancel.cancel();
        }
        for r in self.running.drain(..) {
            let _ = r.task.await;
        }
        self.handles.store(Arc::default());
    }
}
