//! Disk full, for real (SPEC §6): the state dir is a small tmpfs that the queue itself
//! fills. Ingest answers 503 naming the cause, health says so, the daemon keeps running,
//! nothing accepted is lost (not even through a checkpoint that fails for lack of space),
//! and once space returns it accepts again by itself. Needs root (or CAP_SYS_ADMIN) to
//! mount; skipped with a note otherwise.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::util::{event, tools, Builder, ENDPOINTS};

/// A tmpfs mounted on a temp dir; unmounted (lazily, in case the daemon still holds
/// files) and removed on drop.
pub(super) struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    pub(super) fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::Builder::new()
            .prefix("edgehook-tmpfs-")
            .tempdir()
            .expect("creating a mount point");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => {
                let why = format!(
                    "cannot mount a tmpfs ({}; it needs root)",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                tools::missing("the disk-full test", &why);
                None
            }
            Err(e) => {
                tools::missing("the disk-full test", &format!("cannot run mount ({e})"));
                None
            }
        }
    }

    pub(super) fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Write `bytes` of zeros to `path` (space the test can give back later).
fn ballast(path: &Path, bytes: usize) {
    let mut f = File::create(path).expect("creating the ballast file");
    f.write_all(&vec![0u8; bytes])
        .expect("writing the ballast file");
    f.sync_all().unwrap();
}

#[test]
fn disk_full_is_503_loses_nothing_and_recovers_by_itself() {
    let Some(fs) = Tmpfs::mount("6m") else {
        return;
    };
    // Room the test gives back once the queue has filled the rest. The queue gets about
    // 2.5 MiB: its WAL stays under SQLite's auto-checkpoint (1000 pages), and the room
    // given back is more than the WAL, which the next checkpoint copies into queue.db.
    let ballast_path = fs.path().join("ballast");
    ballast(&ballast_path, 3584 << 10);
    let mut d = Builder::new()
        .state_dir(fs.path())
        // No reserve: this test is about the disk really filling (`drain.rs` is the reserve's).
        .toml("[queue]\ndurability = \"full\"\nreserve = 0")
        .toml(ENDPOINTS)
        .start();
    let before = super::accept_some(&d, "pre", 20);

    // The queue grows until the file system is full: 100 KB events, each a commit.
    let big = format!("\"{}\"", "x".repeat(100_000));
    let mut accepted = Vec::new();
    let full = (0..200)
        .map(|i| {
            let id = format!("big-{i}");
            let r = d.post_event(&event("Test.big", &id, &big));
            if r.status == 202 {
                accepted.push(id);
            }
            r
        })
        .find(|r| r.status != 202)
        .expect("a 6 MiB file system fills up within 200 events of 100 KB");
    assert!(!accepted.is_empty(), "some big events fit first");
    assert_eq!(full.status, 503, "{full:?}");
    assert_eq!(full.code(), "unavailable");
    assert!(full.message().contains("disk full"), "{}", full.message());
    assert!(full.header("retry-after").is_some(), "{full:?}");

    let h = d.health();
    assert_eq!(h.status, 503, "{h:?}");
    assert!(
        h.json["reason"]
            .as_str()
            .unwrap_or("")
            .contains("disk full"),
        "{h:?}"
    );
    // Still full a moment later (the probe write fails too), and still alive.
    for i in 0..3 {
        let r = d.post_event(&event("Test.big", &format!("refused-{i}"), &big));
        assert_eq!(r.status, 503, "{r:?}");
    }
    super::intact(&d, &before);
    for id in &accepted {
        assert_eq!(
            d.events_with_id(id),
            1,
            "{id} was accepted and must be kept"
        );
    }

    // Space returns: health and ingest recover without anyone touching the daemon.
    std::fs::remove_file(&ballast_path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = d.health();
        if h.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "health did not recover within 10 s of space returning: {h:?}; stderr:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = d.post_event(&event("Test.big", "after-space", &big));
    assert_eq!(r.status, 202, "{r:?}");
    super::served(&d, "after-normal");
    for i in 0..3 {
        assert_eq!(
            d.events_with_id(&format!("refused-{i}")),
            0,
            "503 means not stored"
        );
    }

    // A clean stop checkpoints the WAL into queue.db; with this little room it may fail,
    // which must lose nothing: the next start reads the WAL.
    d.stop();
    d.restart();
    super::intact(&d, &before);
    for id in accepted.iter().chain([&"after-space".to_string()]) {
        assert_eq!(d.events_with_id(id), 1, "{id} survives the restart");
    }
    let log = d.log();
    assert!(!log.contains("panicked"), "no panic:\n{log}");
    assert!(log.contains("Queue storage works again"), "{log}");
}
