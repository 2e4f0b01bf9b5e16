//! Delivery: one worker per endpoint turns queued deliveries into signed HTTPS POSTs.
//!
//! `worker.rs` is the per-endpoint loop (paging, concurrency, ordering keys, offline
//! probing, holds), `retry.rs` the pure retry rules, `rate.rs` the token bucket,
//! `request.rs` the wire format, `client.rs` the TLS client, `status.rs` what a worker
//! shows and accepts from outside. Delivery reads and writes only through the [`Store`];
//! it never talks to ingest (new rows announce themselves through [`Store::inserted`]).

mod client;
mod rate;
pub mod request;
pub mod retry;
pub mod status;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::sign::Signer;
use crate::store::Store;
use status::EndpointHandle;
use worker::Worker;

/// Start one worker per configured endpoint on `tracker` and return their handles.
/// Fails (naming the endpoint) when an endpoint's TLS material or signing secret cannot
/// be used.
pub fn spawn(
    config: &Config,
    store: &Store,
    cancel: &CancellationToken,
    tracker: &TaskTracker,
    grace: Duration,
) -> anyhow::Result<Vec<Arc<EndpointHandle>>> {
    let mut handles = Vec::new();
    for endpoint in &config.endpoints {
        let client = client::build(endpoint)?;
        let signer = endpoint
            .signing
            .as_ref()
            .map(Signer::new)
            .transpose()
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("endpoint {:?}: signing", endpoint.name))?;
        let (handle, controls) = EndpointHandle::new(endpoint.name.clone());
        let handle = Arc::new(handle);
        let worker = Worker {
            endpoint: endpoint.clone(),
            client,
            signer,
            store: store.clone(),
            handle: handle.clone(),
        };
        tracker.spawn(worker.run(controls, cancel.clone(), grace));
        handles.push(handle);
    }
    Ok(handles)
}
