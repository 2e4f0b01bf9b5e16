//! Test harness: [`TestDaemon`] runs the real binary in a temp dir; [`client`] speaks
//! HTTP/1.1 and the line protocol over its Unix sockets; [`cli`] runs one-shot commands;
//! [`delivery`] has the HTTPS upstream and queue polling for delivery tests; [`faults`]
//! makes that upstream misbehave on cue; [`tmux`] is a real terminal to read; [`tools`] finds the outside tools some tests need
//! (and fails under CI when one is missing).

pub mod cli;
pub mod client;
pub mod clock;
pub mod daemon;
pub mod delivery;
pub mod faults;
pub mod tmux;
pub mod tools;

pub use cli::run_cli;
pub use client::Reply;
pub use daemon::{Builder, TestDaemon};

/// The `edgehook` binary under test: `$EDGEHOOK_TEST_BIN` when set (e.g. an arm64 release
/// build run through qemu-user, `packaging/cross.sh`), else the one cargo built with the
/// tests.
pub fn edgehook_bin() -> std::ffi::OsString {
    std::env::var_os("EDGEHOOK_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_edgehook").into())
}

/// Two endpoints with different filters. Their URLs point at the discard port, so once
/// delivery exists the deliveries just stay pending (retrying); tests only count rows
/// that exist right after the answer.
///
/// - `spark` wants `Upload*` and `Test.*`
/// - `flows` wants `flows/*` and `Test.*`
pub const ENDPOINTS: &str = r#"
[[endpoint]]
name = "spark"
url = "https://127.0.0.1:9/spark"
events = ["Upload*", "Test.*"]

[[endpoint]]
name = "flows"
url = "https://127.0.0.1:9/flows"
events = ["flows/*", "Test.*"]
"#;

/// One event as JSON text, with an explicit id.
pub fn event(event_type: &str, id: &str, data: &str) -> String {
    format!(r#"{{"type":"{event_type}","id":"{id}","data":{data}}}"#)
}
