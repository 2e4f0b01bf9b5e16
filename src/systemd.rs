//! systemd integration; every part is a no-op outside systemd, so the daemon runs the same
//! in a terminal, a test, or a unit (ntpd-rs' `notify.rs`).
//!
//! - **Notify**: `READY=1`, `RELOADING=1` + `MONOTONIC_USEC`, `STOPPING=1`, `STATUS=` and
//!   `WATCHDOG=1` datagrams to `NOTIFY_SOCKET` (the `sd-notify` crate). *When* to send
//!   `WATCHDOG=1` is the daemon's business: it pings only after the store writer answered
//!   (`daemon.rs`), so a wedged writer gets the service killed and restarted.
//! - **Socket activation**: [`take_passed_sockets`] takes the listeners `edgehook.socket`
//!   passes (`LISTEN_FDS`, named by `LISTEN_FDNAMES`: `events`, `lines`, `admin`) once at
//!   start-up; [`passed_listener`] hands each to the code that would otherwise bind it.
//!   Turning a descriptor number into a listener needs `from_raw_fd`; the `listenfd` crate
//!   does that (after checking the descriptor is a Unix stream socket), so this crate stays
//!   `forbid(unsafe_code)`.
//! - **Journald detection**: [`stderr_is_journal`] (`JOURNAL_STREAM` names stderr's
//!   device and inode), which `logging` uses for `log_format = "auto"`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use sd_notify::NotifyState;
use tracing::{debug, info, warn};

/// `FileDescriptorName=` of the HTTP ingest socket in `edgehook.socket`.
pub const EVENTS: &str = "events";
/// `FileDescriptorName=` of the line ingest socket.
pub const LINES: &str = "lines";
/// `FileDescriptorName=` of the admin socket.
pub const ADMIN: &str = "admin";
const KNOWN_NAMES: [&str; 3] = [EVENTS, LINES, ADMIN];

fn notify(states: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(err) = sd_notify::notify(states) {
        debug!(error = %err, "sd_notify failed.");
    }
}

/// `READY=1` with a one-line status: the database is open and the sockets listen.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `STATUS=…`: the one-line summary `systemctl status` shows.
pub fn status(status: &str) {
    notify(&[NotifyState::Status(status)]);
}

/// `RELOADING=1` with `MONOTONIC_USEC`: a reload has begun (`READY=1` follows).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[
            NotifyState::Reloading,
            now,
            NotifyState::Status("Reloading configuration"),
        ]),
        Err(_) => notify(&[NotifyState::Reloading]),
    }
}

/// `STOPPING=1`: shutdown has begun.
pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("Shutting down")]);
}

/// `WATCHDOG=1`: the daemon proved it makes progress (see the module doc).
pub fn watchdog() {
    notify(&[NotifyState::Watchdog]);
}

/// The watchdog timeout systemd enforces (`WatchdogSec=`, passed as `WATCHDOG_USEC` for
/// this process), or `None` when no watchdog is armed.
pub fn watchdog_timeout() -> Option<Duration> {
    sd_notify::watchdog_enabled().filter(|t| !t.is_zero())
}

/// A listening socket systemd passed, until its user takes it.
struct Passed {
    name: String,
    /// The socket file, `None` for an abstract socket.
    path: Option<PathBuf>,
    listener: Option<std::os::unix::net::UnixListener>,
}

/// The sockets systemd passed, filled once by [`take_passed_sockets`].
static PASSED: Mutex<Vec<Passed>> = Mutex::new(Vec::new());

fn passed() -> std::sync::MutexGuard<'static, Vec<Passed>> {
    PASSED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Take the listening sockets systemd passed to this process (`LISTEN_PID`, `LISTEN_FDS`,
/// `LISTEN_FDNAMES`) and keep them for [`passed_listener`]. Sockets with a name other than
/// `events`, `lines` or `admin`, or that are not Unix stream sockets, are logged and left
/// unused. Returns how many were kept.
///
/// Call it once, early in `main` and before any other thread starts: it unsets the
/// `LISTEN_*` variables (so no child inherits them), and changing the environment is only
/// sound while the process has one thread.
pub fn take_passed_sockets() -> usize {
    let names = std::env::var("LISTEN_FDNAMES").ok();
    // Checks LISTEN_PID against our pid and unsets LISTEN_PID and LISTEN_FDS.
    let mut fds = listenfd::ListenFd::from_env();
    std::env::remove_var("LISTEN_FDNAMES");
    if fds.len() == 0 {
        return 0;
    }
    let names = match fd_names(fds.len(), names.as_deref()) {
        Ok(names) => names,
        Err(err) => {
            warn!(error = %err, "Ignoring the sockets systemd passed; edgehook binds its own.");
            return 0;
        }
    };
    let mut passed = passed();
    for (index, name) in names.into_iter().enumerate() {
        if !KNOWN_NAMES.contains(&name.as_str()) {
            warn!(
                socket = %name,
                "systemd passed a socket with an unknown name; ignoring it. Name each ListenStream= with FileDescriptorName=events, lines or admin."
            );
            continue;
        }
        if passed.iter().any(|p| p.name == name) {
            warn!(socket = %name, "systemd passed two sockets named {name:?}; using the first.");
            continue;
        }
        match fds.take_unix_listener(index) {
            Ok(Some(listener)) => {
                let path = listener
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_pathname().map(Path::to_path_buf));
                passed.push(Passed {
                    name,
                    path,
                    listener: Some(listener),
                });
            }
            Ok(None) => {}
            Err(err) => warn!(
                socket = %name,
                error = %err,
                "Ignoring a socket systemd passed: edgehook needs a Unix stream socket (ListenStream=/path)."
            ),
        }
    }
    passed.len()
}

