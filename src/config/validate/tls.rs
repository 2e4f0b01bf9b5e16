//! `[endpoint.tls]`: the trust roots, the CA and client certificate files (read, and
//! watched for reload), the client key (checked against its certificate), the minimum
//! version and the server name.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::{Ctx, S};
use crate::config::raw::{secret_text, RawTls};
use crate::config::secret::Bare;
use crate::config::{Roots, TlsConfig, TlsVersion};

impl Ctx<'_> {
    pub(super) fn tls(&mut self, raw: Option<&RawTls>, label: &str) -> TlsConfig {
        let default = RawTls::default();
        let raw = raw.unwrap_or(&default);
        let key = |key: &str| format!("{label}: tls.{key}");
        let roots = self.choice(
            &raw.roots,
            &key("roots"),
            &[("system", Roots::System), ("ca_file", Roots::CaFile)],
            Roots::System,
        );
        let ca_file = self.cert_file(&raw.ca_file, &key("ca_file"));
        if let (Roots::CaFile, None, Some(v)) = (roots, &ca_file, &raw.roots) {
            if raw.ca_file.as_ref().is_none_or(|f| f.get_ref().is_empty()) {
                self.error(
                    v.span(),
                    format!(
                        "{}: \"ca_file\" needs tls.ca_file = \"/path/to/ca.pem\"",
                        key("roots")
                    ),
                );
            }
        }
        let client_cert = self.cert_file(&raw.client_cert, &key("client_cert"));
        let key_reference = secret_text(&raw.client_key);
        let client_key = match &key_reference {
            Some(v) if !v.get_ref().is_empty() => {
                let secret = self.secret(v, &key("client_key"), Bare::PemPath);
                if let Some(secret) = &secret {
                    // The parser's error could quote key material: keep it out of the message.
                    if PrivateKeyDer::from_pem_slice(secret.expose().as_bytes()).is_err() {
                        self.error(
                            v.span(),
                            format!(
                                "{}: no PEM private key in {} (expected -----BEGIN PRIVATE KEY-----, \
                                 RSA PRIVATE KEY or EC PRIVATE KEY)",
                                key("client_key"),
                                secret.source()
                            ),
                        );
                    }
                }
                secret
            }
            _ => None,
        };
        let cert_set = raw.client_cert.as_ref().filter(|v| !v.get_ref().is_empty());
        let key_set = key_reference.as_ref().filter(|v| !v.get_ref().is_empty());
        match (cert_set, key_set) {
            (Some(v), None) => self.error(
                v.span(),
                format!(
                    "{}: set without tls.client_key: mTLS needs both",
                    key("client_cert")
                ),
            ),
            (None, Some(v)) => self.error(
                v.span(),
                format!(
                    "{}: set without tls.client_cert: mTLS needs both",
                    key("client_key")
                ),
            ),
            (Some(_), Some(v)) => {
                if let (Some(cert), Some(secret)) = (&client_cert, &client_key) {
                    if let Some(problem) = cert_key_mismatch(cert, secret.expose()) {
                        self.error(v.span(), format!("{}: {problem}", key("client_key")));
                    }
                }
            }
            _ => {}
        }
        let min_version = self.choice(
            &raw.min_version,
            &key("min_version"),
            &[("1.2", TlsVersion::V1_2), ("1.3", TlsVersion::V1_3)],
            TlsVersion::V1_2,
        );
        let server_name = match &raw.server_name {
            Some(v) if !v.get_ref().is_empty() => {
                if ServerName::try_from(v.get_ref().as_str()).is_err() {
                    self.error(
                        v.span(),
                        format!(
                            "{}: {:?} is not a DNS name or IP address",
                            key("server_name"),
                            v.get_ref()
                        ),
                    );
                }
                Some(v.get_ref().clone())
            }
            _ => None,
        };
        TlsConfig {
            roots,
            ca_file,
            client_cert,
            client_key,
            min_version,
            server_name,
        }
    }

    /// A PEM file that must hold at least one certificate; watched for reload.
    fn cert_file(&mut self, value: &S<String>, key: &str) -> Option<PathBuf> {
        let v = value.as_ref().filter(|v| !v.get_ref().is_empty())?;
        let path = self.base_dir.join(v.get_ref());
        let shown = path.display();
        let problem = match CertificateDer::pem_file_iter(&path) {
            Err(err) => Some(format!("cannot read {shown}: {}", pem_error(err))),
            Ok(iter) => {
                let mut count = 0;
                let mut problem = None;
                for item in iter {
                    match item {
                        Ok(_) => count += 1,
                        Err(err) => {
                            problem = Some(format!("{shown}: {}", pem_error(err)));
                            break;
                        }
                    }
                }
                match (problem, count) {
                    (Some(problem), _) => Some(problem),
                    (None, 0) => Some(format!(
                        "{shown} contains no PEM certificate (-----BEGIN CERTIFICATE-----)"
                    )),
                    (None, _) => None,
                }
            }
        };
        if let Some(problem) = problem {
            self.error(v.span(), format!("{key}: {problem}"));
        }
        self.watch(path.clone());
        Some(path)
    }
}

fn pem_error(err: pem::Error) -> String {
    match err {
        pem::Error::Io(err) => err.to_string(),
        other => other.to_string(),
    }
}

/// Whether the PEM key does not belong to the first certificate of `cert` (a mismatch
/// would otherwise surface only at the first delivery's TLS handshake).
fn cert_key_mismatch(cert: &Path, key_pem: &str) -> Option<String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .ok()?
        .filter_map(Result::ok)
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).ok()?;
    let provider = rustls::crypto::ring::default_provider();
    match rustls::sign::CertifiedKey::from_der(certs, key, &provider) {
        Ok(_) => None,
        Err(rustls::Error::InconsistentKeys(_)) => Some(format!(
            "this private key does not belong to the certificate in {}; use the key the certificate was issued for",
            cert.display()
        )),
        Err(err) => Some(format!("unusable client key: {err}")),
    }
}
