//! Hostile clients (SPEC §2, §3: "bounded everything … a bad client never affects another
//! client or data already accepted"). One test per attack; each checks that a normal
//! client is served while the attack is under way, and that what was accepted before is
//! intact afterwards.

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::{accept_some, intact, served};
use crate::util::client::{self, LineClient, Reply};
use crate::util::{event, tools, Builder, TestDaemon, ENDPOINTS};

/// How long a test waits for the daemon to reach a state it cannot signal (connections
/// accepted, as `/proc` shows).
const WAIT: Duration = Duration::from_secs(15);

/// Client connections the daemon has accepted on `socket` and holds open: its descriptors
/// (`/proc/PID/fd`) that are connected sockets bound to that path (`/proc/net/unix`).
/// Connections still waiting in the listen backlog have no descriptor in the daemon yet.
fn accepted(d: &TestDaemon, socket: &Path) -> usize {
    let path = socket.to_str().expect("UTF-8 socket path");
    let connected: HashSet<String> = std::fs::read_to_string("/proc/net/unix")
        .expect("reading /proc/net/unix")
        .lines()
        .skip(1)
        .filter_map(|l| {
            // Num RefCount Protocol Flags Type St Inode Path; St 03 = connected.
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.len() == 8 && cols[5] == "03" && cols[7] == path).then(|| cols[6].to_string())
        })
        .collect();
    std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
        .expect("listing the daemon's descriptors")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .filter(|inode| connected.contains(inode))
        .count()
}

