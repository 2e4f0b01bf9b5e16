//! Delivery outcome lines in a real journal (SPEC §9, §12): a private `systemd-journald`
//! runs in a mount namespace of its own whose `/run` is a directory of the test, the
//! daemon joins that namespace (`nsenter`) with `log_format = "journald"`, and the test
//! filters the journal file with `journalctl --file … STATUS=503`, as the README shows.
//! Needs root (mount namespaces), util-linux and systemd; CI has them (`.ci/run`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::delivery::{Endpoint, Upstream};
use crate::util::{event, Builder};

const JOURNALD: [&str; 2] = [
    "/usr/lib/systemd/systemd-journald",
    "/lib/systemd/systemd-journald",
];
/// Longest the journal may take to show a line.
const WAIT: Duration = Duration::from_secs(15);

/// A journald whose `/run` is `run` (its journal in `run/log/journal/`); killed on drop.
struct Journald {
    child: Child,
    run: PathBuf,
}

impl Journald {
    /// `None` (with a note) where it cannot run outside CI; in CI that is a failure.
    fn start(run: &Path) -> Option<Journald> {
        let binary = JOURNALD.iter().find(|p| Path::new(p).exists());
        let usable = nix::unistd::geteuid().is_root()
            && binary.is_some()
            && Command::new("journalctl").arg("--version").output().is_ok()
            && Command::new("unshare").arg("--version").output().is_ok();
        if !usable {
            assert!(
                std::env::var_os("CI").is_none(),
                "the journal test needs root, systemd-journald, journalctl and unshare in CI"
            );
            eprintln!("note: not root or no systemd-journald/unshare; skipping the journal test");
            return None;
        }
        let conf = run.join("systemd/journald.conf.d");
        std::fs::create_dir_all(&conf).unwrap();
        // Sorted last among the drop-ins: the journal stays in our /run, nothing is
        // rate-limited.
        std::fs::write(
            conf.join("zz-edgehook-test.conf"),
            "[Journal]\nStorage=volatile\nRateLimitIntervalSec=0\n",
        )
        .unwrap();
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg("mount --bind \"$0\" /run && exec \"$1\"")
            .arg(run)
            .arg(binary.unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting systemd-journald");
        let journald = Journald {
            child,
            run: run.to_path_buf(),
        };
        let socket = run.join("systemd/journal/socket");
        let deadline = Instant::now() + WAIT;
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "journald did not create {}",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(journald)
    }

    /// Argv prefix that runs a program in journald's mount namespace.
    fn nsenter(&self) -> Vec<String> {
        ["nsenter", "-t", &self.child.id().to_string(), "-m", "--"]
            .map(String::from)
            .to_vec()
    }

    /// `journalctl --file JOURNAL -o json MATCHES…`, one JSON object per entry.
    fn entries(&self, matches: &[&str]) -> Vec<serde_json::Value> {
        let mut cmd = Command::new("journalctl");
        for file in journal_files(&self.run.join("log/journal")) {
            cmd.arg("--file").arg(file);
        }
        let out = cmd
            .args(["--no-pager", "-o", "json"])
            .args(matches)
            .output()
            .expect("running journalctl");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every `*.journal` below `dir` (journald puts them in a directory per machine id).
fn journal_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(journal_files(&path));
        } else if path.extension().is_some_and(|e| e == "journal") {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_503_retry_is_found_with_journalctl_status_503() {
    let up = Upstream::start();
    up.receiver.push_responses(&[(503, &[])]).unwrap();
    let b = Builder::new();
    let Some(journald) = Journald::start(&b.dir().join("run")) else {
        return;
    };
    let ca = up.write_ca(b.dir());
    let wrapper = journald.nsenter();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let d = b
        .daemon("log_format = \"journald\"")
        .toml(&Endpoint::new("spark", &up.url("/hook"), &ca).toml())
        .wrap(&wrapper)
        .start();
    assert_eq!(
        d.post_event(&event("Test.journal", "jrnl-1", "{}")).status,
        202
    );
    up.wait_for(2);

    // The README's filter: journalctl -u edgehook STATUS=503 (here on the journal file).
    let deadline = Instant::now() + WAIT;
    let entry = loop {
        let found = journald.entries(&["STATUS=503", "ENDPOINT=spark"]);
        if let Some(e) = found.into_iter().find(|e| e["EVENT_ID"] == "jrnl-1") {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no STATUS=503 entry for jrnl-1 in the journal; edgehook stderr:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(entry["ATTEMPT"], "1", "{entry:#}");
    assert_eq!(entry["SYSLOG_IDENTIFIER"], "edgehook", "{entry:#}");
    assert_eq!(entry["PRIORITY"], "4", "a warning: {entry:#}");
    assert_eq!(
        entry["MESSAGE"], "Delivery failed, will retry.",
        "{entry:#}"
    );
    // A filter for a status that never came finds nothing.
    assert!(journald
        .entries(&["ENDPOINT=spark", "STATUS=500"])
        .is_empty());
}
