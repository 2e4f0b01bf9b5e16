//! The top-level tables `[daemon]`, `[ingest]` and `[queue]`, and the check that the
//! sockets they name are different files.

use std::net::SocketAddr;

use toml::Spanned;

use super::{Ctx, S};
use crate::config::raw::{defaults, RawDaemon, RawIngest, RawQueue};
use crate::config::units;
use crate::config::{DaemonConfig, Durability, IngestConfig, LogFormat, QueueConfig, WhenFull};

impl Ctx<'_> {
    pub(super) fn daemon(&mut self, raw: RawDaemon) -> DaemonConfig {
        DaemonConfig {
            state_dir: self.path_or(&raw.state_dir, "daemon.state_dir", defaults::STATE_DIR),
            admin_socket: self.socket_path(
                &raw.admin_socket,
                "daemon.admin_socket",
                defaults::ADMIN_SOCKET,
            ),
            admin_group: non_empty(&raw.admin_group),
            state_group: non_empty(&raw.state_group),
            shutdown_timeout: self.duration(
                &raw.shutdown_timeout,
                "daemon.shutdown_timeout",
                defaults::SHUTDOWN_TIMEOUT,
            ),
            log_format: self.choice(
                &raw.log_format,
                "daemon.log_format",
                &[
                    ("auto", LogFormat::Auto),
                    ("journald", LogFormat::Journald),
                    ("text", LogFormat::Text),
                    ("json", LogFormat::Json),
                ],
                LogFormat::Auto,
            ),
            metrics_listen: match &raw.metrics_listen {
                Some(v) if !v.get_ref().is_empty() => match v.get_ref().parse::<SocketAddr>() {
                    Ok(addr) => Some(addr),
                    Err(_) => {
                        self.error(
                            v.span(),
                            format!(
                                "daemon.metrics_listen: {:?} is not an address:port such as \
                                 \"127.0.0.1:9464\" or \"[::1]:9464\" (use \"\" to turn metrics off)",
                                v.get_ref()
                            ),
                        );
                        None
                    }
                },
                _ => None,
            },
        }
    }

    pub(super) fn ingest(&mut self, raw: RawIngest) -> IngestConfig {
        let socket_mode = match &raw.socket_mode {
            Some(v) => units::mode_from_toml(v.get_ref()).unwrap_or_else(|err| {
                self.error(v.span(), format!("ingest.socket_mode: {err}"));
                defaults::SOCKET_MODE
            }),
            None => defaults::SOCKET_MODE,
        };
        let max_event_bytes = self.size(
            &raw.max_event_bytes,
            "ingest.max_event_bytes",
            defaults::MAX_EVENT_BYTES,
        );
        let max_batch_bytes = self.size(
            &raw.max_batch_bytes,
            "ingest.max_batch_bytes",
            defaults::MAX_BATCH_BYTES,
        );
        if max_event_bytes > max_batch_bytes {
            let span = raw
                .max_event_bytes
                .as_ref()
                .or(raw.max_batch_bytes.as_ref())
                .map(Spanned::span)
                .unwrap_or(0..0);
            self.error(
                span,
                format!(
                    "ingest.max_event_bytes ({}) is larger than ingest.max_batch_bytes ({}): \
                     a batch must be able to hold one event",
                    units::format_size(max_event_bytes),
                    units::format_size(max_batch_bytes)
                ),
            );
        }
        IngestConfig {
            socket: self.socket_path(&raw.socket, "ingest.socket", defaults::SOCKET),
            lines_socket: match &raw.lines_socket {
                Some(v) if !v.get_ref().is_empty() => {
                    Some(self.socket_path(&raw.lines_socket, "ingest.lines_socket", ""))
                }
                _ => None,
            },
            socket_mode,
            socket_group: non_empty(&raw.socket_group),
            allowed_uids: self.ids(&raw.allowed_uids, "ingest.allowed_uids"),
            allowed_gids: self.ids(&raw.allowed_gids, "ingest.allowed_gids"),
            max_event_bytes: self.usize_size(max_event_bytes, &raw.max_event_bytes),
            max_batch_bytes: self.usize_size(max_batch_bytes, &raw.max_batch_bytes),
            max_connections: self.count(
                &raw.max_connections,
                "ingest.max_connections",
                defaults::MAX_CONNECTIONS,
            ),
        }
    }

    pub(super) fn queue(&mut self, raw: RawQueue) -> QueueConfig {
        QueueConfig {
            durability: self.choice(
                &raw.durability,
                "queue.durability",
                &[("full", Durability::Full), ("normal", Durability::Normal)],
                Durability::Full,
            ),
            max_bytes: self.size(&raw.max_bytes, "queue.max_bytes", defaults::MAX_BYTES),
            when_full: self.choice(
                &raw.when_full,
                "queue.when_full",
                &[
                    ("reject", WhenFull::Reject),
                    ("drop_oldest", WhenFull::DropOldest),
                ],
                WhenFull::Reject,
            ),
            max_age: match &raw.max_age {
                Some(v) if !v.get_ref().is_empty() => {
                    let age = self.duration(&raw.max_age, "queue.max_age", "1s");
                    if age.is_zero() {
                        self.error(
                            v.span(),
                            "queue.max_age: 0 would kill every delivery at once; use \"\" for no limit",
                        );
                    }
                    Some(age)
                }
                _ => None,
            },
            dedupe_window: self.duration(
                &raw.dedupe_window,
                "queue.dedupe_window",
                defaults::DEDUPE_WINDOW,
            ),
            keep_delivered: self.duration(
                &raw.keep_delivered,
                "queue.keep_delivered",
                defaults::KEEP_DELIVERED,
            ),
            reserve: self.size_or_zero(&raw.reserve, "queue.reserve", defaults::RESERVE),
        }
    }

    /// The three sockets must be different files.
    pub(super) fn distinct_sockets(&mut self, daemon: &DaemonConfig, ingest: &IngestConfig) {
        let mut sockets = vec![
            ("daemon.admin_socket", &daemon.admin_socket),
            ("ingest.socket", &ingest.socket),
        ];
        if let Some(lines) = &ingest.lines_socket {
            sockets.push(("ingest.lines_socket", lines));
        }
        for (i, (a, path_a)) in sockets.iter().enumerate() {
            for (b, path_b) in &sockets[i + 1..] {
                if path_a == path_b {
                    let message = format!(
                        "{}: {a} and {b} are the same path {}: each socket needs its own",
                        self.path.display(),
                        path_a.display()
                    );
                    self.errors.push((usize::MAX, message));
                }
            }
        }
    }
}

fn non_empty(value: &S<String>) -> Option<String> {
    value
        .as_ref()
        .map(|v| v.get_ref().clone())
        .filter(|v| !v.is_empty())
}
