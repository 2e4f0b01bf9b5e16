//! The daemon: the one place long-lived tasks are spawned, the control loop that applies
//! reloads, and the shutdown order.
//!
//! `run` opens the queue, binds the sockets, starts ingest and the delivery workers,
//! reports `READY=1`, then loops on two inputs: the `shutdown` future and [`Reload`]
//! requests (file changes, `SIGHUP`, the admin socket). A reload validates the whole new
//! config and builds every worker before anything changes; then it swaps the config
//! snapshot (new events route by it at once), re-binds sockets whose path changed, and
//! replaces the workers (in-flight deliveries finish first). An invalid config changes
//! nothing and its error is kept for `status`.
//!
//! Shutdown order (STYLE.md): `STOPPING=1` → ingest answers 503 and stops accepting, open
//! requests finish → workers stop claiming, in-flight POSTs get `shutdown_timeout` → the
//! writer commits what it accepted, checkpoints and closes → socket files are removed.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::watch::{self, FileWatch, Reload};
use crate::config::{self, Config, IngestConfig, Shared};
use crate::deliver::status::EndpointHandle;
use crate::deliver::{self, Dispatcher};
use crate::ingest::{self, Ingest};
use crate::store::Store;
use crate::{logging, systemd};

/// How often expired dedupe entries are pruned and old rows expired, at most: often
/// enough that nobody waits for it, rarely enough to cost nothing on a big queue. Shorter
/// `queue.max_age` or `keep_delivered` make it shorter ([`maintenance_interval`]).
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);
/// The shortest maintenance interval: each run is one short write transaction.
const MIN_MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);
/// While storage fails (disk full), how often a one-page probe write checks whether it
/// works again, so health and ingest recover by themselves within about this time.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Reload requests that may wait while one is applied.
const RELOAD_QUEUE: usize = 16;

/// Reload history, for `status` and metrics.
#[derive(Debug, Clone, Default)]
pub struct ReloadStats {
    pub succeeded: u64,
    pub failed: u64,
    pub last_ok_at: Option<SystemTime>,
    /// The error of the last reload, until a later one succeeds.
    pub last_error: Option<String>,
}

/// What the running daemon shares with the admin API.
pub struct Runtime {
    pub started: SystemTime,
    pub config: Shared,
    pub store: Store,
    pub endpoints: Arc<ArcSwap<Vec<Arc<EndpointHandle>>>>,
    pub reloads: Mutex<ReloadStats>,
    pub reload_tx: mpsc::Sender<Reload>,
}

/// One ingest socket being served.
struct Served {
    path: PathBuf,
    cancel: CancellationToken,
}

/// Run the daemon with `config` until `shutdown` resolves; `on_ready` is called once the
/// queue is open and the sockets listen (right after `READY=1`).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(),
) -> anyhow::Result<()> {
    log_warnings(&config);
    raise_nofile_limit(&config);
    let state_dir = &config.daemon.state_dir;
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create daemon.state_dir {}", state_dir.display()))?;
    let store = Store::open(&config.queue_db(), &config.queue)?;
    let shared: Shared = Arc::new(ArcSwap::from_pointee(config.clone()));
    let ingest = Ingest::new(store.clone(), shared.clone());
    let tracker = TaskTracker::new();
    let grace = config.daemon.shutdown_timeout;

    let mut http = Some(serve_http(&config.ingest, &ingest, &tracker).await?);
    let mut lines = serve_lines(&config.ingest, &ingest, &tracker).await?;
    let maintenance = CancellationToken::new();
    tracker.spawn(maintain(store.clone(), shared.clone(), maintenance.clone()));
    let mut dispatcher = Dispatcher::new(grace);
    if let Some(timeout) = systemd::watchdog_timeout() {
        let workers = dispatcher.handles();
        tracker.spawn(watchdog(
            store.clone(),
            workers,
            timeout,
            maintenance.clone(),
        ));
    }
    dispatcher.replace(deliver::prepare(&config, &store)?).await;

    let (reload_tx, mut reload_rx) = mpsc::channel(RELOAD_QUEUE);
    let _sighup = watch::forward_sighup(reload_tx.clone())?;
    let mut file_watch = start_watch(&config, &reload_tx);
    let runtime = Arc::new(Runtime {
        started: SystemTime::now(),
        config: shared.clone(),
        store: store.clone(),
        endpoints: dispatcher.handles(),
        reloads: Mutex::new(ReloadStats::default()),
        reload_tx,
    });
    // ---- admin socket (operations API, metrics_listen): bound now, stopped at shutdown ----
    let admin = crate::admin::spawn(runtime.clone(), ingest.received(), &tracker).await?;
    // ---- end admin ----

    info!(
        socket = %config.ingest.socket.display(),
        queue = %store.path().display(),
        endpoints = config.endpoints.len(),
        "edgehook {} ready.",
        env!("CARGO_PKG_VERSION")
    );
    systemd::ready(&summary(&config));
    on_ready();

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(request) = reload_rx.recv() => {
                systemd::reloading();
                let result = reload(&runtime, &ingest, &tracker, &mut http, &mut lines, &mut dispatcher).await;
                let current = runtime.config.load_full();
                let mut stats = runtime.reloads.lock().unwrap_or_else(|p| p.into_inner());
                let answer = match result {
                    Ok(()) => {
                        stats.succeeded += 1;
                        stats.last_ok_at = Some(SystemTime::now());
                        stats.last_error = None;
                        file_watch = start_watch(&current, &runtime.reload_tx);
                        logging::set_format(current.daemon.log_format);
                        info!(trigger = ?request.trigger, endpoints = current.endpoints.len(), "Configuration reloaded.");
                        Ok(format!("reloaded {}: {} endpoint(s)", current.path.display(), current.endpoints.len()))
                    }
                    Err(err) => {
                        let message = format!("{err:#}");
                        stats.failed += 1;
                        stats.last_error = Some(message.clone());
                        error!(trigger = ?request.trigger, error = %message, "Reload refused; the previous configuration keeps running.");
                        Err(message)
                    }
                };
                drop(stats);
                systemd::ready(&summary(&current));
                if let Some(reply) = request.reply {
                    let _ = reply.send(answer);
                }
            }
        }
    }

    info!("Shutting down: no new events; finishing open requests and deliveries.");
    systemd::stopping();
    drop(file_watch);
    ingest.begin_shutdown();
    admin.stop(); // admin socket: see the block after `runtime` above
    let mut socket_files = Vec::new();
    for served in http.into_iter().chain(lines) {
        served.cancel.cancel();
        socket_files.push(served.path);
    }
    dispatcher.stop().await;
    maintenance.cancel();
    tracker.close();
    tracker.wait().await;
    drop(ingest);
    drop(runtime);
    tokio::task::spawn_blocking(move || store.close()).await?;
    for path in socket_files {
        if !systemd::is_passed(&path) {
            let _ = std::fs::remove_file(path);
        }
    }
    info!("Stopped cleanly.");
    Ok(())
}

