//! Connect-level stalls are outages (SPEC §12): a peer that accepts TCP and never answers
//! TLS, one that never accepts (full backlog), and a resolver that never answers each put
//! the endpoint offline within `connect_timeout` — head-only probing, no attempt counted,
//! nothing dead — and the backlog drains once the link is back.
//!
//! A [`Gate`] (a TCP relay on loopback in front of the real HTTPS receiver) plays the link:
//! hung, stalled, or up.

use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::util::delivery::{count_by_id, pending, wait_log, Endpoint, Upstream};
use crate::util::{event, Builder, TestDaemon};

/// The endpoint's timings: short so the test is quick, with `connect_timeout` well below
/// `timeout`, and few attempts so that counted attempts would show as dead letters at once.
const ENDPOINT_KEYS: &str =
    "connect_timeout = \"300ms\"\ntimeout = \"1s\"\nmax_attempts = 2\nconcurrency = 8";
const RETRY: &str = "initial = \"200ms\"\nmultiplier = 2.0\nmax = \"800ms\"\njitter = 0.0";
/// How long the link stays bad: ten connect timeouts.
const OUTAGE: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Link {
    /// Accept TCP, then never send a byte (the TLS handshake never completes).
    Hung,
    /// Never accept: the listen backlog is full, so SYNs go unanswered.
    Stalled,
    /// Relay to the receiver.
    Up,
}

/// A TCP relay on 127.0.0.1 whose link state the test sets.
struct Gate {
    port: u16,
    link: watch::Sender<Link>,
    accepted: Arc<AtomicUsize>,
    /// Connections the test made to fill the backlog (kept open).
    _fillers: Vec<TcpStream>,
}

impl Gate {
    fn start(up: &Upstream, link: Link) -> Gate {
        let std_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        if link == Link::Stalled {
            // A backlog of 0 queues one connection at most; the fillers below take it.
            nix::sys::socket::listen(&std_listener, nix::sys::socket::Backlog::new(0).unwrap())
                .unwrap();
        }
        std_listener.set_nonblocking(true).unwrap();
        let port = std_listener.local_addr().unwrap().port();
        let fillers = if link == Link::Stalled {
            (0..2)
                .filter_map(|_| {
                    TcpStream::connect_timeout(
                        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                        Duration::from_millis(200),
                    )
                    .ok()
                })
                .collect()
        } else {
            Vec::new()
        };
        let target = up
            .url("/")
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
            .expect("receiver port");
        let (tx, mut rx) = watch::channel(link);
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        up.spawn(async move {
            let listener = TcpListener::from_std(std_listener).unwrap();
            let mut held = Vec::new();
            loop {
                if *rx.borrow_and_update() == Link::Stalled {
                    if rx.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
                let (conn, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(c) => c, Err(_) => return },
                    r = rx.changed() => { if r.is_err() { return } continue }
                };
                count.fetch_add(1, Ordering::SeqCst);
                match *rx.borrow() {
                    Link::Up => {
                        tokio::spawn(async move {
                            let mut conn = conn;
                            if let Ok(mut back) =
                                tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, target)).await
                            {
                                let _ = tokio::io::copy_bidirectional(&mut conn, &mut back).await;
                            }
                        });
                    }
                    _ => held.push(conn),
                }
            }
        });
        Gate {
            port,
            link: tx,
            accepted,
            _fillers: fillers,
        }
    }

    fn url(&self) -> String {
        format!("https://localhost:{}/hook", self.port)
    }

    fn set(&self, link: Link) {
        self.link.send_replace(link);
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn daemon(b: Builder, up: &Upstream, url: &str) -> TestDaemon {
    let ca = up.write_ca(b.dir());
    b.toml(
        &Endpoint::new("e", url, &ca)
            .key(ENDPOINT_KEYS)
            .retry(RETRY)
            .toml(),
    )
    .start()
}

fn send(d: &TestDaemon, n: usize, prefix: &str) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:02}")).collect();
    let batch: String = ids
        .iter()
        .map(|id| event("Test.outage", id, "{}") + "\n")
        .collect();
    let r = d.post("/v1/events", "application/x-ndjson", batch.as_bytes());
    assert_eq!(r.status, 202, "{r:?}");
    ids
}

