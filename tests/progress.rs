//! Progress of the long operator commands: `dead retry` / `dead purge` over thousands of
//! dead letters draw a bar on a terminal (tmux) and print exactly their usual line when
//! piped; the daemon works through them in bounded batches, each dead letter exactly
//! once; a slow `reload` shows a spinner while it waits.

use std::io::{Read, Write};
use std::net::TcpListener;

use serde_json::Value;

use crate::util::cli::{admin, admin_socket};
use crate::util::client::connect;
use crate::util::delivery::{count_by_id, dead_count, pending, wait_db, Endpoint, Upstream};
use crate::util::tmux::Tmux;
use crate::util::{edgehook_bin, Builder, TestDaemon};

/// The daemon's batch (`admin/dead.rs`); the tests use a few of them.
const BATCH: usize = edgehook::admin::dead::BATCH;

/// A daemon whose endpoint `e` answers 400 (permanent) to everything, with `n` dead
/// letters `dl-0` … made by real deliveries.
fn with_dead_letters(n: usize) -> (Upstream, TestDaemon) {
    let up = Upstream::start();
    up.receiver.set_response(400).unwrap();
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let d = b
        .toml(&Endpoint::new("e", &up.url("/hook"), &ca).toml())
        .start();
    let batch: String = (0..n)
        .map(|i| format!("{{\"type\":\"Test.dead\",\"id\":\"dl-{i}\",\"data\":{{}}}}\n"))
        .collect();
    let r = d.post("/v1/events", "application/x-ndjson", batch.as_bytes());
    assert_eq!(r.status, 202, "{r:?}");
    wait_db(&d, "every event is a dead letter", |d| {
        dead_count(d) == n as i64 && pending(d) == 0
    });
    (up, d)
}

/// A shell line for tmux: `edgehook ARGS --admin-socket …`, then its exit status, then wait.
fn in_pane(d: &TestDaemon, args: &str) -> String {
    format!(
        "{} {args} --admin-socket {}; echo \"exited $?\"; sleep 600",
        edgehook_bin().to_string_lossy(),
        admin_socket(d).display()
    )
}

#[test]
fn dead_retry_on_a_terminal_draws_a_bar_up_to_the_total() {
    let n = 3 * BATCH;
    let (_up, d) = with_dead_letters(n);
    let Some(tmux) = Tmux::start(d.dir(), &in_pane(&d, "dead retry")) else {
        return;
    };
    let screen = tmux.wait_screen("the retry's end", |s| s.contains("exited "));
    assert!(screen.contains("exited 0"), "{screen}");
    // The finished bar stays above the result line: its label, its bar, the full count.
    let bar = screen
        .lines()
        .find(|l| l.starts_with("retrying dead letters ["))
        .unwrap_or_else(|| panic!("no progress bar on the terminal:\n{screen}"));
    assert!(bar.contains(&format!("] {n}/{n} (")), "{bar}");
    assert!(bar.contains("[======"), "{bar}");
    assert!(
        screen.contains(&format!(
            "retried {n} dead letter(s): queued again as new, attempts reset"
        )),
        "{screen}"
    );
}

