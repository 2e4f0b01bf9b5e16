//! Hot reload (SPEC §7, issue 5): edits on disk (in place, rename-over, a rotated `file:`
//! secret), `SIGHUP` and `edgehook reload` apply a new config to the running process; a
//! broken or refused config changes nothing (not even when it fails at the socket step);
//! a removed endpoint's backlog waits for its return; socket paths are re-bound; an edit
//! saved during a reload is not forgotten; and 20 reloads under load lose or double
//! nothing.
//!
//! Every reload is awaited through the `RELOADING=1` → `READY=1` datagrams the daemon sends
//! to `NOTIFY_SOCKET` (systemd's `Type=notify-reload` protocol), never a sleep; edits are
//! written the way tools write them: appended in place, or a temp file renamed over.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgehook::demo::receiver::Recorded;
use edgehook::sign::verify_standard_webhooks;
use nix::sys::signal::Signal;

use crate::util::delivery::{count_by_id, pending, pending_for, wait_db, Endpoint, Upstream};
use crate::util::{client, event, run_cli, Builder, TestDaemon};

/// SPEC/issue 5: an edit reaches new events within this long (debounce + reload + POST).
const APPLY_WITHIN: Duration = Duration::from_secs(2);
/// Reloads in the load test, and the client threads sending meanwhile.
const RELOADS: usize = 20;
const CLIENTS: usize = 4;
/// The endpoints' default `concurrency`: at most this many deliveries are in flight.
const CONCURRENCY: usize = 8;

/// Replace `path` the way atomic-rename editors and config management do: write a temp
/// file in the same directory, then `rename(2)` it over the target.
fn write_atomic(path: &Path, text: &str) {
    let dir = path.parent().expect("a file in a directory");
    let mut tmp = tempfile::NamedTempFile::new_in(dir).expect("creating a temp file");
    tmp.write_all(text.as_bytes())
        .expect("writing the temp file");
    tmp.persist(path)
        .unwrap_or_else(|e| panic!("renaming over {}: {e}", path.display()));
}

/// Wait for one whole reload: `RELOADING=1`, then `READY=1` (sent after success or
/// refusal alike).
fn wait_reload(d: &mut TestDaemon) {
    d.wait_notify("RELOADING=1");
    d.wait_notify("READY=1");
}

/// The pid of the daemon running `d`'s config: our child whose command line names it.
///
/// # Panics
/// If there is none (the daemon exited).
fn daemon_pid(d: &TestDaemon) -> u32 {
    let me = std::process::id();
    let config = d.config.to_str().expect("UTF-8 temp path");
    for entry in std::fs::read_dir("/proc").expect("reading /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let (Ok(stat), Ok(cmdline)) = (
            std::fs::read_to_string(entry.path().join("stat")),
            std::fs::read(entry.path().join("cmdline")),
        ) else {
            continue;
        };
        // Fields after the parenthesised command name: state, ppid, …
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let names_config = cmdline.split(|b| *b == 0).any(|a| a == config.as_bytes());
        if ppid == Some(me) && names_config {
            return pid;
        }
    }
    panic!("no edgehook process runs {config}; stderr:\n{}", d.log());
}

/// `edgehook reload` against `d`'s admin socket: (exit code, stdout, stderr).
fn cli_reload(d: &TestDaemon) -> (i32, String, String) {
    let socket = d.dir().join("admin.sock");
    run_cli(
        &[
            "reload",
            "--admin-socket",
            socket.to_str().expect("UTF-8 temp path"),
        ],
        None,
    )
}

/// Lines of the daemon's log that report a successful reload.
fn reloaded_lines(d: &TestDaemon) -> Vec<String> {
    d.log()
        .lines()
        .filter(|l| l.contains("Configuration reloaded"))
        .map(str::to_string)
        .collect()
}

/// The recorded requests sent to `path`.
fn at(requests: &[Recorded], path: &str) -> Vec<Recorded> {
    requests
        .iter()
        .filter(|r| r.path_and_query == path)
        .cloned()
        .collect()
}

fn webhook_ids(requests: &[Recorded]) -> Vec<&str> {
    requests
        .iter()
        .map(|r| r.header("webhook-id").unwrap_or("<none>"))
        .collect()
}

