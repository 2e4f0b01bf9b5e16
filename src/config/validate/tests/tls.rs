//! `[endpoint.tls]`, against certificates and keys generated per test.

use super::*;

struct Pki {
    dir: tempfile::TempDir,
    key_pem: String,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = rcgen::generate_simple_self_signed(vec!["ca.local".to_owned()]).unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.cert.pem()).unwrap();
    let client = rcgen::generate_simple_self_signed(vec!["client.local".to_owned()]).unwrap();
    std::fs::write(dir.path().join("client.pem"), client.cert.pem()).unwrap();
    let key_pem = client.signing_key.serialize_pem();
    let key = dir.path().join("client.key");
    std::fs::write(&key, &key_pem).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(dir.path().join("empty.pem"), "no certificates here\n").unwrap();
    Pki { dir, key_pem }
}

impl Pki {
    fn parse(&self, tls: &str) -> Result<Config, ConfigError> {
        let text = endpoint(&format!("[endpoint.tls]\n{tls}"));
        parse_with(&text, &self.dir.path().join("edgehook.toml"), &no_env).map(|(c, _)| c)
    }

    fn error(&self, tls: &str) -> String {
        let err = self.parse(tls).unwrap_err();
        assert_eq!(err.messages().len(), 1, "{err}");
        err.messages()[0].clone()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

#[test]
fn tls_ca_file_and_client_cert() {
    let pki = pki();
    let c = pki.parse("roots = \"ca_file\"\nca_file = \"ca.pem\"\nclient_cert = \"client.pem\"\nclient_key = \"client.key\"").unwrap();
    let tls = &c.endpoints[0].tls;
    assert_eq!(tls.roots, Roots::CaFile);
    assert_eq!(tls.ca_file, Some(pki.path("ca.pem")));
    assert_eq!(tls.client_cert, Some(pki.path("client.pem")));
    let key = tls.client_key.as_ref().unwrap();
    assert_eq!(key.expose().trim_end(), pki.key_pem.trim_end());
    assert_eq!(key.source(), &SecretSource::File(pki.path("client.key")));
    assert_eq!(
        c.watched_files,
        [
            pki.path("ca.pem"),
            pki.path("client.pem"),
            pki.path("client.key")
        ]
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    // ca_file alongside the system roots; an absolute path; client_key as file: and inline PEM.
    let ca = pki.path("ca.pem");
    let c = pki
        .parse(&format!(
            "ca_file = \"{}\"\nclient_cert = \"client.pem\"\nclient_key = \"file:client.key\"",
            ca.display()
        ))
        .unwrap();
    assert_eq!(c.endpoints[0].tls.roots, Roots::System);
    assert_eq!(c.endpoints[0].tls.ca_file, Some(ca));
    let c = pki
        .parse(&format!(
            "client_cert = \"client.pem\"\nclient_key = \"\"\"{}\"\"\"",
            pki.key_pem
        ))
        .unwrap();
    let key = c.endpoints[0].tls.client_key.as_ref().unwrap();
    assert_eq!(key.source(), &SecretSource::Literal);
    assert!(!format!("{c:?}").contains(pki.key_pem.lines().nth(1).unwrap()));
}

#[test]
fn tls_errors() {
    let pki = pki();
    assert_has(
        &pki.error("roots = \"ca_file\""),
        &[":5:9:", "tls.roots: \"ca_file\" needs tls.ca_file"],
    );
    assert_has(&pki.error("roots = \"none\""), &["\"system\", \"ca_file\""]);
    assert_has(
        &pki.error("ca_file = \"missing.pem\""),
        &["tls.ca_file: cannot read", "missing.pem", "No such file"],
    );
    assert_has(
        &pki.error("ca_file = \"empty.pem\""),
        &["tls.ca_file:", "empty.pem contains no PEM certificate"],
    );
    assert_has(
        &pki.error("client_cert = \"client.pem\""),
        &["tls.client_cert: set without tls.client_key"],
    );
    assert_has(
        &pki.error("client_key = \"client.key\""),
        &["tls.client_key: set without tls.client_cert"],
    );
    let other = rcgen::generate_simple_self_signed(vec!["other.local".to_owned()]).unwrap();
    std::fs::write(pki.path("other.key"), other.signing_key.serialize_pem()).unwrap();
    std::fs::set_permissions(
        pki.path("other.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    assert_has(
        &pki.error("client_cert = \"client.pem\"\nclient_key = \"other.key\""),
        &[
            ":6:",
            "tls.client_key: this private key does not belong to the certificate in",
            "client.pem",
        ],
    );
    let err = pki.error("client_cert = \"client.pem\"\nclient_key = \"ca.pem\"");
    assert_has(
        &err,
        &["tls.client_key: no PEM private key in file:", "ca.pem"],
    );
    assert!(!err.contains("BEGIN CERTIFICATE"));
    assert_has(
        &pki.error("client_cert = \"client.pem\"\nclient_key = \"env:NOPE\""),
        &["tls.client_key: env:NOPE: environment variable NOPE is not set"],
    );
    assert_has(&pki.error("min_version = \"1.1\""), &["\"1.2\", \"1.3\""]);
    assert_has(
        &pki.error("server_name = \"not a name\""),
        &["tls.server_name: \"not a name\" is not a DNS name or IP address"],
    );
    assert_eq!(
        pki.parse("server_name = \"10.0.0.1\"").unwrap().endpoints[0]
            .tls
            .server_name
            .as_deref(),
        Some("10.0.0.1")
    );
}
