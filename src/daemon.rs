//! The daemon: the one place long-lived tasks are spawned, the control loop that applies
//! reloads, and the shutdown order.
//!
//! [`run`] is the control loop: [`Daemon::start`] opens the queue, binds the sockets,
//! starts ingest, the admin server and the delivery workers and reports `READY=1`; then
//! each [`Reload`] request (file changes, `SIGHUP`, the admin socket) goes to
//! [`Daemon::reload`] until the `shutdown` future resolves and [`Daemon::shutdown`] runs.
//!
//! Config flows one way: the daemon publishes each accepted config ([`Publisher`]) and
//! every task reads the latest from its [`Live`]; what a fresh read cannot change is
//! applied here. A reload validates the whole new config, builds every worker, and binds
//! or re-permissions every changed socket (`sockets.rs`: ingest, admin, metrics alike)
//! before anything changes; then it publishes the config (new events route by it at
//! once), moves the sockets, and replaces the workers (in-flight deliveries finish
//! first). A config refused at any step changes nothing and its error is kept for
//! `status` ([`Runtime`], which the admin API reads).
//!
//! Shutdown order (STYLE.md): `STOPPING=1` → ingest answers 503 and stops accepting, open
//! requests finish → workers stop claiming, in-flight POSTs get `shutdown_timeout` → the
//! writer commits what it accepted, checkpoints and closes → socket files are removed.

mod maintenance;
mod sockets;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::watch::{self, FileWatch, Reload};
use crate::config::{self, Config, Live, Publisher};
use crate::deliver::status::EndpointHandle;
use crate::deliver::{self, Dispatcher};
use crate::ingest::Ingest;
use crate::runtime::Runtime;
use crate::store::Store;
use crate::{admin, logging, systemd};
use sockets::Sockets;

/// Reload requests that may wait while one is applied.
const RELOAD_QUEUE: usize = 16;

/// Run the daemon with `config` until `shutdown` resolves; `on_ready` is called once the
/// queue is open and the sockets listen (right after `READY=1`).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(),
) -> anyhow::Result<()> {
    let (mut daemon, mut requests) = Daemon::start(config).await?;
    on_ready();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(request) = requests.recv() => daemon.reload(request).await,
        }
    }
    daemon.shutdown().await
}

/// The running daemon: every long-lived part, started by [`Daemon::start`], changed only
/// by [`Daemon::reload`], stopped in order by [`Daemon::shutdown`].
pub struct Daemon {
    /// The one publisher of the live config every task reads.
    config: Publisher,
    runtime: Arc<Runtime>,
    ingest: Arc<Ingest>,
    sockets: Sockets,
    dispatcher: Dispatcher,
    tracker: TaskTracker,
    /// Stops the maintenance task and the watchdog.
    maintenance: CancellationToken,
    file_watch: Option<FileWatch>,
    _sighup: tokio::task::JoinHandle<()>,
}

