//! A throwaway PKI minted on the fly: one CA, a `localhost`/`127.0.0.1` server certificate
//! and a client certificate (for mTLS), all signed by that CA.
//!
//! Nothing is read from or kept on disk unless a caller writes it out with the `write_*`
//! helpers (edgehook's config takes `ca_file`, `client_cert` and `client_key` as paths).

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// PEM-encoded certificates and keys of one generated PKI.
#[derive(Clone)]
pub struct Pki {
    /// The CA certificate: the only trust anchor the server and client certificates need.
    pub ca_pem: String,
    /// Server certificate for `localhost` and `127.0.0.1`.
    pub server_cert_pem: String,
    /// PKCS#8 key of the server certificate.
    pub server_key_pem: String,
    /// Client certificate (`extendedKeyUsage = clientAuth`) for mTLS.
    pub client_cert_pem: String,
    /// PKCS#8 key of the client certificate.
    pub client_key_pem: String,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("keys", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Generate a fresh CA, server and client certificate (ECDSA P-256, rcgen's default).
pub fn generate() -> anyhow::Result<Pki> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "edgehook demo CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().context("cannot generate the demo CA key")?;
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .context("cannot self-sign the demo CA")?;
    let ca = Issuer::new(ca_params, ca_key);

    let (server_cert_pem, server_key_pem) = leaf(
        &ca,
        "localhost",
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    )
    .context("cannot issue the demo server certificate")?;
    let (client_cert_pem, client_key_pem) = leaf(
        &ca,
        "edgehook demo client",
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
    )
    .context("cannot issue the demo client certificate")?;

    Ok(Pki {
        ca_pem: ca_cert.pem(),
        server_cert_pem,
        server_key_pem,
        client_cert_pem,
        client_key_pem,
    })
}

/// An end-entity certificate signed by `ca`: `(cert PEM, key PEM)`.
fn leaf(
    ca: &Issuer<'_, KeyPair>,
    common_name: &str,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> anyhow::Result<(String, String)> {
    // `new` turns names that parse as IP addresses into IP SANs.
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, ca)?;
    Ok((cert.pem(), key.serialize_pem()))
}

impl Pki {
    /// Write the CA certificate to `dir/ca.pem` (for an endpoint's `tls.ca_file`).
    pub fn write_ca(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        write(dir, "ca.pem", &self.ca_pem)
    }

    /// Write the client certificate to `dir/client.pem` (for `tls.client_cert`).
    pub fn write_client_cert(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        write(dir, "client.pem", &self.client_cert_pem)
    }

    /// Write the client key to `dir/client.key` (for `tls.client_key`).
    pub fn write_client_key(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        write(dir, "client.key", &self.client_key_pem)
    }
}

/// Write `dir/name` with mode 0600 (created that way, so a key is never briefly readable by
/// others; certificates don't need it but don't mind either).
fn write(dir: &Path, name: &str, contents: &str) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_distinct_pem_material() {
        let pki = generate().unwrap();
        for pem in [&pki.ca_pem, &pki.server_cert_pem, &pki.client_cert_pem] {
            assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        }
        for pem in [&pki.server_key_pem, &pki.client_key_pem] {
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
        }
        assert_ne!(pki.server_cert_pem, pki.client_cert_pem);
        assert!(!format!("{pki:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn writes_files() {
        let dir = tempfile::tempdir().unwrap();
        let pki = generate().unwrap();
        let ca = pki.write_ca(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(ca).unwrap(), pki.ca_pem);
        pki.write_client_cert(dir.path()).unwrap();
        let key = pki.write_client_key(dir.path()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0);
    }
}
