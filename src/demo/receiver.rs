//! A real HTTPS webhook receiver on 127.0.0.1 that records every request.
//!
//! One implementation serves both `edgehook demo` and the integration tests: rustls (ring
//! provider, set explicitly so no process-wide default is needed) with ALPN `h2` and
//! `http/1.1`, and hyper-util's auto builder so either protocol works on one port.
//!
//! It answers 200, checks Standard Webhooks signatures when asked (a bad signature is
//! answered 401, as real receivers do), and [`Receiver::stop`] / [`Receiver::restart`] on
//! the same port play an outage. What it answers otherwise is up to a [`Responder`]: the
//! demo's [`Plain`] says 200 to everything; the integration tests plug in one that fails
//! on cue (`tests/util/faults.rs`), so no fault injection is compiled into edgehook.
//!
//! Tasks: one accept loop plus one task per connection, all in a [`TaskTracker`] and bound to
//! one [`CancellationToken`]; stopping cancels them and waits, so the listening socket and
//! every connection are closed when [`Receiver::stop`] returns.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::pki::Pki;

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop doesn't spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path_and_query: String,
    /// Header names are lowercase; values that are not UTF-8 are converted lossily.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// `"HTTP/1.1"` or `"HTTP/2.0"`.
    pub http_version: String,
    /// The negotiated TLS version, e.g. `"TLSv1_3"`.
    pub tls_version: String,
    /// `None` unless [`Receiver::verify_with`] set a secret; then whether the
    /// `webhook-signature` header verified.
    pub signature_ok: Option<bool>,
    /// When the request's head arrived (before its body was read), for measuring rates.
    pub at: Instant,
}

impl Recorded {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An answer: a status and its headers.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
}

impl Reply {
    /// `status` with headers such as `("retry-after", "2")`; an error names what is invalid.
    pub fn new(status: u16, headers: &[(&str, &str)]) -> anyhow::Result<Reply> {
        let mut reply = Reply::status(
            StatusCode::from_u16(status)
                .with_context(|| format!("invalid HTTP status {status}"))?,
        );
        for (name, value) in headers {
            reply.headers.append(
                HeaderName::try_from(*name)
                    .with_context(|| format!("invalid header name {name:?}"))?,
                HeaderValue::try_from(*value)
                    .with_context(|| format!("invalid value for header {name}: {value:?}"))?,
            );
        }
        Ok(reply)
    }

    fn status(status: StatusCode) -> Reply {
        Reply {
            status,
            headers: HeaderMap::new(),
        }
    }
}

/// Decides what the receiver answers (after the signature check, which comes first).
pub trait Responder: Send + Sync + 'static {
    /// Whether to serve a TCP connection just accepted; `false` closes it before TLS.
    fn admit(&self) -> bool {
        true
    }

    /// The answer to `request`.
    fn respond(&self, request: &Recorded) -> Reply;
}

/// The demo's upstream: 200 to every request.
pub struct Plain;

impl Responder for Plain {
    fn respond(&self, _: &Recorded) -> Reply {
        Reply::status(StatusCode::OK)
    }
}

/// TLS variations, for tests of edgehook's `[endpoint.tls]` settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReceiverOptions {
    /// Demand a client certificate signed by the PKI's CA (mTLS).
    pub require_client_cert: bool,
    /// Offer TLS 1.3 only.
    pub tls13_only: bool,
    /// Offer TLS 1.2 only.
    pub tls12_only: bool,
}

/// A running (or stopped) HTTPS receiver.
///
/// Dropping it stops serving in the background; await [`Receiver::stop`] first when the port
/// must be closed at once (e.g. before [`Receiver::start_on`] the same address).
pub struct Receiver {
    addr: SocketAddr,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    running: Option<Running>,
}

/// The tasks of one listening period, between start/restart and stop.
struct Running {
    cancel: CancellationToken,
    tasks: TaskTracker,
}

