//! What the running daemon shares with the admin API and its metrics: the facts that
//! outlive one request (start time, reload history) and the handles to the live parts
//! (config, store, the workers' endpoint handles, the reload channel).
//!
//! `daemon.rs` builds one [`Runtime`] and keeps it current; `admin/` only reads it (and
//! sends [`Reload`] requests), so the admin server never depends on the daemon.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

use crate::config::watch::Reload;
use crate::config::{Config, Live};
use crate::deliver::status::EndpointHandle;
use crate::metrics::Received;
use crate::store::Store;

/// Reload history, for `status` and metrics.
#[derive(Debug, Clone, Default)]
pub struct ReloadStats {
    pub succeeded: u64,
    pub failed: u64,
    pub last_ok_at: Option<SystemTime>,
    /// The error of the last reload, until a later one succeeds.
    pub last_error: Option<String>,
}

/// The running daemon, as the admin API sees it.
pub struct Runtime {
    pub started: SystemTime,
    pub config: Live,
    /// The config the daemon started with: settings read only at start keep its values.
    started_config: Arc<Config>,
    pub store: Store,
    /// The running workers' handles (status, controls); replaced on every reload.
    pub endpoints: Arc<ArcSwap<Vec<Arc<EndpointHandle>>>>,
    /// Events received by ingest, by result.
    pub received: Arc<Received>,
    reloads: Mutex<ReloadStats>,
    /// Where `edgehook reload` sends its request (the daemon's control loop).
    pub reload_tx: mpsc::Sender<Reload>,
}

impl Runtime {
    /// The runtime of a daemon starting now, with no reloads yet.
    pub fn new(
        config: Live,
        store: Store,
        endpoints: Arc<ArcSwap<Vec<Arc<EndpointHandle>>>>,
        received: Arc<Received>,
        reload_tx: mpsc::Sender<Reload>,
    ) -> Runtime {
        Runtime {
            started: SystemTime::now(),
            started_config: config.load(),
            config,
            store,
            endpoints,
            received,
            reloads: Mutex::default(),
            reload_tx,
        }
    }

    /// Keys changed by reloads that apply only after a restart
    /// ([`crate::config::restart`]).
    pub fn restart_keys(&self) -> Vec<&'static str> {
        crate::config::restart::restart_keys(&self.started_config, &self.config.load())
    }

    /// The reload history so far.
    pub fn reloads(&self) -> ReloadStats {
        self.lock_reloads().clone()
    }

    /// Count one reload's outcome: `Ok` clears the last error, `Err` keeps its message.
    pub fn record_reload(&self, outcome: Result<(), &str>) {
        let mut stats = self.lock_reloads();
        match outcome {
            Ok(()) => {
                stats.succeeded += 1;
                stats.last_ok_at = Some(SystemTime::now());
                stats.last_error = None;
            }
            Err(message) => {
                stats.failed += 1;
                stats.last_error = Some(message.to_string());
            }
        }
    }

    fn lock_reloads(&self) -> std::sync::MutexGuard<'_, ReloadStats> {
        self.reloads.lock().unwrap_or_else(|p| p.into_inner())
    }
}