/// The names of `count` passed descriptors, from `LISTEN_FDNAMES` (colon-separated, one per
/// descriptor; every one is `unknown` when the variable is unset, as in `sd_listen_fds_with_names`).
fn fd_names(count: usize, names: Option<&str>) -> Result<Vec<String>, String> {
    let Some(names) = names else {
        return Ok(vec!["unknown".to_string(); count]);
    };
    let names: Vec<String> = names.split(':').map(str::to_string).collect();
    if names.len() != count {
        return Err(format!(
            "LISTEN_FDNAMES names {} socket(s) but LISTEN_FDS passes {count}",
            names.len()
        ));
    }
    Ok(names)
}

/// A socket systemd passed, ready to serve.
pub struct PassedListener {
    pub listener: tokio::net::UnixListener,
    /// The socket file (`None` for an abstract socket); it belongs to the socket unit.
    pub path: Option<PathBuf>,
}

/// The listener systemd passed as `name` ([`EVENTS`], [`LINES`] or [`ADMIN`]), if any; each
/// can be taken once, later calls return `None` (a re-bind after a reload binds anew).
///
/// Must be called inside the tokio runtime.
pub fn passed_listener(name: &str) -> anyhow::Result<Option<PassedListener>> {
    let taken = passed()
        .iter_mut()
        .find(|p| p.name == name)
        .and_then(|p| Some((p.listener.take()?, p.path.clone())));
    let Some((listener, path)) = taken else {
        return Ok(None);
    };
    let shown = path
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "an abstract socket".to_string());
    listener.set_nonblocking(true).map_err(|e| {
        anyhow::anyhow!("cannot use the {name} socket systemd passed ({shown}): {e}")
    })?;
    let listener = tokio::net::UnixListener::from_std(listener).map_err(|e| {
        anyhow::anyhow!("cannot use the {name} socket systemd passed ({shown}): {e}")
    })?;
    info!(socket = %shown, name, "Using the socket passed by systemd (socket activation).");
    Ok(Some(PassedListener { listener, path }))
}

/// Whether `path` is the file of a socket systemd passed: it belongs to the socket unit,
/// which keeps listening after edgehook exits, so edgehook must never remove it.
pub fn is_passed(path: &Path) -> bool {
    passed().iter().any(|p| p.path.as_deref() == Some(path))
}

/// Whether stderr is connected to the journal: systemd sets `JOURNAL_STREAM` to
/// `device:inode` of the stream it connects stdout/stderr to, and stderr must still be that
/// stream (a shell started from a unit inherits the variable with other file descriptors).
pub fn stderr_is_journal() -> bool {
    let Some((dev, ino)) = std::env::var("JOURNAL_STREAM")
        .ok()
        .as_deref()
        .and_then(parse_journal_stream)
    else {
        return false;
    };
    match nix::sys::stat::fstat(std::io::stderr()) {
        // ino_t is u32 on armhf, u64 on 64-bit Linux.
        #[allow(clippy::useless_conversion)]
        Ok(st) => st.st_dev == dev && u64::from(st.st_ino) == ino,
        Err(_) => false,
    }
}

/// `JOURNAL_STREAM`'s `device:inode`, both decimal.
fn parse_journal_stream(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_names_follow_listen_fdnames() {
        assert_eq!(
            fd_names(3, Some("events:lines:admin")).unwrap(),
            ["events", "lines", "admin"]
        );
        assert_eq!(fd_names(2, None).unwrap(), ["unknown", "unknown"]);
        assert_eq!(
            fd_names(2, Some("events::")).unwrap_err(),
            "LISTEN_FDNAMES names 3 socket(s) but LISTEN_FDS passes 2"
        );
        assert_eq!(fd_names(2, Some("events:")).unwrap(), ["events", ""]);
    }

    #[test]
    fn journal_stream_is_device_colon_inode() {
        assert_eq!(parse_journal_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_journal_stream("8:"), None);
        assert_eq!(parse_journal_stream("8"), None);
        assert_eq!(parse_journal_stream("x:1"), None);
    }

    #[test]
    fn notify_sends_datagrams_to_notify_socket() {
        // A real AF_UNIX datagram socket as NOTIFY_SOCKET, the way systemd listens. This is
        // the only test in this crate that sets NOTIFY_SOCKET; the others never read it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        std::env::set_var("NOTIFY_SOCKET", &path);
        let recv = || {
            let mut buf = [0u8; 512];
            let n = socket.recv(&mut buf).unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        };
        ready("Accepting events");
        assert_eq!(recv(), "READY=1\nSTATUS=Accepting events\n");
        reloading();
        let msg = recv();
        assert!(msg.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{msg}");
        watchdog();
        assert_eq!(recv(), "WATCHDOG=1\n");
        status("2 endpoint(s)");
        assert_eq!(recv(), "STATUS=2 endpoint(s)\n");
        stopping();
        assert_eq!(recv(), "STOPPING=1\nSTATUS=Shutting down\n");
        std::env::remove_var("NOTIFY_SOCKET");
    }
}