/// A daemon with one endpoint `a` on a fresh upstream, and the upstream's CA file.
fn daemon_with_endpoint_a() -> (Upstream, PathBuf, TestDaemon) {
    let up = Upstream::start();
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let d = b
        .toml(&Endpoint::new("a", &up.url("/a"), &ca).toml())
        .start();
    (up, ca, d)
}

/// `edgehook status --json` against the admin socket at `socket`.
fn status_at(socket: &Path) -> serde_json::Value {
    let (code, stdout, stderr) = run_cli(
        &[
            "status",
            "--json",
            "--admin-socket",
            socket.to_str().expect("UTF-8 temp path"),
        ],
        None,
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("status --json: {e}:\n{stdout}"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn in_place_edit_adds_an_endpoint_in_the_same_process() {
    let (up, ca, mut d) = daemon_with_endpoint_a();
    let pid = daemon_pid(&d);

    // Appended in place, as a sysadmin's `cat >>` or a non-renaming editor does.
    let edited = Instant::now();
    let mut file = OpenOptions::new().append(true).open(&d.config).unwrap();
    file.write_all(Endpoint::new("b", &up.url("/b"), &ca).toml().as_bytes())
        .unwrap();
    drop(file);
    wait_reload(&mut d);
    let r = d.post_event(&event("Test.added", "added-1", "{}"));
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.json["endpoints"], serde_json::json!(["a", "b"]), "{r:?}");
    let got = up.wait_for(2);
    let took = edited.elapsed();
    assert_eq!(webhook_ids(&at(&got, "/b")), ["added-1"]);
    assert!(
        took < APPLY_WITHIN,
        "the new endpoint got its first event {took:?} after the edit"
    );
    assert_eq!(
        daemon_pid(&d),
        pid,
        "reloading must not restart the process"
    );
    let lines = reloaded_lines(&d);
    assert!(
        lines.len() == 1 && lines[0].contains("trigger=File"),
        "{lines:?}"
    );
}

#[test]
fn broken_file_keeps_the_old_config_running() {
    let up = Upstream::start();
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let a = Endpoint::new("a", &up.url("/a"), &ca).toml();
    let mut d = b.toml(&a).start();
    let pid = daemon_pid(&d);
    let good = read(&d.config);

    // The broken file would also swap endpoint `a` for `b`: nothing of it may apply.
    let broken = good
        .replacen("[daemon]\n", "[daemon]\nlog_levle = \"debug\"\n", 1)
        .replace(&a, &Endpoint::new("b", &up.url("/b"), &ca).toml());
    write_atomic(&d.config, &broken);
    wait_reload(&mut d);
    let at_line = format!("{}:2:1: unknown field `log_levle`", d.config.display());
    assert!(
        d.log().contains(&at_line),
        "no {at_line:?} in:\n{}",
        d.log()
    );
    assert!(d.log().contains("Reload refused"), "{}", d.log());

    // `edgehook reload` says the same and fails.
    let (code, out, err) = cli_reload(&d);
    wait_reload(&mut d);
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    assert!(err.contains(&at_line), "{err}");

    // The old config still accepts and routes to `a` only.
    let r = d.post_event(&event("Test.kept", "kept-1", "{}"));
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.json["endpoints"], serde_json::json!(["a"]), "{r:?}");
    let got = up.wait_for(1);
    assert_eq!(webhook_ids(&at(&got, "/a")), ["kept-1"]);
    assert!(at(&up.receiver.requests(), "/b").is_empty());
    assert_eq!(daemon_pid(&d), pid);
    assert!(reloaded_lines(&d).is_empty(), "{}", d.log());
}

#[test]
fn an_edit_is_picked_up_when_started_with_a_relative_config_path() {
    let up = Upstream::start();
    let b = Builder::new().relative_config();
    let ca = up.write_ca(b.dir());
    let mut d = b
        .toml(&Endpoint::new("a", &up.url("/a"), &ca).toml())
        .start();
    let mut file = OpenOptions::new().append(true).open(&d.config).unwrap();
    file.write_all(Endpoint::new("b", &up.url("/b"), &ca).toml().as_bytes())
        .unwrap();
    drop(file);
    wait_reload(&mut d);
    let r = d.post_event(&event("Test.added", "relative-1", "{}"));
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.json["endpoints"], serde_json::json!(["a", "b"]), "{r:?}");
    let log = d.log();
    assert!(!log.contains("Cannot watch"), "{log}");
}

