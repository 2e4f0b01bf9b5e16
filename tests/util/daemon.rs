//! [`TestDaemon`]: the real `edgehook run` in its own temp dir, ready when it says so.
//!
//! The temp dir holds the config, the sockets, the state dir (`state/queue.db`), the
//! daemon's stderr (`edgehook.log`) and the `NOTIFY_SOCKET` datagram socket the test binds
//! to learn `READY=1` exactly when the daemon is ready, the way systemd does.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rusqlite::{Connection, OpenFlags};
use tempfile::TempDir;

use super::client::{self, Reply};

/// Longest a daemon may take to become ready or to exit before the test fails.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a wait re-checks whether the child exited (while no datagram arrives).
const POLL: Duration = Duration::from_millis(20);

/// Configures a [`TestDaemon`] before it starts. The temp dir exists from [`Builder::new`]
/// on, so a test can prepare files in it (a stale socket) first.
pub struct Builder {
    dir: TempDir,
    socket: PathBuf,
    state_dir: PathBuf,
    lines: bool,
    daemon: Vec<String>,
    ingest: Vec<String>,
    extra: String,
    wrapper: Vec<OsString>,
    relative_config: bool,
    env: Vec<(OsString, OsString)>,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    pub fn new() -> Builder {
        let dir = tempfile::Builder::new()
            .prefix("edgehook-test-")
            .tempdir()
            .expect("creating a temp dir");
        let socket = dir.path().join("edgehook.sock");
        let state_dir = dir.path().join("state");
        Builder {
            dir,
            socket,
            state_dir,
            lines: false,
            daemon: Vec::new(),
            ingest: Vec::new(),
            extra: String::new(),
            wrapper: Vec::new(),
            relative_config: false,
            env: Vec::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `ingest.socket` the daemon will use.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// Use another `ingest.socket` (e.g. one a running daemon holds).
    pub fn socket(mut self, path: &Path) -> Self {
        self.socket = path.to_path_buf();
        self
    }

    /// Use another `daemon.state_dir` than `state` in the temp dir (e.g. a small file
    /// system mounted for the test).
    pub fn state_dir(mut self, path: &Path) -> Self {
        self.state_dir = path.to_path_buf();
        self
    }

    /// Also listen on `ingest.lines_socket` (`lines.sock` in the temp dir).
    pub fn lines_socket(mut self) -> Self {
        self.lines = true;
        self
    }

    /// Add `key = value` lines to the `[daemon]` table (e.g. `metrics_listen`).
    pub fn daemon(mut self, lines: &str) -> Self {
        self.daemon.push(lines.to_string());
        self
    }

    /// Add `key = value` lines to the `[ingest]` table.
    pub fn ingest(mut self, lines: &str) -> Self {
        self.ingest.push(lines.to_string());
        self
    }

    /// Append TOML after the `[daemon]` and `[ingest]` tables (`[queue]`, `[[endpoint]]`).
    pub fn toml(mut self, extra: &str) -> Self {
        self.extra.push_str(extra);
        self.extra.push('\n');
        self
    }

    /// Start the daemon in its temp dir with `--config edgehook.toml` (a relative path).
    pub fn relative_config(mut self) -> Self {
        self.relative_config = true;
        self
    }

    /// Run the daemon under `program args…`: the daemon is its child (strace) or the
    /// program execs it (env, systemd-socket-activate).
    pub fn wrap(mut self, argv: &[&str]) -> Self {
        self.wrapper = argv.iter().map(OsString::from).collect();
        self
    }

    /// Set these variables for every run of the daemon (e.g. a [`super::clock::FakeClock`]'s).
    pub fn env(mut self, vars: Vec<(OsString, OsString)>) -> Self {
        self.env.extend(vars);
        self
    }

    fn config_text(&self) -> String {
        let dir = self.dir.path();
        let mut text = format!(
            "[daemon]\nstate_dir = {:?}\nadmin_socket = {:?}\n{}\n[ingest]\nsocket = {:?}\n",
            self.state_dir,
            dir.join("admin.sock"),
            self.daemon.join("\n"),
            self.socket,
        );
        if self.lines {
            text.push_str(&format!("lines_socket = {:?}\n", dir.join("lines.sock")));
        }
        for lines in &self.ingest {
            text.push_str(lines);
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&self.extra);
        text
    }

    /// Write the config file now (`start` writes it again) and return its path, e.g. to
    /// run `check-config` on exactly what `run` will get.
    pub fn write_config(&self) -> PathBuf {
        let config = self.dir.path().join("edgehook.toml");
        std::fs::write(&config, self.config_text()).expect("writing the config");
        config
    }

    fn into_daemon(self) -> TestDaemon {
        let config = self.write_config();
        let notify_path = self.dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).expect("binding NOTIFY_SOCKET");
        let lines_socket = self.lines.then(|| self.dir.path().join("lines.sock"));
        TestDaemon {
            log: self.dir.path().join("edgehook.log"),
            state_dir: self.state_dir,
            dir: self.dir,
            config,
            socket: self.socket,
            lines_socket,
            notify,
            notify_path,
            wrapper: self.wrapper,
            relative_config: self.relative_config,
            env: self.env,
            child: None,
            pid: None,
        }
    }

    /// Start the daemon and wait for `READY=1`.
    ///
    /// # Panics
    /// If it exits first or is not ready within 20 s; the message has its stderr.
    pub fn start(self) -> TestDaemon {
        let mut daemon = self.into_daemon();
        daemon.spawn();
        daemon.wait_ready();
        daemon
    }

    /// Start a daemon that is expected to fail: wait for its exit and return
    /// (exit code, stderr).
    ///
    /// # Panics
    /// If it reports `READY=1` instead, or does not exit within 20 s.
    pub fn start_expecting_exit(self) -> (i32, String) {
        self.into_daemon().restart_expecting_exit()
    }
}

/// A running `edgehook run` in its own temp dir. Dropping it kills the daemon (SIGKILL)
/// and removes the temp dir.
pub struct TestDaemon {
    dir: TempDir,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub lines_socket: Option<PathBuf>,
    pub state_dir: PathBuf,
    log: PathBuf,
    notify: UnixDatagram,
    notify_path: PathBuf,
    wrapper: Vec<OsString>,
    /// Started from its temp dir with `--config edgehook.toml`.
    relative_config: bool,
    env: Vec<(OsString, OsString)>,
    child: Option<Child>,
    /// The daemon's own pid (differs from the child's under a wrapper).
    pid: Option<Pid>,
}

impl TestDaemon {
    /// A daemon with the two standard [`super::ENDPOINTS`].
    pub fn start() -> TestDaemon {
        Builder::new().toml(super::ENDPOINTS).start()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `ingest.socket` (also the public field, for closures that need an owned copy).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `ingest.lines_socket`, if configured.
    pub fn lines_socket(&self) -> Option<&Path> {
        self.lines_socket.as_deref()
    }

    /// Everything the daemon (all its runs) wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `POST path` with `content_type` and `body` over the ingest socket.
    ///
    /// # Panics
    /// On a connection error (the daemon is expected to be up).
    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Reply {
        self.request("POST", path, Some(content_type), body)
    }

    /// `POST /v1/events` of one JSON event.
    pub fn post_event(&self, json: &str) -> Reply {
        self.post("/v1/events", "application/json", json.as_bytes())
    }

    /// Any request over the ingest socket.
    ///
    /// # Panics
    /// On a connection error; the message has the daemon's stderr.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Reply {
        client::request(&self.socket, method, path, content_type, body).unwrap_or_else(|e| {
            panic!(
                "{method} {path} failed: {e}; edgehook stderr:\n{}",
                self.log()
            )
        })
    }

