//! The daemon process's life (SPEC §9): `SIGTERM` at any moment after `READY=1` is a clean
//! shutdown with exit status 0.

use crate::util::TestDaemon;

/// systemd may stop a unit the moment it reported `READY=1`; the signal must then start
/// a graceful shutdown, not kill the process with the default action.
#[test]
fn sigterm_right_after_ready_exits_0() {
    for _ in 0..20 {
        let mut d = TestDaemon::start();
        d.stop();
    }
}
