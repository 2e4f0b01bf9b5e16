//! Reload triggers turned into one message: changes on disk to the config file or to a
//! file it references (watched with `notify`, debounced), and `SIGHUP`. The admin
//! socket's `reload` sends the same [`Reload`] with a reply channel.
//!
//! Directories are watched, not files, so atomic-rename editors, `mv` over the file, and
//! delete-then-create are all seen; events for other files in those directories are
//! ignored.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

/// Quiet time after the last file event before reloading: editors write in bursts.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// Why a reload was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    File,
    Signal,
    Admin,
}

/// A request to reload; `reply` gets the outcome when someone waits for it.
#[derive(Debug)]
pub struct Reload {
    pub trigger: Trigger,
    pub reply: Option<oneshot::Sender<Result<String, String>>>,
}

/// Watches `files` (by their directories) until dropped; changes send a [`Reload`].
///
/// Dropping it stops the watch but not a pending debounce: a change seen in the last
/// [`DEBOUNCE`] still sends its [`Reload`] (at once, as the watcher's channel closes).
/// The daemon replaces its watch after every reload; a change made while that reload ran
/// must not be forgotten with the old watch.
pub struct FileWatch {
    _watcher: RecommendedWatcher,
}

impl FileWatch {
    pub fn start(files: &[PathBuf], tx: mpsc::Sender<Reload>) -> anyhow::Result<FileWatch> {
        let mut by_dir: HashMap<PathBuf, HashSet<std::ffi::OsString>> = HashMap::new();
        for file in files {
            let dir = file
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            if let Some(name) = file.file_name() {
                by_dir.entry(dir).or_default().insert(name.to_os_string());
            }
        }
        let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<()>();
        let wanted = by_dir.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                let relevant = event.paths.iter().any(|p| {
                    let (Some(dir), Some(name)) = (p.parent(), p.file_name()) else {
                        return false;
                    };
                    wanted.get(dir).is_some_and(|names| names.contains(name))
                });
                if relevant && !matches!(event.kind, notify::EventKind::Access(_)) {
                    let _ = raw_tx.send(());
                }
            })?;
        for dir in by_dir.keys() {
            if let Err(err) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                warn!(dir = %dir.display(), error = %err, "Cannot watch for config changes; SIGHUP and `edgehook reload` still work.");
            }
        }
        // Ends by itself once the watcher (holding `raw_tx`) is dropped.
        tokio::spawn(async move {
            while raw_rx.recv().await.is_some() {
                while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, raw_rx.recv()).await {}
                debug!("Config or secret file changed on disk.");
                if tx
                    .send(Reload {
                        trigger: Trigger::File,
                        reply: None,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Ok(FileWatch { _watcher: watcher })
    }
}

/// Forward every `SIGHUP` as a [`Reload`] until the receiver is gone.
pub fn forward_sighup(tx: mpsc::Sender<Reload>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            if tx
                .send(Reload {
                    trigger: Trigger::Signal,
                    reply: None,
                })
                .await
                .is_err()
            {
                return;
            }
        }
    }))
}
