//! The operator commands against a running daemon, through its admin socket: `status`,
//! `endpoints`, `dead list|retry|purge`, `wake`, `pause`/`resume`, `reload`, `metrics`
//! (human output and `--json`), who may use the socket, and the generated man page and
//! completions.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edgehook::store::STATE_DEAD;
use serde_json::Value;

use crate::util::cli::{admin, admin_socket, as_nobody, run_command};
use crate::util::delivery::{dead_count, pending, wait_db, with_witness, Endpoint, Upstream, WAIT};
use crate::util::{edgehook_bin, event, run_cli, tools, Builder, TestDaemon};

/// How often a test re-asks the daemon while waiting for a state it reports.
const POLL: Duration = Duration::from_millis(50);

/// [`admin`] that must succeed; its stdout.
fn ok(d: &TestDaemon, args: &[&str]) -> String {
    let (code, out, err) = admin(d, args);
    assert_eq!(
        code,
        0,
        "edgehook {args:?} failed: {err}\nstdout:\n{out}\ndaemon stderr:\n{}",
        d.log()
    );
    out
}

/// [`ok`] with `--json`, parsed.
fn json(d: &TestDaemon, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = ok(d, &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} --json: {e}:\n{out}"))
}

/// The endpoint named `name` in `edgehook status --json`.
fn endpoint_status(d: &TestDaemon, name: &str) -> Value {
    let status = json(d, &["status"]);
    status["endpoints"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no endpoint {name} in status: {status:#}"))
}

/// Poll `cond` until it holds.
///
/// # Panics
/// After [`WAIT`], with `what` and the daemon's stderr.
fn wait_until(d: &TestDaemon, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for: {what}; edgehook stderr:\n{}",
            d.log()
        );
        std::thread::sleep(POLL);
    }
}

/// A daemon with one endpoint `e` (every event) delivering to `up`.
fn with_endpoint(up: &Upstream, endpoint: impl FnOnce(Endpoint) -> Endpoint) -> TestDaemon {
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    b.toml(&endpoint(Endpoint::new("e", &up.url("/hook"), &ca)).toml())
        .start()
}

#[test]
fn status_and_endpoints_show_the_daemon_and_each_endpoint() {
    let up = Upstream::start();
    let d = with_endpoint(&up, |e| e);
    assert_eq!(d.post_event(&event("Test.a", "s-1", "{}")).status, 202);
    up.wait_for(1);
    wait_db(&d, "the delivery is recorded", |d| pending(d) == 0);

    let text = ok(&d, &["status"]);
    for needle in [
        &format!("edgehook {}", env!("CARGO_PKG_VERSION")),
        "(pid ",
        &format!("config   {}", d.config.display()),
        "reloads  0 ok, 0 failed",
        "of 1.0 GiB",
        "ENDPOINT",
        "IN FLIGHT",
        "LAST ERROR",
    ] {
        assert!(
            text.contains(needle),
            "missing {needle:?} in status:\n{text}"
        );
    }
    let row = text
        .lines()
        .find(|l| l.starts_with("e "))
        .unwrap_or_else(|| panic!("no row for e:\n{text}"));
    assert!(row.contains("online"), "{row}");
    assert!(
        !text.contains("\x1b["),
        "no colour when stdout is not a terminal"
    );

    let v = json(&d, &["status"]);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["pid"].as_u64().is_some_and(|p| p > 0), "{v:#}");
    assert_eq!(v["config"]["path"], d.config.to_str().unwrap());
    assert_eq!(v["queue"]["max_bytes"], 1u64 << 30);
    let e = &v["endpoints"][0];
    assert_eq!((&e["name"], &e["state"]), (&"e".into(), &"online".into()));
    assert_eq!(e["url"], up.url("/hook"));
    for key in [
        "pending",
        "in_flight",
        "dead",
        "oldest_pending_age_secs",
        "last_error",
        "clock_skew_secs",
    ] {
        assert!(e.get(key).is_some(), "status endpoint lacks {key}: {e:#}");
    }

    let table = ok(&d, &["endpoints"]);
    assert!(
        table.starts_with("NAME") && table.contains("URL") && table.contains("OLDEST"),
        "{table}"
    );
    assert!(table.contains(&up.url("/hook")), "{table}");
    let v = json(&d, &["endpoints"]);
    assert_eq!(v["endpoints"][0]["name"], "e");
    assert_eq!(v["endpoints"][0]["pending"], 0);
}

