//! The checks of single values that every section is built from: secret references,
//! choices, durations, sizes, counts, ids, paths and socket paths. Each reports a problem
//! under the key it is given and hands back a default (or `None`), so later checks run.

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::{Ctx, S};
use crate::config::secret::{Bare, Secret, SecretSource};
use crate::config::units;

/// `sun_path` is 108 bytes on Linux, including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

impl Ctx<'_> {
    pub(super) fn secret(&mut self, v: &Spanned<String>, key: &str, bare: Bare) -> Option<Secret> {
        match self.resolver.resolve(v.get_ref(), bare) {
            Ok(resolved) => {
                if let Some(path) = resolved.watch {
                    self.watch(path);
                }
                if let Some(warning) = resolved.warning {
                    self.warnings.push(format!("{key}: {warning}"));
                }
                if resolved.secret.source() == &SecretSource::Literal {
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

    pub(super) fn choice<T: Copy>(
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
    pub(super) fn duration(&mut self, value: &S<String>, key: &str, default: &str) -> Duration {
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
    pub(super) fn size(&mut self, value: &S<toml::Value>, key: &str, default: u64) -> u64 {
        match (value, self.size_or_zero(value, key, default)) {
            (Some(v), 0) => {
                self.error(v.span(), format!("{key}: must be more than 0"));
                default
            }
            (_, size) => size,
        }
    }

    /// A size where 0 means "none" (`queue.reserve`).
    pub(super) fn size_or_zero(&mut self, value: &S<toml::Value>, key: &str, default: u64) -> u64 {
        let Some(v) = value else {
            return default;
        };
        units::size_from_toml(v.get_ref()).unwrap_or_else(|err| {
            self.error(v.span(), format!("{key}: {err}"));
            default
        })
    }

    pub(super) fn usize_size(&mut self, size: u64, value: &S<toml::Value>) -> usize {
        usize::try_from(size).unwrap_or_else(|_| {
            let span = value.as_ref().map_or(0..0, Spanned::span);
            self.error(span, "size too large for this platform");
            0
        })
    }

    /// A count that must be at least 1.
    pub(super) fn count(&mut self, value: &S<i64>, key: &str, default: i64) -> usize {
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

    pub(super) fn ids(&mut self, value: &Option<Vec<Spanned<i64>>>, key: &str) -> Vec<u32> {
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
    pub(super) fn path_or(&mut self, value: &S<String>, key: &str, default: &str) -> PathBuf {
        match value {
            None => PathBuf::from(default),
            Some(v) if v.get_ref().is_empty() => {
                self.error(v.span(), format!("{key}: must not be empty"));
                PathBuf::from(default)
            }
            Some(v) => self.base_dir.join(v.get_ref()),
        }
    }

    pub(super) fn socket_path(&mut self, value: &S<String>, key: &str, default: &str) -> PathBuf {
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
