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

/// An endpoint that refuses connections: events are stored for it, and its worker goes
/// offline at once (one probe per backoff), so delivery costs the ingest numbers nothing.
const OFFLINE_ENDPOINT: &str = r#"
[[endpoint]]
name = "sink"
url = "https://127.0.0.1:9/sink"
[endpoint.retry]
initial = "10s"
"#;

fn scale() -> usize {
    std::env::var("EDGEHOOK_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    if std::env::var("EDGEHOOK_BENCH").as_deref() == Ok("backlog") {
        let n = std::env::var("EDGEHOOK_BACKLOG_EVENTS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1_000_000);
        backlog(&rt, n);
        return;
    }
    println!(
        "{:<44} {:>9} {:>9} {:>12}",
        "scenario", "events", "seconds", "events/s"
    );
    for clients in [1usize, 16, 64] {
        let per_client = match clients {
            1 => 2_000,
            16 => 1_000,
            _ => 500,
        } * scale();
        let daemon = util::Builder::new().toml(OFFLINE_ENDPOINT).start();
        let (n, secs) = rt.block_on(http_clients(daemon.socket(), clients, per_client));
        row(
            &format!("http, {clients} client(s), durability=full"),
            n,
            secs,
        );
    }
    {
        let daemon = util::Builder::new()
            .lines_socket()
            .toml(OFFLINE_ENDPOINT)
            .start();
        let n = 200_000 * scale();
        let secs = lines_pipelined(daemon.lines_socket().expect("lines socket"), n);
        row("lines, 1 pipelined connection, full", n, secs);
    }
    for (concurrency, n) in [(1usize, 3_000usize), (8, 10_000), (32, 20_000)] {
        let n = n * scale();
        let (n, secs) = rt.block_on(delivery(n, concurrency));
        row(
            &format!("delivery e2e, TLS, concurrency {concurrency}"),
            n,
            secs,
        );
    }
    let (p50, p99, n) = rt.block_on(latency(2_000 * scale(), 1_000.0));
    println!(
        "{:<44} {n:>9}   p50 {:.2} ms, p99 {:.2} ms",
        "latency ingest→receiver, 1000 events/s",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
}

fn row(name: &str, n: usize, secs: f64) {
    println!("{name:<44} {n:>9} {secs:>9.2} {:>12.0}", n as f64 / secs);
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
async fn http_clients(socket: &Path, clients: usize, per_client: usize) -> (usize, f64) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let socket = socket.to_path_buf();
        tasks.push(tokio::spawn(async move {
            let mut tx = connect(&socket).await;
            for i in 0..per_client {
                let body = format!(
                    r#"{{"type":"Bench.http","data":{{"client":{c},"i":{i},"pad":"{}"}}}}"#,
                    "x".repeat(100)
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

/// One connection: write `n` lines from a thread, read `n` replies.
fn lines_pipelined(socket: &Path, n: usize) -> f64 {
    let stream = UnixStream::connect(socket).expect("connect lines socket");
    let mut writer = stream.try_clone().expect("clone");
    let start = Instant::now();
    let sender = std::thread::spawn(move || {
        let mut buf = Vec::with_capacity(1 << 20);
        for i in 0..n {
            writeln!(
                buf,
                r#"{{"type":"Bench.lines","data":{{"i":{i},"pad":"{}"}}}}"#,
                "x".repeat(100)
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

/// `n` events through the line socket to a TLS receiver; time until all arrived.
async fn delivery(n: usize, concurrency: usize) -> (usize, f64) {
    let (receiver, daemon) = delivery_setup(concurrency).await;
    let socket = daemon.lines_socket().expect("lines socket").to_path_buf();
    let start = Instant::now();
    let sent = tokio::task::spawn_blocking(move || lines_pipelined(&socket, n));
    receiver
        .wait_for(n, Duration::from_secs(600))
        .await
        .expect("deliveries");
    let secs = start.elapsed().as_secs_f64();
    sent.await.expect("sender");
    drop(daemon);
    (n, secs)
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

/// Samples a daemon's `VmRSS` every 250 ms on a thread until stopped; the samples in KiB.
struct RssSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<u64>>,
}

impl RssSampler {
    fn start(pid: i32) -> RssSampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                if let Some(kib) = rss_kib(pid) {
                    samples.push(kib);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            samples
        });
        RssSampler { stop, thread }
    }

    fn finish(self) -> Vec<u64> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().expect("sampler")
    }
}

fn rss_kib(pid: i32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
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

    let sampler = RssSampler::start(daemon.pid());
    let secs = lines_pipelined(daemon.lines_socket().expect("lines socket"), n);
    let fill = sampler.finish();
    println!(
        "  fill over the line socket: {secs:.1} s, {:.0} events/s, RSS max {:.1} MiB",
        n as f64 / secs,
        mib(fill.iter().copied().max().unwrap_or(0))
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

    let sampler = RssSampler::start(daemon.pid());
    std::thread::sleep(Duration::from_secs(10));
    let idle = sampler.finish();
    println!(
        "  idle with {pending} pending, 10 s: RSS {:.1}–{:.1} MiB",
        mib(idle.iter().copied().min().unwrap_or(0)),
        mib(idle.iter().copied().max().unwrap_or(0))
    );

    let sampler = RssSampler::start(daemon.pid());
    let draining = Instant::now();
    rt.block_on(receiver.restart()).expect("receiver restart");
    let mut quarters = Vec::new();
    for q in 1..=4 {
        rt.block_on(receiver.wait_for(n * q / 4, Duration::from_secs(3600)))
            .expect("deliveries");
        quarters.push((
            draining.elapsed().as_secs_f64(),
            rss_kib(daemon.pid()).unwrap_or(0),
        ));
    }
    let secs = draining.elapsed().as_secs_f64();
    let drain = sampler.finish();
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
        mib(drain.iter().copied().min().unwrap_or(0)),
        mib(drain.iter().copied().max().unwrap_or(0)),
        drain.len()
    );
}