#[test]
fn dead_letter_is_listed_retried_and_delivered() {
    let up = Upstream::start();
    up.receiver.set_response(400).unwrap();
    let d = with_endpoint(&up, |e| e);
    assert_eq!(
        d.post_event(&event("Test.dead", "dl-1", "{\"n\":1}"))
            .status,
        202
    );
    wait_db(&d, "the 400 makes a dead letter", |d| dead_count(d) == 1);

    let text = ok(&d, &["dead", "list"]);
    let row = text
        .lines()
        .find(|l| l.starts_with("dl-1"))
        .unwrap_or_else(|| panic!("dl-1 not listed:\n{text}"));
    for needle in [" e ", "Test.dead", "400", "permanent status 400"] {
        assert!(row.contains(needle), "missing {needle:?} in {row:?}");
    }
    let v = json(&d, &["dead", "list"]);
    assert_eq!(v["total"], 1, "{v:#}");
    let dl = &v["dead"][0];
    assert_eq!(dl["event_id"], "dl-1");
    assert_eq!(dl["type"], "Test.dead");
    assert_eq!(dl["endpoint"], "e");
    assert_eq!(dl["attempts"], 1);
    assert_eq!(dl["last_status"], 400);
    assert!(
        dl["dead_reason"]
            .as_str()
            .is_some_and(|r| r.contains("permanent")),
        "{dl:#}"
    );
    assert!(dl["updated_at"].is_string(), "{dl:#}");
    assert_eq!(json(&d, &["status"])["queue"]["dead"], 1);

    // The receiver is fixed; the retried letter goes out as new: attempt 1 again.
    up.receiver.set_response(200).unwrap();
    let out = ok(&d, &["dead", "retry", "--endpoint", "e"]);
    assert!(out.contains("retried 1 dead letter(s)"), "{out}");
    let got = up.wait_for(2);
    assert_eq!(got[1].header("webhook-id"), Some("dl-1"));
    assert_eq!(got[1].header("edgehook-attempt"), Some("1"));
    wait_db(&d, "the retried letter is delivered", |d| {
        pending(d) == 0 && dead_count(d) == 0
    });
    assert!(ok(&d, &["dead", "list"]).contains("no dead letters"));
}