/// A keep-alive `POST /v1/events` of one event (no `Connection: close`).
fn keep_alive_post(body: &str) -> Vec<u8> {
    format!(
        "POST /v1/events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Poll `cond` until it holds, failing after [`WAIT`] with `what`.
fn wait_until(d: &TestDaemon, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; stderr:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `n` connections to `socket`, opened from a helper thread so that a full listen
/// backlog (connect blocks) fails the test instead of hanging it.
fn open_idle(socket: &Path, n: usize) -> Vec<UnixStream> {
    let (tx, rx) = mpsc::channel();
    let socket = socket.to_path_buf();
    std::thread::spawn(move || {
        for _ in 0..n {
            if tx.send(UnixStream::connect(&socket)).is_err() {
                return;
            }
        }
    });
    (0..n)
        .map(|i| {
            rx.recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("connection {i} of {n} blocked: listen backlog full"))
                .unwrap_or_else(|e| panic!("connection {i} of {n}: {e}"))
        })
        .collect()
}

/// Slowloris: many clients dribble their request head a byte at a time. Each costs the
/// daemon one connection slot and a few bytes (the head timeout, 30 s, ends it); others
/// are served at once meanwhile.
#[test]
fn slowloris_clients_do_not_hold_up_others() {
    let d = Builder::new().toml(ENDPOINTS).start();
    let before = accept_some(&d, "pre", 5);
    let stop = Arc::new(AtomicBool::new(false));
    let slow: Vec<_> = (0..50)
        .map(|_| {
            let mut s = client::connect(d.socket()).unwrap();
            let stop = stop.clone();
            std::thread::spawn(move || {
                // A head that takes far longer to dribble than the test runs.
                let head = format!(
                    "POST /v1/events HTTP/1.1\r\nHost: localhost\r\nX-Pad: {}\r\n",
                    "p".repeat(4096)
                )
                .into_bytes();
                let mut sent = 0;
                // Paced by a sleep on purpose: dribbling is the attack.
                while !stop.load(Ordering::SeqCst) && sent < head.len() {
                    s.write_all(&head[sent..=sent])
                        .expect("the daemon keeps a slow client");
                    sent += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                sent
            })
        })
        .collect();
    wait_until(&d, "50 slow clients accepted", || {
        accepted(&d, d.socket()) >= 50
    });

    let started = Instant::now();
    for i in 0..20 {
        served(&d, &format!("during-{i}"));
    }
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let dribbled: Vec<usize> = slow.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        dribbled.iter().all(|n| *n > 1),
        "the slow clients were still dribbling while the others were served: {dribbled:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "20 normal requests took {took:?} beside 50 slow clients"
    );
    intact(&d, &before);
}

/// Witness that the daemon's event loop has run since now: a request on another socket
/// (the admin socket) answered. An ingest accept loop that could accept would have done
/// so by then, so what it has not accepted it is holding back.
fn loop_ran(d: &TestDaemon) {
    let admin = d.dir().join("admin.sock");
    let r = client::request(&admin, "GET", "/v1/status", None, b"").expect("the admin socket");
    assert_eq!(r.status, 200, "{r:?}");
}

/// `max_connections` bounds what idle clients can hold: with 8 slots taken by idle
/// keep-alive connections a 9th client waits (in the listen backlog: not refused, not
/// crashing anything) and is served as soon as one idle client goes away.
#[test]
fn idle_clients_hold_at_most_max_connections_and_the_next_waits_its_turn() {
    let d = Builder::new()
        .ingest("max_connections = 8")
        .toml(ENDPOINTS)
        .start();
    let before = accept_some(&d, "pre", 3);
    // Each answered once, then idle on a kept-alive connection: all 8 slots are taken.
    let mut idle: Vec<UnixStream> = (0..8)
        .map(|i| {
            let mut s = client::connect(d.socket()).unwrap();
            s.write_all(&keep_alive_post(&event(
                "Test.idle",
                &format!("idle-{i}"),
                "{}",
            )))
            .unwrap();
            let r = Reply::read(&mut s).unwrap();
            assert_eq!(r.status, 202, "{r:?}");
            s
        })
        .collect();

    let mut ninth = client::connect(d.socket()).expect("the 9th connects (listen backlog)");
    ninth
        .write_all(client::head("GET", "/v1/health", None, 0).as_bytes())
        .unwrap();
    // The daemon's event loop has run since the 9th connected, yet it is not accepted.
    loop_ran(&d);
    assert_eq!(accepted(&d, d.socket()), 8, "the 9th waits in the backlog");
    ninth.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    match ninth.read(&mut buf) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the 9th client must wait for a free slot, got {other:?}"),
    }
    ninth.set_nonblocking(false).unwrap();

    drop(idle.pop());
    ninth.set_read_timeout(Some(client::IO_TIMEOUT)).unwrap();
    let r = Reply::read(&mut ninth).expect("served once a slot is free");
    assert_eq!(r.status, 200, "{r:?}");
    drop(ninth);
    served(&d, "after-idle");
    intact(&d, &before);
}

/// Raise this process's open-files limit (the daemon inherits it) to at least `want`, or
/// as far as the hard limit allows; returns the limit in force.
fn raise_nofile(want: u64) -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft >= want {
        return soft;
    }
    let new = want.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, new, hard).expect("setrlimit");
    new
}

/// Thousands of idle connections: up to `max_connections` are held (a normal client is
/// still served below the limit), the rest wait in the backlog without costing the
/// daemon a descriptor or memory, and once idle clients leave the others are served.
#[test]
fn thousands_of_idle_connections_stay_within_max_connections() {
    // The test holds every connection and the daemon its accepted half, plus the rest.
    let limit = raise_nofile(8192);
    let (max, flood) = if limit >= 4500 {
        (1024, 2000)
    } else {
        tools::missing(
            "2000 idle connections against max_connections = 1024",
            &format!("the open-files limit is {limit}; testing with fewer"),
        );
        let max = (limit as usize / 4).max(16);
        (max, 2 * max - 48)
    };
    let half = flood / 2;
    let d = Builder::new()
        .ingest(&format!("max_connections = {max}"))
        .toml(ENDPOINTS)
        .start();
    let before = accept_some(&d, "pre", 3);
    let rss = d.rss_kib();

    let mut first = open_idle(d.socket(), half);
    wait_until(&d, "the first half accepted", || {
        accepted(&d, d.socket()) >= half
    });
    served(&d, "below-the-limit");

    let second = open_idle(d.socket(), flood - half);
    wait_until(&d, "connections up to max_connections accepted", || {
        accepted(&d, d.socket()) >= max
    });
    // Not one more than max_connections, though the event loop has run since.
    loop_ran(&d);
    let held = accepted(&d, d.socket());
    assert!(
        held <= max,
        "{held} connections held, max_connections = {max}"
    );
    let grown = d.rss_kib().saturating_sub(rss);
    eprintln!("{flood} idle connections: {held} held, daemon RSS +{grown} KiB");
    assert!(
        grown < 64 * 1024,
        "{flood} idle connections cost {grown} KiB of daemon memory"
    );

    // The first half leaves: the waiting ones are accepted, and a normal client is served.
    first.clear();
    served(&d, "after-the-flood");
    drop(second);
    intact(&d, &before);
}

