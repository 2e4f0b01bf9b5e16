//! The command line, defined once with clap; also the source of the man page and shell
//! completions.

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
    Demo,
    /// Validate the config and print a summary with secrets redacted (like nginx -t).
    CheckConfig(ConfigArg),
    /// Send one event to a running daemon through its socket.
    Send(SendArgs),
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