#[test]
fn rename_over_edit_is_detected_and_applied() {
    let up = Upstream::start();
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let a = Endpoint::new("a", &up.url("/a"), &ca).toml();
    let mut d = b.toml(&a).start();

    // The rename replaces the inode a plain file watch would be following.
    let edited = read(&d.config).replace(&a, &Endpoint::new("b", &up.url("/b"), &ca).toml());
    write_atomic(&d.config, &edited);
    wait_reload(&mut d);
    let r = d.post_event(&event("Test.renamed", "renamed-1", "{}"));
    assert_eq!(r.json["endpoints"], serde_json::json!(["b"]), "{r:?}");
    let got = up.wait_for(1);
    assert_eq!(webhook_ids(&at(&got, "/b")), ["renamed-1"]);

    // A second rename-over is seen too (the watch survives the first).
    write_atomic(&d.config, &read(&d.config).replace("/b\"", "/c\""));
    wait_reload(&mut d);
    assert_eq!(
        d.post_event(&event("Test.renamed", "renamed-2", "{}"))
            .status,
        202
    );
    let got = up.wait_for(2);
    assert_eq!(webhook_ids(&at(&got, "/c")), ["renamed-2"]);
    let lines = reloaded_lines(&d);
    assert!(
        lines.len() == 2 && lines.iter().all(|l| l.contains("trigger=File")),
        "{lines:?}"
    );
}

#[test]
fn rotated_secret_file_signs_the_next_delivery() {
    const OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NEW: &str = "whsec_cm90YXRlZC1zZWNyZXQta2V5LWZvci1yZWxvYWQhIQ==";
    let up = Upstream::start();
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let secret = b.dir().join("secret");
    write_atomic(&secret, &format!("{OLD}\n"));
    let signing = "[endpoint.signing]\nscheme = \"standard-webhooks\"\nsecret = \"file:secret\"";
    let mut d = b
        .toml(&Endpoint::new("a", &up.url("/a"), &ca).table(signing).toml())
        .start();
    let verifies = |r: &Recorded, secret: &str| {
        let header = |n| r.header(n).unwrap_or_else(|| panic!("no {n} in {r:?}"));
        let timestamp = header("webhook-timestamp").parse().expect("a unix time");
        verify_standard_webhooks(
            secret,
            header("webhook-id"),
            timestamp,
            &r.body,
            header("webhook-signature"),
        )
    };

    assert_eq!(d.post_event(&event("Test.sig", "sig-1", "{}")).status, 202);
    let got = up.wait_for(1);
    assert!(verifies(&got[0], OLD), "{:?}", got[0]);

    // Rotated the way secret managers do it: a new file renamed over the old one.
    write_atomic(&secret, &format!("{NEW}\n"));
    wait_reload(&mut d);
    assert_eq!(d.post_event(&event("Test.sig", "sig-2", "{}")).status, 202);
    let got = up.wait_for(2);
    assert_eq!(got[1].header("webhook-id"), Some("sig-2"));
    assert!(verifies(&got[1], NEW), "{:?}", got[1]);
    assert!(!verifies(&got[1], OLD), "still signed with the old secret");
    assert!(
        !d.log().contains(OLD) && !d.log().contains(NEW),
        "a secret reached the log"
    );
}

#[test]
fn sighup_applies_a_change_the_watcher_cannot_see() {
    let (up, ca, mut d) = daemon_with_endpoint_a();

    // The config becomes a symlink into conf.d/ (a visible change: one file reload). The
    // watch covers the link's directory only, so later edits of the target in conf.d/
    // reach the daemon only through SIGHUP.
    let real = d.dir().join("conf.d").join("edgehook.toml");
    std::fs::create_dir(real.parent().unwrap()).unwrap();
    write_atomic(&real, &read(&d.config));
    let link = d.dir().join("edgehook.toml.link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    std::fs::rename(&link, &d.config).unwrap();
    wait_reload(&mut d);

    let added = Endpoint::new("b", &up.url("/b"), &ca).toml();
    write_atomic(&real, &format!("{}{added}", read(&real)));
    d.signal(Signal::SIGHUP);
    wait_reload(&mut d);
    let r = d.post_event(&event("Test.hup", "hup-1", "{}"));
    assert_eq!(r.json["endpoints"], serde_json::json!(["a", "b"]), "{r:?}");
    let got = up.wait_for(2);
    assert_eq!(webhook_ids(&at(&got, "/b")), ["hup-1"]);
    let lines = reloaded_lines(&d);
    assert!(
        lines.last().is_some_and(|l| l.contains("trigger=Signal")),
        "{lines:?}"
    );

    // SIGHUP with nothing changed is a full reload too, and never the default action
    // (terminate).
    d.signal(Signal::SIGHUP);
    wait_reload(&mut d);
    assert_eq!(d.health().status, 200);
    let lines = reloaded_lines(&d);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("trigger=Signal"))
            .count(),
        2,
        "{lines:?}"
    );
}

