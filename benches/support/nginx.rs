//! The nginx receiver of the benchmark rig (issue 14): nginx from Debian's packages
//! (`apt-get install nginx openssl`), started by the harness with its own config in a temp
//! dir, listening on loopback only: `worker_processes 1`, TLS 1.3 only, an RSA-2048
//! certificate from a private CA made with `openssl`, HTTP/1.1, every request answered
//! `return 200`. Requests and connections are read from `stub_status` on a second,
//! plain-HTTP loopback port (the status requests themselves are subtracted).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A running nginx; dropping it stops it.
pub struct Nginx {
    dir: TempDir,
    child: Child,
    tls: SocketAddr,
    status: SocketAddr,
    /// Status requests made so far (each on its own connection).
    polls: AtomicU64,
    /// Connections before the first status request: the readiness probes.
    probes: u64,
}

/// What nginx counted for edgehook's requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub connections: u64,
    pub requests: u64,
}

impl Nginx {
    /// Start nginx; waits until both ports accept connections.
    ///
    /// # Panics
    /// If `nginx` or `openssl` is missing or nginx does not come up: the message says what
    /// to install.
    pub fn start() -> Nginx {
        let dir = tempfile::Builder::new()
            .prefix("edgehook-nginx-")
            .tempdir()
            .expect("temp dir");
        make_pki(dir.path());
        let (tls, status) = (free_port(), free_port());
        let d = dir.path().display();
        let conf = format!(
            "worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen {tls} ssl;
        ssl_protocols TLSv1.3;
        ssl_certificate {d}/server.pem;
        ssl_certificate_key {d}/server.key;
        location / {{ return 200; }}
    }}
    server {{
        listen {status};
        location / {{ stub_status; }}
    }}
}}
"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).expect("write nginx.conf");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .spawn()
            .expect(
                "cannot run nginx: install it with `apt-get install nginx` (Debian's nginx 1.22)",
            );
        let mut nginx = Nginx {
            dir,
            child,
            tls,
            status,
            polls: AtomicU64::new(0),
            probes: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(tls).is_err() || TcpStream::connect(status).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen within 10 s: {}",
                std::fs::read_to_string(nginx.dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // The readiness probes above were connections too.
        nginx.probes = nginx.raw_status().connections - 1;
        nginx
    }

    /// `https://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.tls)
    }

    /// The private CA's certificate (an endpoint's `tls.ca_file`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Connections and requests from edgehook so far.
    pub fn counts(&self) -> Counts {
        let raw = self.raw_status();
        let polls = self.polls.load(Ordering::SeqCst);
        Counts {
            connections: raw.connections - polls - self.probes,
            requests: raw.requests - polls,
        }
    }

    /// Wait until nginx has answered `n` of edgehook's requests.
    ///
    /// # Panics
    /// After `timeout`.
    pub fn wait_for(&self, n: u64, timeout: Duration) -> Counts {
        let what = format!("nginx, waiting for {n} requests");
        super::wait::poll_until(&what, timeout, || self.counts(), |c| c.requests >= n)
    }

    /// `stub_status`' accepted connections and requests, this poll included.
    fn raw_status(&self) -> Counts {
        self.polls.fetch_add(1, Ordering::SeqCst);
        let mut s = TcpStream::connect(self.status).expect("nginx status port");
        s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .expect("status request");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("status reply");
        // "... server accepts handled requests\n 12 12 34 \n..."
        let numbers: Vec<u64> = text
            .lines()
            .skip_while(|l| !l.contains("accepts handled requests"))
            .nth(1)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        assert_eq!(numbers.len(), 3, "unexpected stub_status reply: {text}");
        Counts {
            connections: numbers[0],
            requests: numbers[2],
        }
    }
}

impl Drop for Nginx {
    /// SIGTERM, not SIGKILL: the master then stops its worker, which a killed master
    /// would leave running.
    fn drop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

/// A loopback port free right now (nginx binds it a moment later; fine for a benchmark).
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

/// `ca.pem` and an RSA-2048 `server.pem`/`server.key` for 127.0.0.1 signed by it.
fn make_pki(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("cannot run openssl: install it with `apt-get install openssl`");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=edgehook bench CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = IP:127.0.0.1, DNS:localhost\nextendedKeyUsage = serverAuth\n",
    )
    .expect("server.ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
}
