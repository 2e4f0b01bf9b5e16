//! Where a CLI command finds the daemon's socket (`send`: `ingest.socket`; the operator
//! commands: `daemon.admin_socket`): the `--socket` flag, else that one key of the config
//! file, else the key's default.
//!
//! Only the one key is read, without validating the rest of the file or resolving its
//! secrets: an app's user that may send events need not be able to read the endpoints'
//! `credential:`/`env:`/`file:` secrets. The default socket is used only when there is no
//! config file at all (the default path does not exist); a config file that exists but
//! cannot be read or parsed is an error naming the file and the fix, never a silent
//! fallback to a socket the daemon may not be using.

use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::bail;

use super::raw::defaults;

/// A socket key the CLI reads from the config.
#[derive(Debug, Clone, Copy)]
pub enum SocketKey {
    /// `ingest.socket`, where `send` posts events.
    Ingest,
    /// `daemon.admin_socket`, where the operator commands go.
    Admin,
}

impl SocketKey {
    fn table_and_key(self) -> (&'static str, &'static str) {
        match self {
            SocketKey::Ingest => ("ingest", "socket"),
            SocketKey::Admin => ("daemon", "admin_socket"),
        }
    }

    fn default_path(self) -> &'static str {
        match self {
            SocketKey::Ingest => defaults::SOCKET,
            SocketKey::Admin => defaults::ADMIN_SOCKET,
        }
    }

    fn flag(self) -> &'static str {
        match self {
            SocketKey::Ingest => "--socket",
            SocketKey::Admin => "--admin-socket",
        }
    }
}

impl fmt::Display for SocketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (table, key) = self.table_and_key();
        write!(f, "{table}.{key}")
    }
}

/// The socket a command uses and why: shown in its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub path: PathBuf,
    /// "--socket", "ingest.socket in /etc/edgehook/edgehook.toml", …
    pub source: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.path.display(), self.source)
    }
}

/// The socket for `key`: `flag` if given, else the key in the config file (`config_flag`
/// or the default path), else the key's default.
///
/// # Errors
/// When the config file exists but cannot be read or is not TOML, when it was named
/// explicitly and does not exist, or when the key is not a string.
pub fn locate(
    key: SocketKey,
    flag: Option<&Path>,
    config_flag: Option<&Path>,
) -> anyhow::Result<Located> {
    if let Some(path) = flag {
        return Ok(Located {
            path: path.to_path_buf(),
            source: key.flag().to_string(),
        });
    }
    let config = super::resolve_path(config_flag);
    let text = match std::fs::read_to_string(&config) {
        Ok(text) => text,
        Err(err) if err.kind() == ErrorKind::NotFound && config_flag.is_none() => {
            return Ok(Located {
                path: PathBuf::from(key.default_path()),
                source: format!("the default; there is no {}", config.display()),
            })
        }
        Err(err) => bail!(
            "cannot read the config file {} to find {key}: {}; {}",
            config.display(),
            io_reason(&err),
            fix(key, &err)
        ),
    };
    from_text(key, &text, &config)
}

/// [`locate`]'s answer for the config text `text` read from `config`.
fn from_text(key: SocketKey, text: &str, config: &Path) -> anyhow::Result<Located> {
    let table: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(err) => bail!(
            "cannot find {key}: the config file {} is not valid TOML: {}; fix it (edgehook check-config) or pass {} PATH",
            config.display(),
            err.message(),
            key.flag()
        ),
    };
    let (section, name) = key.table_and_key();
    let value = table.get(section).and_then(|t| t.get(name));
    let socket = match value {
        None => {
            return Ok(Located {
                path: PathBuf::from(key.default_path()),
                source: format!("the default; {} does not set {key}", config.display()),
            })
        }
        Some(toml::Value::String(s)) if !s.is_empty() => PathBuf::from(s),
        Some(other) => bail!(
            "{key} in {} is {other}, not a socket path; fix it (edgehook check-config) or pass {} PATH",
            config.display(),
            key.flag()
        ),
    };
    // Relative to the file's directory, as the daemon resolves it.
    let path = if socket.is_relative() {
        config.parent().unwrap_or(Path::new(".")).join(socket)
    } else {
        socket
    };
    Ok(Located {
        path,
        source: format!("{key} in {}", config.display()),
    })
}

