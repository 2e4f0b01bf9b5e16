//! Running the binary for one-shot commands (`check-config`, `send`, …).

use std::io::Write;
use std::process::{Command, Stdio};

/// Run `edgehook ARGS…` to completion, feeding `stdin`; returns (exit code, stdout, stderr).
///
/// The environment is cleaned of the variables edgehook reads (`EDGEHOOK_CONFIG`,
/// `NOTIFY_SOCKET`) so the caller's arguments alone decide what it does.
///
/// # Panics
/// If the binary cannot be started, or is killed by a signal.
pub fn run_cli(args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgehook"))
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