/// Validate and apply the config file again (see the module doc for the order).
async fn reload(
    runtime: &Runtime,
    ingest: &Arc<Ingest>,
    tracker: &TaskTracker,
    http: &mut Option<Served>,
    lines: &mut Option<Served>,
    dispatcher: &mut Dispatcher,
) -> anyhow::Result<()> {
    let old = runtime.config.load_full();
    let new = config::load(&old.path)?;
    if new.daemon.state_dir != old.daemon.state_dir {
        bail!(
            "daemon.state_dir cannot change while edgehook runs (was {}, now {}); restart edgehook to use the new directory",
            old.daemon.state_dir.display(),
            new.daemon.state_dir.display()
        );
    }
    let workers = deliver::prepare(&new, &runtime.store)?;
    let (o, n) = (&old.ingest, &new.ingest);
    // New permissions for sockets that stay where they are, before anything is swapped: a
    // failure here (e.g. a group that does not exist) must refuse the whole reload.
    if (n.socket_mode, &n.socket_group) != (o.socket_mode, &o.socket_group) {
        let mut unmoved = Vec::new();
        if n.socket == o.socket {
            unmoved.push((&n.socket, "ingest.socket"));
        }
        if let (Some(path), true) = (&n.lines_socket, n.lines_socket == o.lines_socket) {
            unmoved.push((path, "ingest.lines_socket"));
        }
        for (path, key) in unmoved {
            ingest::peer::set_access(path, n.socket_mode, n.socket_group.as_deref(), key)?;
        }
    }
    let new_http = if n.socket != o.socket {
        Some(bind_http(n).await?)
    } else {
        None
    };
    let new_lines = if n.lines_socket != o.lines_socket {
        Some(bind_lines(n).await?)
    } else {
        None
    };
    log_warnings(&new);
    runtime.config.store(Arc::new(new.clone()));
    if let Some(listener) = new_http {
        replace(
            http.take(),
            Some(spawn_http(listener, n, ingest, tracker)),
            http,
        );
    }
    if let Some(listener) = new_lines {
        let served = listener.map(|(path, l)| spawn_lines(path, l, ingest, tracker));
        replace(lines.take(), served, lines);
    }
    runtime.store.configure(new.queue.clone()).await?;
    dispatcher.replace(workers).await;
    Ok(())
}

/// Stop serving `old` (removing its socket file) and put `new` in `slot`.
fn replace(old: Option<Served>, new: Option<Served>, slot: &mut Option<Served>) {
    if let Some(old) = old {
        old.cancel.cancel();
        if !systemd::is_passed(&old.path) {
            let _ = std::fs::remove_file(&old.path);
        }
        info!(socket = %old.path.display(), "Stopped listening on the old socket path.");
    }
    *slot = new;
}

