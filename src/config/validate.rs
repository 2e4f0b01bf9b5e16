//! From TOML text to a validated [`Config`]: the second stage of loading.
//!
//! [`parse`] deserializes into the `raw` structs (a TOML syntax error or an unknown key
//! stops there, reported at its span), then checks every value and *collects* every
//! semantic problem as `file:line:column: message` before failing, so one run of
//! `edgehook check-config` shows them all. Apart from resolving secrets and reading CA and
//! certificate files it is pure: no sockets are bound and no directories created.
//!
//! Relative paths (`state_dir`, the sockets, `ca_file`, `client_cert`, `client_key` and
//! `file:` secrets) are resolved against the directory of the config file, the way nginx
//! resolves includes, so a config and its key files can move together.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hyper::header::{HeaderName, HeaderValue};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use toml::Spanned;

use super::filter::{check_glob, check_pointer, MATCH_EXAMPLE, ORDER_KEY_EXAMPLE};
use super::raw::{
    defaults, secret_text, RawAuth, RawConfig, RawDaemon, RawEndpoint, RawIngest, RawQueue,
    RawRetry, RawSigning, RawTls,
};
use super::secret::{Bare, Resolver, Secret};
use super::summary::redact_userinfo;
use super::units;
use super::{
    ApiKeyPlacement, AuthConfig, BodyMode, Compress, Config, DaemonConfig, Durability,
    EndpointConfig, Filter, IngestConfig, LogFormat, Ordering, QueueConfig, RetryConfig, Roots,
    SigningConfig, SigningScheme, TlsConfig, TlsVersion, WhenFull,
};

/// `sun_path` is 108 bytes on Linux, including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// Headers edgehook writes itself on every delivery (SPEC §4); `headers` may not set them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "content-type",
    "content-encoding",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "edgehook-event-type",
    "edgehook-attempt",
];

/// The config could not be loaded: every problem found, one `path:line:column: message` each.
#[derive(Debug, thiserror::Error)]
#[error("{}", .messages.join("\n"))]
pub struct ConfigError {
    path: PathBuf,
    messages: Vec<String>,
}

impl ConfigError {
    /// The config file the problems are in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Each problem, formatted `path:line:column: message` (or `path: message` when there
    /// is no position, e.g. the file cannot be read).
    pub fn messages(&self) -> &[String] {
        &self.messages
    }
}

/// Read and validate the config file at `path`.
///
/// Besides [`parse`]'s checks, warns when the file holds literal secrets and is readable by
/// others.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        let hint = match err.kind() {
            std::io::ErrorKind::NotFound => "; pass --config PATH or set EDGEHOOK_CONFIG",
            _ => "",
        };
        ConfigError {
            path: path.to_path_buf(),
            messages: vec![format!(
                "{}: cannot read config file: {err}{hint}",
                path.display()
            )],
        }
    })?;
    let (mut config, literal_secrets) = parse_with(&text, path, &|name| std::env::var_os(name))?;
    if literal_secrets {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & 0o004 != 0 {
                config.warnings.push(format!(
                    "config file {} holds literal secrets and is readable by others (mode {:04o}); \
                     chmod 0640 it, or move the secrets to file: or credential: references",
                    path.display(),
                    mode & 0o7777
                ));
            }
        }
    }
    Ok(config)
}

/// Validate config `text` that was read from `path`: `path` names the file in messages, and
/// relative paths in the config (state_dir, sockets, ca_file, client_cert, client_key,
/// `file:` secrets) are resolved against its directory. Resolves secrets from files and
/// the process environment; reads CA and certificate files to check them.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    parse_with(text, path, &|name| std::env::var_os(name)).map(|(config, _)| config)
}

/// [`parse`] with an injected environment; also says whether any secret was a literal.
fn parse_with(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<(Config, bool), ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|err| {
        let message = err.message().trim().replace('\n', ", ");
        let message = match err.span() {
            Some(span) => format!("{}: {message}", position(path, text, span.start)),
            None => format!("{}: {message}", path.display()),
        };
        ConfigError {
            path: path.to_path_buf(),
            messages: vec![message],
        }
    })?;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let base_dir = absolute.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut ctx = Ctx {
        text,
        path,
        base_dir: &base_dir,
        resolver: Resolver {
            base_dir: &base_dir,
            env,
        },
        errors: Vec::new(),
        warnings: Vec::new(),
        watched: Vec::new(),
        literal_secrets: false,
    };
    let config = ctx.config(raw);
    if !ctx.errors.is_empty() {
        ctx.errors.sort_by_key(|(offset, _)| *offset);
        return Err(ConfigError {
            path: path.to_path_buf(),
            messages: ctx.errors.into_iter().map(|(_, message)| message).collect(),
        });
    }
    Ok((config, ctx.literal_secrets))
}

/// `path:line:column` of a byte offset, 1-based, the column counted in characters.
fn position(path: &Path, text: &str, offset: usize) -> String {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("{}:{line}:{column}", path.display())
}

type S<T> = Option<Spanned<T>>;

/// The validation pass: collects errors, warnings and watched files as it goes. On an
/// error a check records it and carries on with a placeholder value, so later checks run.
struct Ctx<'a> {
    text: &'a str,
    path: &'a Path,
    base_dir: &'a Path,
    resolver: Resolver<'a>,
    /// `(offset, message)`: reported in file order, problems without a position last.
    errors: Vec<(usize, String)>,
    warnings: Vec<String>,
    watched: Vec<PathBuf>,
    literal_secrets: bool,
}

