//! The command line, defined once with clap; also the source of the man page and shell
//! completions: `build.rs` includes this file with `#[path]`, so it may use only clap and
//! std, never `crate::…`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// edgehook: a durable local webhook relay.
///
/// Local apps hand events to a Unix socket; edgehook stores each one in SQLite before
/// answering, then delivers it as a signed webhook to every subscribed endpoint.
#[derive(Debug, Parser)]
#[command(name = "edgehook", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Config file [default: /etc/edgehook/edgehook.toml]
    #[arg(long, short = 'c', env = "EDGEHOOK_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (what the systemd unit runs).
    Run(ConfigArg),
    /// One-command tour: the real daemon, socket, queue and TLS, with a built-in HTTPS receiver.
    Demo(DemoArgs),
    /// Validate the config and print a summary with secrets redacted (like nginx -t).
    CheckConfig(ConfigArg),
    /// Send one event to a running daemon through its socket.
    Send(SendArgs),
    /// Version, uptime, config and reload state, queue size, and every endpoint's state.
    Status(ReadArgs),
    /// Table of endpoints: name, url, state, pending, dead, oldest pending age.
    Endpoints(ReadArgs),
    /// Dead letters: deliveries given up on (permanent status, max_attempts, max_age).
    Dead(DeadArgs),
    /// Probe offline endpoints now instead of at their next backoff (hook it to network-online).
    Wake(WakeArgs),
    /// Hold an endpoint's deliveries; events keep queueing for it until `resume`.
    Pause(EndpointArg),
    /// Release a paused (or gone) endpoint; its backlog drains.
    Resume(EndpointArg),
    /// Reload the config file; print the result, or the validation error (exit 1).
    Reload(AdminArgs),
    /// Print the Prometheus text exposition.
    Metrics(AdminArgs),
    /// Delete the backlog (pending and dead deliveries) of an endpoint removed from the config.
    Purge(PurgeArgs),
    /// Live full-screen view: endpoint states, rates, latency; keys to pause/resume/wake.
    Top(AdminArgs),
    /// Air-gapped site: write the pending deliveries to an encrypted bundle file (they stay
    /// queued, not sent, until a receipt for them is applied).
    Export(ExportArgs),
    /// Connected site: queue the deliveries of a bundle here and write a receipt for it.
    Import(ImportArgs),
    /// Air-gapped site: receipts from the connected site.
    Receipt(ReceiptArgs),
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Tour air-gapped transfer instead: two relays, export, import, receipt
    #[arg(long)]
    pub air_gap: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The bundle file to write (e.g. on a USB stick); replaced atomically when complete
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: PathBuf,
    /// Only this endpoint's deliveries (repeatable) [default: every configured endpoint]
    #[arg(long = "endpoint", short = 'e', value_name = "NAME")]
    pub endpoints: Vec<String>,
    /// Print a JSON summary instead of a sentence
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The bundle file from the air-gapped site
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Where to write the receipt [default: FILE with .receipt appended]
    #[arg(long, value_name = "FILE")]
    pub receipt_out: Option<PathBuf>,
    /// Print a JSON summary instead of a sentence
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Debug, Args)]
pub struct ReceiptArgs {
    #[command(subcommand)]
    pub action: ReceiptAction,
}

#[derive(Debug, Subcommand)]
pub enum ReceiptAction {
    /// Remove exactly the exported deliveries a receipt names (the connected site has them).
    Apply(ReceiptApplyArgs),
}

#[derive(Debug, Args)]
pub struct ReceiptApplyArgs {
    /// The receipt file `edgehook import` wrote at the connected site
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Print a JSON summary instead of a sentence
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// How to reach the daemon's admin socket.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Admin socket [default: daemon.admin_socket from the config, else /run/edgehook/admin.sock]
    #[arg(long, value_name = "PATH")]
    pub admin_socket: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Print the daemon's JSON instead of a table
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Debug, Args)]
pub struct DeadArgs {
    #[command(subcommand)]
    pub action: DeadAction,
}

#[derive(Debug, Subcommand)]
pub enum DeadAction {
    /// List dead letters with their reason, last status and last error.
    List(DeadListArgs),
    /// Queue dead letters again, as new (attempt count reset).
    Retry(DeadSelect),
    /// Delete dead letters for good (asks first on a terminal; else needs --yes).
    Purge(DeadPurgeArgs),
}

/// Which dead letters: all, one endpoint's, and/or some event ids.
#[derive(Debug, Args)]
pub struct DeadSelect {
    /// Only this endpoint's dead letters
    #[arg(long, short = 'e', value_name = "ENDPOINT")]
    pub endpoint: Option<String>,
    /// Only these event ids [default: all]
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Debug, Args)]
pub struct DeadListArgs {
    #[command(flatten)]
    pub select: DeadSelect,
    /// Show at most N dead letters (oldest first)
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: usize,
    /// Print the daemon's JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DeadPurgeArgs {
    #[command(flatten)]
    pub select: DeadSelect,
    /// Do not ask for confirmation (required when stdin is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// The endpoint whose backlog to delete (one no longer in the config)
    #[arg(long, short = 'e', value_name = "ENDPOINT")]
    pub endpoint: String,
    /// Do not ask for confirmation (required when stdin is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Purge even though the endpoint is still in the config
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Debug, Args)]
pub struct WakeArgs {
    /// Only this endpoint [default: every endpoint]
    #[arg(value_name = "ENDPOINT")]
    pub endpoint: Option<String>,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Debug, Args)]
pub struct EndpointArg {
    /// The endpoint's name, as in the config
    #[arg(value_name = "ENDPOINT")]
    pub endpoint: String,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Event type, e.g. UploadProduct or messages.created
    #[arg(long = "type", short = 't', value_name = "TYPE")]
    pub event_type: String,
    /// The event's data: JSON text, @FILE to read a file, or - for stdin
    #[arg(long, short = 'd', value_name = "JSON|@FILE|-", default_value = "{}")]
    pub data: String,
    /// Idempotency key; a repeat within queue.dedupe_window is not queued again
    #[arg(long)]
    pub id: Option<String>,
    /// Ingest socket [default: ingest.socket from the config, else /run/edgehook/edgehook.sock]
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print the daemon's JSON reply instead of a sentence
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub config: ConfigArg,
}
