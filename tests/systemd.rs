//! The daemon as systemd drives it (SPEC §9), without systemd as PID 1: sockets passed by
//! `systemd-socket-activate` (it binds them, waits for the first connection and then execs
//! edgehook with them, as a socket unit does), `WATCHDOG=1` on the `NOTIFY_SOCKET` the test
//! binds, and the log formats. `tests/systemd/run.sh` checks the same under a real systemd
//! in a container.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::client::{self, LineClient};
use crate::util::{event, Builder, Reply, TestDaemon, ENDPOINTS};

/// `WATCHDOG_USEC` for the tests: edgehook pings every half of it.
const WATCHDOG_USEC: &str = "WATCHDOG_USEC=400000";

/// Notify datagrams containing `needle` during `window`.
fn count_notify(d: &TestDaemon, needle: &str, window: Duration) -> usize {
    let end = Instant::now() + window;
    let mut n = 0;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        if let Some(msg) = d.recv_notify(left.max(Duration::from_millis(1))) {
            n += usize::from(msg.contains(needle));
        }
    }
    n
}

/// How long a client retries while the socket file does not exist yet.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Connect to `socket` as soon as it exists (the wrapper binds it after the test spawned
/// it) and run `f` on the first connection that succeeds, in a thread.
fn first_client<T: Send + 'static>(
    socket: &Path,
    f: impl Fn(&Path) -> std::io::Result<T> + Send + 'static,
) -> JoinHandle<T> {
    let socket: PathBuf = socket.to_path_buf();
    std::thread::spawn(move || {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        loop {
            match f(&socket) {
                Ok(v) => return v,
                Err(e) if Instant::now() > deadline => {
                    panic!("cannot reach {}: {e}", socket.display())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    })
}

#[test]
fn first_connection_activates_and_its_event_is_accepted() {
    let b = Builder::new().lines_socket().toml(ENDPOINTS);
    let events = b.socket_path().display().to_string();
    let lines = b.dir().join("lines.sock").display().to_string();
    // This client connects before edgehook runs: the wrapper starts edgehook only on it.
    let first = first_client(b.socket_path(), |socket| -> std::io::Result<Reply> {
        let body = event("Test.x", "activated-first", "{}");
        client::request(
            socket,
            "POST",
            "/v1/events",
            Some("application/json"),
            body.as_bytes(),
        )
    });
    // edgehook would refuse to bind a path a live listener holds ("already running"), so
    // READY=1 alone shows it took the passed sockets.
    let mut d = b
        .wrap(&[
            "systemd-socket-activate",
            "--listen",
            &events,
            "--listen",
            &lines,
            "--fdname=events:lines",
            "--setenv=NOTIFY_SOCKET",
        ])
        .start();
    assert!(
        d.log().contains("Using the socket passed by systemd"),
        "{}",
        d.log()
    );
    let r = first.join().expect("the first client");
    assert_eq!(r.status, 202, "the event that started edgehook: {r:?}");
    assert_eq!(d.events_with_id("activated-first"), 1);
    let r = d.post_event(&event("Test.x", "activated-http", "{}"));
    assert_eq!(r.status, 202, "{r:?}");
    let mut c = LineClient::connect(d.lines_socket().unwrap());
    c.try_write(format!("{}\n", event("Test.x", "activated-line", "{}")).as_bytes())
        .expect("writing to the passed line socket");
    assert_eq!(c.reply()["ok"], true);
    assert_eq!(d.events_with_id("activated-http"), 1);
    assert_eq!(d.events_with_id("activated-line"), 1);

    d.stop();
    // The socket unit owns the files: they outlive the daemon, for the next activation.
    assert!(d.socket().exists(), "the passed events socket was removed");
    assert!(
        d.lines_socket().unwrap().exists(),
        "the passed lines socket was removed"
    );
}

#[test]
fn passed_socket_with_an_unknown_name_is_ignored() {
    let b = Builder::new().toml(ENDPOINTS);
    let other = b.dir().join("other.sock");
    let trigger = first_client(&other, |socket| UnixStream::connect(socket).map(drop));
    let other = other.display().to_string();
    let d = b
        .wrap(&[
            "systemd-socket-activate",
            "--listen",
            &other,
            "--fdname=bogus",
            "--setenv=NOTIFY_SOCKET",
        ])
        .start();
    trigger.join().expect("the triggering client");
    assert!(
        d.log().contains("unknown name"),
        "warns about the socket: {}",
        d.log()
    );
    // It bound ingest.socket itself.
    assert_eq!(
        d.post_event(&event("Test.x", "own-socket", "{}")).status,
        202
    );
}

#[test]
fn watchdog_pings_while_the_writer_commits() {
    let d = Builder::new()
        .toml(ENDPOINTS)
        .wrap(&["env", WATCHDOG_USEC])
        .start();
    // One ping per 200 ms: about 7 in 1.5 s.
    let pings = count_notify(&d, "WATCHDOG=1", Duration::from_millis(1500));
    assert!(
        pings >= 3,
        "only {pings} WATCHDOG=1 in 1.5 s; log:\n{}",
        d.log()
    );
}

#[test]
fn watchdog_pings_stop_when_the_writer_is_wedged() {
    let mut d = Builder::new()
        .toml(ENDPOINTS)
        .wrap(&["env", WATCHDOG_USEC, "EDGEHOOK_DEBUG_WEDGE_WRITER=1"])
        .start();
    // The writer hangs after its first commit; a ping that joined that commit may pass.
    let pings = count_notify(&d, "WATCHDOG=1", Duration::from_millis(1500));
    assert!(pings <= 1, "{pings} WATCHDOG=1 from a wedged writer");
    assert!(
        d.log().contains("withholding the systemd watchdog ping"),
        "{}",
        d.log()
    );
    // A graceful stop would wait for the wedged writer; systemd's watchdog kills it.
    d.kill9();
}

#[test]
fn log_format_text_unless_stderr_is_the_journal_and_json_on_request() {
    // JOURNAL_STREAM names another file than stderr (a shell started from a unit): text.
    let mut d = Builder::new()
        .toml(ENDPOINTS)
        .wrap(&["env", "JOURNAL_STREAM=1:1"])
        .start();
    d.stop();
    let text = d.log();
    assert!(
        text.lines()
            .any(|l| l.contains("INFO") && l.contains("ready.")),
        "{text}"
    );

    let config = std::fs::read_to_string(&d.config).unwrap();
    let config = config.replacen("[daemon]\n", "[daemon]\nlog_format = \"json\"\n", 1);
    std::fs::write(&d.config, config).unwrap();
    d.restart();
    d.stop();
    let log = d.log();
    let ready = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"].as_str().is_some_and(|m| m.ends_with("ready.")))
        .unwrap_or_else(|| panic!("no JSON line with the ready message:\n{log}"));
    assert_eq!(ready["level"], "INFO", "{ready}");
    assert_eq!(ready["endpoints"], 2, "fields are top-level: {ready}");
}

#[test]
fn second_sigterm_exits_at_once_with_143() {
    // A wedged writer holds the graceful stop (it waits for the writer to finish), the way
    // a dead disk would; an operator who asks twice must not have to wait for it.
    let mut d = Builder::new()
        .toml(ENDPOINTS)
        .wrap(&["env", "EDGEHOOK_DEBUG_WEDGE_WRITER=1"])
        .start();
    d.signal(nix::sys::signal::Signal::SIGTERM);
    d.wait_notify("STOPPING=1");
    assert_eq!(
        count_notify(&d, "READY=1", Duration::from_millis(300)),
        0,
        "still stopping"
    );
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let status = d.wait_exit();
    assert_eq!(status.code(), Some(143), "{}", d.log());
    assert!(d.log().contains("Second signal received"), "{}", d.log());
}
