//! A real terminal for the tests of terminal output (`edgehook top`, progress bars): a
//! tmux server of the test's own running one 80×24 pane (an ssh session's size), read with
//! `capture-pane` and typed into with `send-keys`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Longest the test waits for something to appear on the screen.
const SCREEN_WAIT: Duration = Duration::from_secs(20);

/// A tmux server of the test's own (its socket in the daemon's temp dir), with one 80×24
/// window; killed on drop.
pub struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// `None` (with a note) when tmux is missing outside CI; CI must have it (`.ci/run`).
    pub fn start(dir: &Path, shell_command: &str) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "tmux is required in CI (.ci/run installs it)"
            );
            eprintln!("note: tmux not found; skipping this terminal test");
            return None;
        }
        // A fresh server socket per start: a killed server may still hold the last one.
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, Ordering::Relaxed);
        let tmux = Tmux {
            socket: dir.join(format!("tmux-{n}.sock")),
        };
        tmux.run(&[
            "new-session",
            "-d",
            "-x",
            "80",
            "-y",
            "24",
            "sh",
            "-c",
            shell_command,
        ]);
        Some(tmux)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("running tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p"]).stdout).into_owned()
    }

    pub fn keys(&self, keys: &str) {
        self.run(&["send-keys", keys]);
    }

    /// Whether the pane shows the alternate screen (a full-screen program is drawing).
    pub fn alternate_screen(&self) -> bool {
        let out = self.run(&["display-message", "-p", "#{alternate_on}"]);
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }

    /// Wait until `cond` holds for the screen; return that screen.
    pub fn wait_screen(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SCREEN_WAIT;
        loop {
            let screen = self.screen();
            if cond(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} on the screen within {SCREEN_WAIT:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}