/// State shared by the handle and the connection tasks.
struct Shared {
    state: Mutex<State>,
    /// The number of recorded requests, for [`Receiver::wait_for`].
    count: watch::Sender<usize>,
    connections: AtomicUsize,
    responder: Arc<dyn Responder>,
}

struct State {
    requests: Vec<Recorded>,
    /// Requests received, recorded or not (see [`Receiver::count_only`]).
    received: usize,
    /// Count requests without keeping them (benchmarks of a million deliveries).
    count_only: bool,
    secret: Option<String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking handler cannot leave `State` half-updated in a way that matters here.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Receiver {
    /// Serve on a free port of 127.0.0.1 with default TLS settings, answering 200.
    pub async fn start(pki: &Pki) -> anyhow::Result<Receiver> {
        Receiver::start_with(
            pki,
            (Ipv4Addr::LOCALHOST, 0).into(),
            ReceiverOptions::default(),
            Arc::new(Plain),
        )
        .await
    }

    /// Serve on `addr` (port 0 picks a free one) with the given TLS options, answering
    /// what `responder` says.
    pub async fn start_with(
        pki: &Pki,
        addr: SocketAddr,
        options: ReceiverOptions,
        responder: Arc<dyn Responder>,
    ) -> anyhow::Result<Receiver> {
        let (count, _) = watch::channel(0);
        let mut receiver = Receiver {
            addr,
            acceptor: TlsAcceptor::from(Arc::new(server_config(pki, options)?)),
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    requests: Vec::new(),
                    received: 0,
                    count_only: false,
                    secret: None,
                }),
                count,
                connections: AtomicUsize::new(0),
                responder,
            }),
            running: None,
        };
        receiver.restart().await?;
        Ok(receiver)
    }

    /// The listening address (also while stopped: [`Receiver::restart`] reuses it).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://localhost:{port}{path}`; `path` starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// Check each request's Standard Webhooks signature against `secret` (`whsec_…`) and
    /// answer 401 when it fails; the result is in [`Recorded::signature_ok`].
    pub fn verify_with(&self, secret: &str) {
        self.shared.lock().secret = Some(secret.to_owned());
    }

    /// While on, count requests without keeping them: [`Receiver::requests`] and
    /// [`Receiver::wait_for`] return none, but the count still advances. For benchmarks
    /// that deliver millions of events, whose recording would fill the memory.
    pub fn count_only(&self, on: bool) {
        self.shared.lock().count_only = on;
    }

    /// TCP connections accepted so far, admitted or not.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// A snapshot of the requests recorded so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// Wait until at least `n` requests arrived, then return the recorded ones (all of
    /// them, or none with [`Receiver::count_only`]).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> anyhow::Result<Vec<Recorded>> {
        let mut count = self.shared.count.subscribe();
        // The sender lives in `self.shared`, so the channel cannot close while we wait.
        let timed_out = tokio::time::timeout(timeout, count.wait_for(|c| *c >= n))
            .await
            .is_err();
        if timed_out {
            bail!(
                "receiver {}: only {} of the {n} expected requests arrived within {timeout:?}",
                self.url("/"),
                *count.borrow()
            );
        }
        Ok(self.requests())
    }

    /// Stop listening and close every open connection; returns once the port is closed.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.cancel.cancel();
            running.tasks.close();
            running.tasks.wait().await;
        }
    }

    /// Listen again on the same address after [`Receiver::stop`], keeping the recorded
    /// requests and programmed responses. Does nothing while running.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.running.is_some() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.addr)
            .await
            .with_context(|| format!("cannot bind the demo receiver to {}", self.addr))?;
        self.addr = listener.local_addr()?;
        let running = Running {
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
        };
        running.tasks.spawn(accept_loop(
            listener,
            self.acceptor.clone(),
            self.shared.clone(),
            running.cancel.clone(),
            running.tasks.clone(),
        ));
        self.running = Some(running);
        Ok(())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(running) = &self.running {
            running.cancel.cancel();
        }
    }
}