/// A client that pipelines requests and never reads the replies: once its receive
/// buffer is full the daemon stops reading from it (it does not buffer replies or
/// requests without bound); others are unaffected.
#[test]
fn http_client_that_never_reads_replies_is_bounded() {
    let d = Builder::new().toml(ENDPOINTS).start();
    let before = accept_some(&d, "pre", 3);
    let rss = d.rss_kib();
    let mut s = client::connect(d.socket()).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let request = keep_alive_post(r#"{"type":"Test.pipe","data":{}}"#);
    let burst: Vec<u8> = request.repeat(100);
    let (written, stalled) = write_until_stalled(&mut s, &burst, 64 << 20);
    assert!(
        stalled,
        "the daemon read {written} bytes of requests whose replies nobody reads"
    );
    let grown = d.rss_kib().saturating_sub(rss);
    eprintln!("unread HTTP pipeline: {written} bytes written, daemon RSS +{grown} KiB");
    assert!(grown < 32 * 1024, "daemon memory grew by {grown} KiB");
    let stored = d.query_i64("SELECT COUNT(*) FROM events WHERE type = 'Test.pipe'", []);
    let sent = (written / request.len()) as i64;
    assert!(
        stored > 0 && stored < sent,
        "{stored} of the {sent} pipelined events stored: processing stopped with the reader"
    );
    served(&d, "beside-the-pipeline");
    drop(s);
    served(&d, "after-the-pipeline");
    intact(&d, &before);
}

/// The same on the line socket, whose protocol invites pipelining: reading stops once the
/// per-connection queue (64 reads) and the socket buffers are full.
#[test]
fn line_client_that_never_reads_replies_is_bounded() {
    let d = Builder::new().lines_socket().toml(ENDPOINTS).start();
    let before = accept_some(&d, "pre", 3);
    let rss = d.rss_kib();
    let mut s = client::connect(d.lines_socket().unwrap()).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let line = b"{\"type\":\"Test.pipe\",\"data\":{}}\n";
    let burst: Vec<u8> = line.repeat(2000);
    let (written, stalled) = write_until_stalled(&mut s, &burst, 256 << 20);
    assert!(
        stalled,
        "the daemon read {written} bytes of unanswered lines"
    );
    let grown = d.rss_kib().saturating_sub(rss);
    eprintln!("unread line pipeline: {written} bytes written, daemon RSS +{grown} KiB");
    assert!(grown < 48 * 1024, "daemon memory grew by {grown} KiB");
    served(&d, "beside-the-lines");
    let mut other = LineClient::connect(d.lines_socket().unwrap());
    other
        .try_write(format!("{}\n", event("Test.normal", "line-normal", "{}")).as_bytes())
        .unwrap();
    assert_eq!(other.reply()["ok"], true);
    drop(s);
    intact(&d, &before);
}

/// 100 MB bodies: a declared `Content-Length` over the limit is refused before a byte of
/// the body is read; a chunked body is cut off once it passes `max_event_bytes`.
#[test]
fn huge_bodies_are_refused_without_reading_them() {
    let d = Builder::new().toml(ENDPOINTS).start();
    let before = accept_some(&d, "pre", 3);
    let hundred_mb = 100_000_000usize;

    let mut declared = client::connect(d.socket()).unwrap();
    declared
        .write_all(
            client::head("POST", "/v1/events", Some("application/json"), hundred_mb).as_bytes(),
        )
        .unwrap();
    let r = Reply::read(&mut declared).expect("answered before any body byte is sent");
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.code(), "too_large");
    assert!(
        r.message().contains("ingest.max_event_bytes"),
        "{}",
        r.message()
    );
    served(&d, "beside-declared");
    drop(declared);

    let mut chunked = client::connect(d.socket()).unwrap();
    chunked
        .write_all(
            b"POST /v1/events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Transfer-Encoding: chunked\r\n\r\n",
        )
        .unwrap();
    let mut writer = chunked.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let upload = std::thread::spawn(move || {
        let chunk = [
            format!("{:x}\r\n", 64 * 1024).into_bytes(),
            vec![b' '; 64 * 1024],
            b"\r\n".to_vec(),
        ]
        .concat();
        let mut sent = 0usize;
        while sent < hundred_mb {
            if writer.write_all(&chunk).is_err() {
                break;
            }
            sent += 64 * 1024;
        }
        sent
    });
    let r = Reply::read(&mut chunked).expect("answered while the body is still coming");
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.code(), "too_large");
    served(&d, "beside-chunked");
    let sent = upload.join().unwrap();
    eprintln!("refused chunked body: {sent} bytes sent before the daemon closed");
    drop(chunked);
    assert!(
        sent < 16 << 20,
        "the daemon kept reading a refused body: {sent} bytes sent"
    );
    intact(&d, &before);
}

