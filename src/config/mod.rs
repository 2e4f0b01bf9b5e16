//! The validated configuration: the only config type the rest of the daemon sees.
//!
//! Loading is two-stage (ripgrep's Low/HiArgs, vector's config): `raw.rs` holds serde
//! structs that mirror the TOML file exactly (`deny_unknown_fields`, spans kept), and
//! `validate/` turns them into the types below, collecting *every* problem as
//! `file:line:column: message` before giving up. Secrets are resolved at load time
//! (`secret.rs`), sizes and durations parsed by `units.rs`, event filters live in
//! `filter.rs`. Startup is simply the first load; reload (a later issue) takes the same path.

mod filter;
mod raw;
pub mod restart;
mod secret;
pub mod socket;
pub mod summary;
pub(crate) mod units;
mod validate;
pub mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use filter::Filter;
pub use secret::{Secret, SecretSource};
pub use summary::summary;
pub use validate::{load, parse, ConfigError};

/// Default config path, overridden by `--config` or `EDGEHOOK_CONFIG`.
pub const DEFAULT_PATH: &str = "/etc/edgehook/edgehook.toml";

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was loaded from (used in messages and for reload).
    pub path: PathBuf,
    pub daemon: DaemonConfig,
    pub ingest: IngestConfig,
    pub queue: QueueConfig,
    pub transfer: TransferConfig,
    pub endpoints: Vec<Arc<EndpointConfig>>,
    /// Files whose change should trigger a reload: `file:` secrets, CA and cert files.
    pub watched_files: Vec<PathBuf>,
    /// Non-fatal findings (plain HTTP allowed, world-readable secret file…), logged at every load.
    pub warnings: Vec<String>,
}

impl Config {
    pub fn endpoint(&self, name: &str) -> Option<&Arc<EndpointConfig>> {
        self.endpoints.iter().find(|e| &*e.name == name)
    }

    /// The queue database file inside the state directory.
    pub fn queue_db(&self) -> PathBuf {
        self.daemon.state_dir.join("queue.db")
    }
}

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub state_dir: PathBuf,
    pub admin_socket: PathBuf,
    pub admin_group: Option<String>,
    /// Group given read access to the state dir (0750) and queue files (0640); SPEC §12.
    pub state_group: Option<String>,
    pub shutdown_timeout: Duration,
    pub log_format: LogFormat,
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Auto,
    Journald,
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub socket: PathBuf,
    pub lines_socket: Option<PathBuf>,
    /// Permission bits for both sockets, e.g. `0o660`.
    pub socket_mode: u32,
    pub socket_group: Option<String>,
    /// Empty: anyone who can open the socket.
    pub allowed_uids: Vec<u32>,
    pub allowed_gids: Vec<u32>,
    pub max_event_bytes: usize,
    pub max_batch_bytes: usize,
    pub max_connections: usize,
}

