//! Shutdown triggers: the first SIGTERM/SIGINT starts a graceful shutdown, a second
//! one exits at once (vector's rule: an operator who asks twice means it).

use tokio::signal::unix::{signal, SignalKind};
use tracing::warn;

/// Exit status for an immediate exit on a second signal (128 + SIGTERM, shell convention).
const FORCED_EXIT: i32 = 143;

/// Resolves on the first SIGTERM or SIGINT; arranges for a second one to exit the process.
pub async fn signal_received() {
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing the SIGINT handler");
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