/// "permission denied" rather than "Permission denied (os error 13)".
fn io_reason(err: &std::io::Error) -> String {
    match err.kind() {
        ErrorKind::PermissionDenied => "permission denied".into(),
        ErrorKind::NotFound => "no such file".into(),
        _ => err.to_string(),
    }
}

fn fix(key: SocketKey, err: &std::io::Error) -> String {
    match err.kind() {
        ErrorKind::PermissionDenied => format!(
            "run as a user that may read it (e.g. a member of its group), or pass {} PATH",
            key.flag()
        ),
        _ => format!("pass --config PATH or {} PATH", key.flag()),
    }
}

/// The kind of the I/O error behind a failure to reach a socket, if one is behind it (the
/// CLI words "nothing listens" and "permission denied" for the user from it).
pub fn io_kind(err: &anyhow::Error) -> Option<std::io::ErrorKind> {
    err.chain()
        .find_map(|e| e.downcast_ref::<std::io::Error>())
        .map(|e| e.kind())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "/etc/edgehook/edgehook.toml";

    fn located(key: SocketKey, text: &str) -> anyhow::Result<Located> {
        from_text(key, text, Path::new(CONFIG))
    }

    #[test]
    fn the_key_comes_from_the_config_whatever_else_it_holds() {
        // An endpoint whose secret this user could not resolve is no obstacle.
        let text = "[ingest]\nsocket = \"/run/x/in.sock\"\n[daemon]\nadmin_socket = \"a.sock\"\n\
                    [[endpoint]]\nname = \"e\"\n[endpoint.auth]\ntoken = \"credential:t\"\n";
        let ingest = located(SocketKey::Ingest, text).unwrap();
        assert_eq!(ingest.path, Path::new("/run/x/in.sock"));
        assert_eq!(
            ingest.to_string(),
            "/run/x/in.sock (ingest.socket in /etc/edgehook/edgehook.toml)"
        );
        // Relative to the config file's directory.
        assert_eq!(
            located(SocketKey::Admin, text).unwrap().path,
            Path::new("/etc/edgehook/a.sock")
        );
    }

    #[test]
    fn an_unset_key_is_its_default_and_says_so() {
        let l = located(SocketKey::Admin, "[ingest]\nsocket = \"/x\"").unwrap();
        assert_eq!(l.path, Path::new("/run/edgehook/admin.sock"));
        assert_eq!(
            l.source,
            "the default; /etc/edgehook/edgehook.toml does not set daemon.admin_socket"
        );
    }

    #[test]
    fn a_broken_file_or_value_is_an_error_not_a_fallback() {
        let err = located(SocketKey::Ingest, "[ingest\nsocket = 1").unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.starts_with("cannot find ingest.socket: the config file /etc/edgehook/edgehook.toml is not valid TOML"),
            "{msg}"
        );
        assert!(msg.ends_with("or pass --socket PATH"), "{msg}");
        let err = located(SocketKey::Ingest, "[ingest]\nsocket = 7").unwrap_err();
        assert_eq!(
            err.to_string(),
            "ingest.socket in /etc/edgehook/edgehook.toml is 7, not a socket path; fix it (edgehook check-config) or pass --socket PATH"
        );
    }

    #[test]
    fn the_flag_wins_and_a_missing_default_config_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let l = locate(SocketKey::Ingest, Some(Path::new("/s.sock")), None).unwrap();
        assert_eq!(l.to_string(), "/s.sock (--socket)");
        // An explicitly named file that does not exist is an error.
        let missing = dir.path().join("none.toml");
        let err = locate(SocketKey::Admin, None, Some(&missing)).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "cannot read the config file {} to find daemon.admin_socket: no such file",
                missing.display()
            )),
            "{err}"
        );
    }
}