#[test]
fn purge_needs_confirmation_and_removes_dead_letters() {
    let up = Upstream::start();
    up.receiver.set_response(400).unwrap();
    let d = with_endpoint(&up, |e| e);
    for id in ["p-1", "p-2"] {
        assert_eq!(d.post_event(&event("Test.purge", id, "{}")).status, 202);
    }
    wait_db(&d, "two dead letters", |d| dead_count(d) == 2);

    // No terminal to ask on, no --yes: refused, nothing deleted.
    let (code, _, err) = admin(&d, &["dead", "purge"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("--yes") && err.ends_with('\n') && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(dead_count(&d), 2);

    let out = ok(&d, &["dead", "purge", "--yes", "p-1"]);
    assert!(out.contains("purged 1 dead letter(s)"), "{out}");
    assert_eq!((d.events_with_id("p-1"), d.events_with_id("p-2")), (0, 1));
    let (code, _, err) = admin(&d, &["dead", "retry", "p-1"]);
    assert_eq!(code, 1);
    assert!(err.contains("no dead letter matches p-1"), "{err}");

    let out = ok(&d, &["dead", "purge", "--yes", "--endpoint", "e"]);
    assert!(
        out.contains("purged 1 dead letter(s) of endpoint e"),
        "{out}"
    );
    assert_eq!(d.query_i64("SELECT COUNT(*) FROM events", []), 0);
    assert_eq!(
        json(&d, &["status"])["queue"]["bytes"],
        0,
        "queue bytes follow purges"
    );
}

#[test]
fn wake_probes_an_offline_endpoint_at_once() {
    let up = Upstream::start();
    up.receiver.set_refuse(true);
    // The next probe would be 30 s away; wake must not wait for it.
    let d = with_endpoint(&up, |e| {
        e.retry("initial = \"30s\"\nmax = \"60s\"\njitter = 0.0")
    });
    assert_eq!(d.post_event(&event("Test.wake", "w-1", "{}")).status, 202);
    wait_until(&d, "the endpoint is offline", || {
        endpoint_status(&d, "e")["state"] == "offline"
    });
    let text = ok(&d, &["status"]);
    assert!(text.contains("offline, probe in"), "{text}");

    let before = up.receiver.connections();
    let out = ok(&d, &["wake", "e"]);
    assert_eq!(out, "e: offline, probing now\n");
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.receiver.connections() <= before {
        assert!(
            Instant::now() < deadline,
            "no probe within 5 s of wake; stderr:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    let (code, _, err) = admin(&d, &["wake", "nosuch"]);
    assert_eq!(code, 1);
    assert!(err.contains("no endpoint named \"nosuch\""), "{err}");
}

#[test]
fn pause_holds_deliveries_and_resume_drains_them() {
    let up = Upstream::start();
    let witness = Upstream::start();
    let d = with_witness(&up, &witness);
    let out = ok(&d, &["pause", "e"]);
    assert!(out.starts_with("paused e: deliveries held"), "{out}");
    for n in 0..3 {
        let r = d.post_event(&event("Test.pause", &format!("pz-{n}"), "{}"));
        assert_eq!(r.status, 202, "events keep queueing while paused: {r:?}");
    }
    // `w` got all three: `e` had the same chance to send them, and held them.
    witness.wait_for(3);
    assert_eq!(
        up.receiver.requests().len(),
        0,
        "nothing is sent while paused"
    );
    let e = endpoint_status(&d, "e");
    assert_eq!(
        (&e["state"], &e["pending"], &e["since_start"]["delivered"]),
        (&"paused".into(), &3.into(), &0.into()),
        "{e:#}"
    );
    assert_eq!(
        d.query_i64(
            "SELECT COUNT(*) FROM endpoint_state WHERE state = 'paused'",
            []
        ),
        1,
        "the hold is stored, so it survives a restart"
    );

    let out = ok(&d, &["resume", "e"]);
    assert!(out.starts_with("resumed e (was paused)"), "{out}");
    up.wait_for(3);
    wait_db(&d, "the backlog drains", |d| pending(d) == 0);
    assert_eq!(endpoint_status(&d, "e")["state"], "online");
}

/// A daemon with endpoints `keep` and `old` on `up` (slow retries), and `old`'s TOML (to
/// remove it from the config).
fn keep_and_old(up: &Upstream) -> (TestDaemon, String) {
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let endpoint = |name: &str| {
        Endpoint::new(name, &up.url(&format!("/{name}")), &ca)
            .retry("initial = \"30s\"")
            .toml()
    };
    let old = endpoint("old");
    (b.toml(&endpoint("keep")).toml(&old).start(), old)
}

#[test]
fn reload_prints_the_result_or_the_error_and_orphans_show() {
    let up = Upstream::start();
    up.receiver.set_refuse(true);
    let (d, old) = keep_and_old(&up);
    assert_eq!(d.post_event(&event("Test.orphan", "o-1", "{}")).status, 202);
    let original = std::fs::read_to_string(&d.config).unwrap();

    // `old` removed: its pending delivery stays, shown as orphaned.
    std::fs::write(&d.config, original.replace(&old, "")).unwrap();
    let out = ok(&d, &["reload"]);
    assert!(
        out.contains("reloaded") && out.contains("1 endpoint(s)"),
        "{out}"
    );
    let text = ok(&d, &["status"]);
    let row = text
        .lines()
        .find(|l| l.starts_with("old "))
        .unwrap_or_else(|| panic!("no orphaned row:\n{text}"));
    assert!(row.contains("orphaned") && row.contains(" 1 "), "{row}");
    let v = json(&d, &["endpoints"]);
    let orphan = v["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "old")
        .cloned()
        .unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(
        (&orphan["state"], &orphan["pending"]),
        (&"orphaned".into(), &1.into())
    );

    // A broken config: the error, exit 1, and the old config keeps running.
    std::fs::write(&d.config, format!("{original}\nbogus_key = 1\n")).unwrap();
    let (code, out, err) = admin(&d, &["reload"]);
    assert_eq!(code, 1, "stdout: {out}");
    assert!(err.starts_with("edgehook: reload refused"), "{err}");
    assert!(err.contains("bogus_key"), "{err}");
    let v = json(&d, &["status"]);
    assert!(v["reloads"]["failed"].as_u64() >= Some(1), "{v:#}");
    assert!(
        v["reloads"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("bogus_key")),
        "{v:#}"
    );
    assert!(ok(&d, &["status"]).contains("last reload failed:"));
    assert_eq!(d.post_event(&event("Test.still", "o-2", "{}")).status, 202);
}

#[test]
fn missing_daemon_is_reported_with_the_socket_path() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("edgehook.toml");
    // Only the admin_socket key is read (relative to the config file); the rest may be
    // unreadable to the caller (secrets).
    std::fs::write(&config, "[daemon]\nadmin_socket = \"run/admin.sock\"\n").unwrap();
    let (code, out, err) = run_cli(&["status", "--config", config.to_str().unwrap()], None);
    assert_eq!((code, out.as_str()), (1, ""));
    let expected = format!(
        "edgehook: cannot reach edgehook at {} (daemon.admin_socket in {}): is it running?\n",
        dir.path().join("run/admin.sock").display(),
        config.display()
    );
    assert_eq!(err, expected);
}

/// A daemon whose temp dir others may traverse (it is 0700 by default), so that uid
/// 65534 reaches the socket file and its mode and `SO_PEERCRED` decide.
fn traversable(b: Builder) -> TestDaemon {
    std::fs::set_permissions(b.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    b.toml(crate::util::ENDPOINTS).start()
}

#[test]
fn admin_socket_refuses_other_users() {
    let Some(_) = as_nobody() else { return };
    let d = traversable(Builder::new());
    let socket = admin_socket(&d);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "admin socket mode");
    let s = socket.to_str().unwrap();

    // The file mode keeps uid 65534 out…
    let (code, _, err) = run_command(as_nobody().unwrap(), &["status", "--admin-socket", s]);
    assert_eq!(code, 1);
    assert!(err.contains("permission denied"), "{err}");
    assert!(err.contains(s), "{err}");

    // …and SO_PEERCRED does too when the mode is looser (SocketMode=, a stray chmod).
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, _, err) = run_command(as_nobody().unwrap(), &["status", "--admin-socket", s]);
    assert_eq!(code, 1);
    assert!(
        err.contains("uid 65534 may not use the admin socket: it is for root"),
        "{err}"
    );
    // Root still gets in.
    ok(&d, &["status"]);
}

#[test]
fn admin_group_members_may_use_the_socket() {
    let Some(_) = as_nobody() else { return };
    let d = traversable(Builder::new().daemon("admin_group = \"nogroup\""));
    let socket = admin_socket(&d);
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o660,
        "admin socket mode with a group"
    );
    let (code, out, err) = run_command(
        as_nobody().unwrap(),
        &["endpoints", "--admin-socket", socket.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("spark") && out.contains("flows"), "{out}");
}

/// Every sample of a Prometheus text exposition as `name {labels as JSON} value`, parsed
/// by the reference Python parser; `None` (with a note) where it is not installed.
fn prometheus_parse(text: &str) -> Option<Vec<String>> {
    if !tools::python_module("prometheus_client", "the Prometheus parser check") {
        return None;
    }
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        print(s.name, json.dumps(s.labels, sort_keys=True), float(s.value))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser rejected the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
    )
}

/// `GET path` over plain HTTP/1.0 on TCP: the whole response.
fn http_get(addr: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("connecting to metrics_listen");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn metrics_are_valid_prometheus_text_on_the_socket_and_metrics_listen() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let up = Upstream::start();
    let b = Builder::new().daemon(&format!("metrics_listen = {addr:?}"));
    let ca = up.write_ca(b.dir());
    let d = b
        .toml(&Endpoint::new("e", &up.url("/hook"), &ca).toml())
        .start();
    assert_eq!(d.post_event(&event("Test.m", "m-1", "{}")).status, 202);
    assert_eq!(d.post_event(&event("Test.m", "m-1", "{}")).status, 200);
    let bad = d.post("/v1/events", "application/json", b"{\"type\":\"\"}");
    assert_eq!(bad.status, 400);
    up.wait_for(1);
    let delivered = "edgehook_deliveries_total{endpoint=\"e\",outcome=\"delivered\"} 1";
    let mut text = String::new();
    wait_until(&d, "the delivery is counted", || {
        text = ok(&d, &["metrics"]);
        text.contains(delivered)
    });
    for line in [
        "edgehook_events_received_total{result=\"accepted\"} 1",
        "edgehook_events_received_total{result=\"duplicate\"} 1",
        "edgehook_events_received_total{result=\"rejected\"} 1",
        "edgehook_reloads_total{result=\"ok\"} 0",
        "edgehook_queue_pending{endpoint=\"e\"} 0",
        "edgehook_queue_dead{endpoint=\"e\"} 0",
        "edgehook_queue_max_bytes 1073741824",
        "edgehook_endpoint_up{endpoint=\"e\"} 1",
        "edgehook_delivery_duration_seconds_count{endpoint=\"e\"} 1",
        "# TYPE edgehook_delivery_duration_seconds histogram",
        "# TYPE edgehook_oldest_pending_age_seconds gauge",
        "# TYPE edgehook_queue_bytes gauge",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?}:\n{text}");
    }

    let response = http_get(&addr, "/metrics");
    assert!(
        response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
        "{response}"
    );
    assert!(response.contains("text/plain; version=0.0.4"), "{response}");
    let scraped = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("");
    assert!(scraped.contains(delivered), "{scraped}");
    let other = http_get(&addr, "/v1/status");
    assert!(
        other.contains(" 404 "),
        "metrics_listen serves /metrics only: {other}"
    );

    for exposition in [text.as_str(), scraped] {
        let Some(samples) = prometheus_parse(exposition) else {
            return;
        };
        for expected in [
            r#"edgehook_deliveries_total {"endpoint": "e", "outcome": "delivered"} 1.0"#,
            r#"edgehook_events_received_total {"result": "accepted"} 1.0"#,
            r#"edgehook_delivery_duration_seconds_bucket {"endpoint": "e", "le": "+Inf"} 1.0"#,
            r#"edgehook_queue_max_bytes {} 1073741824.0"#,
        ] {
            assert!(
                samples.iter().any(|s| s == expected),
                "parser did not yield {expected:?}: {samples:#?}"
            );
        }
    }
}

/// The cargo target dir the test binary was built in (holds `CACHEDIR.TAG`).
fn target_dir() -> Option<PathBuf> {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_edgehook"));
    exe.ancestors()
        .find(|d| d.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
}

#[test]
fn man_page_and_completions_are_generated_from_the_cli() {
    let dirs = [
        Some(PathBuf::from(env!("OUT_DIR"))),
        target_dir().map(|t| t.join("assets")),
    ];
    for dir in dirs.into_iter().flatten() {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
        };
        let page = read("edgehook.8");
        assert!(page.contains(".TH edgehook 8"), "{page}");
        assert!(page.contains("edgehook\\-dead(8)"), "{page}");
        assert!(read("edgehook-dead-purge.8").contains("\\-\\-yes"));
        assert!(read("edgehook.bash").contains("purge"));
        assert!(read("_edgehook").contains("#compdef edgehook"));
        assert!(read("edgehook.fish").contains("complete -c edgehook"));
    }
}

/// `edgehook ARGS… --admin-socket S` on a pseudo-terminal (util-linux `script`), fed
/// `input`; its output (the terminal's, so `\r\n` line ends), or `None` without `script`.
fn on_terminal(d: &TestDaemon, args: &str, input: &str, env: &[(&str, &str)]) -> Option<String> {
    if !Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("note: util-linux `script` not found; skipping the terminal check");
        return None;
    }
    let line = format!(
        "{} {args} --admin-socket {}",
        edgehook_bin().to_string_lossy(),
        admin_socket(d).display()
    );
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting script");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn terminal_gets_colour_and_purge_asks_first() {
    let up = Upstream::start();
    up.receiver.set_response(400).unwrap();
    let d = with_endpoint(&up, |e| e);
    assert_eq!(d.post_event(&event("Test.tty", "t-1", "{}")).status, 202);
    wait_db(&d, "a dead letter", |d| dead_count(d) == 1);

    let Some(text) = on_terminal(&d, "status", "", &[]) else {
        return;
    };
    assert!(text.contains("\x1b[1mENDPOINT\x1b[0m"), "{text:?}");
    let plain = on_terminal(&d, "status", "", &[("NO_COLOR", "1")]).unwrap();
    assert!(
        plain.contains("ENDPOINT") && !plain.contains('\x1b'),
        "{plain:?}"
    );

    let no = on_terminal(&d, "dead purge", "n\n", &[]).unwrap();
    assert!(
        no.contains("Purge 1 dead letter(s)? They are deleted for good. [y/N]"),
        "{no:?}"
    );
    assert!(
        no.contains("purge cancelled; nothing was deleted"),
        "{no:?}"
    );
    assert_eq!(dead_count(&d), 1);
    let yes = on_terminal(&d, "dead purge", "y\n", &[]).unwrap();
    assert!(yes.contains("purged 1 dead letter(s)"), "{yes:?}");
    assert_eq!(dead_count(&d), 0);
}

