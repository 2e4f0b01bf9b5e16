//! The HTTPS client of one endpoint: hyper-util's pooled client over hyper-rustls, with
//! the endpoint's trust anchors, TLS versions, client certificate and server-name
//! override. HTTP/1.1 and h2 are offered by ALPN; connections are reused. The system's
//! trust anchors are read once per config load and shared by the endpoints that use them
//! ([`SystemRoots`]).

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tracing::debug;

use super::connect::Bounded;
use super::proxy::{self, Connector};
use crate::config::{EndpointConfig, Roots, TlsConfig, TlsVersion};

pub type HttpClient = Client<Bounded<HttpsConnector<Connector>>, Full<Bytes>>;

/// The system's trust anchors, read on first use and then shared: a hundred endpoints
/// neither parse `/etc/ssl/certs` a hundred times nor hold a hundred copies of it (about
/// 80 KiB each; BENCHMARKS.md, "Threads with 100 endpoints").
#[derive(Default)]
pub struct SystemRoots(Option<Arc<RootCertStore>>);

impl SystemRoots {
    fn get(&mut self) -> Arc<RootCertStore> {
        self.0
            .get_or_insert_with(|| {
                let mut roots = RootCertStore::empty();
                let found = rustls_native_certs::load_native_certs();
                for err in &found.errors {
                    debug!(error = %err, "Skipping an unreadable system CA certificate.");
                }
                let (added, _ignored) = roots.add_parsable_certificates(found.certs);
                debug!(added, "Loaded system trust anchors.");
                Arc::new(roots)
            })
            .clone()
    }
}

/// Build the client for `endpoint`. Errors name the endpoint and the file at fault.
pub fn build(endpoint: &EndpointConfig, system: &mut SystemRoots) -> anyhow::Result<HttpClient> {
    let plain = endpoint.url.scheme_str() == Some("http");
    let tls = tls_config(&endpoint.tls, plain, system)
        .with_context(|| format!("endpoint {:?}: TLS setup", endpoint.name))?;
    let builder = HttpsConnectorBuilder::new().with_tls_config(tls);
    let builder = if endpoint.allow_plain_http {
        builder.https_or_http()
    } else {
        builder.https_only()
    };
    let builder = match &endpoint.tls.server_name {
        Some(name) => {
            let name = ServerName::try_from(name.clone()).map_err(|e| {
                anyhow!(
                    "endpoint {:?}: tls.server_name {name:?}: {e}",
                    endpoint.name
                )
            })?;
            builder.with_server_name_resolver(FixedServerNameResolver::new(name))
        }
        None => builder,
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    // No per-address TCP timeout: `Bounded` (connect.rs) cuts the whole connection attempt
    // at connect_timeout, with one error that names it.
    let proxy = proxy::for_endpoint(endpoint.proxy.as_ref());
    let connector = builder
        .enable_http1()
        .enable_http2()
        .wrap_connector(Connector::new(http, proxy));
    Ok(Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(endpoint.concurrency)
        .build(Bounded::new(connector, endpoint.connect_timeout)))
}

/// The rustls client config; `plain` (an `http://` endpoint) needs no trust anchors.
fn tls_config(
    tls: &TlsConfig,
    plain: bool,
    system: &mut SystemRoots,
) -> anyhow::Result<ClientConfig> {
    let roots = match (tls.roots, &tls.ca_file) {
        (Roots::System, None) => system.get(),
        (Roots::System, Some(path)) => Arc::new(with_ca_file((*system.get()).clone(), path)?),
        (Roots::CaFile, Some(path)) => Arc::new(with_ca_file(RootCertStore::empty(), path)?),
        (Roots::CaFile, None) => Arc::new(RootCertStore::empty()),
    };
    if roots.is_empty() && !plain {
        return Err(anyhow!(
            "no trust anchors: no system CA certificates were found (install ca-certificates) and no tls.ca_file is set"
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match tls.min_version {
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .context("TLS protocol versions")?
        .with_root_certificates(roots);
    let config = match (&tls.client_cert, &tls.client_key) {
        (Some(cert_path), Some(key)) => {
            let certs = CertificateDer::pem_file_iter(cert_path)
                .with_context(|| format!("cannot read tls.client_cert {}", cert_path.display()))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("tls.client_cert {} is not PEM", cert_path.display()))?;
            let key = PrivateKeyDer::from_pem_slice(key.expose().as_bytes())
                .map_err(|e| anyhow!("tls.client_key ({key}) is not a PEM private key: {e}"))?;
            builder
                .with_client_auth_cert(certs, key)
                .context("tls.client_cert and tls.client_key do not match")?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(config)
}

/// `roots` plus the CA certificates of `tls.ca_file`.
fn with_ca_file(mut roots: RootCertStore, path: &Path) -> anyhow::Result<RootCertStore> {
    for cert in CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read tls.ca_file {}", path.display()))?
    {
        let cert =
            cert.with_context(|| format!("tls.ca_file {} has a bad certificate", path.display()))?;
        roots.add(cert).with_context(|| {
            format!(
                "tls.ca_file {} has an unusable CA certificate",
                path.display()
            )
        })?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Endpoints built from one config load share one copy of the system's anchors.
    #[test]
    fn system_roots_are_read_once_and_shared() {
        let mut system = SystemRoots::default();
        let (a, b) = (system.get(), system.get());
        assert!(Arc::ptr_eq(&a, &b));
    }
}
