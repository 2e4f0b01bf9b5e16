//! Transport options on live deliveries (SPEC §4 "TLS"): mTLS, which trust anchors count
//! (`roots`, `ca_file`, the system store), `min_version`, plain http only when allowed,
//! redirects never followed; and `check-config` naming each bad option at
//! `file:line:column`.
//!
//! The "system" trust store is made testable with `SSL_CERT_FILE`, which
//! rustls-native-certs reads instead of the platform store: pointing it at the test CA
//! makes the receiver trusted "by the system", so `roots = "ca_file"` can be shown to
//! *replace* the system roots rather than merely fail to add to them.
//!
//! A refused handshake leaves no trace at the receiver or in the queue, so those tests wait
//! for the daemon's log line about the failure, then check that nothing arrived and the
//! delivery is still queued.

use std::convert::Infallible;
use std::path::Path;
use std::sync::mpsc;

use bytes::Bytes;
use edgehook::demo::pki;
use edgehook::demo::receiver::{ReceiverOptions, Recorded};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use crate::util::delivery::{
    ids, pending, pending_for, wait_db, wait_log, Endpoint, Upstream, WAIT,
};
use crate::util::{event, run_cli, Builder, TestDaemon};

/// Paths that requests arrived at, in order.
fn paths(got: &[Recorded]) -> Vec<&str> {
    got.iter().map(|r| r.path_and_query.as_str()).collect()
}

/// Wait until the daemon logged a warning about `endpoint` (a failed attempt or probe);
/// returns that line.
fn wait_failure(d: &TestDaemon, endpoint: &str) -> String {
    let field = format!("endpoint={endpoint} ");
    let log = wait_log(
        d,
        &format!("a failed attempt to endpoint {endpoint}"),
        |log| {
            log.lines()
                .any(|l| l.contains("WARN") && l.contains(&field))
        },
    );
    log.lines()
        .find(|l| l.contains("WARN") && l.contains(&field))
        .map(str::to_owned)
        .unwrap_or_default()
}

/// `dir/name/` with `pki`'s client certificate and key in it: (cert, key).
fn client_files(pki: &pki::Pki, dir: &Path, name: &str) -> (String, String) {
    let sub = dir.join(name);
    std::fs::create_dir(&sub).unwrap();
    let cert = pki.write_client_cert(&sub).unwrap();
    let key = pki.write_client_key(&sub).unwrap();
    (
        cert.to_str().unwrap().to_owned(),
        key.to_str().unwrap().to_owned(),
    )
}

#[test]
fn mtls_client_certificate_is_presented_and_required() {
    let up = Upstream::start_with(ReceiverOptions {
        require_client_cert: true,
        ..Default::default()
    });
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let (cert, key) = client_files(up.pki(), b.dir(), "client");
    let d = b
        .toml(
            &Endpoint::new("with-cert", &up.url("/with-cert"), &ca)
                .tls(&format!("client_cert = {cert:?}"))
                .tls(&format!("client_key = {key:?}"))
                .toml(),
        )
        .toml(&Endpoint::new("without-cert", &up.url("/without-cert"), &ca).toml())
        .start();

    let r = d.post_event(&event("Test.mtls", "mtls-1", "{}"));
    assert_eq!(r.status, 202, "{r:?}");
    let got = up.wait_for(1);
    assert_eq!(paths(&got), ["/with-cert"]);
    // With TLS 1.3 the client's handshake completes before the server checks the client
    // certificate, so the refusal arrives as a broken connection on the request (an
    // attempt that failed), not as a handshake error.
    wait_failure(&d, "without-cert");
    assert!(
        up.receiver.connections() >= 2,
        "the endpoint without a certificate did connect"
    );
    assert_eq!(
        up.receiver.requests().len(),
        1,
        "{:?}",
        up.receiver.requests()
    );
    assert_eq!(pending_for(&d, "without-cert"), 1, "still queued");
    wait_db(&d, "the mTLS delivery to leave the queue", |d| {
        pending_for(d, "with-cert") == 0
    });
}