#[test]
fn removed_endpoint_keeps_its_backlog_until_it_returns() {
    let keep_up = Upstream::start();
    let e_up = Upstream::start();
    e_up.receiver.set_refuse(true);
    let b = Builder::new();
    let keep_ca = keep_up.write_ca(b.dir());
    let e_dir = b.dir().join("e");
    std::fs::create_dir(&e_dir).unwrap();
    let e_ca = e_up.write_ca(&e_dir);
    let e = Endpoint::new("e", &e_up.url("/e"), &e_ca).toml();
    let mut d = b
        .toml(&Endpoint::new("keep", &keep_up.url("/keep"), &keep_ca).toml())
        .toml(&e)
        .start();
    let e_pending = |d: &TestDaemon| pending_for(d, "e");

    let backlog = ["back-1", "back-2", "back-3"];
    for id in backlog {
        assert_eq!(d.post_event(&event("Test.orphan", id, "{}")).status, 202);
    }
    keep_up.wait_for(3);
    wait_db(&d, "e's three deliveries queue", |d| {
        e_pending(d) == 3 && pending(d) == 3
    });
    assert!(e_up.receiver.connections() > 0, "e was never tried");

    // `e` removed: its rows stay queued, new events no longer route to it.
    let full = read(&d.config);
    write_atomic(&d.config, &full.replace(&e, ""));
    wait_reload(&mut d);
    e_up.receiver.set_refuse(false);
    let r = d.post_event(&event("Test.orphan", "after-removal", "{}"));
    assert_eq!(r.json["endpoints"], serde_json::json!(["keep"]), "{r:?}");
    keep_up.wait_for(4);
    assert_eq!(e_pending(&d), 3, "the orphaned backlog must stay queued");

    // `e` is back (and its upstream up): the backlog is delivered, and nothing else.
    write_atomic(&d.config, &full);
    wait_reload(&mut d);
    let got = e_up.wait_for(3);
    let mut ids = webhook_ids(&got);
    ids.sort_unstable();
    assert_eq!(ids, backlog);
    wait_db(&d, "the backlog drains", |d| pending(d) == 0);
    assert_eq!(e_up.receiver.requests().len(), 3, "after-removal went to e");
}

#[test]
fn state_dir_change_is_refused_naming_the_field() {
    let (up, _, mut d) = daemon_with_endpoint_a();
    let moved = d.dir().join("state2");
    let old_line = format!("state_dir = {:?}", d.state_dir);
    let text = read(&d.config);
    assert!(text.contains(&old_line), "{text}");
    write_atomic(
        &d.config,
        &text.replace(&old_line, &format!("state_dir = {moved:?}")),
    );
    wait_reload(&mut d);
    assert!(
        d.log().contains("daemon.state_dir cannot change"),
        "{}",
        d.log()
    );
    let (code, _, err) = cli_reload(&d);
    wait_reload(&mut d);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("daemon.state_dir"), "{err}");

    assert_eq!(
        d.post_event(&event("Test.kept", "kept-1", "{}")).status,
        202
    );
    let got = up.wait_for(1);
    assert_eq!(webhook_ids(&got), ["kept-1"]);
    assert!(!moved.exists(), "the refused state_dir was created");
    assert!(reloaded_lines(&d).is_empty(), "{}", d.log());
}