impl Daemon {
    /// Open the queue, bind every socket, start ingest, the admin server and the delivery
    /// workers, and report `READY=1`. Returns the daemon and the reload requests it is to
    /// be given (file changes, `SIGHUP`, `edgehook reload`).
    pub async fn start(config: Config) -> anyhow::Result<(Daemon, mpsc::Receiver<Reload>)> {
        log_warnings(&config);
        raise_nofile_limit(&config);
        crate::preflight::check(&config)?;
        let store = crate::store::files::open(&config)?;
        let workers = deliver::prepare(&config, &store)?;
        let (publisher, live) = Live::new(config.clone());
        let ingest = Ingest::new(store.clone(), live.clone());
        let tracker = TaskTracker::new();
        let mut dispatcher = Dispatcher::new(config.daemon.shutdown_timeout);
        let (reload_tx, requests) = mpsc::channel(RELOAD_QUEUE);
        let runtime = Arc::new(Runtime::new(
            live.clone(),
            store.clone(),
            dispatcher.handles(),
            ingest.received(),
            reload_tx.clone(),
        ));
        let mut sockets = Sockets::new(
            ingest.clone(),
            admin::Server::new(runtime.clone()),
            tracker.clone(),
        );
        sockets.apply(sockets.prepare(None, &config).await?);

        let maintenance = CancellationToken::new();
        tracker.spawn(maintenance::run(store.clone(), live, maintenance.clone()));
        if let Some(timeout) = systemd::watchdog_timeout() {
            let workers = dispatcher.handles();
            tracker.spawn(watchdog(
                store.clone(),
                workers,
                timeout,
                maintenance.clone(),
            ));
        }
        dispatcher.replace(workers).await;
        let sighup = watch::forward_sighup(reload_tx.clone())?;
        let file_watch = start_watch(&config, &reload_tx);

        info!(
            socket = %config.ingest.socket.display(),
            queue = %store.path().display(),
            endpoints = config.endpoints.len(),
            "edgehook {} ready.",
            env!("CARGO_PKG_VERSION")
        );
        systemd::ready(&summary(&config));
        let daemon = Daemon {
            config: publisher,
            runtime,
            ingest,
            sockets,
            dispatcher,
            tracker,
            maintenance,
            file_watch,
            _sighup: sighup,
        };
        Ok((daemon, requests))
    }

    /// Apply the config file again, or refuse it and keep everything as it was; answer
    /// `request`'s caller, count the outcome for `status`, and tell systemd.
    pub async fn reload(&mut self, request: Reload) {
        systemd::reloading();
        let result = self.apply_config_file().await.map_err(|e| format!("{e:#}"));
        self.runtime
            .record_reload(result.as_ref().map(|_| ()).map_err(String::as_str));
        let current = self.config.current();
        let answer = match result {
            Ok(()) => {
                self.file_watch = start_watch(&current, &self.runtime.reload_tx);
                logging::set_format(current.daemon.log_format);
                info!(trigger = ?request.trigger, endpoints = current.endpoints.len(), "Configuration reloaded.");
                let restart = self.runtime.restart_keys();
                if !restart.is_empty() {
                    warn!(keys = %restart.join(", "), "Changed settings that apply only after a restart keep their start values until then.");
                }
                Ok(format!(
                    "reloaded {}: {} endpoint(s){}",
                    current.path.display(),
                    current.endpoints.len(),
                    config::restart::note(&restart)
                ))
            }
            Err(message) => {
                error!(trigger = ?request.trigger, error = %message, "Reload refused; the previous configuration keeps running.");
                Err(message)
            }
        };
        systemd::ready(&summary(&current));
        if let Some(reply) = request.reply {
            let _ = reply.send(answer);
        }
    }

    /// Load and validate the config file, build every worker and bind or re-permission
    /// every changed socket; only then publish it, move the sockets, and replace the
    /// workers (see the module doc).
    async fn apply_config_file(&mut self) -> anyhow::Result<()> {
        let old = self.config.current();
        let new = config::load(&old.path)?;
        if new.daemon.state_dir != old.daemon.state_dir {
            bail!(
                "daemon.state_dir cannot change while edgehook runs (was {}, now {}); restart edgehook to use the new directory",
                old.daemon.state_dir.display(),
                new.daemon.state_dir.display()
            );
        }
        let workers = deliver::prepare(&new, &self.runtime.store)?;
        let rebind = self.sockets.prepare(Some(&old), &new).await?;
        log_warnings(&new);
        let queue = new.queue.clone();
        self.config.publish(new);
        self.sockets.apply(rebind);
        self.runtime.store.configure(queue).await?;
        self.dispatcher.replace(workers).await;
        Ok(())
    }

