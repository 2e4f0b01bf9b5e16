//! systemd integration: `sd_notify` state changes. A no-op outside systemd (no
//! `NOTIFY_SOCKET`), so the daemon runs the same in a terminal, a test, or a unit.

use sd_notify::NotifyState;
use tracing::debug;

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