#[test]
fn changed_socket_path_is_rebound_and_the_old_file_removed() {
    let (up, _, mut d) = daemon_with_endpoint_a();
    let old = d.socket.clone();
    let new: PathBuf = d.dir().join("moved.sock");
    let text = read(&d.config);
    let old_line = format!("socket = {old:?}");
    assert!(text.contains(&old_line), "{text}");
    write_atomic(
        &d.config,
        &text.replace(&old_line, &format!("socket = {new:?}")),
    );
    wait_reload(&mut d);

    assert!(!old.exists(), "{} is still there", old.display());
    assert!(client::request(&old, "GET", "/v1/health", None, b"").is_err());
    d.socket = new;
    assert_eq!(d.health().status, 200);
    assert_eq!(
        d.post_event(&event("Test.moved", "moved-1", "{}")).status,
        202
    );
    assert_eq!(webhook_ids(&up.wait_for(1)), ["moved-1"]);
}

/// What one load client saw.
#[derive(Default)]
struct Sent {
    accepted: Vec<String>,
    errors: Vec<String>,
}

#[test]
fn twenty_reloads_under_load_lose_and_double_nothing() {
    let up = Upstream::start();
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let endpoint = |value: &str| {
        Endpoint::new("load", &up.url("/load"), &ca)
            .key(&format!("headers = {{ \"x-config\" = \"{value}\" }}"))
            .toml()
    };
    // Delivered rows are kept, so the queue shows each event and its delivery afterwards.
    let mut d = b
        .toml("[queue]\nkeep_delivered = \"1h\"")
        .toml(&endpoint("A"))
        .start();
    let config_a = read(&d.config);
    let config_b = config_a.replace(&endpoint("A"), &endpoint("B"));
    assert_ne!(config_a, config_b);

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let socket = d.socket.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut sent = Sent::default();
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let id = format!("load-{c}-{n}");
                    let body = event("Test.load", &id, &format!(r#"{{"c":{c},"n":{n}}}"#));
                    match client::request(
                        &socket,
                        "POST",
                        "/v1/events",
                        Some("application/json"),
                        body.as_bytes(),
                    ) {
                        Ok(r) if r.status == 202 => sent.accepted.push(id),
                        Ok(r) => sent.errors.push(format!("{id}: {} {}", r.status, r.json)),
                        Err(e) => sent.errors.push(format!("{id}: {e}")),
                    }
                }
                sent
            })
        })
        .collect();

    let started = Instant::now();
    for i in 0..RELOADS {
        let text = if i % 2 == 0 { &config_b } else { &config_a };
        write_atomic(&d.config, text);
        wait_reload(&mut d);
    }
    let reloading = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let sent: Vec<Sent> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let accepted: Vec<&String> = sent.iter().flat_map(|s| &s.accepted).collect();
    let errors: Vec<&String> = sent.iter().flat_map(|s| &s.errors).collect();
    eprintln!(
        "{RELOADS} reloads in {reloading:?}; {} events accepted meanwhile",
        accepted.len()
    );
    assert!(errors.is_empty(), "clients saw errors: {errors:?}");
    let lines = reloaded_lines(&d);
    assert!(lines.len() >= RELOADS, "{}", d.log());
    assert!(!d.log().contains("Reload refused"), "{}", d.log());

    // Every accepted event arrives; only an in-flight one may arrive twice.
    up.wait_for(accepted.len());
    wait_db(&d, "the queue drains", |d| pending(d) == 0);
    // A request is recorded before it is answered, and answered before it leaves the
    // queue: with nothing pending, every request is in.
    let requests = up.receiver.requests();
    let arrived = count_by_id(&requests);
    let lost: Vec<&&String> = accepted
        .iter()
        .filter(|id| !arrived.contains_key(id.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} accepted events never arrived: {lost:?}",
        lost.len(),
        accepted.len()
    );
    let repeated: HashMap<&String, &usize> = arrived.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!("{} webhook-ids arrived more than once", repeated.len());
    assert!(
        repeated.len() <= CONCURRENCY * RELOADS,
        "more repeats than in-flight deliveries could explain: {repeated:?}"
    );
    // Both configs were live during the load.
    let values: HashSet<&str> = requests
        .iter()
        .filter_map(|r| r.header("x-config"))
        .collect();
    assert_eq!(values, HashSet::from(["A", "B"]));

    // No event is queued twice: one event row and one (delivered) delivery per id.
    let db = d.db();
    let mut stmt = db
        .prepare(
            "SELECT e.id, COUNT(DISTINCT e.seq), COUNT(d.seq), MIN(d.state), MAX(d.state)
             FROM events e LEFT JOIN deliveries d ON d.event_seq = e.seq
             GROUP BY e.id",
        )
        .unwrap();
    let rows: HashMap<String, (i64, i64, i64, i64)> = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), accepted.len(), "events stored vs accepted");
    let wrong: Vec<_> = rows
        .iter()
        .filter(|(_, shape)| **shape != (1, 1, 2, 2))
        .collect();
    assert!(
        wrong.is_empty(),
        "ids not stored exactly once with one delivered delivery: {wrong:?}"
    );
}