    /// `GET /v1/health`.
    pub fn health(&self) -> Reply {
        self.request("GET", "/v1/health", None, b"")
    }

    /// The queue database, opened read-only.
    pub fn db(&self) -> Connection {
        let path = self.state_dir.join("queue.db");
        Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
    }

    /// One integer from `sql` (e.g. a `COUNT(*)`) on the queue database.
    pub fn query_i64(&self, sql: &str, params: impl rusqlite::Params) -> i64 {
        self.db()
            .query_row(sql, params, |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Rows in `events` with this id.
    pub fn events_with_id(&self, id: &str) -> i64 {
        self.query_i64("SELECT COUNT(*) FROM events WHERE id = ?1", [id])
    }

    /// Delivery rows of the event(s) with this id, by endpoint name (sorted).
    pub fn delivery_endpoints(&self, id: &str) -> Vec<String> {
        let db = self.db();
        let mut stmt = db
            .prepare(
                "SELECT d.endpoint FROM deliveries d JOIN events e ON e.seq = d.event_seq
                 WHERE e.id = ?1 ORDER BY d.endpoint",
            )
            .expect("preparing the deliveries query");
        stmt.query_map([id], |r| r.get(0))
            .expect("querying deliveries")
            .collect::<Result<_, _>>()
            .expect("reading deliveries")
    }

    /// SIGKILL the daemon and reap it.
    pub fn kill9(&mut self) {
        self.signal(Signal::SIGKILL);
        let status = self.wait_exit();
        assert_eq!(
            status.code(),
            None,
            "expected death by SIGKILL, got {status}"
        );
    }

    /// SIGTERM the daemon; assert it exits 0 within 20 s.
    pub fn stop(&mut self) {
        self.signal(Signal::SIGTERM);
        let status = self.wait_exit();
        assert!(
            status.success(),
            "edgehook exited with {status} after SIGTERM; stderr:\n{}",
            self.log()
        );
    }

    /// Start the daemon again with the same temp dir and config; wait for `READY=1`.
    ///
    /// # Panics
    /// If it is still running.
    pub fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "restart() while the daemon is still running"
        );
        self.spawn();
        self.wait_ready();
    }

    /// The daemon's pid.
    ///
    /// # Panics
    /// If it is not running.
    pub fn pid(&self) -> i32 {
        self.pid.expect("the daemon is running").as_raw()
    }

