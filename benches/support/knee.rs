//! A receiver whose latency grows with load, for the adaptive-concurrency benchmark: it
//! serves `workers` requests at a time, each taking `service`; more in flight wait their
//! turn. Up to `workers` concurrent requests its throughput grows and its latency holds;
//! past that (its knee) throughput stays flat and every extra request in flight only adds
//! queueing latency. HTTPS with a private CA (`edgehook::demo::pki`), HTTP/1.1, loopback.
//!
//! It counts what a receiver's operator would watch: requests, connections, the requests
//! in flight (peak; the mean follows from Little's law, total latency / elapsed) and the
//! latency it served, arrival to answer.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use edgehook::demo::pki::Pki;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// A running knee receiver; dropping it stops accepting (open connections end with the
/// runtime).
pub struct Knee {
    addr: SocketAddr,
    pki: Pki,
    stats: Arc<Stats>,
    accept: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    connections: AtomicU64,
    in_flight: AtomicU64,
    peak: AtomicU64,
    /// Sum of the served requests' latencies, microseconds.
    latency_us: AtomicU64,
}

/// What the receiver counted since it started (or since [`Knee::counts`] was last used
/// as a baseline by the caller).
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub requests: u64,
    pub connections: u64,
    pub latency_us: u64,
    /// The most requests in flight at once since [`Knee::reset_peak`].
    pub peak: u64,
}

impl Knee {
    /// Listen on a free loopback port: `workers` requests served at a time, `service` each.
    pub async fn start(pki: &Pki, workers: usize, service: Duration) -> Knee {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind the knee receiver");
        let addr = listener.local_addr().expect("local address");
        let acceptor = TlsAcceptor::from(Arc::new(server_config(pki)));
        let stats = Arc::new(Stats::default());
        let gate = Arc::new(Semaphore::new(workers));
        let accept = tokio::spawn(accept_loop(
            listener,
            acceptor,
            stats.clone(),
            gate,
            service,
        ));
        Knee {
            addr,
            pki: pki.clone(),
            stats,
            accept,
        }
    }

    /// `https://localhost:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// Write the CA certificate into `dir` (an endpoint's `tls.ca_file`).
    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        self.pki
            .write_ca(dir)
            .expect("write the knee receiver's CA")
    }

    pub fn counts(&self) -> Counts {
        let s = &self.stats;
        Counts {
            requests: s.requests.load(Ordering::SeqCst),
            connections: s.connections.load(Ordering::SeqCst),
            latency_us: s.latency_us.load(Ordering::SeqCst),
            peak: s.peak.load(Ordering::SeqCst),
        }
    }

    /// Start a new peak measurement from the requests in flight now.
    pub fn reset_peak(&self) {
        let now = self.stats.in_flight.load(Ordering::SeqCst);
        self.stats.peak.store(now, Ordering::SeqCst);
    }

    /// Wait until `n` requests were answered in all.
    ///
    /// # Panics
    /// After `timeout`.
    pub fn wait_for(&self, n: u64, timeout: Duration) -> Counts {
        let what = format!("knee receiver, waiting for {n} requests");
        super::wait::poll_until(&what, timeout, || self.counts(), |c| c.requests >= n)
    }
}

impl Drop for Knee {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn server_config(pki: &Pki) -> ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = CertificateDer::pem_slice_iter(pki.server_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("server certificate");
    let key = PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes()).expect("server key");
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("certificate and key");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    stats: Arc<Stats>,
    gate: Arc<Semaphore>,
    service: Duration,
) {
    while let Ok((tcp, _)) = listener.accept().await {
        stats.connections.fetch_add(1, Ordering::SeqCst);
        let (acceptor, stats, gate) = (acceptor.clone(), stats.clone(), gate.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let handle = service_fn(move |req| serve(req, stats.clone(), gate.clone(), service));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), handle)
                .await;
        });
    }
}

/// Wait for a worker, take `service`, answer 200.
async fn serve(
    req: Request<Incoming>,
    stats: Arc<Stats>,
    gate: Arc<Semaphore>,
    service: Duration,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let arrived = Instant::now();
    let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    stats.peak.fetch_max(now, Ordering::SeqCst);
    let _ = req.into_body().collect().await;
    {
        let _worker = gate.acquire().await.expect("the gate is never closed");
        tokio::time::sleep(service).await;
    }
    stats.in_flight.fetch_sub(1, Ordering::SeqCst);
    let took = arrived.elapsed().as_micros() as u64;
    stats.latency_us.fetch_add(took, Ordering::SeqCst);
    stats.requests.fetch_add(1, Ordering::SeqCst);
    Ok(Response::new(Full::new(Bytes::new())))
}