fn server_config(pki: &Pki, options: ReceiverOptions) -> anyhow::Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone());
    let builder = match (options.tls12_only, options.tls13_only) {
        (false, false) => builder.with_safe_default_protocol_versions(),
        (true, false) => builder.with_protocol_versions(&[&rustls::version::TLS12]),
        (false, true) => builder.with_protocol_versions(&[&rustls::version::TLS13]),
        (true, true) => bail!("receiver options: tls12_only and tls13_only exclude each other"),
    }
    .context("the ring provider rejects the TLS versions")?;
    let builder = if options.require_client_cert {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
            roots.add(cert.context("cannot parse the demo CA")?)?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .context("cannot build the client certificate verifier")?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let certs = CertificateDer::pem_slice_iter(pki.server_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("cannot parse the demo server certificate")?;
    let key = PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes())
        .context("cannot parse the demo server key")?;
    let mut config = builder
        .with_single_cert(certs, key)
        .context("the demo server certificate and key don't match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(error) => {
                tracing::warn!(%error, "Demo receiver cannot accept a connection.");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        if !shared.responder.admit() {
            drop(tcp);
            continue;
        }
        let (acceptor, shared, cancel) = (acceptor.clone(), shared.clone(), cancel.clone());
        tasks.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                served = serve(tcp, acceptor, shared) => if let Err(error) = served {
                    tracing::debug!(%error, "Demo receiver connection failed.");
                }
            }
        });
    }
}

/// TLS handshake, then HTTP/1.1 or h2 until the client closes.
async fn serve(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let tls = acceptor.accept(tcp).await?;
    let tls_version = tls
        .get_ref()
        .1
        .protocol_version()
        .map(|v| format!("{v:?}"))
        .unwrap_or_default();
    let service = service_fn(move |req| record(shared.clone(), tls_version.clone(), req));
    auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(tls), service)
        .await
}

/// Record one request and answer it: 401 for a bad signature, else the responder's answer.
async fn record(
    shared: Arc<Shared>,
    tls_version: String,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let at = Instant::now();
    let (parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        // The client went away mid-body: nothing complete to record or answer.
        return Ok(respond(Reply::status(StatusCode::BAD_REQUEST)));
    };
    let mut recorded = Recorded {
        method: parts.method.to_string(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (n.as_str().to_owned(), value)
            })
            .collect(),
        body,
        http_version: format!("{:?}", parts.version),
        tls_version,
        signature_ok: None,
        at,
    };
    let reply = {
        let mut guard = shared.lock();
        let state = &mut *guard;
        recorded.signature_ok = state.secret.as_deref().map(|s| signature_ok(s, &recorded));
        let reply = if recorded.signature_ok == Some(false) {
            Reply::status(StatusCode::UNAUTHORIZED)
        } else {
            shared.responder.respond(&recorded)
        };
        state.received += 1;
        if !state.count_only {
            state.requests.push(recorded);
        }
        // Under the lock, so the count never runs ahead of `requests`.
        shared.count.send_replace(state.received);
        reply
    };
    Ok(respond(reply))
}

fn signature_ok(secret: &str, req: &Recorded) -> bool {
    let (Some(id), Some(ts), Some(sig)) = (
        req.header("webhook-id"),
        req.header("webhook-timestamp").and_then(|t| t.parse().ok()),
        req.header("webhook-signature"),
    ) else {
        return false;
    };
    crate::sign::verify_standard_webhooks(secret, id, ts, &req.body, sig)
}

