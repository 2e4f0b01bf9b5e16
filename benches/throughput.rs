//! `cargo bench --bench throughput`: end-to-end throughput of the real daemon (the
//! release binary, its real sockets, an fsync'd SQLite queue) with the numbers that
//! BENCHMARKS.md records. Prints one table; not part of `cargo test`.
//!
//! Scenarios: events/s accepted over the HTTP socket with 1, 16 and 64 concurrent
//! keep-alive clients; over one pipelined line-socket connection; and deliveries/s end
//! to end (line socket → queue → TLS POST → the built-in receiver) at concurrency 32.
//! `EDGEHOOK_BENCH_SCALE` multiplies the event counts (default 1).
//!
//! `EDGEHOOK_BENCH=backlog` runs the big-backlog scenario instead (minutes): a million
//! events (`EDGEHOOK_BACKLOG_EVENTS`) queued for an endpoint whose receiver is down, then
//! the daemon's restart time with that queue (to `READY=1`), its memory while idle and
//! while draining (`VmRSS`, sampled every 250 ms), and the drain rate once the receiver
//! is up (it only counts requests, [`Receiver::count_only`]).
//!
//! `EDGEHOOK_BENCH=nginx` runs issue 14's rig: 100 000 events of 213 bytes
//! (`EDGEHOOK_BENCH_EVENTS`) through the line socket, and over HTTP from 64 clients,
//! delivered with Standard Webhooks signing to nginx from Debian (`support/nginx.rs`);
//! `EDGEHOOK_BENCH=builtin` runs the same rows against the built-in receiver.
//! `benches/quiet_window.py` runs both three times and prints the medians. To profile the
//! daemon, point `EDGEHOOK_TEST_BIN` at a wrapper script that execs it under the profiler
//! (e.g. `valgrind --tool=callgrind`); the rig stops each daemon with SIGTERM.
//! `EDGEHOOK_BENCH=fanout` stores 20 000 events for 100 offline endpoints (2 million
//! deliveries) and reports the ingest rate, threads and RSS.
//! `EDGEHOOK_BENCH=flash` measures flash wear, ingest only (offline endpoint): bytes
//! written per 213-byte event with one HTTP client (each event its own fsync'd commit),
//! with one client sending its own ids (the dedupe table), and one pipelined connection.
//!
//! Every row also says what the daemon spent (`support/proc_stats.rs`): CPU ms per 1 000
//! events, bytes written to storage per event, peak RSS; delivery rows add the requests
//! and connections the receiver saw.

mod support;
use support::endpoints::OFFLINE_ENDPOINT;
#[allow(dead_code, unused_imports)]
#[path = "../tests/util/mod.rs"]
mod util;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use edgehook::demo::pki;
use edgehook::demo::receiver::Receiver;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use support::proc_stats::{peak_rss_mib, Sampler, Snapshot};
use support::upstream::Upstream;
use support::wait::env_usize;