/// During the outage: offline, no attempt counted, nothing dead.
fn assert_nothing_counted(d: &TestDaemon, sent: usize) {
    let attempts = d.query_i64("SELECT COALESCE(SUM(attempts), 0) FROM deliveries", []);
    let dead = d.query_i64(
        "SELECT COUNT(*) FROM deliveries WHERE dead_reason IS NOT NULL",
        [],
    );
    assert_eq!(
        (attempts, dead, pending(d)),
        (0, 0, sent as i64),
        "connect-level stalls must not count attempts or make dead letters; log:\n{}",
        d.log()
    );
}

/// The whole backlog arrives, each event once.
fn assert_drained(up: &Upstream, d: &TestDaemon, ids: &[String]) {
    let got = up.wait_for(ids.len());
    let counts = count_by_id(&got);
    for id in ids {
        assert_eq!(
            counts.get(id),
            Some(&1),
            "{id}: {counts:?}; log:\n{}",
            d.log()
        );
    }
    crate::util::delivery::wait_db(d, "the queue is empty", |d| pending(d) == 0);
}

#[test]
fn a_peer_that_never_answers_tls_is_an_outage_not_attempts() {
    let up = Upstream::start();
    let gate = Gate::start(&up, Link::Hung);
    let d = daemon(Builder::new(), &up, &gate.url());
    let ids = send(&d, 10, "hung");
    wait_log(&d, "the endpoint goes offline", |l| {
        l.contains("Endpoint offline") && l.contains("connect_timeout")
    });
    std::thread::sleep(OUTAGE);
    assert_nothing_counted(&d, ids.len());
    // The first burst (at most `concurrency`), then one probe at a time on the backoff
    // (200, 400, 800, 800… ms): far fewer than one connection per event and attempt.
    let during = gate.accepted();
    assert!(
        (1..=8 + 6).contains(&during),
        "{during} connections during a {OUTAGE:?} hang"
    );
    eprintln!("connections during a {OUTAGE:?} hung link: {during}");
    gate.set(Link::Up);
    assert_drained(&up, &d, &ids);
}

#[test]
fn a_peer_that_never_accepts_is_an_outage_not_attempts() {
    let up = Upstream::start();
    let gate = Gate::start(&up, Link::Stalled);
    let d = daemon(Builder::new(), &up, &gate.url());
    let ids = send(&d, 5, "stalled");
    wait_log(&d, "the endpoint goes offline", |l| {
        l.contains("Endpoint offline") && l.contains("connect_timeout")
    });
    std::thread::sleep(OUTAGE / 3);
    assert_nothing_counted(&d, ids.len());
    gate.set(Link::Up);
    assert_drained(&up, &d, &ids);
}

/// A resolver that swallows every query, on a loopback address of its own; the daemon sees
/// it as its only nameserver through a private mount namespace (the machine's
/// resolv.conf is not touched).
#[test]
fn a_resolver_that_never_answers_is_an_outage_not_attempts() {
    if !nix::unistd::Uid::effective().is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root: this test needs a mount namespace"
        );
        eprintln!("SKIPPED (not root): needs unshare --mount for a private resolv.conf");
        return;
    }
    let dns = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 77), 53)).expect("binding 127.0.0.77:53");
    dns.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let up = Upstream::start();
    let b = Builder::new();
    let resolv = b.dir().join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 127.0.0.77\noptions timeout:5 attempts:1\n",
    )
    .unwrap();
    let mount = format!(
        "mount --bind {} /etc/resolv.conf && exec \"$@\"",
        resolv.display()
    );
    let b = b.wrap(&["unshare", "--mount", "--", "sh", "-c", &mount, "sh"]);
    let url = "https://edgehook-hung.test:443/hook";
    let d = daemon(b, &up, url);
    let ids = send(&d, 3, "dns");
    wait_log(&d, "the endpoint goes offline", |l| {
        l.contains("Endpoint offline") && l.contains("connect_timeout")
    });
    // The resolver saw the daemon's query (so the stall was name resolution).
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + Duration::from_secs(5);
    let query = loop {
        if let Ok((n, _)) = dns.recv_from(&mut buf) {
            break buf[..n].to_vec();
        }
        assert!(
            Instant::now() < deadline,
            "no DNS query reached the test resolver"
        );
    };
    assert!(
        query.windows(14).any(|w| w == b"edgehook-hung\x04"),
        "the query names the endpoint's host: {query:?}"
    );
    std::thread::sleep(OUTAGE / 3);
    assert_nothing_counted(&d, ids.len());
}
