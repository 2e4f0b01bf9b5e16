//! edgehook's integration tests: one crate (ripgrep's layout), so the binary is built once
//! and the helpers in `util` are compiled once.
//!
//! Every test runs the real `edgehook` binary against its own temp dir: its own config,
//! sockets and queue database. Readiness is the `READY=1` datagram on a `NOTIFY_SOCKET`
//! the test binds, never a sleep.

// TestDaemon, the Unix-socket HTTP and line clients, and the one-shot CLI runner.
mod util;

// `check-config` and `run` against valid and invalid config files.
mod config_cli;
// SIGKILL under concurrent load; every 202'd event is in the queue exactly once.
mod crash;
// Many concurrent clients share fsyncs (counted with strace).
mod group_commit;
// `POST /v1/events` (single, NDJSON batch, duplicates), health, every error status.
mod ingest_http;
// The line socket: pipelining, per-line errors, over-long lines.
mod ingest_lines;
// The process itself: signals and exit status.
mod lifecycle;
// `edgehook send` with --data as text, @file and stdin.
mod send_cli;
// Socket files and peers: SO_PEERCRED rejection, stale socket, second instance.
mod sockets;