#[test]
fn purge_deletes_an_orphaned_backlog_and_frees_its_bytes() {
    let up = Upstream::start();
    let (d, old) = keep_and_old(&up);
    let only_old = |id: &str, data: &str| {
        format!(r#"{{"type":"Test.purge","id":"{id}","data":{data},"endpoints":["old"]}}"#)
    };
    // One dead letter of `old` (400 is permanent), then a backlog while the link is down.
    up.receiver.fail_matching("doomed", 400, 1).unwrap();
    assert_eq!(
        d.post_event(&only_old("old-dead", r#"{"doomed":true}"#))
            .status,
        202
    );
    wait_db(&d, "old-dead is dead", |d| {
        d.query_i64(
            "SELECT COUNT(*) FROM deliveries WHERE state = ?1",
            [STATE_DEAD],
        ) == 1
    });
    // The upstream goes away, pooled connections included (refuse mode would only refuse
    // new ones): the rest stays queued.
    drop(up);
    for id in ["old-1", "old-2"] {
        assert_eq!(d.post_event(&only_old(id, "{}")).status, 202);
    }
    assert_eq!(
        d.post_event(&event("Test.purge", "both-1", "{}")).status,
        202
    );
    let bytes_before = json(&d, &["status"])["queue"]["bytes"].as_u64().unwrap();

    // `old` leaves the config: status names the command for its backlog.
    let original = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, original.replace(&old, "")).unwrap();
    ok(&d, &["reload"]);
    let text = ok(&d, &["status"]);
    assert!(
        text.contains("`edgehook purge --endpoint old` deletes them"),
        "{text}"
    );

    // Refusals: a configured endpoint without --force; no terminal and no --yes.
    let (code, _, err) = admin(&d, &["purge", "--endpoint", "keep", "--yes"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("is still in") && err.contains("--force"),
        "{err}"
    );
    let (code, _, err) = admin(&d, &["purge", "--endpoint", "old"]);
    assert_eq!(code, 1);
    assert!(err.contains("pass --yes"), "{err}");
    assert_eq!(
        d.query_i64("SELECT COUNT(*) FROM deliveries WHERE endpoint = 'old'", []),
        4,
        "nothing deleted by a refusal (old-dead, old-1, old-2, both-1)"
    );
    // On a terminal it shows the counts and asks; "n" deletes nothing.
    if let Some(no) = on_terminal(&d, "purge --endpoint old", "n\n", &[]) {
        assert!(
            no.contains("Purge endpoint old: 3 pending and 1 dead deliveries? They are deleted for good. [y/N]"),
            "{no:?}"
        );
        assert!(
            no.contains("purge cancelled; nothing was deleted"),
            "{no:?}"
        );
        assert_eq!(
            d.query_i64("SELECT COUNT(*) FROM deliveries WHERE endpoint = 'old'", []),
            4
        );
    }

    let out = ok(&d, &["purge", "--endpoint", "old", "--yes"]);
    assert!(
        out.starts_with("purged 4 deliveries of endpoint old"),
        "{out}"
    );
    assert_eq!(
        d.query_i64("SELECT COUNT(*) FROM deliveries WHERE endpoint = 'old'", []),
        0
    );
    for id in ["old-dead", "old-1", "old-2"] {
        assert_eq!(d.events_with_id(id), 0, "{id} only old needed: deleted");
    }
    assert_eq!(d.events_with_id("both-1"), 1, "keep still needs both-1");
    let bytes_after = json(&d, &["status"])["queue"]["bytes"].as_u64().unwrap();
    let left = d.query_i64("SELECT SUM(size) FROM events", []) as u64;
    assert!(bytes_after < bytes_before, "{bytes_after} < {bytes_before}");
    assert_eq!(bytes_after, left, "queue bytes count what is left");
    let text = ok(&d, &["status"]);
    assert!(!text.contains("old "), "no orphaned row left:\n{text}");

    // --force purges a configured endpoint's backlog too.
    let out = ok(&d, &["purge", "--endpoint", "keep", "--yes", "--force"]);
    assert!(
        out.starts_with("purged 1 deliveries of endpoint keep"),
        "{out}"
    );
    assert_eq!(d.events_with_id("both-1"), 0);
}
