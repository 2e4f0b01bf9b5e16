//! How deliveries travel and pace (SPEC §4 "proxy", §5 "Rate limit", "Ordering"): HTTPS
//! through a CONNECT proxy (configured, or `HTTPS_PROXY` minus `NO_PROXY`), `rate_limit`
//! measured at the receiver, and `order_key` keeping per-key order while one key fails.
//!
//! The proxy is a real one written here: a tokio TCP server that reads the CONNECT head,
//! records the target and `Proxy-Authorization`, answers 200 and splices the sockets. To
//! prove the traffic went through it, the proxied endpoints use the host
//! `receiver.invalid` (the `.invalid` TLD never resolves, RFC 2606), which only the proxy
//! maps to the receiver; `tls.server_name = "localhost"` keeps certificate checks
//! end-to-end, so `server_name` is exercised too.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use edgehook::demo::receiver::Recorded;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::util::delivery::{count_by_id, ids, pending, wait_db, Endpoint, Upstream};
use crate::util::{event, Builder};

/// The unresolvable host only the test proxy knows.
const HIDDEN_HOST: &str = "receiver.invalid";

/// One tunnel request as the proxy saw it.
#[derive(Debug, Clone, PartialEq)]
struct Connect {
    /// The request line's target, e.g. `receiver.invalid:4431`.
    target: String,
    proxy_authorization: Option<String>,
}

type ProxyLog = Arc<Mutex<Vec<Connect>>>;

/// Start a CONNECT proxy on the upstream's runtime that tunnels `HIDDEN_HOST:port` to
/// 127.0.0.1 and any other target as given. Returns its port and what it saw.
fn start_proxy(up: &Upstream) -> (u16, ProxyLog) {
    let listener = up.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = ProxyLog::default();
    let seen = log.clone();
    up.spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(tunnel(client, seen.clone()));
        }
    });
    (port, log)
}

/// Serve one proxy connection: CONNECT head in, `200` out, then splice.
async fn tunnel(mut client: TcpStream, log: ProxyLog) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte, so nothing of the TLS stream after the head is swallowed.
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let proxy_authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, value)| value.trim().to_owned());
    let mut parts = request_line.split(' ');
    let (Some("CONNECT"), Some(target)) = (parts.next(), parts.next()) else {
        log.lock().unwrap().push(Connect {
            target: format!("not a CONNECT: {request_line}"),
            proxy_authorization,
        });
        let _ = client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            .await;
        return;
    };
    log.lock().unwrap().push(Connect {
        target: target.to_owned(),
        proxy_authorization,
    });
    let dial = match target.split_once(':') {
        Some((HIDDEN_HOST, port)) => format!("127.0.0.1:{port}"),
        _ => target.to_owned(),
    };
    let Ok(mut upstream) = TcpStream::connect(&dial).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_ok()
    {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    }
}

/// `https://receiver.invalid:{port}{path}`: reachable only through the test proxy.
fn hidden_url(up: &Upstream, path: &str) -> String {
    format!("https://{HIDDEN_HOST}:{}{path}", up.receiver.addr().port())
}

/// Paths that requests arrived at, sorted.
fn sorted_paths(got: &[Recorded]) -> Vec<String> {
    let mut paths: Vec<String> = got.iter().map(|r| r.path_and_query.clone()).collect();
    paths.sort();
    paths
}

