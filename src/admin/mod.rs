//! The admin socket: a small JSON HTTP/1.1 API on `daemon.admin_socket` that the
//! operator commands (`status`, `endpoints`, `dead`, `wake`, `pause`, `resume`, `reload`,
//! `metrics`) talk to, and the optional `daemon.metrics_listen` TCP port serving only
//! `GET /metrics`.
//!
//! - `mod.rs` (this file): binding, the accept loop, and who may connect.
//! - `api.rs`: the routes, each reading the [`Runtime`] the daemon shares.
//! - `client.rs` and `render.rs`: the CLI side (requests, tables, colour).
//!
//! Access: the socket file is mode 0600 (0660 with `daemon.admin_group`), and every
//! connection's `SO_PEERCRED` is checked too — root, the daemon's own uid, and members of
//! `admin_group` (primary gid or listed in the group) are let in; anyone else gets 403
//! with a message saying who may. The check covers a socket whose mode was loosened
//! (socket activation's `SocketMode=`, a stray chmod).
//!
//! The listeners follow the config: a reload that changes `admin_socket`, `admin_group`
//! or `metrics_listen` is applied here within [`CONFIG_CHECK`] (the config snapshot has
//! no change signal; comparing it once a second is cheap), so `daemon.rs` needs to know
//! nothing but `spawn` and [`Admin::stop`].

mod api;
pub mod client;
mod render;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::config::DaemonConfig;
use crate::daemon::Runtime;
use crate::ingest::peer;
use crate::metrics::Received;
use crate::store::Peer;
use crate::systemd;

/// Socket mode without `admin_group`: the daemon's user only (root gets in anyway).
const MODE_PRIVATE: u32 = 0o600;
/// Socket mode with `admin_group`: the group may connect too.
const MODE_GROUP: u32 = 0o660;
/// Concurrent admin connections; operators and a scraper need a handful.
const MAX_CONNECTIONS: usize = 64;
/// Time a client gets to send its request head (also the keep-alive idle limit).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the listeners are compared with the live config (see the module doc).
const CONFIG_CHECK: Duration = Duration::from_secs(1);
/// How long open admin requests may finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The running admin server; [`Admin::stop`] closes it (its socket file is removed).
pub struct Admin {
    cancel: CancellationToken,
}

impl Admin {
    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

/// What every request handler may read.
struct Ctx {
    runtime: Arc<Runtime>,
    received: Arc<Received>,
    /// The daemon's own uid: allowed on the admin socket besides root.
    own_uid: u32,
}

/// Bind the admin socket (and `metrics_listen`, if set) now, so a failure stops start-up
/// with its reason, then serve them in a task of `tracker` until [`Admin::stop`].
pub async fn spawn(
    runtime: Arc<Runtime>,
    received: Arc<Received>,
    tracker: &TaskTracker,
) -> anyhow::Result<Admin> {
    let config = runtime.config.load_full();
    let mut listeners = Listeners::default();
    listeners.bind_socket(&config.daemon).await?;
    listeners.bind_metrics(&config.daemon).await?;
    let ctx = Arc::new(Ctx {
        runtime,
        received,
        own_uid: nix::unistd::geteuid().as_raw(),
    });
    let cancel = CancellationToken::new();
    tracker.spawn(run(listeners, ctx, cancel.clone()));
    Ok(Admin { cancel })
}

/// The bound sockets and the settings they were bound with.
#[derive(Default)]
struct Listeners {
    socket: Option<(PathBuf, Option<String>, UnixListener)>,
    metrics: Option<(SocketAddr, TcpListener)>,
    /// The settings last tried, so a failing re-bind is reported once, not every second.
    tried: Option<(PathBuf, Option<String>, Option<SocketAddr>)>,
}

impl Listeners {
    /// The `admin` socket systemd passed (socket activation; at start only), else
    /// `daemon.admin_socket` bound with mode 0600, or 0660 and `admin_group`.
    async fn bind_socket(&mut self, d: &DaemonConfig) -> anyhow::Result<()> {
        let group = d.admin_group.as_deref();
        let mode = if group.is_some() {
            MODE_GROUP
        } else {
            MODE_PRIVATE
        };
        let (path, listener) = match systemd::passed_listener(systemd::ADMIN)? {
            Some(passed) => {
                if passed.path.as_deref() != Some(d.admin_socket.as_path()) {
                    warn!(socket = %d.admin_socket.display(), "daemon.admin_socket differs from the socket edgehook.socket passes as \"admin\"; using the passed one.");
                }
                (passed.path.unwrap_or_default(), passed.listener)
            }
            None => (
                d.admin_socket.clone(),
                peer::bind(&d.admin_socket, mode, group, "daemon.admin_socket").await?,
            ),
        };
        if let Some((old, _, _)) = self.socket.take() {
            remove_socket_file(&old);
        }
        self.socket = Some((path, d.admin_group.clone(), listener));
        Ok(())
    }