impl Ctx<'_> {
    fn error(&mut self, span: Range<usize>, message: impl fmt::Display) {
        let at = position(self.path, self.text, span.start);
        self.errors.push((span.start, format!("{at}: {message}")));
    }

    fn watch(&mut self, path: PathBuf) {
        if !self.watched.contains(&path) {
            self.watched.push(path);
        }
    }

    fn config(&mut self, raw: RawConfig) -> Config {
        let daemon = self.daemon(raw.daemon.unwrap_or_default());
        let ingest = self.ingest(raw.ingest.unwrap_or_default());
        let queue = self.queue(raw.queue.unwrap_or_default());
        self.distinct_sockets(&daemon, &ingest);

        let mut names: HashMap<String, usize> = HashMap::new();
        let mut endpoints = Vec::new();
        for (index, endpoint) in raw.endpoint.iter().enumerate() {
            if let Some(endpoint) = self.endpoint(index, endpoint, &mut names) {
                endpoints.push(Arc::new(endpoint));
            }
        }
        if raw.endpoint.is_empty() {
            self.warnings.push(
                "no [[endpoint]] configured: events will be answered with endpoints [] and not stored"
                    .to_owned(),
            );
        }
        Config {
            path: self.path.to_path_buf(),
            daemon,
            ingest,
            queue,
            endpoints,
            watched_files: std::mem::take(&mut self.watched),
            warnings: std::mem::take(&mut self.warnings),
        }
    }

    // ----- [daemon], [ingest], [queue] -----

    fn daemon(&mut self, raw: RawDaemon) -> DaemonConfig {
        DaemonConfig {
            state_dir: self.path_or(&raw.state_dir, "daemon.state_dir", defaults::STATE_DIR),
            admin_socket: self.socket_path(
                &raw.admin_socket,
                "daemon.admin_socket",
                defaults::ADMIN_SOCKET,
            ),
            admin_group: non_empty(&raw.admin_group),
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

    fn ingest(&mut self, raw: RawIngest) -> IngestConfig {
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

    fn queue(&mut self, raw: RawQueue) -> QueueConfig {
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
        }
    }

    /// The three sockets must be different files.
    fn distinct_sockets(&mut self, daemon: &DaemonConfig, ingest: &IngestConfig) {
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

    // ----- [[endpoint]] -----

    fn endpoint(
        &mut self,
        index: usize,
        spanned: &Spanned<RawEndpoint>,
        names: &mut HashMap<String, usize>,
    ) -> Option<EndpointConfig> {
        let raw = spanned.get_ref();
        let name = match &raw.name {
            None => {
                self.error(
                    spanned.span(),
                    format!(
                        "endpoint #{}: missing key `name` (a unique name of a-z, 0-9, _ and -)",
                        index + 1
                    ),
                );
                None
            }
            Some(v) => {
                let name = v.get_ref();
                if name.is_empty()
                    || !name.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    })
                {
                    self.error(
                        v.span(),
                        format!("endpoint name {name:?} must be non-empty and use only a-z, 0-9, _ and -"),
                    );
                    None
                } else if let Some(&first) = names.get(name) {
                    let line = position(self.path, self.text, first);
                    self.error(
                        v.span(),
                        format!("endpoint name {name:?} is already used at {line}: names must be unique"),
                    );
                    None
                } else {
                    names.insert(name.clone(), v.span().start);
                    Some(name.clone())
                }
            }
        };
        let label = match &name {
            Some(name) => format!("endpoint {name}"),
            None => format!("endpoint #{}", index + 1),
        };
        let key = |key: &str| format!("{label}: {key}");

        let allow_plain_http = raw.allow_plain_http.unwrap_or(false);
        let url = match &raw.url {
            None => {
                self.error(spanned.span(), format!("{label}: missing key `url`"));
                None
            }
            Some(v) => self.endpoint_url(v, &label, allow_plain_http),
        };

        let filter = self.filter(raw, &label);
        let ordering = self.choice(
            &raw.ordering,
            &key("ordering"),
            &[("none", Ordering::None), ("fifo", Ordering::Fifo)],
            Ordering::None,
        );
        let order_key = match &raw.order_key {
            Some(v) if !v.get_ref().is_empty() => {
                if let Err(err) = check_pointer(v.get_ref(), ORDER_KEY_EXAMPLE) {
                    self.error(
                        v.span(),
                        format!("{}: {err} (it points into data, not the whole event)", key("order_key")),
                    );
                }
                if ordering == Ordering::Fifo {
                    self.error(
                        v.span(),
                        format!(
                            "{}: cannot be combined with ordering = \"fifo\", which already keeps \
                             the whole endpoint in order; remove one of them",
                            key("order_key")
                        ),
                    );
                }
                Some(v.get_ref().clone())
            }
            _ => None,
        };
        let timeout = self.duration(&raw.timeout, &key("timeout"), defaults::TIMEOUT);
        if let (Some(v), true) = (&raw.timeout, timeout.is_zero()) {
            self.error(v.span(), format!("{}: must be more than 0", key("timeout")));
        }
        let rate_limit = match &raw.rate_limit {
            Some(v) if !v.get_ref().is_empty() => match units::parse_rate_limit(v.get_ref()) {
                Ok(limit) => Some(limit),
                Err(err) => {
                    self.error(v.span(), format!("{}: {err}", key("rate_limit")));
                    None
                }
            },
            _ => None,
        };
        let permanent_status = match &raw.permanent_status {
            None => defaults::PERMANENT_STATUS.to_vec(),
            Some(list) => list
                .get_ref()
                .iter()
                .filter_map(|status| match u16::try_from(*status.get_ref()) {
                    Ok(code @ 400..=599) => Some(code),
                    _ => {
                        self.error(
                            status.span(),
                            format!(
                                "{}: {} is not a 4xx or 5xx status (400..=599)",
                                key("permanent_status"),
                                status.get_ref()
                            ),
                        );
                        None
                    }
                })
                .collect(),
        };
        let max_attempts = match &raw.max_attempts {
            None => None,
            Some(v) => match u32::try_from(*v.get_ref()) {
                Ok(0) => None,
                Ok(n) => Some(n),
                Err(_) => {
                    self.error(
                        v.span(),
                        format!(
                            "{}: {} is out of range: use 0 for unlimited or a count up to {}",
                            key("max_attempts"),
                            v.get_ref(),
                            u32::MAX
                        ),
                    );
                    None
                }
            },
        };
        let compress = self.choice(
            &raw.compress,
            &key("compress"),
            &[("", None), ("gzip", Some(Compress::Gzip))],
            None,
        );
        let proxy = match &raw.proxy {
            Some(v) if !v.get_ref().is_empty() => self.proxy(v, &key("proxy")),
            _ => None,
        };
        let retry = self.retry(raw.retry.as_ref(), &label);
        let auth = raw.auth.as_ref().and_then(|auth| self.auth(auth, &label));
        let signing = raw
            .signing
            .as_ref()
            .and_then(|signing| self.signing(signing, &label));
        let headers = self.headers(raw, &label, auth.as_ref(), signing.as_ref());
        let tls = self.tls(raw.tls.as_ref(), &label);
        let body = self.choice(
            &raw.body,
            &key("body"),
            &[("envelope", BodyMode::Envelope), ("data", BodyMode::Data)],
            BodyMode::Envelope,
        );
        let concurrency = self.count(&raw.concurrency, &key("concurrency"), defaults::CONCURRENCY);

        // Every check above has run; only now may a missing name or url end this endpoint.
        Some(EndpointConfig {
            name: name?,
            url: url?,
            filter,
            body,
            headers,
            ordering,
            order_key,
            concurrency,
            timeout,
            rate_limit,
            permanent_status,
            max_attempts,
            compress,
            proxy,
            allow_plain_http,
            retry,
            auth,
            signing,
            tls,
        })
    }

    fn endpoint_url(
        &mut self,
        v: &Spanned<String>,
        label: &str,
        allow_plain_http: bool,
    ) -> Option<hyper::Uri> {
        let text = v.get_ref();
        // Shown in messages: a password in the URL must not reach logs either.
        let shown = redact_userinfo(text);
        let uri = match text.parse::<hyper::Uri>() {
            Ok(uri) => uri,
            Err(err) => {
                self.error(
                    v.span(),
                    format!("{label}: url: {shown:?} is not a valid URL ({err})"),
                );
                return None;
            }
        };
        let Some(authority) = uri.authority().filter(|a| !a.host().is_empty()) else {
            self.error(
                v.span(),
                format!("{label}: url: {shown:?} has no host: write https://host/path"),
            );
            return None;
        };
        if authority.as_str().contains('@') {
            self.error(
                v.span(),
                format!(
                    "{label}: url: must not contain credentials (user:password@): \
                     use [endpoint.auth] type = \"basic\""
                ),
            );
            return None;
        }
        match uri.scheme_str() {
            Some("https") => Some(uri),
            Some("http") if allow_plain_http => {
                self.warnings.push(format!(
                    "{label}: plain http allowed, payloads and credentials travel unencrypted"
                ));
                Some(uri)
            }
            Some("http") => {
                self.error(
                    v.span(),
                    format!(
                        "{label}: url: plain http is refused: use https, or set \
                         allow_plain_http = true on this endpoint (payloads and credentials \
                         would travel unencrypted)"
                    ),
                );
                None
            }
            _ => {
                self.error(
                    v.span(),
                    format!("{label}: url: {shown:?} must start with https://"),
                );
                None
            }
        }
    }

    fn filter(&mut self, raw: &RawEndpoint, label: &str) -> Filter {
        let globs: Vec<String> = match &raw.events {
            None => vec!["*".to_owned()],
            Some(list) => {
                if list.get_ref().is_empty() {
                    self.warnings.push(format!(
                        "{label}: events = [] matches no event; the endpoint only drains \
                         deliveries already queued (use [\"*\"] for every event)"
                    ));
                }
                for glob in list.get_ref() {
                    if let Err(err) = check_glob(glob.get_ref()) {
                        self.error(glob.span(), format!("{label}: events: {err}"));
                    }
                }
                list.get_ref().iter().map(|g| g.get_ref().clone()).collect()
            }
        };
        let mut matches = Vec::new();
        if let Some(table) = &raw.r#match {
            let mut entries: Vec<_> = table.get_ref().iter().collect();
            entries.sort_by_key(|(pointer, _)| pointer.span().start);
            for (pointer, value) in entries {
                if let Err(err) = check_pointer(pointer.get_ref(), MATCH_EXAMPLE) {
                    self.error(pointer.span(), format!("{label}: match: {err}"));
                }
                match toml_to_json(value.get_ref()) {
                    Ok(json) => matches.push((pointer.get_ref().clone(), json)),
                    Err(err) => self.error(
                        value.span(),
                        format!("{label}: match.{:?}: {err}", pointer.get_ref()),
                    ),
                }
            }
        }
        // Every glob and pointer was checked above; a failure is already reported.
        Filter::new(globs, matches).unwrap_or_default()
    }

    fn proxy(&mut self, v: &Spanned<String>, key: &str) -> Option<hyper::Uri> {
        let text = v.get_ref();
        let shown = redact_userinfo(text);
        let hint = "expected http://host:port (HTTPS to the endpoint is tunnelled with CONNECT)";
        let Ok(uri) = text.parse::<hyper::Uri>() else {
            self.error(v.span(), format!("{key}: {shown:?} is not a URL: {hint}"));
            return None;
        };
        let problem = match (uri.scheme_str(), uri.authority()) {
            (Some("http"), Some(authority)) => {
                if authority.host().is_empty() {
                    Some("it has no host")
                } else if authority.port_u16().is_none() {
                    Some("the port is missing")
                } else if uri.path_and_query().is_some_and(|pq| pq.as_str() != "/") {
                    Some("a proxy URL has no path or query")
                } else {
                    None
                }
            }
            (Some("https"), _) => Some("only http:// proxies are supported"),
            _ => Some("it is not an http:// URL"),
        };
        match problem {
            Some(problem) => {
                self.error(v.span(), format!("{key}: {shown:?}: {problem}; {hint}"));
                None
            }
            None => Some(uri),
        }
    }

    fn retry(&mut self, raw: Option<&RawRetry>, label: &str) -> RetryConfig {
        let default = RawRetry::default();
        let raw = raw.unwrap_or(&default);
        let key = |key: &str| format!("{label}: retry.{key}");
        let initial = self.duration(&raw.initial, &key("initial"), defaults::RETRY_INITIAL);
        if let (Some(v), true) = (&raw.initial, initial.is_zero()) {
            self.error(v.span(), format!("{}: must be more than 0", key("initial")));
        }
        let max = self.duration(&raw.max, &key("max"), defaults::RETRY_MAX);
        if max < initial {
            let span = raw.max.as_ref().or(raw.initial.as_ref()).map(Spanned::span);
            self.error(
                span.unwrap_or(0..0),
                format!(
                    "{}: {} is less than retry.initial ({})",
                    key("max"),
                    units::format_duration(max),
                    units::format_duration(initial)
                ),
            );
        }
        let multiplier = match &raw.multiplier {
            None => defaults::RETRY_MULTIPLIER,
            Some(v) => {
                let m = *v.get_ref();
                if !(m.is_finite() && m >= 1.0) {
                    self.error(
                        v.span(),
                        format!(
                            "{}: {m} must be at least 1.0 (1.0: constant backoff)",
                            key("multiplier")
                        ),
                    );
                }
                m
            }
        };
        let jitter = match &raw.jitter {
            None => defaults::RETRY_JITTER,
            Some(v) => {
                let j = *v.get_ref();
                if !(0.0..=1.0).contains(&j) {
                    self.error(
                        v.span(),
                        format!(
                            "{}: {j} must be between 0.0 and 1.0 (a fraction of the delay)",
                            key("jitter")
                        ),
                    );
                }
                j
            }
        };
        RetryConfig {
            initial,
            multiplier,
            max,
            jitter,
        }
    }

    fn auth(&mut self, spanned: &Spanned<RawAuth>, label: &str) -> Option<AuthConfig> {
        let raw = spanned.get_ref();
        let key = |key: &str| format!("{label}: auth.{key}");
        let (value, token, password) = (
            secret_text(&raw.value),
            secret_text(&raw.token),
            secret_text(&raw.password),
        );
        let fields: [(&str, &S<String>); 7] = [
            ("header", &raw.header),
            ("in", &raw.r#in),
            ("param", &raw.param),
            ("value", &value),
            ("token", &token),
            ("username", &raw.username),
            ("password", &password),
        ];
        let Some(kind) = &raw.r#type else {
            self.error(
                spanned.span(),
                format!(
                    "{}: missing: one of \"api-key\", \"bearer\", \"basic\"",
                    key("type")
                ),
            );
            return None;
        };
        let (used, takes): (&[&str], &str) = match kind.get_ref().as_str() {
            "api-key" => (
                &["header", "in", "param", "value"],
                "value, and header or in = \"query\" with param",
            ),
            "bearer" => (&["token"], "token"),
            "basic" => (&["username", "password"], "username and password"),
            other => {
                self.error(
                    kind.span(),
                    format!(
                        "{}: unknown value {other:?}; expected one of \"api-key\", \"bearer\", \"basic\"",
                        key("type")
                    ),
                );
                return None;
            }
        };
        let mut ok = true;
        for (field, value) in fields {
            if let (Some(v), false) = (value, used.contains(&field)) {
                self.error(
                    v.span(),
                    format!(
                        "{}: not used by type {:?} (it takes {takes})",
                        key(field),
                        kind.get_ref()
                    ),
                );
                ok = false;
            }
        }
        let required =
            |ctx: &mut Self, field: &str, value: &S<String>| -> Option<Spanned<String>> {
                if value.is_none() {
                    ctx.error(
                        spanned.span(),
                        format!(
                            "{}: missing, type {:?} needs it",
                            key(field),
                            kind.get_ref()
                        ),
                    );
                }
                value.clone()
            };
        let auth = match kind.get_ref().as_str() {
            "api-key" => {
                let reference = value;
                let value = required(self, "value", &reference);
                let placement = match raw.r#in.as_ref().map(|v| v.get_ref().as_str()) {
                    None | Some("header") => {
                        let header = raw
                            .header
                            .as_ref()
                            .map_or(defaults::API_KEY_HEADER, |v| v.get_ref());
                        if let Err(err) = HeaderName::from_bytes(header.as_bytes()) {
                            let span = raw.header.as_ref().map_or(0..0, Spanned::span);
                            self.error(
                                span,
                                format!(
                                    "{}: {header:?} is not a valid HTTP header name ({err})",
                                    key("header")
                                ),
                            );
                        }
                        ApiKeyPlacement::Header(header.to_ascii_lowercase())
                    }
                    Some("query") => {
                        let param = raw
                            .param
                            .as_ref()
                            .map_or(defaults::API_KEY_PARAM, |v| v.get_ref());
                        if param.is_empty()
                            || !param
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
                        {
                            let span = raw.param.as_ref().map_or(0..0, Spanned::span);
                            self.error(
                                span,
                                format!(
                                    "{}: {param:?} must be a non-empty run of A-Za-z0-9-._~",
                                    key("param")
                                ),
                            );
                        }
                        ApiKeyPlacement::Query(param.to_owned())
                    }
                    Some(other) => {
                        let span = raw.r#in.as_ref().map_or(0..0, Spanned::span);
                        self.error(
                            span,
                            format!(
                                "{}: unknown value {other:?}; expected \"header\" or \"query\"",
                                key("in")
                            ),
                        );
                        ApiKeyPlacement::Header(defaults::API_KEY_HEADER.to_owned())
                    }
                };
                let value = value.and_then(|v| self.secret(&v, &key("value"), Bare::Literal));
                if let (Some(secret), ApiKeyPlacement::Header(_)) = (&value, &placement) {
                    self.header_safe_secret(secret, &reference, &key("value"), "");
                }
                value.map(|value| AuthConfig::ApiKey { placement, value })
            }
            "bearer" => {
                let reference = token;
                let token = required(self, "token", &reference)
                    .and_then(|v| self.secret(&v, &key("token"), Bare::Literal));
                if let Some(secret) = &token {
                    self.header_safe_secret(secret, &reference, &key("token"), "Bearer ");
                }
                token.map(|token| AuthConfig::Bearer { token })
            }
            _ => {
                let username = required(self, "username", &raw.username);
                let password = required(self, "password", &password)
                    .and_then(|v| self.secret(&v, &key("password"), Bare::Literal));
                if let Some(v) = &username {
                    if v.get_ref().is_empty() || v.get_ref().contains(':') {
                        self.error(
                            v.span(),
                            format!(
                                "{}: must be non-empty and contain no ':' (RFC 7617)",
                                key("username")
                            ),
                        );
                    }
                }
                match (username, password) {
                    (Some(username), Some(password)) => Some(AuthConfig::Basic {
                        username: username.into_inner(),
                        password,
                    }),
                    _ => None,
                }
            }
        };
        auth.filter(|_| ok)
    }

    /// A secret that goes into a header value must be a valid one; say so without showing it.
    fn header_safe_secret(&mut self, secret: &Secret, raw: &S<String>, key: &str, prefix: &str) {
        if HeaderValue::from_str(&format!("{prefix}{}", secret.expose())).is_err() {
            let span = raw.as_ref().map_or(0..0, Spanned::span);
            self.error(
                span,
                format!(
                    "{key}: the secret from {} is not a valid HTTP header value \
                     (control characters or non-ASCII)",
                    secret.source()
                ),
            );
        }
    }

    fn signing(&mut self, spanned: &Spanned<RawSigning>, label: &str) -> Option<SigningConfig> {
        let raw = spanned.get_ref();
        let key = |key: &str| format!("{label}: signing.{key}");
        let schemes = [
            ("standard-webhooks", SigningScheme::StandardWebhooks),
            ("hmac-sha256", SigningScheme::HmacSha256),
            ("hmac-sha1", SigningScheme::HmacSha1),
        ];
        let scheme = match &raw.scheme {
            None => {
                self.error(
                    spanned.span(),
                    format!(
                        "{}: missing: one of \"standard-webhooks\", \"hmac-sha256\", \"hmac-sha1\"",
                        key("scheme")
                    ),
                );
                None
            }
            Some(v) => {
                let known = schemes.iter().find(|(name, _)| name == v.get_ref());
                if known.is_none() {
                    // Reports the unknown value with the list of known ones.
                    self.choice(
                        &raw.scheme,
                        &key("scheme"),
                        &schemes,
                        SigningScheme::HmacSha256,
                    );
                }
                known.map(|&(_, scheme)| scheme)
            }
        };
        let secret = secret_text(&raw.secret);
        let references: Vec<(Spanned<String>, String)> = match (&secret, &raw.secrets) {
            (Some(_), Some(list)) => {
                self.error(
                    list.span(),
                    format!(
                        "{}: give either secret or secrets, not both",
                        key("secrets")
                    ),
                );
                Vec::new()
            }
            (None, None) => {
                self.error(
                    spanned.span(),
                    format!(
                        "{}: missing: set secret = \"…\" (or secrets = [\"…\", …] to rotate)",
                        key("secret")
                    ),
                );
                Vec::new()
            }
            (Some(one), None) => vec![(one.clone(), key("secret"))],
            (None, Some(list)) => {
                let items = &list.get_ref().0;
                if items.is_empty() {
                    self.error(
                        list.span(),
                        format!("{}: is empty: give at least one secret", key("secrets")),
                    );
                }
                if items.len() > 1 && scheme.is_some_and(|s| s != SigningScheme::StandardWebhooks) {
                    self.error(
                        list.span(),
                        format!(
                            "{}: only standard-webhooks carries several signatures; \
                             {} takes one secret",
                            key("secrets"),
                            raw.scheme.as_ref().map_or("", |s| s.get_ref())
                        ),
                    );
                }
                items
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let text = Spanned::new(s.span(), s.get_ref().0.clone());
                        (text, key(&format!("secrets[{i}]")))
                    })
                    .collect()
            }
        };
        let mut secrets = Vec::new();
        for (reference, name) in &references {
            let Some(secret) = self.secret(reference, name, Bare::Literal) else {
                continue;
            };
            if scheme == Some(SigningScheme::StandardWebhooks) {
                if let Err(err) = check_standard_webhooks_secret(secret.expose()) {
                    self.error(
                        reference.span(),
                        format!("{name}: the secret from {}: {err}", secret.source()),
                    );
                }
            }
            secrets.push(secret);
        }

        let header_set = raw.header.as_ref().filter(|h| !h.get_ref().is_empty());
        let prefix_set = raw.prefix.as_ref().filter(|p| !p.get_ref().is_empty());
        let scheme = scheme?;
        let (default_header, default_prefix) = match scheme {
            SigningScheme::StandardWebhooks => (defaults::STANDARD_WEBHOOKS_HEADER, ""),
            SigningScheme::HmacSha256 => {
                (defaults::HMAC_SHA256_HEADER, defaults::HMAC_SHA256_PREFIX)
            }
            SigningScheme::HmacSha1 => (defaults::HMAC_SHA1_HEADER, ""),
        };
        let header = match header_set {
            None => default_header.to_owned(),
            Some(v) => {
                let header = v.get_ref();
                if scheme == SigningScheme::StandardWebhooks
                    && !header.eq_ignore_ascii_case(defaults::STANDARD_WEBHOOKS_HEADER)
                {
                    self.error(
                        v.span(),
                        format!(
                            "{}: standard-webhooks always uses {}; remove header",
                            key("header"),
                            defaults::STANDARD_WEBHOOKS_HEADER
                        ),
                    );
                } else if let Err(err) = HeaderName::from_bytes(header.as_bytes()) {
                    self.error(
                        v.span(),
                        format!(
                            "{}: {header:?} is not a valid HTTP header name ({err})",
                            key("header")
                        ),
                    );
                }
                header.to_ascii_lowercase()
            }
        };
        let prefix = match prefix_set {
            None => default_prefix.to_owned(),
            Some(v) if scheme != SigningScheme::HmacSha256 => {
                self.error(
                    v.span(),
                    format!(
                        "{}: only hmac-sha256 takes a prefix; remove it",
                        key("prefix")
                    ),
                );
                String::new()
            }
            Some(v) => {
                if HeaderValue::from_str(v.get_ref()).is_err() {
                    self.error(
                        v.span(),
                        format!("{}: not valid in an HTTP header value", key("prefix")),
                    );
                }
                v.get_ref().clone()
            }
        };
        (!secrets.is_empty() && secrets.len() == references.len()).then_some(SigningConfig {
            scheme,
            secrets,
            header,
            prefix,
        })
    }

    fn headers(
        &mut self,
        raw: &RawEndpoint,
        label: &str,
        auth: Option<&AuthConfig>,
        signing: Option<&SigningConfig>,
    ) -> Vec<(String, String)> {
        let Some(table) = &raw.headers else {
            return Vec::new();
        };
        let auth_header = match auth {
            Some(AuthConfig::ApiKey {
                placement: ApiKeyPlacement::Header(name),
                ..
            }) => Some(name.clone()),
            Some(AuthConfig::Bearer { .. } | AuthConfig::Basic { .. }) => {
                Some("authorization".to_owned())
            }
            _ => None,
        };
        let mut seen: HashMap<String, &str> = HashMap::new();
        let mut headers = Vec::new();
        let mut entries: Vec<_> = table.get_ref().iter().collect();
        entries.sort_by_key(|(name, _)| name.span().start);
        for (name, value) in entries {
            let written = name.get_ref();
            let header = match HeaderName::from_bytes(written.as_bytes()) {
                Ok(header) => header,
                Err(_) => {
                    self.error(
                        name.span(),
                        format!("{label}: headers: {written:?} is not a valid HTTP header name"),
                    );
                    continue;
                }
            };
            let lower = header.as_str().to_owned();
            if RESERVED_HEADERS.contains(&lower.as_str()) {
                self.error(
                    name.span(),
                    format!("{label}: headers: {written} is set by edgehook on every delivery"),
                );
            } else if auth_header.as_deref() == Some(lower.as_str()) {
                self.error(
                    name.span(),
                    format!("{label}: headers: {written} is already set by [endpoint.auth]"),
                );
            } else if signing.is_some_and(|s| s.header == lower) {
                self.error(
                    name.span(),
                    format!("{label}: headers: {written} is already set by [endpoint.signing]"),
                );
            } else if let Some(first) = seen.get(&lower) {
                self.error(
                    name.span(),
                    format!(
                        "{label}: headers: {written} repeats {first} (header names ignore case)"
                    ),
                );
            }
            seen.insert(lower.clone(), written);
            if HeaderValue::from_str(value.get_ref()).is_err() {
                self.error(
                    value.span(),
                    format!(
                        "{label}: headers.{written}: not a valid HTTP header value \
                         (control characters or non-ASCII)"
                    ),
                );
            }
            headers.push((lower, value.get_ref().clone()));
        }
        headers
    }

    fn tls(&mut self, raw: Option<&RawTls>, label: &str) -> TlsConfig {
        let default = RawTls::default();
        let raw = raw.unwrap_or(&default);
        let key = |key: &str| format!("{label}: tls.{key}");
        let roots = self.choice(
            &raw.roots,
            &key("roots"),
            &[("system", Roots::System), ("ca_file", Roots::CaFile)],
            Roots::System,
        );
        let ca_file = self.cert_file(&raw.ca_file, &key("ca_file"));
        if let (Roots::CaFile, None, Some(v)) = (roots, &ca_file, &raw.roots) {
            if raw.ca_file.as_ref().is_none_or(|f| f.get_ref().is_empty()) {
                self.error(
                    v.span(),
                    format!(
                        "{}: \"ca_file\" needs tls.ca_file = \"/path/to/ca.pem\"",
                        key("roots")
                    ),
                );
            }
        }
        let client_cert = self.cert_file(&raw.client_cert, &key("client_cert"));
        let key_reference = secret_text(&raw.client_key);
        let client_key = match &key_reference {
            Some(v) if !v.get_ref().is_empty() => {
                let secret = self.secret(v, &key("client_key"), Bare::PemPath);
                if let Some(secret) = &secret {
                    // The parser's error could quote key material: keep it out of the message.
                    if PrivateKeyDer::from_pem_slice(secret.expose().as_bytes()).is_err() {
                        self.error(
                            v.span(),
                            format!(
                                "{}: no PEM private key in {} (expected -----BEGIN PRIVATE KEY-----, \
                                 RSA PRIVATE KEY or EC PRIVATE KEY)",
                                key("client_key"),
                                secret.source()
                            ),
                        );
                    }
                }
                secret
            }
            _ => None,
        };
        let cert_set = raw.client_cert.as_ref().filter(|v| !v.get_ref().is_empty());
        let key_set = key_reference.as_ref().filter(|v| !v.get_ref().is_empty());
        match (cert_set, key_set) {
            (Some(v), None) => self.error(
                v.span(),
                format!(
                    "{}: set without tls.client_key: mTLS needs both",
                    key("client_cert")
                ),
            ),
            (None, Some(v)) => self.error(
                v.span(),
                format!(
                    "{}: set without tls.client_cert: mTLS needs both",
                    key("client_key")
                ),
            ),
            (Some(_), Some(v)) => {
                if let (Some(cert), Some(secret)) = (&client_cert, &client_key) {
                    if let Some(problem) = cert_key_mismatch(cert, secret.expose()) {
                        self.error(v.span(), format!("{}: {problem}", key("client_key")));
                    }
                }
            }
            _ => {}
        }
        let min_version = self.choice(
            &raw.min_version,
            &key("min_version"),
            &[("1.2", TlsVersion::V1_2), ("1.3", TlsVersion::V1_3)],
            TlsVersion::V1_2,
        );
        let server_name = match &raw.server_name {
            Some(v) if !v.get_ref().is_empty() => {
                if ServerName::try_from(v.get_ref().as_str()).is_err() {
                    self.error(
                        v.span(),
                        format!(
                            "{}: {:?} is not a DNS name or IP address",
                            key("server_name"),
                            v.get_ref()
                        ),
                    );
                }
                Some(v.get_ref().clone())
            }
            _ => None,
        };
        TlsConfig {
            roots,
            ca_file,
            client_cert,
            client_key,
            min_version,
            server_name,
        }
    }

    /// A PEM file that must hold at least one certificate; watched for reload.
    fn cert_file(&mut self, value: &S<String>, key: &str) -> Option<PathBuf> {
        let v = value.as_ref().filter(|v| !v.get_ref().is_empty())?;
        let path = self.base_dir.join(v.get_ref());
        let shown = path.display();
        let problem = match CertificateDer::pem_file_iter(&path) {
            Err(err) => Some(format!("cannot read {shown}: {}", pem_error(err))),
            Ok(iter) => {
                let mut count = 0;
                let mut problem = None;
                for item in iter {
                    match item {
                        Ok(_) => count += 1,
                        Err(err) => {
                            problem = Some(format!("{shown}: {}", pem_error(err)));
                            break;
                        }
                    }
                }
                match (problem, count) {
                    (Some(problem), _) => Some(problem),
                    (None, 0) => Some(format!(
                        "{shown} contains no PEM certificate (-----BEGIN CERTIFICATE-----)"
                    )),
                    (None, _) => None,
                }
            }
        };
        if let Some(problem) = problem {
            self.error(v.span(), format!("{key}: {problem}"));
        }
        self.watch(path.clone());
        Some(path)
    }

    // ----- value helpers -----

    fn secret(&mut self, v: &Spanned<String>, key: &str, bare: Bare) -> Option<Secret> {
        match self.resolver.resolve(v.get_ref(), bare) {
            Ok(resolved) => {
                if let Some(path) = resolved.watch {
                    self.watch(path);
                }
                if let Some(warning) = resolved.warning {
                    self.warnings.push(format!("{key}: {warning}"));
                }
                if resolved.secret.source() == &super::secret::SecretSource::Literal {
                    self.literal_secrets = true;
                }
                Some(resolved.secret)
            }
            Err(err) => {
                self.error(v.span(), format!("{key}: {err}"));
                None
            }
        }
    }

    fn choice<T: Copy>(
        &mut self,
        value: &S<String>,
        key: &str,
        options: &[(&str, T)],
        default: T,
    ) -> T {
        let Some(v) = value else {
            return default;
        };
        if let Some(&(_, choice)) = options.iter().find(|(name, _)| name == v.get_ref()) {
            return choice;
        }
        let expected: Vec<String> = options
            .iter()
            .map(|(name, _)| format!("{name:?}"))
            .collect();
        self.error(
            v.span(),
            format!(
                "{key}: unknown value {:?}; expected one of {}",
                v.get_ref(),
                expected.join(", ")
            ),
        );
        default
    }

    /// A duration; on error the default stands in, so no follow-up error is reported.
    ///
    /// # Panics
    ///
    /// If `default` does not parse: the defaults are constants.
    fn duration(&mut self, value: &S<String>, key: &str, default: &str) -> Duration {
        let default = units::parse_duration(default).expect("default durations parse");
        match value {
            None => default,
            Some(v) => units::parse_duration(v.get_ref()).unwrap_or_else(|err| {
                self.error(v.span(), format!("{key}: {err}"));
                default
            }),
        }
    }

    /// A size that must be more than 0.
    fn size(&mut self, value: &S<toml::Value>, key: &str, default: u64) -> u64 {
        let Some(v) = value else {
            return default;
        };
        match units::size_from_toml(v.get_ref()) {
            Ok(0) => {
                self.error(v.span(), format!("{key}: must be more than 0"));
                default
            }
            Ok(size) => size,
            Err(err) => {
                self.error(v.span(), format!("{key}: {err}"));
                default
            }
        }
    }

    fn usize_size(&mut self, size: u64, value: &S<toml::Value>) -> usize {
        usize::try_from(size).unwrap_or_else(|_| {
            let span = value.as_ref().map_or(0..0, Spanned::span);
            self.error(span, "size too large for this platform");
            0
        })
    }

    /// A count that must be at least 1.
    fn count(&mut self, value: &S<i64>, key: &str, default: i64) -> usize {
        let Some(v) = value else {
            return default as usize;
        };
        match usize::try_from(*v.get_ref()) {
            Ok(n) if n >= 1 => n,
            _ => {
                self.error(
                    v.span(),
                    format!("{key}: {} must be at least 1", v.get_ref()),
                );
                default as usize
            }
        }
    }

    fn ids(&mut self, value: &Option<Vec<Spanned<i64>>>, key: &str) -> Vec<u32> {
        let Some(list) = value else {
            return Vec::new();
        };
        list.iter()
            .filter_map(|id| match u32::try_from(*id.get_ref()) {
                Ok(id) if id != u32::MAX => Some(id),
                _ => {
                    self.error(
                        id.span(),
                        format!("{key}: {} is not a valid id", id.get_ref()),
                    );
                    None
                }
            })
            .collect()
    }

    /// A path (relative ones against the config directory) that must not be empty.
    fn path_or(&mut self, value: &S<String>, key: &str, default: &str) -> PathBuf {
        match value {
            None => PathBuf::from(default),
            Some(v) if v.get_ref().is_empty() => {
                self.error(v.span(), format!("{key}: must not be empty"));
                PathBuf::from(default)
            }
            Some(v) => self.base_dir.join(v.get_ref()),
        }
    }

    fn socket_path(&mut self, value: &S<String>, key: &str, default: &str) -> PathBuf {
        let path = self.path_or(value, key, default);
        let len = path.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            let span = value.as_ref().map_or(0..0, Spanned::span);
            self.error(
                span,
                format!(
                    "{key}: {} is {len} bytes long; Unix socket paths are limited to {MAX_SOCKET_PATH}",
                    path.display()
                ),
            );
        }
        path
    }
}