    /// Stop in the order of the module doc, then close the queue.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let Daemon {
            runtime,
            ingest,
            mut sockets,
            mut dispatcher,
            tracker,
            maintenance,
            file_watch,
            ..
        } = self;
        info!("Shutting down: no new events; finishing open requests and deliveries.");
        systemd::stopping();
        drop(file_watch);
        ingest.begin_shutdown();
        let socket_files = sockets.close();
        dispatcher.stop().await;
        maintenance.cancel();
        tracker.close();
        tracker.wait().await;
        let store = runtime.store.clone();
        drop((ingest, sockets, runtime));
        tokio::task::spawn_blocking(move || store.close()).await?;
        for path in socket_files {
            let _ = std::fs::remove_file(path);
        }
        info!("Stopped cleanly.");
        Ok(())
    }
}

fn start_watch(config: &Config, tx: &mpsc::Sender<Reload>) -> Option<FileWatch> {
    let mut files = vec![config.path.clone()];
    files.extend(config.watched_files.iter().cloned());
    match FileWatch::start(&files, tx.clone()) {
        Ok(w) => Some(w),
        Err(err) => {
            warn!(error = %err, "Cannot watch the config file; SIGHUP and `edgehook reload` still work.");
            None
        }
    }
}

/// Descriptors the daemon needs besides client and upstream connections: the queue
/// database (three connections, each with the db, WAL and shm files), listening sockets,
/// the config watch, the runtime's own; with a wide margin.
const BASE_FDS: u64 = 128;

/// Raise the soft open-files limit to the hard one, and warn if even that is below what
/// the config may use (each ingest connection, up to `max_connections` per socket, and
/// each upstream connection is a descriptor). systemd starts services with a soft limit
/// of 1024 (for `select()`'s sake) and a high hard limit that programs needing more are
/// meant to raise to themselves; without this, 1024 clients alone exhaust the default.
fn raise_nofile_limit(config: &Config) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let mut limit = soft;
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => limit = hard,
            Err(err) => {
                warn!(soft, hard, error = %err, "Cannot raise the open-files limit to the hard limit.")
            }
        }
    }
    let sockets = 1 + u64::from(config.ingest.lines_socket.is_some());
    let upstream: u64 = config.endpoints.iter().map(|e| e.concurrency as u64).sum();
    let need = sockets * config.ingest.max_connections as u64 + upstream + BASE_FDS;
    // rlim_t is u64 on 64-bit Linux but u32 on armhf.
    #[allow(clippy::useless_conversion)]
    let limit = u64::from(limit);
    if limit < need {
        warn!(limit, need, "The open-files limit is below what ingest.max_connections and the endpoints' concurrency may use; clients may be refused. Raise LimitNOFILE= or lower ingest.max_connections.");
    }
}

fn log_warnings(config: &Config) {
    for warning in &config.warnings {
        warn!(config = %config.path.display(), "{warning}");
    }
}

/// The one-line `STATUS=` summary.
fn summary(config: &Config) -> String {
    format!(
        "Accepting events on {}; {} endpoint(s)",
        config.ingest.socket.display(),
        config.endpoints.len()
    )
}

/// `WATCHDOG=1` every half `WatchdogSec`, each only after the store writer answered a
/// ping (it commits, so the disk answers too) and while no delivery worker has crashed: a
/// wedged writer or a dead worker stops the pings and systemd kills and restarts the
/// service. A ping may take a quarter of the timeout, so two pings are never more than
/// three quarters apart while all is well.
async fn watchdog(
    store: Store,
    workers: Arc<ArcSwap<Vec<Arc<EndpointHandle>>>>,
    timeout: Duration,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(timeout / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Some(dead) = workers.load().iter().find(|w| w.crashed()) {
            error!(endpoint = %dead.name, "A delivery worker crashed; withholding the systemd watchdog ping.");
            continue;
        }
        match store.ping(timeout / 4).await {
            Ok(()) => systemd::watchdog(),
            Err(err) => {
                error!(error = %err, "The queue is not making progress; withholding the systemd watchdog ping.")
            }
        }
    }
}
