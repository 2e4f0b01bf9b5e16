//! HTTPS through an HTTP proxy: a connector that opens the TCP connection to the proxy
//! and asks it to `CONNECT host:port`, then hands the tunnel to the TLS layer, so TLS
//! (and certificate verification) still runs end to end with the endpoint.
//!
//! The proxy is `endpoint.proxy`, else `HTTPS_PROXY` / `https_proxy` from the
//! environment, minus hosts matched by `NO_PROXY` / `no_proxy` (comma-separated names;
//! `example.com` and `.example.com` match the domain and its subdomains; `*` matches all).
//! Credentials in the proxy URL (`http://user:pass@proxy:3128`) are sent as
//! `Proxy-Authorization: Basic`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Largest proxy response head we read before giving up.
const MAX_CONNECT_RESPONSE: usize = 8 * 1024;

/// Where and how to reach the proxy.
#[derive(Clone, Debug)]
pub struct Proxy {
    uri: Uri,
    authorization: Option<String>,
    no_proxy: Vec<String>,
}

impl Proxy {
    /// The proxy for an endpoint: its own setting, else the environment's.
    pub fn for_endpoint(configured: Option<&Uri>) -> Option<Proxy> {
        match configured {
            Some(uri) => Some(Proxy::new(uri.clone(), Vec::new())),
            None => {
                let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
                let uri = env("HTTPS_PROXY").or_else(|| env("https_proxy"))?;
                let uri = if uri.contains("://") {
                    uri
                } else {
                    format!("http://{uri}")
                };
                let no_proxy = env("NO_PROXY")
                    .or_else(|| env("no_proxy"))
                    .unwrap_or_default();
                let no_proxy = no_proxy
                    .split(',')
                    .map(|s| s.trim().trim_start_matches('.').to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect();
                Some(Proxy::new(uri.parse().ok()?, no_proxy))
            }
        }
    }

    fn new(uri: Uri, no_proxy: Vec<String>) -> Proxy {
        let authorization = uri
            .authority()
            .and_then(|a| a.as_str().rsplit_once('@'))
            .map(|(userinfo, _)| format!("Basic {}", B64.encode(percent_decode(userinfo))));
        Proxy {
            uri,
            authorization,
            no_proxy,
        }
    }

    /// Whether `host` should bypass the proxy (`NO_PROXY`).
    fn bypass(&self, host: &str) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        self.no_proxy
            .iter()
            .any(|entry| entry == "*" || host == *entry || host.ends_with(&format!(".{entry}")))
    }
}

/// TCP connector that tunnels through a [`Proxy`] when one applies.
#[derive(Clone)]
pub struct Connector {
    http: HttpConnector,
    proxy: Option<Proxy>,
}

impl Connector {
    pub fn new(http: HttpConnector, proxy: Option<Proxy>) -> Connector {
        Connector { http, proxy }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let proxy = self
            .proxy
            .clone()
            .filter(|p| !p.bypass(dst.host().unwrap_or("")));
        let mut http = self.http.clone();
        Box::pin(async move {
            let Some(proxy) = proxy else {
                return http.call(dst).await.map_err(Into::into);
            };
            let stream = http
                .call(proxy.uri.clone())
                .await
                .map_err(|e| format!("proxy {}: {e}", shown(&proxy.uri)))?;
            let mut tcp = stream.into_inner();
            let target = target(&dst)?;
            let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
            if let Some(auth) = &proxy.authorization {
                head.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
            }
            head.push_str("\r\n");
            tcp.write_all(head.as_bytes()).await?;
            let status = read_connect_response(&mut tcp).await?;
            if status != 200 {
                return Err(format!(
                    "proxy {} refused CONNECT {target}: HTTP {status}",
                    shown(&proxy.uri)
                )
                .into());
            }
            Ok(TokioIo::new(tcp))
        })
    }
}

/// `host:port` of the destination (default port from the scheme).
fn target(dst: &Uri) -> Result<String, BoxError> {
    let host = dst.host().ok_or("URL has no host")?;
    let port = dst
        .port_u16()
        .unwrap_or(if dst.scheme_str() == Some("http") {
            80
        } else {
            443
        });
    Ok(format!("{host}:{port}"))
}

/// Read the proxy's response head; returns its status code.
async fn read_connect_response(tcp: &mut TcpStream) -> Result<u16, BoxError> {
    let mut buf = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    // Byte by byte: nothing after the head may be consumed (it belongs to TLS).
    while !buf.ends_with(b"\r\n\r\n") {
        if buf.len() > MAX_CONNECT_RESPONSE {
            return Err("proxy response head too large".into());
        }
        if tcp.read(&mut byte).await? == 0 {
            return Err("proxy closed the connection during CONNECT".into());
        }
        buf.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&buf);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            format!(
                "proxy sent a malformed response: {:?}",
                line.lines().next().unwrap_or("")
            )
            .into()
        })
}

/// The proxy URL without credentials, for messages.
fn shown(uri: &Uri) -> String {
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
    let host = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    format!("{}://{host}", uri.scheme_str().unwrap_or("http"))
}

fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).and_then(|b| hex(*b)),
            bytes.get(i + 2).and_then(|b| hex(*b)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_no_proxy() {
        let p = Proxy::new(
            "http://bob:p%40ss@proxy:3128".parse().unwrap(),
            vec!["example.com".into(), "10.0.0.1".into()],
        );
        assert_eq!(
            p.authorization.as_deref(),
            Some(format!("Basic {}", B64.encode("bob:p@ss")).as_str())
        );
        assert!(p.bypass("example.com") && p.bypass("api.example.com") && p.bypass("10.0.0.1"));
        assert!(!p.bypass("notexample.com") && !p.bypass("example.org"));
        assert_eq!(shown(&p.uri), "http://proxy:3128");
        assert_eq!(
            target(&"https://h.example/x".parse().unwrap()).unwrap(),
            "h.example:443"
        );
    }
}
