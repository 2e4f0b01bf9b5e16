//! Every socket the daemon listens on — ingest's `events` and `lines` sockets, the admin
//! socket, the `metrics_listen` port — and the one rule for changing them.
//!
//! [`Sockets::prepare`] does every fallible step a config needs before anything changes:
//! it binds each socket whose address is new (a socket systemd passed is used instead, at
//! start) and re-applies a changed mode or group to a socket that stays. Any failure
//! refuses the whole start or reload, and what it bound already is closed and its file
//! removed. [`Sockets::apply`] then, after the daemon swapped the config, starts serving
//! the new listeners and stops the ones they replace (their socket files removed, never a
//! passed one: its socket unit owns it).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use anyhow::Context;

use crate::config::Config;
use crate::ingest::{self, peer, Ingest};
use crate::{admin, systemd};

/// What a socket serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Events,
    Lines,
    Admin,
    Metrics,
}

/// Every role, in the order they are bound.
const ROLES: [Role; 4] = [Role::Events, Role::Lines, Role::Admin, Role::Metrics];

/// Where a socket listens.
#[derive(Debug, Clone, PartialEq, Eq)]
enum At {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

/// A socket file's permission bits and group.
type Access = (u32, Option<String>);

/// How one config wants a role served: where (`None`: not at all), with what access.
#[derive(Debug, PartialEq, Eq)]
struct Want {
    at: Option<At>,
    access: Access,
}

impl Role {
    /// The config key, for messages.
    fn key(self) -> &'static str {
        match self {
            Role::Events => "ingest.socket",
            Role::Lines => "ingest.lines_socket",
            Role::Admin => "daemon.admin_socket",
            Role::Metrics => "daemon.metrics_listen",
        }
    }

    /// The name the socket unit passes this socket under (`FileDescriptorName=`).
    fn passed_name(self) -> Option<&'static str> {
        match self {
            Role::Events => Some(systemd::EVENTS),
            Role::Lines => Some(systemd::LINES),
            Role::Admin => Some(systemd::ADMIN),
            Role::Metrics => None,
        }
    }

    fn want(self, config: &Config) -> Want {
        let (i, d) = (&config.ingest, &config.daemon);
        let ingest_access = (i.socket_mode, i.socket_group.clone());
        match self {
            Role::Events => Want {
                at: Some(At::Unix(i.socket.clone())),
                access: ingest_access,
            },
            Role::Lines => Want {
                at: i.lines_socket.clone().map(At::Unix),
                access: ingest_access,
            },
            Role::Admin => Want {
                at: Some(At::Unix(d.admin_socket.clone())),
                access: (
                    admin::socket_mode(d.admin_group.as_deref()),
                    d.admin_group.clone(),
                ),
            },
            Role::Metrics => Want {
                at: d.metrics_listen.map(At::Tcp),
                access: (0, None),
            },
        }
    }
}

enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// A listener bound for a role, not serving yet.
struct Bound {
    at: At,
    listener: Listener,
}

/// One socket being served.
struct Served {
    role: Role,
    at: At,
    cancel: CancellationToken,
}

impl Served {
    /// The socket file to remove once it stops: ours, never a passed one.
    fn own_file(&self) -> Option<&Path> {
        match &self.at {
            At::Unix(path) if !path.as_os_str().is_empty() && !systemd::is_passed(path) => {
                Some(path)
            }
            _ => None,
        }
    }
}

/// What [`Sockets::prepare`] made ready: per role, the listener that replaces the served
/// one (`None`: stop serving it). Dropped unapplied (a later step refused the reload), it
/// closes the listeners and removes the socket files it bound.
#[derive(Default)]
pub struct Rebind {
    changes: Vec<(Role, Option<Bound>)>,
}