/// A plain-HTTP upstream for one request whose answer (200) it holds until released: an
/// in-flight delivery that a reload has to wait for.
struct HeldUpstream {
    url: String,
    arrived: std::sync::mpsc::Receiver<()>,
    release: std::sync::mpsc::Sender<()>,
}

impl HeldUpstream {
    fn start() -> HeldUpstream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/held", listener.local_addr().unwrap());
        let (arrived_tx, arrived) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut head = Vec::new();
            let mut chunk = [0u8; 16 * 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match std::io::Read::read(&mut stream, &mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&chunk[..n]),
                }
            }
            let _ = arrived_tx.send(());
            let _ = release_rx.recv();
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        });
        HeldUpstream {
            url,
            arrived,
            release,
        }
    }
}

/// A reload replaces the workers only after their in-flight deliveries finish, and the
/// file watch after that: an edit saved meanwhile must still get its own reload.
#[test]
fn edit_made_while_a_reload_waits_is_applied_after_it() {
    let held = HeldUpstream::start();
    let up = Upstream::start();
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let slow = format!(
        "[[endpoint]]\nname = \"slow\"\nurl = {:?}\nevents = [\"Test.slow\"]\nallow_plain_http = true\n",
        held.url
    );
    let mut d = b.toml(&slow).start();
    assert_eq!(
        d.post_event(&event("Test.slow", "slow-1", "{}")).status,
        202
    );
    held.arrived
        .recv_timeout(Duration::from_secs(15))
        .expect("the slow delivery never arrived");

    // Edit 1 adds `a`; its reload swaps the routing at once, then waits for the held
    // delivery before it can replace the workers.
    let base = read(&d.config);
    let with_a = format!("{base}{}", Endpoint::new("a", &up.url("/a"), &ca).toml());
    write_atomic(&d.config, &with_a);
    d.wait_notify("RELOADING=1");
    // The routing answer is the signal that reload 1 has read the file and swapped.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = d.post_event(&event("Test.probe", "probe", "{}"));
        if r.json["endpoints"] == serde_json::json!(["a"]) {
            break;
        }
        assert!(Instant::now() < deadline, "edit 1 never routed: {r:?}");
    }
    // Edit 2 lands while reload 1 is still running; then reload 1 is let finish.
    let with_b = format!("{with_a}{}", Endpoint::new("b", &up.url("/b"), &ca).toml());
    write_atomic(&d.config, &with_b);
    held.release.send(()).unwrap();
    d.wait_notify("READY=1");

    // Edit 2 gets a reload of its own.
    wait_reload(&mut d);
    let r = d.post_event(&event("Test.late", "late-1", "{}"));
    assert_eq!(r.json["endpoints"], serde_json::json!(["a", "b"]), "{r:?}");
}

/// A reload refused at its last fallible step (socket permissions) applies nothing either.
#[test]
fn reload_failing_at_the_socket_changes_nothing() {
    let up = Upstream::start();
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let a = Endpoint::new("a", &up.url("/a"), &ca).toml();
    let mut d = b.toml(&a).start();
    let socket = d.socket.clone();
    let mode = || std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    let mode_before = mode();

    // Valid as text, but the group is only looked up when the socket is re-permissioned,
    // after the new endpoint `b` was built: the reload must still apply none of it.
    let text = read(&d.config).replace(
        "[ingest]\n",
        "[ingest]\nsocket_group = \"edgehook-no-such-group\"\nsocket_mode = \"0600\"\n",
    );
    write_atomic(
        &d.config,
        &format!("{text}{}", Endpoint::new("b", &up.url("/b"), &ca).toml()),
    );
    wait_reload(&mut d);
    assert!(d.log().contains("edgehook-no-such-group"), "{}", d.log());
    assert!(reloaded_lines(&d).is_empty(), "{}", d.log());

    let r = d.post_event(&event("Test.kept", "kept-1", "{}"));
    assert_eq!(r.json["endpoints"], serde_json::json!(["a"]), "{r:?}");
    assert_eq!(webhook_ids(&up.wait_for(1)), ["kept-1"]);
    assert_eq!(mode(), mode_before, "the refused socket_mode was applied");
}

