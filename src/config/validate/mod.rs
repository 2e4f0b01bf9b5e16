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
//!
//! This file holds the entry points and `Ctx`, the pass that collects the problems; the
//! other files each add the checks of one part of the config to `Ctx`:
//! - `sections.rs`: `[daemon]`, `[ingest]` and `[queue]`;
//! - `endpoint.rs`: each `[[endpoint]]` with its filter, proxy and `[endpoint.retry]`;
//! - `headers.rs`, `auth.rs`, `signing.rs`, `tls.rs`: the endpoint's other parts;
//! - `transfer.rs`: `[transfer]` (the air-gapped sites' shared key);
//! - `values.rs`: the checks of single values (choices, durations, sizes, paths,
//!   secrets) they all share.

mod auth;
mod endpoint;
mod headers;
mod sections;
mod signing;
mod tls;
mod transfer;
mod values;

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;

use super::raw::RawConfig;
use super::secret::Resolver;
use super::Config;

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
        let transfer = self.transfer(raw.transfer.unwrap_or_default());
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
            transfer,
            endpoints,
            watched_files: std::mem::take(&mut self.watched),
            warnings: std::mem::take(&mut self.warnings),
        }
    }
}

#[cfg(test)]
mod tests;