#[test]
fn configured_proxy_carries_https_with_credentials() {
    let up = Upstream::start();
    let (proxy_port, proxy) = start_proxy(&up);
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let d = b
        // An HTTPS_PROXY in the environment must not override the configured proxy.
        .wrap(&["env", "-u", "NO_PROXY", "HTTPS_PROXY=http://127.0.0.1:9"])
        .toml(
            &Endpoint::new("tunneled", &hidden_url(&up, "/tunneled"), &ca)
                .key(&format!(
                    "proxy = \"http://edge%40site:s3cr%3At@127.0.0.1:{proxy_port}\""
                ))
                .tls("server_name = \"localhost\"")
                .toml(),
        )
        .start();
    let r = d.post_event(&event("Test.proxy", "proxy-1", "{}"));
    assert_eq!(r.status, 202, "{r:?}");
    let got = up.wait_for(1);
    assert_eq!(sorted_paths(&got), ["/tunneled"]);
    let port = up.receiver.addr().port();
    assert_eq!(
        *proxy.lock().unwrap(),
        [Connect {
            target: format!("{HIDDEN_HOST}:{port}"),
            // The userinfo is percent-decoded before it is encoded as Basic credentials.
            proxy_authorization: Some(format!("Basic {}", B64.encode("edge@site:s3cr:t"))),
        }]
    );
    let log = d.log();
    assert!(
        !log.contains("s3cr"),
        "the proxy password is not logged:\n{log}"
    );
}

#[test]
fn https_proxy_environment_is_used_unless_no_proxy_matches() {
    let up = Upstream::start();
    let (proxy_port, proxy) = start_proxy(&up);
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let https_proxy = format!("HTTPS_PROXY=127.0.0.1:{proxy_port}");
    let d = b
        .wrap(&[
            "env",
            "-u",
            "https_proxy",
            &https_proxy,
            "NO_PROXY=localhost",
        ])
        .toml(
            &Endpoint::new("via-env", &hidden_url(&up, "/via-env"), &ca)
                .tls("server_name = \"localhost\"")
                .toml(),
        )
        .toml(&Endpoint::new("bypass", &up.url("/bypass"), &ca).toml())
        .start();
    let r = d.post_event(&event("Test.proxy", "env-1", "{}"));
    assert_eq!(r.status, 202, "{r:?}");
    let got = up.wait_for(2);
    assert_eq!(sorted_paths(&got), ["/bypass", "/via-env"]);
    let port = up.receiver.addr().port();
    assert_eq!(
        *proxy.lock().unwrap(),
        [Connect {
            target: format!("{HIDDEN_HOST}:{port}"),
            proxy_authorization: None,
        }],
        "only the endpoint outside NO_PROXY went through the proxy"
    );
}

#[test]
fn rate_limit_holds_over_seconds() {
    /// The configured rate, per second; the bucket also allows a burst of this many.
    const RATE: usize = 20;
    /// Three seconds' worth after the burst.
    const EVENTS: usize = RATE + 3 * RATE;
    let up = Upstream::start();
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let d = b
        .toml(
            &Endpoint::new("paced", &up.url("/paced"), &ca)
                .key(&format!("rate_limit = \"{RATE}/s\""))
                .toml(),
        )
        .start();
    let batch: String = (0..EVENTS)
        .map(|n| event("Test.rate", &format!("rate-{n:02}"), "{}") + "\n")
        .collect();
    let r = d.post("/v1/events", "application/x-ndjson", batch.as_bytes());
    assert_eq!(r.status, 202, "{r:?}");
    let got = up.wait_for(EVENTS);
    assert_eq!(count_by_id(&got).len(), EVENTS, "each event once");

    let mut at: Vec<_> = got.iter().map(|r| r.at).collect();
    at.sort();
    let secs = |i: usize, j: usize| at[j].duration_since(at[i]).as_secs_f64();
    // The bucket starts full (a burst of RATE) and then refills at RATE/s. Over the last
    // two seconds' worth of arrivals it is empty and every request waits for its token:
    // that is where the rate is measured.
    let tail = 2 * RATE;
    let steady = tail as f64 / secs(EVENTS - 1 - tail, EVENTS - 1);
    assert!(
        (RATE as f64 * 0.9..=RATE as f64 * 1.1).contains(&steady),
        "{steady:.2}/s over the last {tail} arrivals instead of {RATE}/s ±10%"
    );
    // Nowhere more than the burst plus what the elapsed time refilled (the token bucket
    // bound), with 10% and 100 ms of slack for timestamps taken on a busy machine.
    for i in 0..EVENTS {
        for j in i..EVENTS {
            let allowed = RATE as f64 + 1.0 + RATE as f64 * 1.1 * (secs(i, j) + 0.1);
            assert!(
                (j - i + 1) as f64 <= allowed,
                "{} requests within {:.3}s (arrivals {i}..={j}): more than the bucket allows",
                j - i + 1,
                secs(i, j)
            );
        }
    }
}

