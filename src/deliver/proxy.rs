//! HTTPS through an HTTP proxy, with hyper-util's proxy support: its [`Matcher`] decides
//! whether a destination goes through the proxy, and its [`Tunnel`] asks the proxy to
//! `CONNECT host:port` and hands the tunnel to the TLS layer, so TLS (and certificate
//! verification) still runs end to end with the endpoint.
//!
//! The proxy is `endpoint.proxy`, else `HTTPS_PROXY` / `https_proxy` from the
//! environment (for `http://` endpoints too), minus hosts matched by `NO_PROXY` /
//! `no_proxy` (curl's rules: comma-separated names, each matching the domain and its
//! subdomains with or without a leading dot; IP addresses and CIDR ranges; `*` for all).
//! Credentials in the proxy URL (`http://user:pass@proxy:3128`, percent-decoded) are sent
//! as `Proxy-Authorization: Basic`. What stays here: picking the route per connection,
//! and errors that name the proxy (never its credentials) and the target.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::Uri;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The proxy rules for an endpoint: its own proxy (for every host), else the
/// environment's; `None` when neither is set.
pub fn for_endpoint(configured: Option<&Uri>) -> Option<Matcher> {
    let builder = match configured {
        Some(uri) => Matcher::builder().all(uri.to_string()),
        None => {
            let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
            let uri = env("HTTPS_PROXY").or_else(|| env("https_proxy"))?;
            let no_proxy = env("NO_PROXY").or_else(|| env("no_proxy"));
            Matcher::builder().all(uri).no(no_proxy.unwrap_or_default())
        }
    };
    Some(builder.build())
}

/// TCP connector that tunnels through the proxy when the rules say so.
#[derive(Clone)]
pub struct Connector {
    http: HttpConnector,
    proxy: Option<Arc<Matcher>>,
}

impl Connector {
    pub fn new(http: HttpConnector, proxy: Option<Matcher>) -> Connector {
        Connector {
            http,
            proxy: proxy.map(Arc::new),
        }
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
        let intercept = self.proxy.as_ref().and_then(|m| m.intercept(&dst));
        let mut http = self.http.clone();
        Box::pin(async move {
            let Some(proxy) = intercept else {
                return http.call(dst).await.map_err(Into::into);
            };
            let mut tunnel = Tunnel::new(proxy.uri().clone(), http);
            if let Some(auth) = proxy.basic_auth() {
                tunnel = tunnel.with_auth(auth.clone());
            }
            let target = with_port(&dst)?;
            tunnel
                .call(target.clone())
                .await
                .map_err(|e| explain(&e, proxy.uri(), &target).into())
        })
    }
}

/// `dst` with its port spelled out: the tunnel would take 443 for an `http://` URL
/// without one.
fn with_port(dst: &Uri) -> Result<Uri, BoxError> {
    let host = dst.host().ok_or("URL has no host")?;
    let port = dst
        .port_u16()
        .unwrap_or(if dst.scheme_str() == Some("http") {
            80
        } else {
            443
        });
    Ok(Uri::builder()
        .scheme(dst.scheme_str().unwrap_or("https"))
        .authority(format!("{host}:{port}"))
        .path_and_query("/")
        .build()?)
}

/// A tunnel failure as a message naming the proxy (the matcher's URI carries no
/// credentials) and the target, with the cause. hyper-util does not export its error
/// type, so its text is all there is; it does not say which status a refusal had.
fn explain(err: &dyn std::error::Error, proxy: &Uri, target: &Uri) -> String {
    let proxy = format!(
        "{}://{}",
        proxy.scheme_str().unwrap_or("http"),
        proxy.authority().map_or("", |a| a.as_str())
    );
    let target = target.authority().map_or("", |a| a.as_str());
    let cause = err.source().map(|s| format!(": {s}")).unwrap_or_default();
    format!("proxy {proxy}, CONNECT {target}: {err}{cause}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxied(m: &Matcher, url: &str) -> Option<String> {
        m.intercept(&url.parse().unwrap())
            .map(|i| i.uri().to_string())
    }

    #[test]
    fn configured_proxy_takes_every_host_and_decodes_credentials() {
        let m = for_endpoint(Some(&"http://bob:p%40ss@proxy:3128".parse().unwrap())).unwrap();
        let i = m
            .intercept(&"https://h.example/x".parse().unwrap())
            .unwrap();
        assert_eq!(i.uri().to_string(), "http://proxy:3128/", "no credentials");
        let expected = format!(
            "Basic {}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "bob:p@ss")
        );
        assert_eq!(i.basic_auth().unwrap(), expected.as_str());
        assert!(proxied(&m, "http://plain.example/").is_some());
    }

    #[test]
    fn no_proxy_matches_domains_and_their_subdomains() {
        let m = Matcher::builder()
            .all("proxy:3128")
            .no("example.com, .corp.example, 10.0.0.1, 192.168.0.0/16")
            .build();
        for bypass in [
            "https://example.com/",
            "https://api.example.com/",
            "https://x.corp.example/",
            "https://10.0.0.1/",
            "https://192.168.4.2:8443/",
        ] {
            assert_eq!(proxied(&m, bypass), None, "{bypass}");
        }
        for via in ["https://notexample.com/", "https://example.org/"] {
            assert_eq!(
                proxied(&m, via).as_deref(),
                Some("http://proxy:3128/"),
                "{via}"
            );
        }
        let all = Matcher::builder().all("proxy:3128").no("*").build();
        assert_eq!(proxied(&all, "https://anything.example/"), None);
    }

    #[test]
    fn tunnel_target_has_an_explicit_port() {
        let t = |u: &str| with_port(&u.parse().unwrap()).unwrap().to_string();
        assert_eq!(t("https://h.example/x"), "https://h.example:443/");
        assert_eq!(t("http://h.example/x"), "http://h.example:80/");
        assert_eq!(t("https://h.example:8443/x"), "https://h.example:8443/");
    }
}