    /// The daemon's resident memory (`VmRSS` of `/proc/PID/status`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("reading /proc/PID/status of the daemon");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Start the daemon again (as [`TestDaemon::restart`]) expecting it to refuse: wait
    /// for its exit and return (exit code, what this run wrote to stderr).
    ///
    /// # Panics
    /// If it is still running, reports `READY=1`, or does not exit within 20 s.
    pub fn restart_expecting_exit(&mut self) -> (i32, String) {
        assert!(
            self.child.is_none(),
            "restart_expecting_exit() while the daemon is still running"
        );
        let offset = self.log().len();
        self.spawn();
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            if let Some(status) = self.child_mut().try_wait().expect("try_wait") {
                self.child = None;
                let code = status
                    .code()
                    .unwrap_or_else(|| panic!("edgehook was killed: {status}"));
                return (code, self.log()[offset..].to_string());
            }
            if let Some(msg) = self.recv_notify(POLL) {
                assert!(
                    !msg.contains("READY=1"),
                    "edgehook became ready although it should have refused to start; stderr:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "edgehook did not exit within {EXIT_TIMEOUT:?}; stderr:\n{}",
                self.log()
            );
        }
    }

    /// Send `signal` to the daemon process itself.
    pub fn signal(&self, signal: Signal) {
        let pid = self.pid.expect("the daemon is running");
        kill(pid, signal).unwrap_or_else(|e| panic!("kill({pid}, {signal}): {e}"));
    }

    /// Wait for the child to exit (after a signal) and reap it.
    ///
    /// # Panics
    /// If it does not exit within 20 s.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            if let Some(status) = self.child_mut().try_wait().expect("try_wait") {
                self.child = None;
                self.pid = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "edgehook did not exit within {EXIT_TIMEOUT:?}; stderr:\n{}",
                self.log()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Wait for a notify datagram containing `needle` (e.g. `STOPPING=1`).
    ///
    /// # Panics
    /// If the daemon exits first, or none arrives within 20 s.
    pub fn wait_notify(&mut self, needle: &str) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(msg) = self.recv_notify(POLL) {
                if msg.contains(needle) {
                    return;
                }
            } else if let Some(status) = self.child_mut().try_wait().expect("try_wait") {
                self.child = None;
                self.pid = None;
                panic!(
                    "edgehook exited ({status}) before sending {needle}; stderr:\n{}",
                    self.log()
                );
            }
        }
        panic!(
            "no {needle} notification within {STARTUP_TIMEOUT:?}; stderr:\n{}",
            self.log()
        );
    }

    fn spawn(&mut self) {
        let (program, pre_args): (OsString, &[OsString]) = match self.wrapper.split_first() {
            Some((program, args)) => (program.clone(), args),
            None => (super::edgehook_bin(), &[]),
        };
        let mut cmd = Command::new(program);
        cmd.args(pre_args);
        if !self.wrapper.is_empty() {
            cmd.arg(super::edgehook_bin());
        }
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("opening the log file");
        let config = match self.relative_config {
            true => {
                cmd.current_dir(self.dir.path());
                Path::new("edgehook.toml")
            }
            false => self.config.as_path(),
        };
        cmd.arg("run")
            .arg("--config")
            .arg(config)
            .env_remove("EDGEHOOK_CONFIG")
            .env_remove("WATCHDOG_USEC")
            .env_remove("LISTEN_FDS")
            .env_remove("JOURNAL_STREAM")
            .env("NOTIFY_SOCKET", &self.notify_path)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stderr.try_clone().expect("dup of the log file"))
            .stderr(stderr);
        let child = cmd.spawn().expect("starting edgehook");
        self.child = Some(child);
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(msg) = self.recv_notify(POLL) {
                if msg.contains("READY=1") {
                    break;
                }
            }
            if let Some(status) = self.child_mut().try_wait().expect("try_wait") {
                self.child = None;
                panic!(
                    "edgehook exited ({status}) before READY=1; stderr:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "edgehook sent no READY=1 within {STARTUP_TIMEOUT:?}; stderr:\n{}",
                self.log()
            );
        }
        let child_pid = self.child_mut().id();
        self.pid = Some(if self.wrapper.is_empty() {
            Pid::from_raw(child_pid as i32)
        } else {
            // A wrapper that execs the daemon (env, systemd-socket-activate) is the daemon.
            child_of(child_pid).unwrap_or(Pid::from_raw(child_pid as i32))
        });
    }

    /// One datagram from the notify socket, or `None` after `timeout`.
    pub fn recv_notify(&self, timeout: Duration) -> Option<String> {
        self.notify
            .set_read_timeout(Some(timeout))
            .expect("set_read_timeout");
        let mut buf = [0u8; 4096];
        match self.notify.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
            Err(e) => panic!("reading NOTIFY_SOCKET: {e}"),
        }
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("the daemon was started")
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            let _ = kill(pid, Signal::SIGKILL);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The (first) process whose parent is `parent`, from `/proc/*/stat`.
fn child_of(parent: u32) -> Option<Pid> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the parenthesised command name: state, ppid, …
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            return Some(Pid::from_raw(pid));
        }
    }
    None
}
