//! Delivery test helpers: an [`Upstream`] (the demo's real HTTPS receiver, with a CA
//! minted for the test, on a tokio runtime of its own so the blocking [`TestDaemon`] API
//! can be used from the test thread), [`Endpoint`] to write an `[[endpoint]]` that trusts
//! it, and polling helpers for the queue database (the only signal for DB state).

use std::collections::HashMap;
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgehook::demo::pki::{self, Pki};
use edgehook::demo::receiver::{Receiver, ReceiverOptions, Recorded};
use edgehook::store::{STATE_DEAD, STATE_PENDING};
use tokio::runtime::Runtime;

use super::faults::{Faults, TestReceiver};
use super::{Builder, TestDaemon};

/// Longest a test waits for requests or for the queue to reach a state.
pub const WAIT: Duration = Duration::from_secs(15);
/// How often the queue database is re-read while waiting for a state.
const DB_POLL: Duration = Duration::from_millis(20);

/// The HTTPS receiver and the runtime it runs on. Field order is drop order: the
/// receiver stops before its runtime goes away.
pub struct Upstream {
    pub receiver: TestReceiver,
    pki: Pki,
    rt: Runtime,
}

impl Upstream {
    /// A fresh CA and a receiver on a free port of 127.0.0.1 answering 200.
    pub fn start() -> Upstream {
        Upstream::start_with(ReceiverOptions::default())
    }

    /// Like [`Upstream::start`], with TLS variations (mTLS, one TLS version only).
    pub fn start_with(options: ReceiverOptions) -> Upstream {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("building the receiver runtime");
        let pki = pki::generate().expect("generating the test PKI");
        let faults = Arc::new(Faults::new());
        let receiver = rt
            .block_on(Receiver::start_with(
                &pki,
                (Ipv4Addr::LOCALHOST, 0).into(),
                options,
                faults.clone(),
            ))
            .expect("starting the receiver");
        let receiver = TestReceiver::new(receiver, faults);
        Upstream { receiver, pki, rt }
    }