fn scale() -> usize {
    env_usize("EDGEHOOK_BENCH_SCALE", 1)
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    match std::env::var("EDGEHOOK_BENCH").as_deref() {
        Ok("backlog") => return backlog(&rt, env_usize("EDGEHOOK_BACKLOG_EVENTS", 1_000_000)),
        Ok(rig @ ("nginx" | "builtin")) => {
            return issue14_rig(&rt, rig, env_usize("EDGEHOOK_BENCH_EVENTS", 100_000))
        }
        Ok("fanout") => return fanout(env_usize("EDGEHOOK_BENCH_EVENTS", 20_000), 100),
        Ok("flash") => return flash(&rt, env_usize("EDGEHOOK_BENCH_EVENTS", 3_000)),
        _ => {}
    }
    header();
    for clients in [1usize, 16, 64] {
        let per_client = match clients {
            1 => 2_000,
            16 => 1_000,
            _ => 500,
        } * scale();
        let daemon = util::Builder::new().toml(OFFLINE_ENDPOINT).start();
        let run = Run::start(&daemon);
        let (n, _) = rt.block_on(http_clients(daemon.socket(), clients, per_client, PAD));
        run.row(
            &format!("http, {clients} client(s), durability=full"),
            n,
            None,
        );
    }
    {
        let daemon = util::Builder::new()
            .lines_socket()
            .toml(OFFLINE_ENDPOINT)
            .start();
        let n = 200_000 * scale();
        let run = Run::start(&daemon);
        lines_pipelined(daemon.lines_socket().expect("lines socket"), n, PAD);
        run.row("lines, 1 pipelined connection, full", n, None);
    }
    for (concurrency, n) in [(1usize, 3_000usize), (8, 10_000), (32, 20_000)] {
        rt.block_on(delivery(n * scale(), concurrency));
    }
    let (p50, p99, n) = rt.block_on(latency(2_000 * scale(), 1_000.0));
    println!(
        "{:<44} {n:>9}   p50 {:.2} ms, p99 {:.2} ms",
        "latency ingest→receiver, 1000 events/s",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
}

/// The `pad` of the built-in scenarios' events (lines of about 150 bytes).
const PAD: usize = 100;
/// The `pad` that makes the line-socket events of issue 14's rig 213 bytes long.
const RIG_PAD: usize = 162;

fn header() {
    println!(
        "{:<44} {:>8} {:>7} {:>9} {:>8} {:>9} {:>7} {:>13}",
        "scenario",
        "events",
        "seconds",
        "events/s",
        "CPU ms/1k",
        "written/ev",
        "peak RSS",
        "receiver"
    );
}

/// One scenario against one daemon: the clock and the daemon's `/proc` readings from
/// [`Run::start`] to [`Run::row`].
struct Run {
    pid: i32,
    start: Instant,
    before: Snapshot,
}

impl Run {
    fn start(daemon: &util::TestDaemon) -> Run {
        Run {
            pid: daemon.pid(),
            before: Snapshot::read(daemon.pid()),
            start: Instant::now(),
        }
    }

    /// Print the row; `receiver` is (requests, connections) for delivery scenarios.
    /// Returns the per-thread CPU line for the rig's profile notes.
    fn row(self, name: &str, n: usize, receiver: Option<(u64, u64)>) -> String {
        let secs = self.start.elapsed().as_secs_f64();
        let after = Snapshot::read(self.pid);
        let receiver = receiver.map_or(String::new(), |(r, c)| format!("{r} req/{c} conn"));
        println!(
            "{name:<44} {n:>8} {secs:>7.2} {:>9.0} {:>8.1} {:>8.0} B {:>5.1} MiB {receiver:>13}",
            n as f64 / secs,
            after.cpu_ms_per_1k(&self.before, n),
            after.written_per_event(&self.before, n),
            peak_rss_mib(self.pid),
        );
        after.threads_ms_per_1k(&self.before, n)
    }
}

/// A keep-alive HTTP/1.1 connection to the ingest socket.
async fn connect(socket: &Path) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect");
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    tx
}

/// POST one event and check the 202.
async fn post(tx: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>, body: String) {
    let req = Request::post("/v1/events")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    tx.ready().await.expect("connection ready");
    let resp = tx.send_request(req).await.expect("send");
    assert_eq!(resp.status(), 202);
    resp.into_body().collect().await.expect("body");
}

