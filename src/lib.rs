//! edgehook: a durable local webhook relay.
//!
//! Local apps hand events to a Unix socket; edgehook commits each to SQLite before it
//! answers, then POSTs it as a signed webhook to every endpoint that subscribes to its
//! type, retrying through outages. The tasks, channels, reload path and shutdown order
//! are on one page in `docs/ARCHITECTURE.md`; read it first.
//!
//! # Layout
//! Data flows one way, ingest → store → deliver; only [`daemon`] knows every module.
//! - [`cli`]: the clap command line; `main.rs` is thin glue around it.
//! - [`config`]: TOML → validated [`config::Config`] (every error as `file:line:col`),
//!   the live config tasks read ([`config::Live`]) and the reload triggers.
//! - [`preflight`]: what `run` checks before binding, shared with `check-config`.
//! - [`event`]: the validated [`event::Event`], the one type crossing ingest → store → deliver.
//! - [`ingest`]: HTTP and line protocols on Unix sockets; parse, route, store.
//! - [`store`]: the SQLite queue; one writer thread with group commit.
//! - [`deliver`]: one worker per endpoint (a sans-IO scheduler and its I/O loop), retry
//!   rules, the wire format, the TLS client and proxy; [`sign`]: webhook signatures.
//! - [`daemon`]: spawns every long-lived task, owns reload (config, sockets, workers) and
//!   the shutdown order; [`runtime`]: what it shares with the admin API.
//! - [`admin`]: the admin socket API and the operator commands that use it (`status`,
//!   `dead`, `pause`, `reload`…); [`metrics`]: the Prometheus exposition it serves;
//!   [`reply`]: the JSON replies and errors ingest and admin share;
//!   [`top`]: the live view over the same API.
//! - [`transfer`]: air-gapped sites: `export`, `import`, `receipt apply` over the admin
//!   socket, bundles and receipts sealed with the `[transfer] key`.
//! - [`send`], [`uds_client`]: the `send` command and its socket client;
//!   [`progress`]: the bars and spinners long CLI operations show on a terminal.
//! - [`systemd`], [`shutdown`], [`logging`]: process plumbing.
//! - [`demo`]: `edgehook demo`'s throwaway PKI, HTTPS receiver and tour.
//!
//! # Tasks and channels
//! ```text
//! client ──UDS──▶ ingest::http / ingest::lines ──(parse, route)──▶ Store::insert
//!                                                          │ mpsc (commands)
//!                                                          ▼
//!                                   store writer thread: group commit, fsync, reply
//!                                                          │ watch "inserted"
//!                                                          ▼
//!                    deliver::Worker per endpoint ──HTTPS──▶ upstream (outcome → writer)
//! daemon: config::Publisher ──watch──▶ every task's config::Live; Reload ◀── file, SIGHUP, admin
//! ```
#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod deliver;
#[cfg(feature = "demo")]
pub mod demo;
pub mod event;
pub mod ingest;
pub mod logging;
pub mod metrics;
pub mod preflight;
pub mod progress;
pub mod reply;
pub mod runtime;
pub mod send;
pub mod shutdown;
pub mod sign;
pub mod store;
pub mod systemd;
pub mod top;
pub mod transfer;
pub mod uds_client;