#[test]
fn piped_dead_retry_and_purge_print_only_their_line() {
    let n = 2 * BATCH + 1;
    let (_up, d) = with_dead_letters(n);
    let (code, out, err) = admin(&d, &["dead", "retry"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("retried {n} dead letter(s): queued again as new, attempts reset\n")
    );
    assert_eq!(err, "", "nothing on stderr when it is not a terminal");
    wait_db(&d, "the retried letters die again", |d| {
        dead_count(d) == n as i64 && pending(d) == 0
    });
    let (code, out, err) = admin(&d, &["dead", "purge", "--yes", "--endpoint", "e"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("purged {n} dead letter(s) of endpoint e\n"));
    assert_eq!(err, "");
    assert_eq!(dead_count(&d), 0);
}

/// `POST path` with `Accept: application/x-ndjson` on the admin socket, as HTTP/1.0 so
/// the stream ends with the connection: the answer's lines, parsed.
fn progress_lines(d: &TestDaemon, path: &str, body: &str) -> Vec<Value> {
    let mut s = connect(&admin_socket(d)).expect("connecting to the admin socket");
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Accept: application/x-ndjson\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("reading the stream");
    let (head, lines) = answer.split_once("\r\n\r\n").expect("a response head");
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/x-ndjson"),
        "{head}"
    );
    lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

#[test]
fn batches_touch_every_dead_letter_exactly_once() {
    let n = 2 * BATCH + BATCH / 2;
    let (up, d) = with_dead_letters(n);

    // Retry: a line before the first batch and after each, then the count. The endpoint
    // keeps answering 400, so letters retried by the first batches die again while the
    // later ones run: they are not retried a second time.
    let lines = progress_lines(&d, "/v1/dead/retry", "{}");
    let done: Vec<u64> = lines[..lines.len() - 1]
        .iter()
        .map(|l| {
            assert_eq!(l["total"], n as u64, "{l}");
            l["done"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(
        done,
        [0, BATCH as u64, 2 * BATCH as u64, n as u64],
        "{lines:?}"
    );
    assert_eq!(lines.last().unwrap(), &serde_json::json!({"retried": n}));
    wait_db(&d, "the retried letters die again", |d| {
        dead_count(d) == n as i64 && pending(d) == 0
    });
    // Each event went out exactly twice: once before it died, once after the retry.
    let sent = count_by_id(&up.receiver.requests());
    assert_eq!(sent.len(), n);
    assert!(sent.values().all(|c| *c == 2), "{sent:?}");
    let attempts = d.query_i64("SELECT COUNT(*) FROM deliveries WHERE attempts != 1", []);
    assert_eq!(
        attempts, 0,
        "every retried letter started again at attempt 1"
    );

    // Purge: the same batches; every row and event is gone, status agrees.
    let lines = progress_lines(&d, "/v1/dead/purge", r#"{"endpoint":"e"}"#);
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(lines[3], serde_json::json!({"done": n, "total": n}));
    assert_eq!(lines[4], serde_json::json!({"purged": n}));
    assert_eq!(d.query_i64("SELECT COUNT(*) FROM deliveries", []), 0);
    assert_eq!(d.query_i64("SELECT COUNT(*) FROM events", []), 0);
    let (code, out, err) = admin(&d, &["status", "--json"]);
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["queue"]["dead"], 0, "{status:#}");
    assert_eq!(status["queue"]["bytes"], 0, "{status:#}");
}

#[test]
fn a_slow_reload_shows_a_spinner_on_a_terminal() {
    // An upstream that accepts the connection and the request but never answers: the
    // attempt stays in flight, and a reload waits for it up to shutdown_timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let b = Builder::new().daemon("shutdown_timeout = \"3s\"");
    let url = format!("http://127.0.0.1:{port}/hook");
    let d = b
        .toml(&format!(
            "[[endpoint]]\nname = \"e\"\nurl = {url:?}\nevents = [\"*\"]\ntimeout = \"30s\"\nallow_plain_http = true\n"
        ))
        .start();
    let r = d.post_event(r#"{"type":"Test.slow","id":"slow-1","data":{}}"#);
    assert_eq!(r.status, 202, "{r:?}");
    let (_conn, _) = silent.accept().expect("the delivery connects");

    let Some(tmux) = Tmux::start(d.dir(), &in_pane(&d, "reload")) else {
        return;
    };
    tmux.wait_screen("the spinner while the reload waits", |s| {
        s.contains("reloading edgehook (")
    });
    let screen = tmux.wait_screen("the reload's end", |s| s.contains("exited "));
    assert!(screen.contains("exited 0"), "{screen}");
    assert!(screen.contains("reloaded "), "{screen}");
    assert!(
        !screen.contains("reloading edgehook"),
        "the spinner is cleared once the answer is in:\n{screen}"
    );

    // Piped: the result line only.
    let (code, out, err) = admin(&d, &["reload"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("reloaded ") && out.lines().count() == 1,
        "{out}"
    );
    assert_eq!(err, "");
}
