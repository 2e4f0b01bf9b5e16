//! edgehook: a durable local webhook relay.
//!
//! Local apps hand events to a Unix socket; edgehook commits each to SQLite before it
//! answers, then (delivery, next) POSTs it as a signed webhook to every endpoint that
//! subscribes to its type.
//!
//! # Layout
//! - [`cli`]: the clap command line; `main.rs` is thin glue around it.
//! - [`config`]: TOML → validated [`config::Config`] (every error as `file:line:col`).
//! - [`event`]: the validated [`event::Event`], the one type crossing ingest → store → deliver.
//! - [`ingest`]: HTTP and line protocols on Unix sockets; parse, route, store.
//! - [`store`]: the SQLite queue; one writer thread with group commit.
//! - [`daemon`]: spawns every long-lived task, owns reload (config, sockets, workers) and
//!   the shutdown order; [`runtime`]: what it shares with the admin API.
//! - [`systemd`], [`shutdown`], [`logging`]: process plumbing; [`preflight`]: what `run`
//!   checks before binding, shared with `check-config`.
//! - [`send`], [`uds_client`]: the `send` command and its socket client.
//! - [`admin`]: the admin socket API and the operator commands that use it (`status`,
//!   `dead`, `pause`, `reload`…); [`metrics`]: the Prometheus exposition it serves.
//! - [`transfer`]: air-gapped sites: `export`, `import`, `receipt apply` over the admin
//!   socket, bundles and receipts sealed with the `[transfer] key`.
//!
//! # Tasks and channels
//! ```text
//! client ──UDS──▶ ingest::http / ingest::lines ──(parse, route)──▶ Store::insert
//!                                                          │ mpsc (commands)
//!                                                          ▼
//!                                   store writer thread: group commit, fsync, reply
//! ```
#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod deliver;
pub mod demo;
pub mod event;
pub mod ingest;
pub mod logging;
pub mod metrics;
pub mod preflight;
pub mod reply;
pub mod runtime;
pub mod send;
pub mod shutdown;
pub mod sign;
pub mod store;
pub mod systemd;
pub mod transfer;
pub mod uds_client;