    async fn bind_metrics(&mut self, d: &DaemonConfig) -> anyhow::Result<()> {
        self.metrics = None;
        if let Some(addr) = d.metrics_listen {
            let listener = TcpListener::bind(addr).await.with_context(|| {
                format!("cannot listen on {addr} (daemon.metrics_listen); is another exporter using the port?")
            })?;
            self.metrics = Some((addr, listener));
        }
        Ok(())
    }

    /// Re-bind what a reload changed; on failure keep what works and say why once.
    async fn follow(&mut self, d: &DaemonConfig) {
        let wanted = (
            d.admin_socket.clone(),
            d.admin_group.clone(),
            d.metrics_listen,
        );
        if self.tried.as_ref() == Some(&wanted) {
            return;
        }
        let current_socket = self.socket.as_ref().map(|(p, g, _)| (p.clone(), g.clone()));
        let passed = current_socket
            .as_ref()
            .is_some_and(|(p, _)| systemd::is_passed(p));
        if passed {
            // The socket unit owns a passed socket: its path, mode and group.
        } else if current_socket.as_ref().map(|(p, _)| p) != Some(&d.admin_socket) {
            match self.bind_socket(d).await {
                Ok(()) => {
                    info!(socket = %d.admin_socket.display(), "Admin socket moved.")
                }
                Err(err) => {
                    warn!(error = %format!("{err:#}"), "Cannot move the admin socket; it stays where it was.")
                }
            }
        } else if current_socket.as_ref().map(|(_, g)| g) != Some(&d.admin_group) {
            let group = d.admin_group.as_deref();
            let mode = if group.is_some() {
                MODE_GROUP
            } else {
                MODE_PRIVATE
            };
            match peer::set_access(&d.admin_socket, mode, group, "daemon.admin_group") {
                Ok(()) => {
                    if let Some(s) = &mut self.socket {
                        s.1 = d.admin_group.clone();
                    }
                }
                Err(err) => {
                    warn!(error = %format!("{err:#}"), "Cannot apply daemon.admin_group to the admin socket.")
                }
            }
        }
        if self.metrics.as_ref().map(|(a, _)| *a) != d.metrics_listen {
            if let Err(err) = self.bind_metrics(d).await {
                warn!(error = %format!("{err:#}"), "Metrics listener not started.");
            }
        }
        self.tried = Some(wanted);
    }
}

/// A connection just accepted.
enum Conn {
    Admin(tokio::net::UnixStream),
    Metrics(tokio::net::TcpStream),
}

async fn run(mut listeners: Listeners, ctx: Arc<Ctx>, cancel: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    let mut check = tokio::time::interval(CONFIG_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => break,
            permit = slots.clone().acquire_owned() => permit.expect("semaphore never closed"),
        };
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            _ = check.tick() => {
                let config = ctx.runtime.config.load_full();
                listeners.follow(&config.daemon).await;
                continue;
            }
            r = accept_unix(&listeners.socket) => r.map(Conn::Admin),
            r = accept_tcp(&listeners.metrics) => r.map(Conn::Metrics),
        };
        let conn = match accepted {
            Ok(conn) => conn,
            Err(err) => {
                warn!(error = %err, "Accepting an admin connection failed.");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match conn {
            Conn::Admin(stream) => {
                let Ok(peer) = peer::credentials(&stream) else {
                    continue;
                };
                let refusal = refusal(&ctx, &peer);
                let ctx = ctx.clone();
                let service = hyper::service::service_fn(move |req| {
                    let ctx = ctx.clone();
                    let refusal = refusal.clone();
                    async move {
                        Ok::<_, Infallible>(match refusal {
                            Some(message) => api::forbidden(message),
                            None => api::handle(req, &ctx, false).await,
                        })
                    }
                });
                serve(&builder, &graceful, stream, service, permit);
            }
            Conn::Metrics(stream) => {
                let ctx = ctx.clone();
                let service = hyper::service::service_fn(move |req| {
                    let ctx = ctx.clone();
                    async move { Ok::<_, Infallible>(api::handle(req, &ctx, true).await) }
                });
                serve(&builder, &graceful, stream, service, permit);
            }
        }
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        debug!("Some admin connections did not finish in time and were closed.");
    }
    if let Some((path, _, _)) = listeners.socket {
        remove_socket_file(&path);
    }
}

/// Remove a socket file we bound (never one systemd passed: the socket unit owns it).
fn remove_socket_file(path: &std::path::Path) {
    if !path.as_os_str().is_empty() && !systemd::is_passed(path) {
        let _ = std::fs::remove_file(path);
    }
}

fn serve<I, S>(
    builder: &http1::Builder,
    graceful: &GracefulShutdown,
    stream: I,
    service: S,
    permit: tokio::sync::OwnedSemaphorePermit,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = api::Body, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
    tokio::spawn(async move {
        if let Err(err) = conn.await {
            debug!(error = %err, "Admin connection ended with an error.");
        }
        drop(permit);
    });
}

async fn accept_unix(
    socket: &Option<(PathBuf, Option<String>, UnixListener)>,
) -> std::io::Result<tokio::net::UnixStream> {
    match socket {
        Some((_, _, l)) => l.accept().await.map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

async fn accept_tcp(
    metrics: &Option<(SocketAddr, TcpListener)>,
) -> std::io::Result<tokio::net::TcpStream> {
    match metrics {
        Some((_, l)) => l.accept().await.map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

/// Why `peer` may not use the admin socket, or `None` if it may.
fn refusal(ctx: &Ctx, peer: &Peer) -> Option<String> {
    let group = ctx.runtime.config.load().daemon.admin_group.clone();
    if peer.uid == 0 || peer.uid == ctx.own_uid {
        return None;
    }
    if let Some(g) = group
        .as_deref()
        .and_then(|g| nix::unistd::Group::from_name(g).ok().flatten())
    {
        let member = g.gid.as_raw() == peer.gid
            || nix::unistd::User::from_uid(peer.uid.into())
                .ok()
                .flatten()
                .is_some_and(|u| g.mem.contains(&u.name));
        if member {
            return None;
        }
    }
    Some(refusal_message(peer.uid, ctx.own_uid, group.as_deref()))
}

/// "uid 1000 may not use the admin socket: it is for root, the edgehook user and group ops".
fn refusal_message(uid: u32, own_uid: u32, group: Option<&str>) -> String {
    let mut who = vec!["root".to_string()];
    if own_uid != 0 {
        let name = nix::unistd::User::from_uid(own_uid.into())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| format!("uid {own_uid}"));
        who.push(format!("the {name} user"));
    }
    let hint = match group {
        Some(g) => {
            who.push(format!("group {g} (daemon.admin_group)"));
            String::new()
        }
        None => "; set daemon.admin_group to let a group in".to_string(),
    };
    let list = match who.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => who.join(""),
    };
    format!("uid {uid} may not use the admin socket: it is for {list}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_names_who_may() {
        assert_eq!(
            refusal_message(1000, 0, None),
            "uid 1000 may not use the admin socket: it is for root; set daemon.admin_group to let a group in"
        );
        let m = refusal_message(1000, 0, Some("ops"));
        assert_eq!(
            m,
            "uid 1000 may not use the admin socket: it is for root and group ops (daemon.admin_group)"
        );
        // A uid with no passwd entry is named by number.
        let m = refusal_message(1000, 4_000_000, Some("ops"));
        assert!(
            m.ends_with("it is for root, the uid 4000000 user and group ops (daemon.admin_group)"),
            "{m}"
        );
    }
}
