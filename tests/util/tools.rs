//! Tools a few tests need besides the Rust toolchain: `strace`, the Python reference
//! libraries (`standardwebhooks`, `prometheus_client`), mounting a tmpfs (root).
//!
//! Where one is missing (or a limit is too low) the test cannot check what it is for. On
//! a developer's machine it then says so on stderr and passes; under CI (`CI` set: `.ci/run` sets it after
//! installing every tool) it fails, so a green CI run means every check really ran.

use std::path::PathBuf;
use std::process::Command;

/// Report that `what` cannot be checked (fully) because `why`.
///
/// # Panics
/// Under CI (`CI` set), always: a missing tool there is a broken CI machine.
pub fn missing(what: &str, why: &str) {
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    assert!(!ci, "CI is set but {why}, so {what} cannot be checked");
    eprintln!("NOT CHECKED: {what}: {why} (under CI this fails)");
}

/// `strace` on `PATH`, or `None` after [`missing`] for `what`.
pub fn strace(what: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("strace"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        missing(what, "strace is not installed (apt-get install strace)");
    }
    found
}

/// Whether `python3` can import `module`; if not, [`missing`] for `what`.
pub fn python_module(module: &str, what: &str) -> bool {
    let have = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        missing(
            what,
            &format!("python3 cannot import {module} (python3 -m pip install {module})"),
        );
    }
    have
}
