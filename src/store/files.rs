//! The queue's files are private (SPEC §12): event payloads can be personal data.
//!
//! `daemon.state_dir` is created `0700` and `queue.db`, `queue.db-wal` and `queue.db-shm`
//! are `0600`, whatever the umask; with `daemon.state_group` set, `0750` and `0640` and
//! owned by that group (for backup or monitoring users). Modes are set explicitly, not
//! left to the umask: `edgehook run` started by hand under umask 022 would otherwise
//! leave a world-readable queue. Existing files or a directory with looser modes are
//! tightened at start, with a warning naming the file and both modes.
//!
//! `queue.db` is created here, with its mode, before SQLite opens it; SQLite gives the
//! `-wal` and `-shm` files it creates later the database file's mode, and [`open`] sets
//! them once more after opening in case the umask narrowed them.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use nix::unistd::Gid;
use tracing::warn;

use super::Store;
use crate::config::Config;
use crate::preflight;

/// Modes without and with `daemon.state_group`.
const DIR_MODE: u32 = 0o700;
const DIR_MODE_GROUP: u32 = 0o750;
const FILE_MODE: u32 = 0o600;
const FILE_MODE_GROUP: u32 = 0o640;

/// Create or tighten the state directory and the queue files, then open the queue.
pub fn open(config: &Config) -> anyhow::Result<Store> {
    let group = match &config.daemon.state_group {
        Some(name) => Some(preflight::group(name, "daemon.state_group")?),
        None => None,
    };
    let (dir_mode, file_mode) = match group {
        Some(_) => (DIR_MODE_GROUP, FILE_MODE_GROUP),
        None => (DIR_MODE, FILE_MODE),
    };
    let dir = &config.daemon.state_dir;
    if !dir.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(dir_mode)
            .create(dir)
            .with_context(|| format!("cannot create daemon.state_dir {}", dir.display()))?;
    }
    secure(dir, dir_mode, group, "daemon.state_dir");
    let db = config.queue_db();
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(file_mode)
        .open(&db)
        .with_context(|| format!("cannot create queue database {}", db.display()))?;
    for file in queue_files(&db) {
        secure(&file, file_mode, group, "queue file");
    }
    let store = Store::open(&db, &config.queue)?;
    for file in queue_files(&db) {
        secure(&file, file_mode, group, "queue file");
    }
    Ok(store)
}

/// `queue.db` and the `-wal`/`-shm` files beside it that exist now.
fn queue_files(db: &Path) -> Vec<PathBuf> {
    let mut files = vec![db.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        files.push(PathBuf::from(name));
    }
    files.into_iter().filter(|f| f.exists()).collect()
}

/// Give `path` exactly `mode` (and `group`, if set); warn when that took bits away
/// that others could use. Failing (a directory that is not ours) is a warning, not a
/// reason to stop: the queue still works, and the operator learns what to fix.
fn secure(path: &Path, mode: u32, group: Option<Gid>, what: &str) {
    let shown = path.display();
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if let Some(gid) = group.filter(|g| g.as_raw() != meta.gid()) {
        if let Err(err) = nix::unistd::chown(path, None, Some(gid)) {
            warn!(path = %shown, error = %err, "Cannot give the {what} to daemon.state_group.");
        }
    }
    let old = meta.mode() & 0o7777;
    if old == mode {
        return;
    }
    if let Err(err) = std::fs::set_permissions(path, Permissions::from_mode(mode)) {
        warn!(path = %shown, mode = format_args!("{old:04o}"), error = %err,
            "Cannot set the {what}'s mode to {mode:04o}; fix it by hand.");
    } else if old & !mode != 0 {
        warn!(path = %shown, old = format_args!("{old:04o}"), new = format_args!("{mode:04o}"),
            "The {what} was open to more users than it should be; tightened its mode.");
    }
}