fn non_empty(value: &S<String>) -> Option<String> {
    value
        .as_ref()
        .map(|v| v.get_ref().clone())
        .filter(|v| !v.is_empty())
}

fn pem_error(err: pem::Error) -> String {
    match err {
        pem::Error::Io(err) => err.to_string(),
        other => other.to_string(),
    }
}

/// Whether the PEM key does not belong to the first certificate of `cert` (a mismatch
/// would otherwise surface only at the first delivery's TLS handshake).
fn cert_key_mismatch(cert: &Path, key_pem: &str) -> Option<String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .ok()?
        .filter_map(Result::ok)
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).ok()?;
    let provider = rustls::crypto::ring::default_provider();
    match rustls::sign::CertifiedKey::from_der(certs, key, &provider) {
        Ok(_) => None,
        Err(rustls::Error::InconsistentKeys(_)) => Some(format!(
            "this private key does not belong to the certificate in {}; use the key the certificate was issued for",
            cert.display()
        )),
        Err(err) => Some(format!("unusable client key: {err}")),
    }
}

/// `whsec_<base64>` (HMAC) or `whsk_<base64>` (ed25519), STANDARD base64 with padding.
fn check_standard_webhooks_secret(secret: &str) -> Result<(), String> {
    let Some(encoded) = secret
        .strip_prefix("whsec_")
        .or_else(|| secret.strip_prefix("whsk_"))
    else {
        return Err(
            "standard-webhooks secrets start with whsec_ (or whsk_ for ed25519) followed by base64"
                .to_owned(),
        );
    };
    match base64::engine::general_purpose::STANDARD.decode(encoded) {
        Ok(bytes) if secret.starts_with("whsk_") && ![32, 64].contains(&bytes.len()) => Err(format!(
            "a whsk_ secret is an ed25519 key: 32 bytes (seed) or 64 (seed + public key), this one has {}",
            bytes.len()
        )),
        Ok(bytes) if !bytes.is_empty() => Ok(()),
        Ok(_) => Err("nothing after the whsec_/whsk_ prefix".to_owned()),
        Err(err) => Err(format!(
            "the part after the prefix is not valid base64 ({err})"
        )),
    }
}

/// A `match` value as JSON. TOML datetimes and non-finite floats have no JSON form.
fn toml_to_json(value: &toml::Value) -> Result<Value, String> {
    Ok(match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| format!("{f} has no JSON form"))?,
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(_) => {
            return Err(
                "a TOML date/time has no JSON form: quote it to compare with a JSON string"
                    .to_owned(),
            )
        }
        toml::Value::Array(items) => {
            Value::Array(items.iter().map(toml_to_json).collect::<Result<_, _>>()?)
        }
        toml::Value::Table(table) => Value::Object(
            table
                .iter()
                .map(|(k, v)| Ok((k.clone(), toml_to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

#[cfg(test)]
mod tests;
