//! The admin socket: a small JSON HTTP/1.1 API on `daemon.admin_socket` that the
//! operator commands (`status`, `endpoints`, `dead`, `wake`, `pause`, `resume`, `reload`,
//! `metrics`) talk to, and the optional `daemon.metrics_listen` TCP port serving only
//! `GET /metrics`.
//!
//! - `mod.rs` (this file): the [`Server`] that serves a listener it is handed, and who
//!   may connect.
//! - `api.rs`: the routes, each reading the [`Runtime`] the daemon shares; `dead.rs`:
//!   dead-letter retry and purge, in bounded batches with a progress stream.
//! - `client.rs` and `render.rs`: the CLI side (requests, tables, colour).
//!
//! The daemon binds, moves and stops these listeners like every other socket it serves
//! (`daemon/sockets.rs`: a reload binds a moved socket before anything changes, and a
//! failure refuses the reload); this module only serves them.
//!
//! Access: the socket file is mode 0600 (0660 with `daemon.admin_group`), and every
//! connection's `SO_PEERCRED` is checked too — root, the daemon's own uid, and members of
//! `admin_group` (primary gid or listed in the group) are let in; anyone else gets 403
//! with a message saying who may. The check covers a socket whose mode was loosened
//! (socket activation's `SocketMode=`, a stray chmod).

mod api;
pub mod client;
pub mod dead;
pub mod purge;
pub(crate) mod render;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::ingest::peer;
use crate::runtime::Runtime;
use crate::store::Peer;

/// Socket mode without `admin_group`: the daemon's user only (root gets in anyway).
const MODE_PRIVATE: u32 = 0o600;
/// Socket mode with `admin_group`: the group may connect too.
const MODE_GROUP: u32 = 0o660;
/// Concurrent admin connections (socket and metrics port together); operators and a
/// scraper need a handful.
const MAX_CONNECTIONS: usize = 64;
/// Time a client gets to send its request head (also the keep-alive idle limit).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open admin requests may finish once their listener stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The admin socket's mode for `admin_group`: 0660 with a group, else 0600.
pub fn socket_mode(admin_group: Option<&str>) -> u32 {
    if admin_group.is_some() {
        MODE_GROUP
    } else {
        MODE_PRIVATE
    }
}

/// What every request handler may read.
struct Ctx {
    runtime: Arc<Runtime>,
    /// The daemon's own uid: allowed on the admin socket besides root.
    own_uid: u32,
}

/// Serves the admin API on the listeners the daemon hands it; clones share one
/// connection limit.
#[derive(Clone)]
pub struct Server {
    ctx: Arc<Ctx>,
    slots: Arc<Semaphore>,
}

impl Server {
    pub fn new(runtime: Arc<Runtime>) -> Server {
        Server {
            ctx: Arc::new(Ctx {
                runtime,
                own_uid: nix::unistd::geteuid().as_raw(),
            }),
            slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        }
    }

    /// Serve the whole API on the admin socket until `cancel`, then let open requests
    /// finish (at most `DRAIN_TIMEOUT`).
    pub async fn run_socket(self, listener: UnixListener, cancel: CancellationToken) {
        let graceful = GracefulShutdown::new();
        let builder = builder();
        while let Some((stream, permit)) =
            peer::next_client(&listener, &self.slots, &cancel, "daemon.admin_socket").await
        {
            let Ok(peer) = peer::credentials(&stream) else {
                continue;
            };
            let refusal = refusal(&self.ctx, &peer);
            let ctx = self.ctx.clone();
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
        drain(graceful).await;
    }

    /// Serve `GET /metrics` only on the `metrics_listen` port until `cancel`.
    pub async fn run_metrics(self, listener: TcpListener, cancel: CancellationToken) {
        let graceful = GracefulShutdown::new();
        let builder = builder();
        while let Some((stream, permit)) =
            peer::next_client(&listener, &self.slots, &cancel, "daemon.metrics_listen").await
        {
            let ctx = self.ctx.clone();
            let service = hyper::service::service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(api::handle(req, &ctx, true).await) }
            });
            serve(&builder, &graceful, stream, service, permit);
        }
        drain(graceful).await;
    }
}

fn builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    builder
}

async fn drain(graceful: GracefulShutdown) {
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        debug!("Some admin connections did not finish in time and were closed.");
    }
}

fn serve<I, S>(
    builder: &http1::Builder,
    graceful: &GracefulShutdown,
    stream: I,
    service: S,
    permit: OwnedSemaphorePermit,
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
