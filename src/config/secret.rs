//! Secrets: values resolved at load time from the config text, a file, the environment or a
//! systemd credential, and never printed.
//!
//! A secret key in the config (`value`, `token`, `password`, `secret(s)`, `client_key`) is
//! either a literal or a reference:
//!
//! - `"file:/path"`: the file's contents minus one trailing newline. A relative path is
//!   resolved against the config file's directory. The file is watched for reload, and a
//!   file readable by group or others earns a warning (ntpd-rs does the same).
//! - `"env:NAME"`: the environment variable `NAME`.
//! - `"credential:NAME"`: the systemd credential `$CREDENTIALS_DIRECTORY/NAME`
//!   (`LoadCredential=`/`SetCredential=` in the unit).
//!
//! [`Secret`]'s `Debug` and `Display` print `<redacted SOURCE>`, so a secret can sit in a
//! `#[derive(Debug)]` struct or a log line without leaking; only [`Secret::expose`] gives
//! the value, and it should be called where the bytes go on the wire.

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where a secret's value came from (printed instead of the value).
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Written in the config file itself (or inline PEM for `client_key`).
    Literal,
    /// `file:/path` (or a plain path for `client_key`); the path as resolved.
    File(PathBuf),
    /// `env:NAME`.
    Env(String),
    /// `credential:NAME`.
    Credential(String),
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Literal => f.write_str("literal"),
            SecretSource::File(path) => write!(f, "file:{}", path.display()),
            SecretSource::Env(name) => write!(f, "env:{name}"),
            SecretSource::Credential(name) => write!(f, "credential:{name}"),
        }
    }
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A resolved secret value. Prints as `<redacted file:/etc/x>`, never as its value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    value: String,
    source: SecretSource,
}

impl Secret {
    /// A secret given in place (tests, the demo). Prints as `<redacted literal>`.
    pub fn literal(value: impl Into<String>) -> Self {
        Secret {
            value: value.into(),
            source: SecretSource::Literal,
        }
    }

    /// The value. Call it only where the bytes are used (signing, a request header).
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Where the value came from, safe to print.
    pub fn source(&self) -> &SecretSource {
        &self.source
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {}>", self.source)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {}>", self.source)
    }
}

/// How to read a reference that has no `file:`/`env:`/`credential:` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bare {
    /// As the literal value (`token = "abc"`).
    Literal,
    /// As a path to a PEM file, unless it is inline PEM (`-----BEGIN …`): `client_key`.
    PemPath,
}

/// Resolves secret references; the environment is injected so tests need not touch the
/// process environment.
pub(super) struct Resolver<'a> {
    /// Relative `file:` paths are resolved against this (the config file's directory).
    pub base_dir: &'a Path,
    pub env: &'a dyn Fn(&str) -> Option<OsString>,
}

/// A resolved secret plus what the loader must record about it.
#[derive(Debug)]
pub(super) struct Resolved {
    pub secret: Secret,
    /// A file to watch for reload.
    pub watch: Option<PathBuf>,
    /// A non-fatal finding, e.g. the file is readable by others.
    pub warning: Option<String>,
}

impl Resolver<'_> {
    /// Resolve `reference`. The error says which reference failed and why (never the value),
    /// and is meant to follow `key: `.
    pub(super) fn resolve(&self, reference: &str, bare: Bare) -> Result<Resolved, String> {
        if let Some(path) = reference.strip_prefix("file:") {
            return self.file(path, reference);
        }
        if let Some(name) = reference.strip_prefix("env:") {
            return self.env(name).map(plain);
        }
        if let Some(name) = reference.strip_prefix("credential:") {
            return self.credential(name).map(plain);
        }
        match bare {
            Bare::PemPath if !reference.trim_start().starts_with("-----BEGIN") => {
                self.file(reference, reference)
            }
            _ if reference.is_empty() => Err("is empty".to_owned()),
            _ => Ok(plain(Secret::literal(reference))),
        }
    }

    fn file(&self, path: &str, reference: &str) -> Result<Resolved, String> {
        if path.is_empty() {
            return Err(format!(
                "{reference:?} names no file: write file:/path/to/secret"
            ));
        }
        let path = self.base_dir.join(path);
        let shown = path.display();
        let mut file = std::fs::File::open(&path)
            .map_err(|err| format!("cannot open secret file {shown}: {err}"))?;
        let mode = file
            .metadata()
            .map_err(|err| format!("cannot stat secret file {shown}: {err}"))?
            .permissions()
            .mode();
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|err| match err.kind() {
                std::io::ErrorKind::InvalidData => {
                    format!("secret file {shown} is not valid UTF-8")
                }
                _ => format!("cannot read secret file {shown}: {err}"),
            })?;
        let value = trim_newline(text);
        if value.is_empty() {
            return Err(format!("secret file {shown} is empty"));
        }
        let warning = (mode & 0o044 != 0).then(|| {
            format!(
                "secret file {shown} is readable by group or others (mode {:04o}); \
                 restrict it with chmod 0600 (or 0640 owned by the service's group), \
                 or use credential:",
                mode & 0o7777
            )
        });
        Ok(Resolved {
            secret: Secret {
                value,
                source: SecretSource::File(path.clone()),
            },
            watch: Some(path),
            warning,
        })
    }

    fn env(&self, name: &str) -> Result<Secret, String> {
        if name.is_empty() {
            return Err("\"env:\" names no variable: write env:NAME".to_owned());
        }
        let value = (self.env)(name)
            .ok_or_else(|| format!("env:{name}: environment variable {name} is not set"))?
            .into_string()
            .map_err(|_| format!("env:{name}: environment variable {name} is not valid UTF-8"))?;
        if value.is_empty() {
            return Err(format!("env:{name}: environment variable {name} is empty"));
        }
        Ok(Secret {
            value,
            source: SecretSource::Env(name.to_owned()),
        })
    }

    fn credential(&self, name: &str) -> Result<Secret, String> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(format!(
                "credential:{name}: not a credential name (one path component, as in LoadCredential=NAME:…)"
            ));
        }
        let dir = (self.env)("CREDENTIALS_DIRECTORY").ok_or_else(|| {
            format!(
                "credential:{name}: $CREDENTIALS_DIRECTORY is not set; credentials are passed by \
                 systemd (LoadCredential={name}:/path in the unit), outside systemd use file: or env:"
            )
        })?;
        let path = PathBuf::from(dir).join(name);
        let text = std::fs::read_to_string(&path)
            .map_err(|err| format!("credential:{name}: cannot read {}: {err}", path.display()))?;
        let value = trim_newline(text);
        if value.is_empty() {
            return Err(format!("credential:{name}: {} is empty", path.display()));
        }
        Ok(Secret {
            value,
            source: SecretSource::Credential(name.to_owned()),
        })
    }
}