/// The HTTP ingest listener: the `events` socket systemd passed (socket activation), else
/// `ingest.socket` bound with its mode and group.
async fn bind_http(ic: &IngestConfig) -> anyhow::Result<tokio::net::UnixListener> {
    if let Some(passed) = systemd::passed_listener(systemd::EVENTS)? {
        if passed.path.as_deref() != Some(ic.socket.as_path()) {
            warn!(socket = %ic.socket.display(), "ingest.socket differs from the socket edgehook.socket passes as \"events\"; using the passed one.");
        }
        return Ok(passed.listener);
    }
    ingest::peer::bind(
        &ic.socket,
        ic.socket_mode,
        ic.socket_group.as_deref(),
        "ingest.socket",
    )
    .await
}

/// The line ingest listener: the `lines` socket systemd passed, else `ingest.lines_socket`
/// (if set) bound with its mode and group.
async fn bind_lines(
    ic: &IngestConfig,
) -> anyhow::Result<Option<(PathBuf, tokio::net::UnixListener)>> {
    if let Some(passed) = systemd::passed_listener(systemd::LINES)? {
        let path = passed
            .path
            .or_else(|| ic.lines_socket.clone())
            .unwrap_or_default();
        return Ok(Some((path, passed.listener)));
    }
    let Some(path) = &ic.lines_socket else {
        return Ok(None);
    };
    let listener = ingest::peer::bind(
        path,
        ic.socket_mode,
        ic.socket_group.as_deref(),
        "ingest.lines_socket",
    )
    .await?;
    Ok(Some((path.clone(), listener)))
}

fn spawn_http(
    listener: tokio::net::UnixListener,
    ic: &IngestConfig,
    ingest: &Arc<Ingest>,
    tracker: &TaskTracker,
) -> Served {
    let cancel = CancellationToken::new();
    tracker.spawn(ingest::http::run(listener, ingest.clone(), cancel.clone()));
    Served {
        path: ic.socket.clone(),
        cancel,
    }
}

fn spawn_lines(
    path: PathBuf,
    listener: tokio::net::UnixListener,
    ingest: &Arc<Ingest>,
    tracker: &TaskTracker,
) -> Served {
    let cancel = CancellationToken::new();
    tracker.spawn(ingest::lines::run(listener, ingest.clone(), cancel.clone()));
    Served { path, cancel }
}

async fn serve_http(
    ic: &IngestConfig,
    ingest: &Arc<Ingest>,
    tracker: &TaskTracker,
) -> anyhow::Result<Served> {
    Ok(spawn_http(bind_http(ic).await?, ic, ingest, tracker))
}

async fn serve_lines(
    ic: &IngestConfig,
    ingest: &Arc<Ingest>,
    tracker: &TaskTracker,
) -> anyhow::Result<Option<Served>> {
    Ok(bind_lines(ic)
        .await?
        .map(|(path, l)| spawn_lines(path, l, ingest, tracker)))
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

/// How often housekeeping runs for `queue`: [`MAINTENANCE_INTERVAL`], or half of
/// `max_age` / `keep_delivered` when that is shorter (so a row expires at most half its
/// limit late), but never more often than [`MIN_MAINTENANCE_INTERVAL`].
pub fn maintenance_interval(queue: &config::QueueConfig) -> Duration {
    let limits = [queue.max_age, Some(queue.keep_delivered)];
    limits
        .into_iter()
        .flatten()
        .filter(|d| !d.is_zero())
        .map(|d| d / 2)
        .fold(MAINTENANCE_INTERVAL, Duration::min)
        .max(MIN_MAINTENANCE_INTERVAL)
}

/// Housekeeping on [`maintenance_interval`] of the current config; while storage fails,
/// also a probe write every [`PROBE_INTERVAL`] so the failure clears once it works again.
async fn maintain(store: Store, config: Shared, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        // A failed probe needs no handling here: the writer logged it and health says so.
        if store.failure().is_some()
            && matches!(store.probe().await, Err(crate::store::StoreError::Closed))
        {
            return;
        }
        let every = maintenance_interval(&config.load().queue);
        if last.is_none_or(|at| at.elapsed() >= every) {
            last = Some(tokio::time::Instant::now());
            if store.maintain().await.is_err() {
                return;
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(max_age: Option<u64>, keep_delivered: u64) -> config::QueueConfig {
        config::QueueConfig {
            durability: config::Durability::Full,
            max_bytes: 1 << 30,
            when_full: config::WhenFull::Reject,
            max_age: max_age.map(Duration::from_secs),
            dedupe_window: Duration::from_secs(86_400),
            keep_delivered: Duration::from_secs(keep_delivered),
        }
    }

    #[test]
    fn maintenance_interval_follows_the_shortest_limit() {
        let secs = |q| maintenance_interval(&q).as_secs_f64();
        assert_eq!(secs(queue(None, 0)), 60.0, "defaults: once a minute");
        assert_eq!(secs(queue(Some(30 * 86_400), 0)), 60.0, "30d: no faster");
        assert_eq!(secs(queue(Some(10), 0)), 5.0, "half of max_age");
        assert_eq!(secs(queue(Some(10), 4)), 2.0, "half of keep_delivered");
        assert_eq!(secs(queue(Some(1), 0)), 1.0, "never under a second");
        assert_eq!(secs(queue(None, 90)), 45.0);
    }
}
