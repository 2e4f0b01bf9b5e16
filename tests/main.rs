//! edgehook's integration tests: one crate (ripgrep's layout), so the binary is built once
//! and the helpers in `util` are compiled once.
//!
//! Every test runs the real `edgehook` binary against its own temp dir: its own config,
//! sockets and queue database. Readiness is the `READY=1` datagram on a `NOTIFY_SOCKET`
//! the test binds, never a sleep.

// TestDaemon, the Unix-socket HTTP and line clients, and the one-shot CLI runner.
mod util;

// Operator commands over the admin socket (status, dead letters, wake, pause, reload,
// metrics), who may use it, and the generated man page and completions.
mod admin;
// Wall-clock steps (libfaketime), running and across restarts: schedules and ages follow
// elapsed time; an unset clock is reported.
mod clock_jumps;
// `check-config` and `run` against valid and invalid config files.
mod config_cli;
// check-config = run's checks: groups, directories, certificates, secrets, same messages.
mod preflight;
// Private queue files: modes under umask 022, tightening at start, daemon.state_group.
mod files;
// SIGKILL under concurrent load; every 202'd event is in the queue exactly once.
mod crash;
// Delivery across SIGKILL: every accepted event arrives, only in-flight ones twice.
mod deliver_crash;
// Outages: head-only probing on the backoff, free offline time, FIFO across an outage.
mod deliver_offline;
// Connect-level stalls (hung TLS, full backlog, silent DNS) are outages, not attempts.
mod deliver_outage;
// Retry rules: 5xx retried with the same id, Retry-After, permanent 400, 410 Gone held.
mod deliver_retry;
// CONNECT proxy (configured and HTTPS_PROXY/NO_PROXY), rate_limit, order_key under failure.
mod deliver_routing;
// Signature schemes recomputed independently (ring, Python standardwebhooks); gzip.
mod deliver_signing;
// TLS options (mTLS, roots, min_version), plain http, redirects, check-config positions.
mod deliver_tls;
// The wire: body bytes, headers, auth, signatures; delivered events leave the queue.
mod deliver_wire;
// Many concurrent clients share fsyncs (counted with strace).
mod group_commit;
// `POST /v1/events` (single, NDJSON batch, duplicates), health, every error status.
mod ingest_http;
// The line socket: pipelining, per-line errors, over-long lines.
mod ingest_lines;
// Delivery outcome lines in a real journald's journal, filtered by STATUS=503.
mod journal;
// The process itself: signals and exit status.
mod lifecycle;
// A queue from an older schema opens, migrates and delivers its backlog.
mod schema_upgrade;
// The Python `standardwebhooks` reference library verifies a live delivery's signature.
mod interop;
// `edgehook send` with --data as text, @file and stdin.
mod send_cli;
// Long operator commands: dead retry/purge in batches with a bar on a terminal, the
// reload spinner, unchanged output when piped.
mod progress;
// `edgehook top` under tmux: a draining backlog on screen, keys, terminal restored.
mod top;
// Hot reload: file edits, rename-over, rotated secrets, SIGHUP, refusals, 20 under load.
mod reload;
// Socket files and peers: SO_PEERCRED rejection, stale socket, second instance.
mod sockets;
// As systemd drives it: passed sockets, watchdog pings (and a wedged writer), log formats.
mod systemd;
// Air-gapped transfer: export, import, receipts; refusals; export under load.
mod transfer;
// Failure handling: queue limits, disk full, corrupt files, hostile clients, power loss.
mod failures;
