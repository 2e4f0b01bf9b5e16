//! The daemon: the one place long-lived tasks are spawned, and their shutdown order.
//!
//! `run` opens the queue, binds the sockets, starts ingest (and, later, delivery and
//! admin) tasks, reports `READY=1`, then waits for its `shutdown` future. Shutdown order
//! (STYLE.md): `STOPPING=1` → ingest answers 503 and stops accepting, open requests
//! finish → the writer commits what it accepted → the database is checkpointed and
//! closed → the socket files are removed.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::Config;
use crate::deliver;
use crate::ingest::{self, Ingest};
use crate::store::Store;
use crate::systemd;

/// Extra time past `shutdown_timeout` for workers to record the attempts they cut off.
const SHUTDOWN_MARGIN: Duration = Duration::from_secs(1);
/// How often expired dedupe entries are pruned.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);

/// Run the daemon with `config` until `shutdown` resolves; `on_ready` is called once the
/// queue is open and the sockets listen (right after `READY=1`).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(),
) -> anyhow::Result<()> {
    for warning in &config.warnings {
        warn!(config = %config.path.display(), "{warning}");
    }
    let state_dir = &config.daemon.state_dir;
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create daemon.state_dir {}", state_dir.display()))?;
    let store = Store::open(&config.queue_db(), &config.queue)?;
    let shared = Arc::new(ArcSwap::from_pointee(config.clone()));
    let ingest = Ingest::new(store.clone(), shared.clone());
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();

    let ic = &config.ingest;
    let group = ic.socket_group.as_deref();
    let mut socket_files: Vec<PathBuf> = Vec::new();
    let listener = ingest::peer::bind(&ic.socket, ic.socket_mode, group, "ingest.socket").await?;
    socket_files.push(ic.socket.clone());
    tracker.spawn(ingest::http::run(listener, ingest.clone(), cancel.clone()));
    if let Some(path) = &ic.lines_socket {
        let listener =
            ingest::peer::bind(path, ic.socket_mode, group, "ingest.lines_socket").await?;
        socket_files.push(path.clone());
        tracker.spawn(ingest::lines::run(listener, ingest.clone(), cancel.clone()));
    }
    tracker.spawn(maintain(store.clone(), cancel.clone()));
    let grace = config.daemon.shutdown_timeout;
    let _endpoints = deliver::spawn(&config, &store, &cancel, &tracker, grace)?;

    let summary = format!(
        "Accepting events on {}; {} endpoint(s)",
        ic.socket.display(),
        config.endpoints.len()
    );
    info!(
        socket = %ic.socket.display(),
        queue = %store.path().display(),
        endpoints = config.endpoints.len(),
        "edgehook {} ready.",
        env!("CARGO_PKG_VERSION")
    );
    systemd::ready(&summary);
    on_ready();

    shutdown.await;
    info!("Shutting down: no new events; finishing open requests.");
    systemd::stopping();
    ingest.begin_shutdown();
    cancel.cancel();
    tracker.close();
    if tokio::time::timeout(grace + SHUTDOWN_MARGIN, tracker.wait())
        .await
        .is_err()
    {
        warn!("Tasks did not stop within daemon.shutdown_timeout; closing the queue anyway.");
    }
    drop(ingest);
    tokio::task::spawn_blocking(move || store.close()).await?;
    for path in socket_files {
        let _ = std::fs::remove_file(path);
    }
    info!("Stopped cleanly.");
    Ok(())
}

async fn maintain(store: Store, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {
                if store.maintain().await.is_err() {
                    return;
                }
            }
        }
    }
}