impl IngestConfig {
    /// Whether a peer with these credentials may submit events.
    pub fn allows(&self, uid: u32, gid: u32) -> bool {
        if self.allowed_uids.is_empty() && self.allowed_gids.is_empty() {
            return true;
        }
        self.allowed_uids.contains(&uid) || self.allowed_gids.contains(&gid)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`: a 202 survives power loss.
    Full,
    /// `synchronous=NORMAL`: survives a process crash, not a power loss.
    Normal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    Reject,
    DropOldest,
}

#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub durability: Durability,
    pub max_bytes: u64,
    pub when_full: WhenFull,
    pub max_age: Option<Duration>,
    pub dedupe_window: Duration,
    pub keep_delivered: Duration,
    /// Free space kept for bookkeeping: ingest refuses below it (SPEC §12).
    pub reserve: u64,
}

/// `[transfer]`: air-gapped transfer (`edgehook export`/`import`/`receipt apply`).
#[derive(Debug, Clone, Default)]
pub struct TransferConfig {
    /// The key both sites share (validated: 32 bytes, base64); `None` turns transfer off.
    pub key: Option<Secret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    Envelope,
    Data,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordering {
    None,
    Fifo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compress {
    Gzip,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryConfig {
    pub initial: Duration,
    pub multiplier: f64,
    pub max: Duration,
    pub jitter: f64,
}

/// `rate_limit = "50/s"`: `count` requests per `per`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub count: u32,
    pub per: Duration,
}

#[derive(Debug, Clone)]
pub enum ApiKeyPlacement {
    Header(String),
    Query(String),
}

#[derive(Debug, Clone)]
pub enum AuthConfig {
    ApiKey {
        placement: ApiKeyPlacement,
        value: Secret,
    },
    Bearer {
        token: Secret,
    },
    Basic {
        username: String,
        password: Secret,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningScheme {
    StandardWebhooks,
    HmacSha256,
    HmacSha1,
}

#[derive(Debug, Clone)]
pub struct SigningConfig {
    pub scheme: SigningScheme,
    /// At least one; several for rotation (standard-webhooks signs with each).
    pub secrets: Vec<Secret>,
    /// Header name (hmac-*: defaults applied by validation; standard-webhooks: `webhook-signature`).
    pub header: String,
    /// hmac-sha256 value prefix (default `sha256=`); empty otherwise.
    pub prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roots {
    System,
    CaFile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub roots: Roots,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    /// PEM text of the client key (resolved from a path or secret reference).
    pub client_key: Option<Secret>,
    pub min_version: TlsVersion,
    pub server_name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub name: Arc<str>,
    pub url: hyper::Uri,
    pub filter: Filter,
    pub body: BodyMode,
    /// Extra request headers, validated as HTTP header names/values.
    pub headers: Vec<(String, String)>,
    pub ordering: Ordering,
    /// JSON pointer into `data`; per-key FIFO.
    pub order_key: Option<String>,
    /// Most attempts in flight: the fixed `concurrency`, or `max_concurrency` when adaptive.
    pub concurrency: usize,
    /// `concurrency = "adaptive"`: the limit is learned below `concurrency`.
    pub adaptive: bool,
    /// Name resolution + TCP connect + TLS handshake (SPEC §12).
    pub connect_timeout: Duration,
    /// The exchange once connected: request written, answer read.
    pub timeout: Duration,
    pub rate_limit: Option<RateLimit>,
    pub permanent_status: Vec<u16>,
    /// `None`: unlimited.
    pub max_attempts: Option<u32>,
    pub compress: Option<Compress>,
    pub proxy: Option<hyper::Uri>,
    pub allow_plain_http: bool,
    pub retry: RetryConfig,
    pub auth: Option<AuthConfig>,
    pub signing: Option<SigningConfig>,
    pub tls: TlsConfig,
}

/// Resolve the config path from `--config`, then the default, made absolute against the
/// current directory: the file watch and every reload use it, and relative paths inside
/// the file are resolved against its directory (a bare `edgehook.toml` has none).
pub fn resolve_path(flag: Option<&Path>) -> PathBuf {
    let path = flag
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
    std::path::absolute(&path).unwrap_or(path)
}

/// The live configuration as every task sees it. The daemon owns the one
/// [`Publisher`]: it publishes the config it starts with and each one a reload accepts,
/// whole; tasks hold a `Live` and read the latest with [`Live::load`] when they need it.
/// Nothing polls: settings that need more than a fresh read (sockets, workers) are applied
/// by the daemon's reload itself.
#[derive(Clone)]
pub struct Live(tokio::sync::watch::Receiver<Arc<Config>>);

/// The daemon's side of [`Live`].
pub struct Publisher(tokio::sync::watch::Sender<Arc<Config>>);

impl Live {
    /// A live config starting at `config`, and its publisher.
    pub fn new(config: Config) -> (Publisher, Live) {
        let (tx, rx) = tokio::sync::watch::channel(Arc::new(config));
        (Publisher(tx), Live(rx))
    }

    /// The current config: a cheap snapshot that stays whole while a reload swaps it.
    pub fn load(&self) -> Arc<Config> {
        self.0.borrow().clone()
    }

    /// Wait for the next published config; `false` once the publisher is gone. For a
    /// task that sleeps until a deadline the config sets (the maintenance task).
    pub async fn changed(&mut self) -> bool {
        self.0.changed().await.is_ok()
    }
}

impl Publisher {
    /// Make `config` the one every [`Live`] reads from now on.
    pub fn publish(&self, config: Config) {
        self.0.send_replace(Arc::new(config));
    }

    /// The config published last.
    pub fn current(&self) -> Arc<Config> {
        self.0.borrow().clone()
    }
}