#[test]
fn order_key_keeps_per_key_order_while_one_key_fails() {
    const PER_KEY: usize = 5;
    const A_FAILURES: usize = 3;
    let up = Upstream::start();
    // Only key A's requests fail; its head is the only A delivery that may be in flight.
    up.receiver
        .fail_matching(r#""roomId":"A""#, 500, A_FAILURES)
        .unwrap();
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let d = b
        .toml(
            &Endpoint::new("rooms", &up.url("/rooms"), &ca)
                .key("order_key = \"/roomId\"")
                .key("concurrency = 8")
                // A fixed 300 ms between A's attempts: B and C have ample time to drain.
                .retry("initial = \"300ms\"\nmultiplier = 1.0\nmax = \"300ms\"\njitter = 0.0")
                .toml(),
        )
        .start();
    // Interleaved: A-0, B-0, C-0, A-1, B-1, C-1, … in one batch.
    let mut sent: Vec<String> = Vec::new();
    let mut batch = String::new();
    for n in 0..PER_KEY {
        for key in ["A", "B", "C"] {
            let id = format!("{key}-{n}");
            batch += &event(
                "Test.order",
                &id,
                &format!(r#"{{"roomId":"{key}","n":{n}}}"#),
            );
            batch.push('\n');
            sent.push(id);
        }
    }
    let r = d.post("/v1/events", "application/x-ndjson", batch.as_bytes());
    assert_eq!(r.status, 202, "{r:?}");
    let got = up.wait_for(sent.len() + A_FAILURES);
    wait_db(&d, "every delivery to succeed", |d| pending(d) == 0);
    let arrived = ids(&up.receiver.requests());
    assert_eq!(arrived.len(), sent.len() + A_FAILURES, "{arrived:?}");
    let counts = count_by_id(&got);
    assert_eq!(counts["A-0"], 1 + A_FAILURES, "{arrived:?}");

    for key in ["A", "B", "C"] {
        // Per key, in arrival order, with the retries of one event collapsed: exactly
        // the order sent. A later event arriving between two attempts of an earlier one
        // would show up as a repeat here.
        let mut runs: Vec<&str> = arrived
            .iter()
            .map(String::as_str)
            .filter(|id| id.starts_with(key))
            .collect();
        runs.dedup();
        let expected: Vec<&str> = sent
            .iter()
            .map(String::as_str)
            .filter(|id| id.starts_with(key))
            .collect();
        assert_eq!(runs, expected, "key {key} out of order: {arrived:?}");
    }
    // A's head succeeded on its last attempt; every B and C had arrived before that.
    let a_success = arrived
        .iter()
        .rposition(|id| id == "A-0")
        .expect("A-0 arrived");
    let last_other = arrived
        .iter()
        .rposition(|id| !id.starts_with('A'))
        .expect("B and C arrived");
    assert!(
        last_other < a_success,
        "B and C were held back by A's failing head: {arrived:?}"
    );
    let a_span = got
        .iter()
        .filter(|r| r.header("webhook-id") == Some("A-0"))
        .map(|r| r.at)
        .collect::<Vec<_>>();
    assert!(
        a_span[A_FAILURES].duration_since(a_span[0])
            >= Duration::from_millis(300 * A_FAILURES as u64 - 50),
        "A's head was retried on its backoff"
    );
}
