//! What `run` checks before it binds anything, beyond the config file itself: groups
//! exist, the state directory and the socket directories can be created and written,
//! every endpoint's TLS client and signer can be built (certificates readable and usable).
//! Secrets are resolved by `config::load` already.
//!
//! `edgehook check-config` runs [`check`] too, so it approves exactly what `run` accepts
//! and says the same words when it does not. Every problem is reported at once, one per
//! line, like the config file's own errors.

use std::path::Path;

use anyhow::Context;
use nix::unistd::{AccessFlags, Gid};

use crate::config::Config;
use crate::deliver;

/// Every problem `run` would meet before binding, one line each; `Ok` when none.
pub fn check(config: &Config) -> anyhow::Result<()> {
    let d = &config.daemon;
    let i = &config.ingest;
    let mut problems = Vec::new();
    let groups = [
        (&i.socket_group, "ingest.socket_group"),
        (&d.admin_group, "daemon.admin_group"),
        (&d.state_group, "daemon.state_group"),
    ];
    for (name, key) in groups {
        if let Some(Err(err)) = name.as_deref().map(|n| group(n, key)) {
            problems.push(format!("{err:#}"));
        }
    }
    problems.extend(creatable(&d.state_dir, "daemon.state_dir"));
    let mut sockets = vec![
        (&i.socket, "ingest.socket"),
        (&d.admin_socket, "daemon.admin_socket"),
    ];
    if let Some(lines) = &i.lines_socket {
        sockets.push((lines, "ingest.lines_socket"));
    }
    for (path, key) in sockets {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            problems.extend(creatable(dir, &format!("the directory of {key}")));
        }
    }
    if let Err(err) = deliver::check(config) {
        problems.push(format!("{err:#}"));
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(anyhow::anyhow!(problems.join("\n"))),
    }
}

/// The id of group `name`, configured as `key`; the error says it does not exist.
pub fn group(name: &str, key: &str) -> anyhow::Result<Gid> {
    Ok(nix::unistd::Group::from_name(name)
        .with_context(|| format!("cannot look up group {name:?} ({key})"))?
        .with_context(|| {
            format!("group {name:?} ({key}) does not exist; create it or fix the config")
        })?
        .gid)
}

/// Why `dir` (configured as `what`) cannot be used as a writable directory: it is not a
/// directory or not writable, or it does not exist and its nearest existing ancestor
/// cannot get a new directory. `None` when it can.
fn creatable(dir: &Path, what: &str) -> Option<String> {
    let shown = dir.display();
    let writable = |p: &Path| nix::unistd::access(p, AccessFlags::W_OK | AccessFlags::X_OK);
    if dir.exists() {
        return if !dir.is_dir() {
            Some(format!("{what} {shown} is not a directory"))
        } else {
            writable(dir)
                .err()
                .map(|e| format!("{what} {shown} is not writable by this user ({e})"))
        };
    }
    let ancestor = dir.ancestors().skip(1).find(|a| a.exists())?;
    let at = ancestor.display();
    if !ancestor.is_dir() {
        return Some(format!(
            "cannot create {what} {shown}: {at} is not a directory"
        ));
    }
    writable(ancestor)
        .err()
        .map(|e| format!("cannot create {what} {shown}: {at} is not writable by this user ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_under_a_file_cannot_be_created() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let problem = creatable(&file.join("state"), "daemon.state_dir").unwrap();
        assert!(problem.contains("is not a directory"), "{problem}");
        assert!(creatable(&file, "daemon.state_dir")
            .unwrap()
            .contains("is not a directory"));
        assert_eq!(creatable(&dir.path().join("a/b"), "daemon.state_dir"), None);
        assert_eq!(creatable(dir.path(), "daemon.state_dir"), None);
    }

    #[test]
    fn a_missing_group_is_named_with_its_key() {
        let err = group("edgehook-no-such-group", "daemon.state_group").unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "group \"edgehook-no-such-group\" (daemon.state_group) does not exist; create it or fix the config"
        );
        assert!(group("root", "daemon.state_group").is_ok());
    }
}