/// `clients` keep-alive connections, each POSTing `per_client` events in turn.
async fn http_clients(
    socket: &Path,
    clients: usize,
    per_client: usize,
    pad: usize,
) -> (usize, f64) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let socket = socket.to_path_buf();
        tasks.push(tokio::spawn(async move {
            let mut tx = connect(&socket).await;
            for i in 0..per_client {
                let body = format!(
                    r#"{{"type":"Bench.http","data":{{"client":{c},"i":{i},"pad":"{}"}}}}"#,
                    "x".repeat(pad)
                );
                post(&mut tx, body).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    (clients * per_client, start.elapsed().as_secs_f64())
}

/// One connection: write `n` lines (data padded with `pad` bytes) from a thread, read `n`
/// replies.
fn lines_pipelined(socket: &Path, n: usize, pad: usize) -> f64 {
    let stream = UnixStream::connect(socket).expect("connect lines socket");
    let mut writer = stream.try_clone().expect("clone");
    let start = Instant::now();
    let sender = std::thread::spawn(move || {
        let mut buf = Vec::with_capacity(1 << 20);
        for i in 0..n {
            writeln!(
                buf,
                r#"{{"type":"Bench.lines","data":{{"i":{i:>6},"pad":"{}"}}}}"#,
                "x".repeat(pad)
            )
            .expect("format");
            if buf.len() > 1 << 20 {
                writer.write_all(&buf).expect("write");
                buf.clear();
            }
        }
        writer.write_all(&buf).expect("write");
    });
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    for _ in 0..n {
        line.clear();
        reader.read_line(&mut line).expect("reply");
        assert!(line.starts_with(r#"{"ok":true"#), "{line}");
    }
    sender.join().expect("sender");
    start.elapsed().as_secs_f64()
}

/// `n` events through the line socket to a TLS receiver; one row, timed until all arrived.
async fn delivery(n: usize, concurrency: usize) {
    let (receiver, daemon) = delivery_setup(concurrency).await;
    let socket = daemon.lines_socket().expect("lines socket").to_path_buf();
    let run = Run::start(&daemon);
    let sent = tokio::task::spawn_blocking(move || lines_pipelined(&socket, n, PAD));
    let got = receiver
        .wait_for(n, Duration::from_secs(600))
        .await
        .expect("deliveries");
    let counts = (got.len() as u64, receiver.connections() as u64);
    run.row(
        &format!("delivery e2e, TLS, concurrency {concurrency}"),
        n,
        Some(counts),
    );
    sent.await.expect("sender");
    drop(daemon);
}

/// A receiver and a daemon with one TLS endpoint pointing at it.
async fn delivery_setup(concurrency: usize) -> (Receiver, util::TestDaemon) {
    let pki = pki::generate().expect("pki");
    let receiver = Receiver::start(&pki).await.expect("receiver");
    let builder = util::Builder::new().lines_socket();
    let ca = pki.write_ca(builder.dir()).expect("ca");
    let endpoint = format!(
        "[[endpoint]]\nname = \"bench\"\nurl = \"{}\"\nconcurrency = {concurrency}\n[endpoint.tls]\nca_file = {:?}\n",
        receiver.url("/bench"),
        ca
    );
    let daemon = tokio::task::spawn_blocking(move || builder.toml(&endpoint).start())
        .await
        .expect("start");
    (receiver, daemon)
}

/// Ingest-to-receiver latency with the link up: `n` events POSTed by one keep-alive HTTP
/// client at `rate` per second; each event's send instant against the receiver's arrival
/// instant. Returns (p50, p99, n).
async fn latency(n: usize, rate: f64) -> (Duration, Duration, usize) {
    let (receiver, daemon) = delivery_setup(32).await;
    let mut tx = connect(daemon.socket()).await;
    let start = Instant::now();
    let mut sent = Vec::with_capacity(n);
    for i in 0..n {
        tokio::time::sleep_until((start + Duration::from_secs_f64(i as f64 / rate)).into()).await;
        sent.push(Instant::now());
        post(
            &mut tx,
            format!(r#"{{"type":"Bench.latency","data":{{"i":{i}}}}}"#),
        )
        .await;
    }
    let got = receiver
        .wait_for(n, Duration::from_secs(60))
        .await
        .expect("deliveries");
    let mut latencies: Vec<Duration> = got
        .iter()
        .filter_map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
            let i = v["data"]["i"].as_u64()? as usize;
            Some(r.at.saturating_duration_since(sent[i]))
        })
        .collect();
    latencies.sort();
    drop(daemon);
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    (pct(0.50), pct(0.99), latencies.len())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The smallest and largest RSS (KiB) of [`Sampler`] samples.
fn rss_range(samples: &[(u64, u64)]) -> (u64, u64) {
    let rss = samples.iter().map(|(rss, _)| *rss);
    (rss.clone().min().unwrap_or(0), rss.max().unwrap_or(0))
}

/// The big-backlog scenario (module doc); prints one line per measurement.
fn backlog(rt: &tokio::runtime::Runtime, n: usize) {
    let pki = pki::generate().expect("pki");
    let mut receiver = rt.block_on(Receiver::start(&pki)).expect("receiver");
    receiver.count_only(true);
    rt.block_on(receiver.stop());
    let builder = util::Builder::new().lines_socket();
    let ca = pki.write_ca(builder.dir()).expect("ca");
    let endpoint = format!(
        "[[endpoint]]\nname = \"backlog\"\nurl = \"{}\"\nconcurrency = 32\n\
         [endpoint.retry]\ninitial = \"500ms\"\nmax = \"1s\"\n[endpoint.tls]\nca_file = {:?}\n",
        receiver.url("/backlog"),
        ca
    );
    let mut daemon = builder.toml(&endpoint).start();
    println!("backlog: {n} events for an endpoint whose receiver is down");

    let sampler = Sampler::start(daemon.pid());
    let secs = lines_pipelined(daemon.lines_socket().expect("lines socket"), n, PAD);
    let fill = rss_range(&sampler.finish());
    println!(
        "  fill over the line socket: {secs:.1} s, {:.0} events/s, RSS max {:.1} MiB",
        n as f64 / secs,
        mib(fill.1)
    );
    let db_bytes: u64 = ["queue.db", "queue.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(daemon.state_dir.join(f)).ok())
        .map(|m| m.len())
        .sum();
    println!("  queue on disk: {:.0} MiB", db_bytes as f64 / 1048576.0);

    let stopping = Instant::now();
    daemon.stop();
    println!(
        "  stop (SIGTERM → exit, WAL checkpoint): {:.2} s",
        stopping.elapsed().as_secs_f64()
    );
    let starting = Instant::now();
    daemon.restart();
    println!(
        "  start with the backlog (exec → READY=1): {:.2} s",
        starting.elapsed().as_secs_f64()
    );
    let pending = daemon.query_i64("SELECT COUNT(*) FROM deliveries WHERE state = 0", []);
    assert_eq!(pending, n as i64, "every event is pending");

    let sampler = Sampler::start(daemon.pid());
    std::thread::sleep(Duration::from_secs(10));
    let idle = rss_range(&sampler.finish());
    println!(
        "  idle with {pending} pending, 10 s: RSS {:.1}–{:.1} MiB",
        mib(idle.0),
        mib(idle.1)
    );

    let sampler = Sampler::start(daemon.pid());
    let draining = Instant::now();
    rt.block_on(receiver.restart()).expect("receiver restart");
    let mut quarters = Vec::new();
    for q in 1..=4 {
        rt.block_on(receiver.wait_for(n * q / 4, Duration::from_secs(3600)))
            .expect("deliveries");
        quarters.push((
            draining.elapsed().as_secs_f64(),
            support::proc_stats::status_field(daemon.pid(), "VmRSS").unwrap_or(0),
        ));
    }
    let secs = draining.elapsed().as_secs_f64();
    let samples = sampler.finish();
    let drain = rss_range(&samples);
    println!(
        "  drain once the receiver is up: {secs:.1} s, {:.0} deliveries/s (TLS, concurrency 32)",
        n as f64 / secs
    );
    for (q, (at, kib)) in quarters.iter().enumerate() {
        println!(
            "    {}% delivered at {at:.1} s, RSS {:.1} MiB",
            (q + 1) * 25,
            mib(*kib)
        );
    }
    println!(
        "  RSS while draining: min {:.1} MiB, max {:.1} MiB ({} samples)",
        mib(drain.0),
        mib(drain.1),
        samples.len()
    );
}

/// Issue 14's rig (module doc): line socket with the defaults and at concurrency 32, and
/// HTTP ingest from 64 clients, each into a fresh daemon delivering to a fresh upstream
/// (`rig`: "nginx" or "builtin"). Prints one row per run and where the daemon's CPU
/// went, by thread.
fn issue14_rig(rt: &tokio::runtime::Runtime, rig: &str, n: usize) {
    println!("{rig} rig: {n} events, Standard Webhooks signing, TLS to {rig}");
    header();
    for (name, concurrency, http) in [
        ("lines, defaults", None, false),
        ("lines, concurrency 32", Some(32), false),
        ("http 64 clients, defaults", None, true),
    ] {
        let name = format!("{name} → {rig}");
        let upstream = match rig {
            "nginx" => Upstream::nginx(),
            _ => Upstream::builtin(rt),
        };
        let mut daemon = rig_daemon(&upstream, concurrency);
        let run = Run::start(&daemon);
        let sender = if http {
            let socket = daemon.socket().to_path_buf();
            rt.spawn(async move {
                http_clients(&socket, 64, n.div_ceil(64), RIG_PAD).await;
            })
        } else {
            let socket = daemon.lines_socket().expect("lines socket").to_path_buf();
            rt.spawn_blocking(move || {
                lines_pipelined(&socket, n, RIG_PAD);
            })
        };
        let want = if http { n.div_ceil(64) * 64 } else { n };
        let got = upstream.wait_for(rt, want as u64, Duration::from_secs(1800));
        let threads = run.row(&name, want, Some((got.requests, got.connections)));
        println!("    CPU ms/1k by thread: {threads}");
        rt.block_on(sender).expect("sender");
        // SIGTERM, not the test helper's SIGKILL: a profiler wrapping the daemon
        // (`EDGEHOOK_TEST_BIN`, e.g. valgrind) writes its output at exit.
        daemon.stop();
    }
}

/// A daemon with a lines socket and one endpoint, signed, pointing at `upstream`.
fn rig_daemon(upstream: &Upstream, concurrency: Option<usize>) -> util::TestDaemon {
    let concurrency = concurrency.map_or(String::new(), |c| format!("concurrency = {c}\n"));
    util::Builder::new()
        .lines_socket()
        .toml(&format!(
            "[[endpoint]]\nname = \"rig\"\nurl = \"{}\"\n{concurrency}\
             [endpoint.signing]\nscheme = \"standard-webhooks\"\n\
             secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n\
             [endpoint.tls]\nca_file = {:?}\n",
            upstream.url("/hook"),
            upstream.ca_file()
        ))
        .start()
}

/// Flash wear, ingest only: `n` events of 213 bytes from one HTTP client without and
/// with client ids, and 20 × `n` over one pipelined line-socket connection.
fn flash(rt: &tokio::runtime::Runtime, n: usize) {
    header();
    for ids in [false, true] {
        let daemon = util::Builder::new().toml(OFFLINE_ENDPOINT).start();
        let run = Run::start(&daemon);
        let socket = daemon.socket().to_path_buf();
        rt.block_on(async move {
            let mut tx = connect(&socket).await;
            for i in 0..n {
                let id = if ids {
                    format!(r#""id":"bench-{i:08}","#)
                } else {
                    String::new()
                };
                let body = format!(
                    r#"{{{id}"type":"Bench.http","data":{{"i":{i:>6},"pad":"{}"}}}}"#,
                    "x".repeat(RIG_PAD)
                );
                post(&mut tx, body).await;
            }
        });
        let name = if ids {
            "http, 1 client, client ids"
        } else {
            "http, 1 client"
        };
        run.row(&format!("flash: {name}"), n, None);
    }
    let daemon = util::Builder::new()
        .lines_socket()
        .toml(OFFLINE_ENDPOINT)
        .start();
    let run = Run::start(&daemon);
    lines_pipelined(
        daemon.lines_socket().expect("lines socket"),
        20 * n,
        RIG_PAD,
    );
    run.row("flash: lines, 1 pipelined connection", 20 * n, None);
}

/// Fan-out: `n` events for `endpoints` offline endpoints over the line socket. Reports
/// the ingest rate (events and delivery rows per second), the daemon's threads and RSS.
fn fanout(n: usize, endpoints: usize) {
    let config: String = (0..endpoints)
        .map(|i| {
            format!(
                "[[endpoint]]\nname = \"sink{i}\"\nurl = \"https://127.0.0.1:9/sink{i}\"\n\
                 [endpoint.retry]\ninitial = \"10s\"\n"
            )
        })
        .collect();
    let mut daemon = util::Builder::new().lines_socket().toml(&config).start();
    let sampler = Sampler::start(daemon.pid());
    header();
    let run = Run::start(&daemon);
    lines_pipelined(daemon.lines_socket().expect("lines socket"), n, PAD);
    let secs = run.start.elapsed().as_secs_f64();
    run.row(
        &format!("fan-out, lines, {endpoints} offline endpoints"),
        n,
        None,
    );
    std::thread::sleep(Duration::from_secs(2));
    let samples = sampler.finish();
    let threads = samples.iter().map(|(_, t)| *t).max().unwrap_or(0);
    let (idle, rss) = rss_range(&samples);
    println!(
        "  {:.0} delivery rows/s; threads at most {threads}, RSS {:.1} MiB idle, at most {:.1} MiB ({} samples)",
        (n * endpoints) as f64 / secs,
        mib(idle),
        mib(rss),
        samples.len()
    );
    daemon.stop(); // SIGTERM: a profiler wrapping the daemon writes its output at exit
}
