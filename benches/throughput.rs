//! `cargo bench --bench throughput`: end-to-end throughput of the real daemon (the
//! release binary, its real sockets, an fsync'd SQLite queue) with the numbers that
//! BENCHMARKS.md records. Prints one table; not part of `cargo test`.
//!
//! Scenarios: events/s accepted over the HTTP socket with 1, 16 and 64 concurrent
//! keep-alive clients; over one pipelined line-socket connection; and deliveries/s end
//! to end (line socket → queue → TLS POST → the built-in receiver) at concurrency 32.
//! `EDGEHOOK_BENCH_SCALE` multiplies the event counts (default 1).

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
    {
        let n = 20_000 * scale();
        let (n, secs) = rt.block_on(delivery(n));
        row("delivery e2e, TLS, concurrency 32", n, secs);
    }
}

fn row(name: &str, n: usize, secs: f64) {
    println!("{name:<44} {n:>9} {secs:>9.2} {:>12.0}", n as f64 / secs);
}

/// `clients` keep-alive connections, each POSTing `per_client` events in turn.
async fn http_clients(socket: &Path, clients: usize, per_client: usize) -> (usize, f64) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let socket = socket.to_path_buf();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::UnixStream::connect(&socket)
                .await
                .expect("connect");
            let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            for i in 0..per_client {
                let body = format!(
                    r#"{{"type":"Bench.http","data":{{"client":{c},"i":{i},"pad":"{}"}}}}"#,
                    "x".repeat(100)
                );
                let req = Request::post("/v1/events")
                    .header("host", "localhost")
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .expect("request");
                let resp = tx.send_request(req).await.expect("send");
                assert_eq!(resp.status(), 202);
                resp.into_body().collect().await.expect("body");
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
async fn delivery(n: usize) -> (usize, f64) {
    let pki = pki::generate().expect("pki");
    let receiver = Receiver::start(&pki).await.expect("receiver");
    let builder = util::Builder::new().lines_socket();
    let ca = pki.write_ca(builder.dir()).expect("ca");
    let endpoint = format!(
        "[[endpoint]]\nname = \"bench\"\nurl = \"{}\"\nconcurrency = 32\n[endpoint.tls]\nca_file = {:?}\n",
        receiver.url("/bench"),
        ca
    );
    let daemon = tokio::task::spawn_blocking(move || builder.toml(&endpoint).start())
        .await
        .expect("start");
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
