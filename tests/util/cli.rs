//! Running the binary for one-shot commands (`check-config`, `send`, …), also as uid
//! 65534 (`as_nobody`), and the operator commands against a test daemon (`admin`).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::TestDaemon;

/// The test daemon's admin socket.
pub fn admin_socket(d: &TestDaemon) -> PathBuf {
    d.dir().join("admin.sock")
}

/// `edgehook ARGS… --admin-socket <the daemon's>`, piped: (exit code, stdout, stderr).
pub fn admin(d: &TestDaemon, args: &[&str]) -> (i32, String, String) {
    let socket = admin_socket(d);
    let mut all = args.to_vec();
    all.extend(["--admin-socket", socket.to_str().expect("UTF-8 temp path")]);
    run_cli(&all, None)
}

/// Run `edgehook ARGS…` to completion, feeding `stdin`; returns (exit code, stdout, stderr).
///
/// The environment is cleaned of the variables edgehook reads (`EDGEHOOK_CONFIG`,
/// `NOTIFY_SOCKET`) so the caller's arguments alone decide what it does.
///
/// # Panics
/// If the binary cannot be started, or is killed by a signal.
pub fn run_cli(args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    let mut child = Command::new(super::edgehook_bin())
        .args(args)
        .env_remove("EDGEHOOK_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting edgehook");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(input).expect("writing edgehook's stdin");
    }
    let out = child.wait_with_output().expect("waiting for edgehook");
    let code = out
        .status
        .code()
        .unwrap_or_else(|| panic!("edgehook {args:?} was killed: {}", out.status));
    (
        code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `setpriv` as uid/gid 65534 (nobody/nogroup) with no supplementary groups, or `None`
/// (with a note) where that cannot work here.
pub fn as_nobody() -> Option<Command> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("note: not root; skipping a check as another user");
        return None;
    }
    let probe = Command::new("setpriv").arg("--version").output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("note: setpriv (util-linux) not found; skipping a check as another user");
        return None;
    }
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(super::edgehook_bin())
        .env_remove("EDGEHOOK_CONFIG")
        .stdin(Stdio::null());
    Some(cmd)
}

/// Run a prepared command (e.g. [`as_nobody`]) with `args`; (exit code, stdout, stderr).
pub fn run_command(mut cmd: Command, args: &[&str]) -> (i32, String, String) {
    let out = cmd.args(args).output().expect("running setpriv");
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