fn plain(secret: Secret) -> Resolved {
    Resolved {
        secret,
        watch: None,
        warning: None,
    }
}

/// Drop one trailing `\n` (or `\r\n`): editors add one, `echo` too.
fn trim_newline(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn write(dir: &Path, name: &str, contents: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn with_env<T>(
        base_dir: &Path,
        vars: &[(&str, &str)],
        f: impl FnOnce(&Resolver<'_>) -> T,
    ) -> T {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        let env = move |name: &str| vars.get(name).cloned();
        f(&Resolver {
            base_dir,
            env: &env,
        })
    }

    #[test]
    fn literal() {
        let r = with_env(Path::new("/"), &[], |r| {
            r.resolve("hunter2", Bare::Literal).unwrap()
        });
        assert_eq!(r.secret.expose(), "hunter2");
        assert_eq!(r.secret.source(), &SecretSource::Literal);
        assert!(r.watch.is_none() && r.warning.is_none());
        let err = with_env(Path::new("/"), &[], |r| r.resolve("", Bare::Literal)).unwrap_err();
        assert!(err.contains("empty"), "{err}");
    }

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::literal("hunter2");
        assert_eq!(format!("{s:?}"), "<redacted literal>");
        assert_eq!(s.to_string(), "<redacted literal>");
        assert_eq!(format!("{:?}", Some(&s)), "Some(<redacted literal>)");
        let f = Secret {
            value: "hunter2".into(),
            source: SecretSource::File("/etc/x".into()),
        };
        assert_eq!(format!("{f:?}"), "<redacted file:/etc/x>");
        let e = Secret {
            value: "hunter2".into(),
            source: SecretSource::Env("TOKEN".into()),
        };
        assert_eq!(e.to_string(), "<redacted env:TOKEN>");
        let c = Secret {
            value: "hunter2".into(),
            source: SecretSource::Credential("spark".into()),
        };
        assert_eq!(format!("{c:#?}"), "<redacted credential:spark>");
    }

    #[test]
    fn file_trims_one_newline_and_is_watched() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "key", "s3cret\n\n", 0o600);
        let r = with_env(dir.path(), &[], |r| {
            r.resolve(&format!("file:{}", path.display()), Bare::Literal)
                .unwrap()
        });
        assert_eq!(r.secret.expose(), "s3cret\n");
        assert_eq!(r.secret.source(), &SecretSource::File(path.clone()));
        assert_eq!(r.watch.as_deref(), Some(path.as_path()));
        assert!(r.warning.is_none(), "{:?}", r.warning);

        write(dir.path(), "crlf", "abc\r\n", 0o600);
        write(dir.path(), "none", "abc", 0o600);
        for name in ["crlf", "none"] {
            let r = with_env(dir.path(), &[], |r| {
                r.resolve(&format!("file:{name}"), Bare::Literal).unwrap()
            });
            assert_eq!(r.secret.expose(), "abc", "{name}");
        }
    }

    #[test]
    fn relative_file_is_resolved_against_base_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        let path = write(&dir.path().join("keys"), "spark", "k", 0o600);
        let r = with_env(dir.path(), &[], |r| {
            r.resolve("file:keys/spark", Bare::Literal).unwrap()
        });
        assert_eq!(r.watch, Some(path));
    }

    #[test]
    fn readable_file_warns_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604] {
            let path = write(dir.path(), "key", "k", mode);
            let r = with_env(dir.path(), &[], |r| {
                r.resolve("file:key", Bare::Literal).unwrap()
            });
            let warning = r.warning.expect("warning");
            assert!(warning.contains(&path.display().to_string()), "{warning}");
            assert!(warning.contains(&format!("{mode:04o}")), "{warning}");
        }
    }

    #[test]
    fn file_errors_name_the_path_and_cause() {
        let dir = tempfile::tempdir().unwrap();
        let err = with_env(dir.path(), &[], |r| {
            r.resolve("file:missing", Bare::Literal)
        })
        .unwrap_err();
        assert!(
            err.contains(&dir.path().join("missing").display().to_string()),
            "{err}"
        );
        assert!(err.contains("No such file"), "{err}");

        write(dir.path(), "empty", "\n", 0o600);
        let err =
            with_env(dir.path(), &[], |r| r.resolve("file:empty", Bare::Literal)).unwrap_err();
        assert!(err.contains("empty"), "{err}");

        std::fs::write(dir.path().join("bin"), [0xff, 0xfe]).unwrap();
        let err = with_env(dir.path(), &[], |r| r.resolve("file:bin", Bare::Literal)).unwrap_err();
        assert!(err.contains("UTF-8"), "{err}");

        let err = with_env(dir.path(), &[], |r| r.resolve("file:", Bare::Literal)).unwrap_err();
        assert!(err.contains("names no file"), "{err}");
    }

    #[test]
    fn env_references() {
        let base = Path::new("/");
        let r = with_env(base, &[("TOKEN", "abc")], |r| {
            r.resolve("env:TOKEN", Bare::Literal).unwrap()
        });
        assert_eq!(r.secret.expose(), "abc");
        assert_eq!(r.secret.source(), &SecretSource::Env("TOKEN".into()));
        assert!(r.watch.is_none());

        let err = with_env(base, &[], |r| r.resolve("env:TOKEN", Bare::Literal)).unwrap_err();
        assert!(err.contains("TOKEN is not set"), "{err}");
        let err = with_env(base, &[("TOKEN", "")], |r| {
            r.resolve("env:TOKEN", Bare::Literal)
        })
        .unwrap_err();
        assert!(err.contains("empty"), "{err}");
        let err = with_env(base, &[], |r| r.resolve("env:", Bare::Literal)).unwrap_err();
        assert!(err.contains("env:NAME"), "{err}");
    }

    #[test]
    fn credential_references() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "spark", "from-systemd\n", 0o400);
        let creds = dir.path().to_str().unwrap();
        let r = with_env(Path::new("/"), &[("CREDENTIALS_DIRECTORY", creds)], |r| {
            r.resolve("credential:spark", Bare::Literal).unwrap()
        });
        assert_eq!(r.secret.expose(), "from-systemd");
        assert_eq!(r.secret.source(), &SecretSource::Credential("spark".into()));

        let err = with_env(Path::new("/"), &[], |r| {
            r.resolve("credential:spark", Bare::Literal)
        })
        .unwrap_err();
        assert!(err.contains("$CREDENTIALS_DIRECTORY is not set"), "{err}");

        let err = with_env(Path::new("/"), &[("CREDENTIALS_DIRECTORY", creds)], |r| {
            r.resolve("credential:other", Bare::Literal)
        })
        .unwrap_err();
        assert!(
            err.contains("credential:other") && err.contains("No such file"),
            "{err}"
        );

        for bad in ["credential:", "credential:../x", "credential:a/b"] {
            let err = with_env(Path::new("/"), &[("CREDENTIALS_DIRECTORY", creds)], |r| {
                r.resolve(bad, Bare::Literal)
            })
            .unwrap_err();
            assert!(err.contains("not a credential name"), "{bad}: {err}");
        }
    }

    #[test]
    fn pem_path_or_inline() {
        let dir = tempfile::tempdir().unwrap();
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQ==\n-----END PRIVATE KEY-----\n";
        let path = write(dir.path(), "client.key", pem, 0o600);
        let r = with_env(dir.path(), &[], |r| {
            r.resolve("client.key", Bare::PemPath).unwrap()
        });
        assert_eq!(r.secret.expose(), pem.trim_end_matches('\n'));
        assert_eq!(r.watch, Some(path));
        let r = with_env(dir.path(), &[], |r| r.resolve(pem, Bare::PemPath).unwrap());
        assert_eq!(r.secret.expose(), pem);
        assert_eq!(r.secret.source(), &SecretSource::Literal);
        assert!(r.watch.is_none());
        // A plain literal secret is never mistaken for a path.
        let r = with_env(dir.path(), &[], |r| {
            r.resolve("client.key", Bare::Literal).unwrap()
        });
        assert_eq!(r.secret.expose(), "client.key");
    }
}
