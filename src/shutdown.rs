//! Shutdown triggers: the first SIGTERM/SIGINT starts a graceful shutdown, a second
//! one exits at once (vector's rule: an operator who asks twice means it).

use tokio::signal::unix::{signal, SignalKind};
use tracing::warn;

/// Exit status for an immediate exit on a second signal (128 + SIGTERM, shell convention).
const FORCED_EXIT: i32 = 143;

/// Install the SIGTERM/SIGINT handlers now and return a future that resolves on the first
/// signal; after it, a second signal exits the process at once.
///
/// The handlers are installed when this is *called*, not when the future is first polled:
/// systemd may send SIGTERM the moment `READY=1` is out, before the control loop polls
/// the future, and the default action would kill the process instead of a clean stop.
///
/// # Panics
/// Outside a tokio runtime, or if the handlers cannot be installed (never on Linux).
pub fn signal_received() -> impl std::future::Future<Output = ()> {
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing the SIGINT handler");
    async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            warn!("Second signal received: exiting now; accepted events stay queued on disk.");
            std::process::exit(FORCED_EXIT);
        });
    }
}
