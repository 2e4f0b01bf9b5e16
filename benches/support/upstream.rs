//! Where issue 14's rig delivers: Debian's nginx (`nginx.rs`), or the built-in HTTPS
//! receiver running in the benchmark process (counting requests only), behind one face.

use std::path::PathBuf;
use std::time::Duration;

use edgehook::demo::pki;
use edgehook::demo::receiver::Receiver;

use super::nginx::{Counts, Nginx};

pub enum Upstream {
    Nginx(Nginx),
    /// The receiver and the directory holding its CA certificate.
    Builtin(Receiver, tempfile::TempDir),
}

impl Upstream {
    pub fn nginx() -> Upstream {
        Upstream::Nginx(Nginx::start())
    }

    /// The built-in receiver on `rt`, keeping no request (a count only).
    pub fn builtin(rt: &tokio::runtime::Runtime) -> Upstream {
        let pki = pki::generate().expect("pki");
        let receiver = rt.block_on(Receiver::start(&pki)).expect("receiver");
        receiver.count_only(true);
        let dir = tempfile::tempdir().expect("temp dir");
        pki.write_ca(dir.path()).expect("ca");
        Upstream::Builtin(receiver, dir)
    }

    pub fn url(&self, path: &str) -> String {
        match self {
            Upstream::Nginx(n) => n.url(path),
            Upstream::Builtin(r, _) => r.url(path),
        }
    }

    pub fn ca_file(&self) -> PathBuf {
        match self {
            Upstream::Nginx(n) => n.ca_file(),
            Upstream::Builtin(_, dir) => dir.path().join("ca.pem"),
        }
    }

    /// Wait for `n` requests; returns what the receiver counted.
    pub fn wait_for(&self, rt: &tokio::runtime::Runtime, n: u64, timeout: Duration) -> Counts {
        match self {
            Upstream::Nginx(nginx) => nginx.wait_for(n, timeout),
            Upstream::Builtin(r, _) => {
                rt.block_on(r.wait_for(n as usize, timeout))
                    .expect("deliveries");
                Counts {
                    requests: n,
                    connections: r.connections() as u64,
                }
            }
        }
    }
}