/// 100 000 nested arrays (and objects) at the top level, in `data`, in a batch and on
/// the line socket: 400, never a stack overflow. Balanced, it is valid JSON but not a
/// valid event (an event nests at most 127 levels, serde_json's limit, which `match`
/// filters parsing `data` have too); unbalanced, it is `invalid_json` naming the position.
#[test]
fn deeply_nested_json_is_400_not_a_crash() {
    let d = Builder::new().lines_socket().toml(ENDPOINTS).start();
    let before = accept_some(&d, "pre", 3);
    let arrays = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(50_000), "}".repeat(50_000));
    let unclosed = "[".repeat(100_000);
    let bodies = [
        (arrays.clone(), "invalid_event", "JSON object"),
        (
            format!(r#"{{"type":"Test.deep","data":{arrays}}}"#),
            "invalid_event",
            "more than 127 levels",
        ),
        (
            format!(r#"{{"type":"Test.deep","data":{objects}}}"#),
            "invalid_event",
            "more than 127 levels",
        ),
        (
            format!(r#"{{"type":"Test.deep","data":1,"endpoints":{arrays}}}"#),
            "invalid_event",
            "invalid type",
        ),
        (unclosed.clone(), "invalid_json", "line 1 column"),
        (
            format!(r#"{{"type":"Test.deep","data":{unclosed}"#),
            "invalid_json",
            "line 1 column",
        ),
    ];
    for (i, (body, code, needle)) in bodies.iter().enumerate() {
        let r = d.post_event(body);
        assert_eq!(r.status, 400, "{r:?}");
        assert_eq!(r.code(), *code, "{r:?}");
        assert!(r.message().contains(needle), "{needle}: {}", r.message());
        served(&d, &format!("between-deep-{i}"));
    }
    let batch = format!("{}\n{}\n", event("Test.ok", "batch-ok", "{}"), bodies[1].0);
    let r = d.post("/v1/events", "application/x-ndjson", batch.as_bytes());
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.message().contains("line 2"), "{}", r.message());
    assert_eq!(
        d.events_with_id("batch-ok"),
        0,
        "a bad batch stores nothing"
    );

    let mut lines = LineClient::connect(d.lines_socket().unwrap());
    let input: String = bodies.iter().map(|(b, _, _)| format!("{b}\n")).collect();
    lines
        .send(format!("{input}{}\n", event("Test.ok", "line-after-deep", "{}")).into_bytes())
        .join()
        .unwrap();
    for (_, code, _) in &bodies {
        let reply = lines.reply();
        assert_eq!(reply["ok"], false, "{reply}");
        assert_eq!(reply["error"]["code"], *code, "{reply}");
    }
    assert_eq!(lines.reply()["ok"], true, "the line after them is stored");
    assert_eq!(
        d.query_i64("SELECT COUNT(*) FROM events WHERE type = 'Test.deep'", []),
        0
    );
    intact(&d, &before);
}

/// Invalid UTF-8, an unpaired UTF-16 surrogate escape and raw NUL bytes inside JSON
/// strings (in `type`, in `data`, in a key), and a number no f64 holds, are
/// `400 invalid_json` with line and column, over HTTP and the line socket; an escaped
/// `\u0000` is valid JSON and is kept byte for byte in `data`.
#[test]
fn invalid_utf8_and_nul_bytes_are_400_invalid_json() {
    let d = Builder::new().lines_socket().toml(ENDPOINTS).start();
    let before = accept_some(&d, "pre", 3);
    let bad: [&[u8]; 8] = [
        b"{\"type\":\"Test.x\",\"data\":\"\xff\xfe\"}",
        br#"{"type":"Test.x","data":"lone \ud800 surrogate"}"#,
        br#"{"type":"Test.x","data":[1, 1e999]}"#,
        b"{\"type\":\"Test.\xc3\",\"data\":1}",
        b"{\"type\":\"Test.x\",\"data\":{\"k\xed\xa0\x80\":1}}",
        b"{\"type\":\"Test.x\",\"data\":\"a\x00b\"}",
        b"{\"type\":\"Test.x\",\x00\"data\":1}",
        b"{\"type\":\"Test.x\",\"data\":1}\x00",
    ];
    for body in bad {
        let r = d.post("/v1/events", "application/json", body);
        let shown = String::from_utf8_lossy(body);
        assert_eq!(r.status, 400, "{shown}: {r:?}");
        assert_eq!(r.code(), "invalid_json", "{shown}: {r:?}");
        assert!(
            r.message().contains("line 1 column"),
            "{shown}: {}",
            r.message()
        );
    }
    let mut lines = LineClient::connect(d.lines_socket().unwrap());
    for body in bad {
        // A raw NUL is not a line break: one reply per line.
        lines.try_write(&[body, b"\n"].concat()).unwrap();
        let reply = lines.reply();
        assert_eq!(reply["error"]["code"], "invalid_json", "{reply}");
    }

    let r = d.post_event(r#"{"type":"Test.\u0000","data":1}"#);
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.code(), "invalid_event", "a NUL is not allowed in `type`");
    let r = d.post_event(&event("Test.nul", "escaped-nul", r#""a\u0000b""#));
    assert_eq!(r.status, 202, "an escaped NUL is valid JSON: {r:?}");
    let data: Vec<u8> = d
        .db()
        .query_row(
            "SELECT data FROM events WHERE id = 'escaped-nul'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(data, br#""a\u0000b""#, "kept byte for byte");
    assert_eq!(
        d.query_i64("SELECT COUNT(*) FROM events WHERE type = 'Test.x'", []),
        0
    );
    served(&d, "after-bad-bytes");
    intact(&d, &before);
}

/// Write `burst` again and again until a write times out (the daemon stopped reading:
/// `true`) or `cap` bytes went through (`false`). Returns (bytes written, stalled).
fn write_until_stalled(
    s: &mut std::os::unix::net::UnixStream,
    burst: &[u8],
    cap: usize,
) -> (usize, bool) {
    let mut written = 0usize;
    while written <= cap {
        match s.write(burst) {
            Ok(n) => written += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (written, true)
            }
            Err(e) => panic!("writing a pipeline the daemon never answers: {e}"),
        }
    }
    (written, false)
}