/// The admin socket follows the same rule as ingest's: a move that cannot be bound refuses
/// the whole reload (the old socket keeps answering); one that can is applied by the
/// reload itself, and the old file is removed.
#[test]
fn admin_socket_move_is_refused_when_unbindable_and_applied_when_bindable() {
    let (up, ca, mut d) = daemon_with_endpoint_a();
    let old = d.dir().join("admin.sock");
    let old_line = format!("admin_socket = {old:?}");
    let text = read(&d.config);
    assert!(text.contains(&old_line), "{text}");

    // A regular file where the socket should go: bind refuses to replace it.
    let blocked = d.dir().join("not-a-socket");
    std::fs::write(&blocked, "keep me").unwrap();
    write_atomic(
        &d.config,
        &format!(
            "{}{}",
            text.replace(&old_line, &format!("admin_socket = {blocked:?}")),
            Endpoint::new("b", &up.url("/b"), &ca).toml()
        ),
    );
    wait_reload(&mut d);
    assert!(reloaded_lines(&d).is_empty(), "{}", d.log());
    assert!(d.log().contains("daemon.admin_socket"), "{}", d.log());
    assert_eq!(read(&blocked), "keep me");
    let status = status_at(&old);
    assert_eq!(status["reloads"]["failed"], 1, "{status}");
    assert_eq!(
        status["config"]["endpoints"], 1,
        "endpoint b was applied: {status}"
    );

    let moved = d.dir().join("moved-admin.sock");
    write_atomic(
        &d.config,
        &text.replace(&old_line, &format!("admin_socket = {moved:?}")),
    );
    wait_reload(&mut d);
    assert_eq!(reloaded_lines(&d).len(), 1, "{}", d.log());
    assert!(!old.exists(), "{} is still there", old.display());
    let status = status_at(&moved);
    assert_eq!(status["reloads"]["ok"], 1, "{status}");
}

#[test]
fn keys_that_need_a_restart_are_named_in_the_log_the_reload_answer_and_status() {
    let mut d = Builder::new()
        .daemon("shutdown_timeout = \"10s\"")
        .ingest("max_connections = 100")
        .toml(crate::util::ENDPOINTS)
        .start();
    let socket = d.dir().join("admin.sock");
    assert_eq!(
        status_at(&socket)["reloads"]["restart_needed"],
        serde_json::json!([])
    );
    let text = read(&d.config)
        .replace("shutdown_timeout = \"10s\"", "shutdown_timeout = \"30s\"")
        .replace("max_connections = 100", "max_connections = 50");
    write_atomic(&d.config, &text);
    wait_reload(&mut d);
    let log = d.log();
    assert!(
        log.lines().any(|l| l.contains("apply only after a restart")
            && l.contains("ingest.max_connections, daemon.shutdown_timeout")),
        "{log}"
    );
    let (code, out, err) = cli_reload(&d);
    wait_reload(&mut d);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("; restart edgehook to apply ingest.max_connections, daemon.shutdown_timeout"),
        "{out}"
    );
    assert_eq!(
        status_at(&socket)["reloads"]["restart_needed"],
        serde_json::json!(["ingest.max_connections", "daemon.shutdown_timeout"])
    );
    let (_, human, _) = run_cli(
        &["status", "--admin-socket", socket.to_str().unwrap()],
        None,
    );
    assert!(
        human.contains("restart needed: ingest.max_connections, daemon.shutdown_timeout changed"),
        "{human}"
    );
    // Back to the start values: nothing is pending any more.
    let text = read(&d.config)
        .replace("shutdown_timeout = \"30s\"", "shutdown_timeout = \"10s\"")
        .replace("max_connections = 50", "max_connections = 100");
    write_atomic(&d.config, &text);
    wait_reload(&mut d);
    assert_eq!(
        status_at(&socket)["reloads"]["restart_needed"],
        serde_json::json!([])
    );
}
