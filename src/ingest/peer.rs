//! Socket files and peer credentials: binding a Unix socket with the configured mode and
//! group, replacing a stale socket left by a crash, refusing to steal one a live process
//! listens on, accepting clients within a connection limit, and reading `SO_PEERCRED` of
//! each client.

use std::future::Future;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::store::Peer;

/// Bind `path` as a listening socket with `mode` and, if given, group `group`.
///
/// `what` names the config key in messages (e.g. `ingest.socket`).
pub async fn bind(
    path: &Path,
    mode: u32,
    group: Option<&str>,
    what: &str,
) -> anyhow::Result<UnixListener> {
    let shown = path.display();
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            bail!("cannot bind {shown}: a file that is not a socket is in the way; remove it or change {what}");
        }
        match UnixStream::connect(path).await {
            Ok(stream) => {
                let pid = stream
                    .peer_cred()
                    .ok()
                    .and_then(|c| c.pid())
                    .map(|p| format!(" (pid {p})"))
                    .unwrap_or_default();
                bail!("cannot bind {shown}: another edgehook{pid} is already running and listening on it; stop it or change {what}");
            }
            Err(_) => {
                std::fs::remove_file(path)
                    .with_context(|| format!("cannot remove stale socket {shown}"))?;
                info!(socket = %shown, "Replaced a stale socket left by an earlier run.");
            }
        }
    }
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() && !parent.exists() {
            std::fs::create_dir_all(parent).with_context(|| {
                format!("cannot create directory {} for {what}", parent.display())
            })?;
        }
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot bind {shown} ({what})"))?;
    set_access(path, mode, group, what)?;
    Ok(listener)
}

/// Give the socket file `path` permission bits `mode` and, if set, group `group`. The group
/// goes first: when it cannot be set (unknown, not ours to give) the file is left as it was.
pub fn set_access(path: &Path, mode: u32, group: Option<&str>, what: &str) -> anyhow::Result<()> {
    let shown = path.display();
    if let Some(group) = group {
        let gid = crate::preflight::group(group, &format!("for {what}"))?;
        nix::unistd::chown(path, None, Some(gid))
            .with_context(|| format!("cannot give {shown} to group {group:?}"))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set mode {mode:o} on {shown}"))?;
    Ok(())
}

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop doesn't spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// A listening socket whose next connection [`next_client`] can await: the Unix sockets,
/// and the admin server's `metrics_listen` TCP port.
pub trait Listen {
    type Stream;
    fn accept_stream(&self) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;
}

impl Listen for UnixListener {
    type Stream = UnixStream;
    async fn accept_stream(&self) -> std::io::Result<UnixStream> {
        self.accept().await.map(|(stream, _)| stream)
    }
}

impl Listen for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept_stream(&self) -> std::io::Result<tokio::net::TcpStream> {
        self.accept().await.map(|(stream, _)| stream)
    }
}

/// The next client within the connection limit (`slots`), or `None` once `cancel` fires.
/// While every slot is taken, new clients wait in the kernel's listen backlog.
pub async fn next_client<L: Listen>(
    listener: &L,
    slots: &Arc<Semaphore>,
    cancel: &CancellationToken,
    what: &str,
) -> Option<(L::Stream, OwnedSemaphorePermit)> {
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => return None,
            permit = slots.clone().acquire_owned() => permit.ok()?,
        };
        tokio::select! {
            _ = cancel.cancelled() => return None,
            accepted = listener.accept_stream() => match accepted {
                Ok(stream) => return Some((stream, permit)),
                Err(err) => {
                    warn!(socket = what, error = %err, "Accepting a connection failed.");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
        }
    }
}

/// The client's uid, gid and pid, from `SO_PEERCRED`.
pub fn credentials(stream: &UnixStream) -> std::io::Result<Peer> {
    let cred = stream.peer_cred()?;
    Ok(Peer {
        uid: cred.uid(),
        gid: cred.gid(),
        pid: cred.pid(),
    })
}

/// The `forbidden` message for a peer not in `allowed_uids` / `allowed_gids`.
pub fn forbidden_message(peer: &Peer) -> String {
    format!(
        "uid {} / gid {} may not submit events: not in ingest.allowed_uids or ingest.allowed_gids",
        peer.uid, peer.gid
    )
}
