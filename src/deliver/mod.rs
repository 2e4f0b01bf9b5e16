//! Delivery: one worker per endpoint turns queued deliveries into signed HTTPS POSTs.
//!
//! `worker.rs` is the per-endpoint loop (paging, concurrency, offline probing, holds),
//! `retry.rs` the pure retry rules, `request.rs` the wire format, `client.rs` the TLS
//! client. Delivery reads and writes only through the [`Store`]; it never talks to ingest
//! (new rows announce themselves through [`Store::inserted`]).

mod client;
pub mod request;
pub mod retry;
mod worker;

use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::sign::Signer;
use crate::store::Store;
use worker::Worker;

/// Start one worker per configured endpoint on `tracker`. Fails (naming the endpoint)
/// when an endpoint's TLS material or signing secret cannot be used.
pub fn spawn(
    config: &Config,
    store: &Store,
    cancel: &CancellationToken,
    tracker: &TaskTracker,
    grace: Duration,
) -> anyhow::Result<()> {
    for endpoint in &config.endpoints {
        let client = client::build(endpoint)?;
        let signer = endpoint
            .signing
            .as_ref()
            .map(Signer::new)
            .transpose()
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("endpoint {:?}: signing", endpoint.name))?;
        let worker = Worker {
            endpoint: endpoint.clone(),
            client,
            signer,
            store: store.clone(),
        };
        tracker.spawn(worker.run(cancel.clone(), grace));
    }
    Ok(())
}