    /// Run a future (e.g. a receiver call) on the receiver's runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.rt.block_on(future)
    }

    /// Run a task (e.g. a test proxy) on the receiver's runtime until the upstream drops.
    pub fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(self.rt.spawn(future));
    }

    /// The test PKI: its CA signed the receiver's certificate and the mTLS client's.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// `https://localhost:{port}{path}`.
    pub fn url(&self, path: &str) -> String {
        self.receiver.url(path)
    }

    /// Write the CA certificate into `dir` (for `[endpoint.tls] ca_file`).
    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        self.pki.write_ca(dir).expect("writing the CA file")
    }

    /// Wait until at least `n` requests arrived; all requests so far.
    ///
    /// # Panics
    /// After [`WAIT`], saying how many arrived.
    pub fn wait_for(&self, n: usize) -> Vec<Recorded> {
        self.block_on(self.receiver.wait_for(n, WAIT))
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// One `[[endpoint]]` with every event (`events = ["*"]`), trusting the test CA, with
/// short retry timings so tests stay fast.
pub struct Endpoint {
    name: String,
    url: String,
    ca: Option<PathBuf>,
    keys: Vec<String>,
    tls: Vec<String>,
    tables: Vec<String>,
    retry: String,
}

impl Endpoint {
    pub fn new(name: &str, url: &str, ca: &Path) -> Endpoint {
        Endpoint {
            name: name.into(),
            url: url.into(),
            ca: Some(ca.into()),
            keys: Vec::new(),
            tls: Vec::new(),
            tables: Vec::new(),
            retry: "initial = \"100ms\"\nmax = \"500ms\"".into(),
        }
    }

    /// A `key = value` line of the endpoint table (e.g. `body = "data"`).
    pub fn key(mut self, line: &str) -> Endpoint {
        self.keys.push(line.into());
        self
    }

    /// A `key = value` line of `[endpoint.tls]` (e.g. `min_version = "1.3"`).
    pub fn tls(mut self, line: &str) -> Endpoint {
        self.tls.push(line.into());
        self
    }

    /// Leave out `tls.ca_file`: the endpoint trusts only what its other settings say.
    pub fn without_ca_file(mut self) -> Endpoint {
        self.ca = None;
        self
    }

    /// A sub-table with its header, e.g. `"[endpoint.auth]\ntype = \"bearer\"\n…"`.
    pub fn table(mut self, toml: &str) -> Endpoint {
        self.tables.push(toml.into());
        self
    }

    /// Replace the body of `[endpoint.retry]` (default: initial 100ms, max 500ms).
    pub fn retry(mut self, toml: &str) -> Endpoint {
        self.retry = toml.into();
        self
    }

    pub fn toml(&self) -> String {
        let mut tls: Vec<String> = self
            .ca
            .iter()
            .map(|ca| format!("ca_file = {ca:?}"))
            .collect();
        tls.extend(self.tls.iter().cloned());
        format!(
            "[[endpoint]]\nname = {:?}\nurl = {:?}\nevents = [\"*\"]\n{}\n[endpoint.retry]\n{}\n[endpoint.tls]\n{}\n{}\n",
            self.name,
            self.url,
            self.keys.join("\n"),
            self.retry,
            tls.join("\n"),
            self.tables.join("\n"),
        )
    }
}

/// A daemon with endpoint `e` at `up` and endpoint `w` at `witness`. Both take every
/// event, and each new event wakes both workers at once: once `w` has an event, `e` has
/// had the same chance to send it. That is how a test shows that `e` did *not* send
/// something, without sleeping.
pub fn with_witness(up: &Upstream, witness: &Upstream) -> TestDaemon {
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let witness_dir = b.dir().join("witness");
    std::fs::create_dir(&witness_dir).expect("creating the witness CA's directory");
    let witness_ca = witness.write_ca(&witness_dir);
    b.toml(&Endpoint::new("e", &up.url("/hook"), &ca).toml())
        .toml(&Endpoint::new("w", &witness.url("/witness"), &witness_ca).toml())
        .start()
}

/// Poll `cond` on the queue database until it holds.
///
/// # Panics
/// After [`WAIT`], with `what` and the daemon's stderr.
pub fn wait_db(d: &TestDaemon, what: &str, mut cond: impl FnMut(&TestDaemon) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond(d) {
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for: {what}; edgehook stderr:\n{}",
            d.log()
        );
        std::thread::sleep(DB_POLL);
    }
}

/// Poll the daemon's log (stderr) until `cond` holds; for outcomes that leave no trace
/// in the queue or at the receiver, such as a failed TLS handshake.
///
/// # Panics
/// After [`WAIT`], with `what` and the log.
pub fn wait_log(d: &TestDaemon, what: &str, mut cond: impl FnMut(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let log = d.log();
        if cond(&log) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for the log to show: {what}; edgehook stderr:\n{log}"
        );
        std::thread::sleep(DB_POLL);
    }
}

/// Pending deliveries (state 0) in the queue.
/// Dead letters in the queue, all endpoints.
pub fn dead_count(d: &TestDaemon) -> i64 {
    d.query_i64(
        &format!("SELECT COUNT(*) FROM deliveries WHERE state = {STATE_DEAD}"),
        [],
    )
}

pub fn pending(d: &TestDaemon) -> i64 {
    d.query_i64(
        &format!("SELECT COUNT(*) FROM deliveries WHERE state = {STATE_PENDING}"),
        [],
    )
}

/// Pending deliveries of one endpoint.
pub fn pending_for(d: &TestDaemon, endpoint: &str) -> i64 {
    d.query_i64(
        &format!("SELECT COUNT(*) FROM deliveries WHERE state = {STATE_PENDING} AND endpoint = ?1"),
        [endpoint],
    )
}

/// The requests' `webhook-id`s, in arrival order.
pub fn ids(requests: &[Recorded]) -> Vec<String> {
    requests
        .iter()
        .map(|r| r.header("webhook-id").unwrap_or("<none>").to_string())
        .collect()
}

/// How many requests carried each `webhook-id`.
pub fn count_by_id(requests: &[Recorded]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for id in ids(requests) {
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}