fn respond(reply: Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = reply.status;
    *response.headers_mut() = reply.headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::pki;
    use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::client::legacy::Client;

    const WAIT: Duration = Duration::from_secs(10);

    type TestClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

    /// A client that trusts only the PKI's CA; `h2_only` offers just `h2` in ALPN.
    fn client(pki: &Pki, h2_only: bool) -> TestClient {
        connector_client(tls_builder(pki).with_no_client_auth(), h2_only)
    }

    /// Like [`client`] (HTTP/1.1), presenting the PKI's client certificate.
    fn mtls_client(pki: &Pki) -> TestClient {
        let certs = CertificateDer::pem_slice_iter(pki.client_cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(pki.client_key_pem.as_bytes()).unwrap();
        let tls = tls_builder(pki).with_client_auth_cert(certs, key).unwrap();
        connector_client(tls, false)
    }

    fn tls_builder(
        pki: &Pki,
    ) -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
    }

    fn connector_client(tls: rustls::ClientConfig, h2_only: bool) -> TestClient {
        let builder = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only();
        let connector = if h2_only {
            builder.enable_http2().build()
        } else {
            builder.enable_http1().build()
        };
        Client::builder(TokioExecutor::new()).build(connector)
    }

    /// POST `body` with a JSON content type and `x-custom: yes`; the response status.
    async fn post(client: &TestClient, url: &str, body: &'static str) -> u16 {
        let req = Request::post(url)
            .header("content-type", "application/json")
            .header("X-Custom", "yes")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        match client.request(req).await {
            Ok(resp) => resp.status().as_u16(),
            Err(e) => panic!("request to {url} failed: {e:?}"),
        }
    }

    #[tokio::test]
    async fn records_http1_and_h2_requests() {
        let pki = pki::generate().unwrap();
        let rx = Receiver::start(&pki).await.unwrap();
        let url = rx.url("/hook?x=1");
        assert_eq!(post(&client(&pki, false), &url, r#"{"a":1}"#).await, 200);
        assert_eq!(post(&client(&pki, true), &url, r#"{"b":2}"#).await, 200);

        let got = rx.wait_for(2, WAIT).await.unwrap();
        assert_eq!(got[0].method, "POST");
        assert_eq!(got[0].path_and_query, "/hook?x=1");
        assert_eq!(got[0].body, r#"{"a":1}"#);
        assert_eq!(got[0].header("x-custom"), Some("yes"));
        assert_eq!(got[0].header("Content-Type"), Some("application/json"));
        assert_eq!(got[0].http_version, "HTTP/1.1");
        assert_eq!(got[1].http_version, "HTTP/2.0");
        assert_eq!(got[1].body, r#"{"b":2}"#);
        assert_eq!(got[0].signature_ok, None);
    }

    /// Answers each request with the status in its body and admits every other connection.
    struct ByBody(AtomicUsize);

    impl Responder for ByBody {
        fn admit(&self) -> bool {
            self.0.fetch_add(1, Ordering::SeqCst) % 2 == 1
        }
        fn respond(&self, request: &Recorded) -> Reply {
            let status = std::str::from_utf8(&request.body).unwrap().parse().unwrap();
            Reply::new(status, &[("retry-after", "2")]).unwrap()
        }
    }

    #[tokio::test]
    async fn a_responder_decides_admission_and_answers() {
        let pki = pki::generate().unwrap();
        let any = (Ipv4Addr::LOCALHOST, 0).into();
        let responder = Arc::new(ByBody(AtomicUsize::new(0)));
        let rx = Receiver::start_with(&pki, any, ReceiverOptions::default(), responder)
            .await
            .unwrap();
        let client = client(&pki, false);
        // The first connection is closed before TLS; the client's retry is admitted.
        let req = Request::post(rx.url("/")).body(Full::default()).unwrap();
        assert!(client.request(req).await.unwrap_err().is_connect());
        assert!(rx.requests().is_empty());
        let req = Request::post(rx.url("/")).body(Full::from("429")).unwrap();
        let resp = client.request(req).await.unwrap();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "2");
        assert_eq!(post(&client, &rx.url("/"), "503").await, 503);
        assert_eq!(rx.connections(), 2);
        assert_eq!(rx.requests().len(), 2);
    }

    #[test]
    fn reply_new_rejects_invalid_statuses_and_headers() {
        assert!(Reply::new(1000, &[]).is_err());
        assert!(Reply::new(200, &[("bad name", "x")]).is_err());
        assert!(Reply::new(200, &[("x", "bad\nvalue")]).is_err());
    }

    #[tokio::test]
    async fn verifies_standard_webhooks_signatures() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let key = crate::sign::decode_whsec(secret).unwrap();
        let body = r#"{"test": 2432232314}"#;
        let good = crate::sign::standard_webhooks(&key, "msg_1", 1614265330, body.as_bytes());
        let pki = pki::generate().unwrap();
        let rx = Receiver::start(&pki).await.unwrap();
        rx.verify_with(secret);
        let client = client(&pki, false);
        for sig in [good.as_str(), "v1,bogus"] {
            let req = Request::post(rx.url("/"))
                .header("webhook-id", "msg_1")
                .header("webhook-timestamp", "1614265330")
                .header("webhook-signature", sig)
                .body(Full::new(Bytes::from_static(body.as_bytes())))
                .unwrap();
            let status = client.request(req).await.unwrap().status();
            assert_eq!(status, if sig == good { 200 } else { 401 });
        }
        let got = rx.requests();
        assert_eq!(got[0].signature_ok, Some(true));
        assert_eq!(got[1].signature_ok, Some(false));
    }

    #[tokio::test]
    async fn stop_closes_the_port_and_restart_reopens_it() {
        let pki = pki::generate().unwrap();
        let mut rx = Receiver::start(&pki).await.unwrap();
        let client = client(&pki, false);
        // A kept-alive connection must be closed by stop too.
        assert_eq!(post(&client, &rx.url("/"), "{}").await, 200);
        let addr = rx.addr();
        rx.stop().await;
        let err = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        let req = Request::post(rx.url("/")).body(Full::default()).unwrap();
        assert!(client.request(req).await.is_err());

        rx.restart().await.unwrap();
        assert_eq!(rx.addr(), addr);
        assert_eq!(post(&client, &rx.url("/"), "{}").await, 200);
        assert_eq!(rx.wait_for(2, WAIT).await.unwrap().len(), 2);

        rx.stop().await;
        drop(rx);
        let again = Receiver::start_with(&pki, addr, ReceiverOptions::default(), Arc::new(Plain))
            .await
            .unwrap();
        assert_eq!(post(&client, &again.url("/"), "{}").await, 200);
    }

    #[tokio::test]
    async fn wait_for_reports_how_many_arrived() {
        let pki = pki::generate().unwrap();
        let rx = Receiver::start(&pki).await.unwrap();
        let err = rx.wait_for(1, Duration::from_millis(50)).await.unwrap_err();
        assert!(err.to_string().contains("only 0 of the 1"), "{err}");
    }

    #[tokio::test]
    async fn options_select_tls_versions() {
        let pki = pki::generate().unwrap();
        let any = (Ipv4Addr::LOCALHOST, 0).into();
        let tls12_only = ReceiverOptions {
            tls12_only: true,
            ..Default::default()
        };
        let rx = Receiver::start_with(&pki, any, tls12_only, Arc::new(Plain))
            .await
            .unwrap();
        assert_eq!(post(&client(&pki, false), &rx.url("/"), "{}").await, 200);
        assert_eq!(rx.requests()[0].tls_version, "TLSv1_2");
        let both = ReceiverOptions {
            tls12_only: true,
            tls13_only: true,
            ..Default::default()
        };
        assert!(Receiver::start_with(&pki, any, both, Arc::new(Plain))
            .await
            .is_err());
    }

    #[tokio::test]
    async fn require_client_cert_accepts_only_the_pki_client() {
        let pki = pki::generate().unwrap();
        let any = (Ipv4Addr::LOCALHOST, 0).into();
        let mtls = ReceiverOptions {
            require_client_cert: true,
            ..Default::default()
        };
        let rx = Receiver::start_with(&pki, any, mtls, Arc::new(Plain))
            .await
            .unwrap();
        let req = Request::post(rx.url("/")).body(Full::default()).unwrap();
        assert!(client(&pki, false).request(req).await.is_err());
        assert_eq!(post(&mtls_client(&pki), &rx.url("/"), "{}").await, 200);
        assert_eq!(rx.requests().len(), 1);
    }
}