impl Drop for Rebind {
    fn drop(&mut self) {
        for (_, bound) in self.changes.drain(..) {
            if let Some(Bound {
                at: At::Unix(path), ..
            }) = bound
            {
                if !systemd::is_passed(&path) {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }
}

/// The served sockets and what serves them.
pub struct Sockets {
    ingest: Arc<Ingest>,
    admin: admin::Server,
    tracker: TaskTracker,
    served: Vec<Served>,
}

impl Sockets {
    /// Nothing served yet; [`Sockets::prepare`] with no old config binds what `config`
    /// needs at start.
    pub fn new(ingest: Arc<Ingest>, admin: admin::Server, tracker: TaskTracker) -> Sockets {
        Sockets {
            ingest,
            admin,
            tracker,
            served: Vec::new(),
        }
    }

    /// Bind and re-permission what going from `old` (`None` at start) to `new` needs,
    /// changing nothing that is served (see the module doc).
    pub async fn prepare(&self, old: Option<&Config>, new: &Config) -> anyhow::Result<Rebind> {
        let mut rebind = Rebind::default();
        let mut access_changed = Vec::new();
        for role in ROLES {
            let want = role.want(new);
            let Some(old) = old else {
                if let Some(bound) = bind(role, &want).await? {
                    rebind.changes.push((role, Some(bound)));
                }
                continue;
            };
            let was = role.want(old);
            if want.at != was.at {
                let bound = match &want.at {
                    Some(_) => bind(role, &want).await?,
                    None => None,
                };
                rebind.changes.push((role, bound));
            } else if want.access != was.access {
                access_changed.push((role, want));
            }
        }
        // After every bind, so a refused bind leaves the permissions as they were.
        for (role, want) in access_changed {
            let Some(served) = self.served.iter().find(|s| s.role == role) else {
                continue;
            };
            let At::Unix(path) = &served.at else { continue };
            if systemd::is_passed(path) {
                warn!(socket = %path.display(), "The socket systemd passed keeps the mode and group its socket unit gives it; change SocketMode= or SocketGroup= there.");
                continue;
            }
            let (mode, group) = &want.access;
            peer::set_access(path, *mode, group.as_deref(), role.key())?;
        }
        Ok(rebind)
    }

    /// Serve what `rebind` bound, stopping the sockets it replaces.
    pub fn apply(&mut self, mut rebind: Rebind) {
        for (role, bound) in rebind.changes.drain(..) {
            if let Some(i) = self.served.iter().position(|s| s.role == role) {
                let old = self.served.swap_remove(i);
                old.cancel.cancel();
                if let Some(path) = old.own_file() {
                    let _ = std::fs::remove_file(path);
                    info!(socket = %path.display(), "Stopped listening on the old socket path.");
                }
            }
            if let Some(bound) = bound {
                let served = self.spawn(role, bound);
                self.served.push(served);
            }
        }
    }

    /// Stop accepting on every socket; returns the socket files to remove once the
    /// open connections are done.
    pub fn close(&mut self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for served in self.served.drain(..) {
            served.cancel.cancel();
            files.extend(served.own_file().map(Path::to_path_buf));
        }
        files
    }

    /// # Panics
    /// If `bound` is not the kind of listener [`bind`] makes for `role`.
    fn spawn(&self, role: Role, bound: Bound) -> Served {
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        match (role, bound.listener) {
            (Role::Events, Listener::Unix(l)) => {
                self.tracker
                    .spawn(ingest::http::run(l, self.ingest.clone(), stop));
            }
            (Role::Lines, Listener::Unix(l)) => {
                self.tracker
                    .spawn(ingest::lines::run(l, self.ingest.clone(), stop));
            }
            (Role::Admin, Listener::Unix(l)) => {
                self.tracker.spawn(self.admin.clone().run_socket(l, stop));
            }
            (Role::Metrics, Listener::Tcp(l)) => {
                self.tracker.spawn(self.admin.clone().run_metrics(l, stop));
            }
            (role, _) => unreachable!(
                "{role:?}: `bind` gives metrics a TCP listener and every other role a Unix one"
            ),
        }
        Served {
            role,
            at: bound.at,
            cancel,
        }
    }
}

/// The listener for `role`: the one systemd passed (socket activation), else `want.at`
/// bound with its access; `None` when the config wants none.
async fn bind(role: Role, want: &Want) -> anyhow::Result<Option<Bound>> {
    if let Some(name) = role.passed_name() {
        if let Some(passed) = systemd::passed_listener(name)? {
            if let (Some(At::Unix(configured)), Some(path)) = (&want.at, &passed.path) {
                if configured != path {
                    warn!(socket = %configured.display(), "{} differs from the socket edgehook.socket passes as {name:?}; using the passed one.", role.key());
                }
            }
            let path = passed.path.or_else(|| match &want.at {
                Some(At::Unix(p)) => Some(p.clone()),
                _ => None,
            });
            return Ok(Some(Bound {
                at: At::Unix(path.unwrap_or_default()),
                listener: Listener::Unix(passed.listener),
            }));
        }
    }
    let listener = match &want.at {
        None => return Ok(None),
        Some(At::Unix(path)) => {
            let (mode, group) = &want.access;
            Listener::Unix(peer::bind(path, *mode, group.as_deref(), role.key()).await?)
        }
        Some(At::Tcp(addr)) => Listener::Tcp(TcpListener::bind(addr).await.with_context(|| {
            format!(
                "cannot listen on {addr} ({}); is another exporter using the port?",
                role.key()
            )
        })?),
    };
    Ok(Some(Bound {
        at: want.at.clone().expect("matched Some above"),
        listener,
    }))
}