#[test]
fn ca_file_roots_replace_the_system_roots() {
    let up = Upstream::start();
    let other = pki::generate().unwrap();
    let b = Builder::new();
    let ours = up.write_ca(b.dir());
    let theirs_dir = b.dir().join("other");
    std::fs::create_dir(&theirs_dir).unwrap();
    let theirs = other.write_ca(&theirs_dir).unwrap();
    // "The system" trusts our CA: only then does refusing it prove a replacement.
    let system_env = format!("SSL_CERT_FILE={}", ours.display());
    let d = b
        .wrap(&["env", "-u", "SSL_CERT_DIR", &system_env])
        .toml(
            &Endpoint::new("system", &up.url("/system"), &ours)
                .without_ca_file()
                .toml(),
        )
        .toml(&Endpoint::new("added", &up.url("/added"), &theirs).toml())
        .toml(
            &Endpoint::new("own", &up.url("/own"), &ours)
                .tls("roots = \"ca_file\"")
                .toml(),
        )
        .toml(
            &Endpoint::new("replaced", &up.url("/replaced"), &theirs)
                .tls("roots = \"ca_file\"")
                .toml(),
        )
        .start();
    // The real system store (the platform's CA bundle) does not know the test CA.
    let real = Builder::new()
        .wrap(&["env", "-u", "SSL_CERT_FILE", "-u", "SSL_CERT_DIR"])
        .toml(
            &Endpoint::new("real-system", &up.url("/real-system"), &ours)
                .without_ca_file()
                .toml(),
        )
        .start();

    for daemon in [&d, &real] {
        let r = daemon.post_event(&event("Test.roots", "roots-1", "{}"));
        assert_eq!(r.status, 202, "{r:?}");
    }
    // BadSignature or UnknownIssuer: the other CA has the same name but not the same key.
    let line = wait_failure(&d, "replaced");
    assert!(line.contains("invalid peer certificate"), "{line}");
    let line = wait_failure(&real, "real-system");
    assert!(line.contains("invalid peer certificate"), "{line}");
    let got = up.wait_for(3);
    let mut arrived = paths(&got);
    arrived.sort();
    assert_eq!(
        arrived,
        ["/added", "/own", "/system"],
        "system roots, system roots + ca_file, and ca_file alone with our CA"
    );
    assert_eq!(pending_for(&d, "replaced"), 1);
    assert_eq!(pending_for(&real, "real-system"), 1);
}

#[test]
fn min_version_1_3_refuses_a_tls_1_2_server() {
    let up = Upstream::start_with(ReceiverOptions {
        tls12_only: true,
        ..Default::default()
    });
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let d = b
        .toml(
            &Endpoint::new("modern", &up.url("/modern"), &ca)
                .tls("min_version = \"1.3\"")
                .toml(),
        )
        .toml(&Endpoint::new("default", &up.url("/default"), &ca).toml())
        .start();

    let r = d.post_event(&event("Test.tls", "tls-1", "{}"));
    assert_eq!(r.status, 202, "{r:?}");
    let got = up.wait_for(1);
    assert_eq!(paths(&got), ["/default"]);
    assert_eq!(got[0].tls_version, "TLSv1_2", "the default accepts TLS 1.2");
    let line = wait_failure(&d, "modern");
    assert!(
        line.to_lowercase().contains("version"),
        "the failure names the protocol version: {line}"
    );
    assert_eq!(up.receiver.requests().len(), 1);
    assert_eq!(pending_for(&d, "modern"), 1);
}

/// One request to the plain HTTP server.
struct PlainRequest {
    path: String,
    body: Bytes,
}

/// A plain-HTTP (no TLS) receiver on 127.0.0.1 that answers 200 and sends each request
/// down `tx`. Returns its port.
fn plain_http_server(up: &Upstream, tx: mpsc::Sender<PlainRequest>) -> u16 {
    let listener = up
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    up.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let tx = tx.clone();
                async move {
                    let path = req.uri().to_string();
                    let body = req.into_body().collect().await.map(|b| b.to_bytes());
                    let _ = tx.send(PlainRequest {
                        path,
                        body: body.unwrap_or_default(),
                    });
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service),
            );
        }
    });
    port
}

#[test]
fn plain_http_only_when_allowed_and_with_a_warning() {
    let up = Upstream::start();
    let (tx, rx) = mpsc::channel();
    let port = plain_http_server(&up, tx);
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let d = b
        .toml(
            &Endpoint::new("lan", &format!("http://127.0.0.1:{port}/plain"), &ca)
                .key("allow_plain_http = true")
                .toml(),
        )
        .start();
    let warning = "endpoint lan: plain http allowed";
    assert!(
        d.log()
            .lines()
            .any(|l| l.contains("WARN") && l.contains(warning)),
        "the load warns about plain http:\n{}",
        d.log()
    );
    let r = d.post_event(&event("Test.plain", "plain-1", "{\"n\":1}"));
    assert_eq!(r.status, 202, "{r:?}");
    let got = rx.recv_timeout(WAIT).expect("the plain HTTP delivery");
    assert_eq!(got.path, "/plain");
    assert!(got.body.ends_with(b"\"data\":{\"n\":1}}"), "{:?}", got.body);
    // The refusal without allow_plain_http is in check_config_names_each_bad_option.
}

#[test]
fn redirects_are_not_followed() {
    let up = Upstream::start();
    let elsewhere = up.url("/elsewhere");
    up.receiver
        .push_responses(&[(301, &[("location", &elsewhere)])])
        .unwrap();
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let d = b
        .toml(&Endpoint::new("moved", &up.url("/old"), &ca).toml())
        .start();
    let r = d.post_event(&event("Test.redirect", "redirect-1", "{}"));
    assert_eq!(r.status, 202, "{r:?}");
    // The 301 is a failed attempt; the retry goes to the configured URL again, not to
    // Location.
    let got = up.wait_for(2);
    wait_db(&d, "the delivery to succeed on the retry", |d| {
        pending(d) == 0
    });
    let got_now = up.receiver.requests();
    assert_eq!(got_now.len(), 2, "{got_now:#?}");
    assert_eq!(paths(&got), ["/old", "/old"]);
    assert_eq!(ids(&got), ["redirect-1", "redirect-1"]);
    let attempts: Vec<_> = got.iter().map(|r| r.header("edgehook-attempt")).collect();
    assert_eq!(attempts, [Some("1"), Some("2")]);
    let log = d.log();
    assert!(
        log.lines()
            .any(|l| l.contains("endpoint=moved") && l.to_lowercase().contains("redirect")),
        "the log says a redirect was not followed:\n{log}"
    );
}

/// `line:column` (1-based, column in characters) where `needle` starts in `text`.
fn position(text: &str, needle: &str) -> String {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} is not in the config"));
    assert_eq!(text.matches(needle).count(), 1, "{needle} is not unique");
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap().chars().count() + 1;
    format!("{line}:{column}")
}

#[test]
fn check_config_names_each_bad_option() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (pki::generate().unwrap(), pki::generate().unwrap());
    let (cert_a, key_a) = client_files(&a, dir.path(), "a");
    let (_, key_b) = client_files(&b, dir.path(), "b");
    let missing = dir.path().join("no-such-dir/client.pem");
    let missing = missing.to_str().unwrap();
    let text = format!(
        r#"[daemon]
state_dir = "state"

[[endpoint]]
name = "plain"
url = "http://127.0.0.1:9/hook"

[[endpoint]]
name = "missing-cert"
url = "https://127.0.0.1:9/a"
[endpoint.tls]
client_cert = "{missing}"
client_key = "{key_a}"

[[endpoint]]
name = "wrong-key"
url = "https://127.0.0.1:9/b"
[endpoint.tls]
client_cert = "{cert_a}"
client_key = "{key_b}"

[[endpoint]]
name = "bad-pointer"
url = "https://127.0.0.1:9/c"
order_key = "roomId"

[[endpoint]]
name = "bad-rate"
url = "https://127.0.0.1:9/d"
rate_limit = "fast"
"#
    );
    let path = dir.path().join("edgehook.toml");
    std::fs::write(&path, &text).unwrap();
    let path = path.to_str().unwrap();
    let (code, stdout, stderr) = run_cli(&["check-config", "--config", path], None);
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");

    // (where, what the message must say)
    let expected = [
        (
            position(&text, "\"http://127.0.0.1:9/hook\""),
            "plain http is refused",
        ),
        (position(&text, &format!("\"{missing}\"")), "cannot read"),
        (
            position(&text, &format!("\"{key_b}\"")),
            "does not belong to the certificate",
        ),
        (position(&text, "\"roomId\""), "not a JSON pointer"),
        (position(&text, "\"fast\""), "invalid rate limit"),
    ];
    let reported: Vec<&str> = stderr.lines().filter(|l| l.contains(path)).collect();
    assert_eq!(
        reported.len(),
        expected.len(),
        "one message per problem:\n{stderr}"
    );
    for ((at, says), line) in expected.iter().zip(&reported) {
        assert!(
            line.contains(&format!("{path}:{at}: ")) && line.contains(says),
            "expected {path}:{at}: …{says}…, got: {line}\nall:\n{stderr}"
        );
    }
    assert!(reported[0].contains("allow_plain_http"), "{}", reported[0]);
    assert!(reported[1].contains(missing), "{}", reported[1]);
    assert!(!stderr.contains("PRIVATE KEY"), "no key material: {stderr}");
    assert!(!stdout.contains("is valid"), "{stdout}");
}
