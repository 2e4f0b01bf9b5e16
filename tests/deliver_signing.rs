//! Signature schemes and compression on live deliveries (SPEC §4, §5 "Compression"): every
//! signature is recomputed here with independent code — `ring` for HMAC-SHA1, HMAC-SHA256
//! and ed25519, the Python `standardwebhooks` reference library for rotation — never with
//! `edgehook::sign`, so a shared mistake cannot make both sides agree.
//!
//! The rotation test needs `python3` with `standardwebhooks` for its last check; without
//! it that check is skipped with a message, or fails under CI (`util::tools`).

use std::io::Read;
use std::process::Command;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use edgehook::demo::receiver::Recorded;
use ring::hmac;
use ring::signature::{Ed25519KeyPair, UnparsedPublicKey, ED25519};

use crate::util::delivery::{Endpoint, Upstream};
use crate::util::{event, run_cli, tools, Builder};

/// Event data with spacing a JSON re-encoder would change: signatures cover exact bytes.
const DATA: &str = r#"{"roomId" : "Y2lz",  "n":1.50}"#;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The request to `path` (exact `path_and_query`).
fn at<'a>(got: &'a [Recorded], path: &str) -> &'a Recorded {
    got.iter()
        .find(|r| r.path_and_query == path)
        .unwrap_or_else(|| panic!("no request to {path}: {got:#?}"))
}

fn header<'a>(r: &'a Recorded, name: &str) -> &'a str {
    r.header(name)
        .unwrap_or_else(|| panic!("no {name} header at {}: {r:?}", r.path_and_query))
}

/// `{webhook-id}.{webhook-timestamp}.{body}`: what Standard Webhooks signs.
fn signed_content(r: &Recorded, body: &[u8]) -> Vec<u8> {
    let mut content = format!(
        "{}.{}.",
        header(r, "webhook-id"),
        header(r, "webhook-timestamp")
    )
    .into_bytes();
    content.extend_from_slice(body);
    content
}

#[test]
fn hmac_sha1_and_hmac_sha256_signatures_recompute() {
    const WEBEX_SECRET: &str = "webex-shared-secret";
    const GITHUB_SECRET: &str = "github hook secret";
    const CUSTOM_SECRET: &str = "custom-secret-42";
    let up = Upstream::start();
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let signing =
        |scheme: &str, rest: &str| format!("[endpoint.signing]\nscheme = \"{scheme}\"\n{rest}");
    let d = b
        .toml(
            // Webex style: the flat data document, HMAC-SHA1 in x-spark-signature.
            &Endpoint::new("webex", &up.url("/webex"), &ca)
                .key("body = \"data\"")
                .table(&signing("hmac-sha1", &format!("secret = {WEBEX_SECRET:?}")))
                .toml(),
        )
        .toml(
            &Endpoint::new("github", &up.url("/github"), &ca)
                .table(&signing(
                    "hmac-sha256",
                    &format!("secret = {GITHUB_SECRET:?}"),
                ))
                .toml(),
        )
        .toml(
            &Endpoint::new("custom", &up.url("/custom"), &ca)
                .table(&signing(
                    "hmac-sha256",
                    &format!(
                        "secret = {CUSTOM_SECRET:?}\nheader = \"X-Signature\"\nprefix = \"v0=\""
                    ),
                ))
                .toml(),
        )
        .start();

    let r = d.post_event(&event("Test.hmac", "hmac-1", DATA));
    assert_eq!(r.status, 202, "{r:?}");
    let got = up.wait_for(3);

    let webex = at(&got, "/webex");
    assert_eq!(
        webex.body,
        DATA.as_bytes(),
        "body = \"data\" sends the data"
    );
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, WEBEX_SECRET.as_bytes());
    let expected = hex(hmac::sign(&key, &webex.body).as_ref());
    assert_eq!(header(webex, "x-spark-signature"), expected);
    assert_eq!(expected.len(), 40, "SHA-1 is 20 bytes");

    let github = at(&got, "/github");
    assert!(github.body.starts_with(b"{\"type\":\"Test.hmac\""));
    let key = hmac::Key::new(hmac::HMAC_SHA256, GITHUB_SECRET.as_bytes());
    let expected = format!("sha256={}", hex(hmac::sign(&key, &github.body).as_ref()));
    assert_eq!(header(github, "x-hub-signature-256"), expected);

    let custom = at(&got, "/custom");
    let key = hmac::Key::new(hmac::HMAC_SHA256, CUSTOM_SECRET.as_bytes());
    let expected = format!("v0={}", hex(hmac::sign(&key, &custom.body).as_ref()));
    assert_eq!(header(custom, "x-signature"), expected);
    assert_eq!(
        custom.header("x-hub-signature-256"),
        None,
        "the custom header replaces the default one"
    );
    for r in &got {
        assert_eq!(r.header("webhook-signature"), None, "{r:?}");
    }
}

/// Verify with `standardwebhooks` once per secret in `argv[3:]`; print `ok` or `fail` each.
const VERIFY_EACH: &str = r#"
import json, sys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
body = open(sys.argv[1], "rb").read()
headers = json.load(open(sys.argv[2]))
for secret in sys.argv[3:]:
    try:
        Webhook(secret).verify(body, headers)
        print("ok")
    except WebhookVerificationError:
        print("fail")
"#;

#[test]
fn rotation_signs_with_each_secret_and_the_reference_library_accepts_either() {
    let old = format!("whsec_{}", B64.encode("the old key of the rotation test"));
    let new = format!("whsec_{}", B64.encode("the NEW key of the rotation test"));
    let unrelated = format!("whsec_{}", B64.encode("a key edgehook was never given.."));
    let up = Upstream::start();
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let d = b
        .toml(
            &Endpoint::new("rotating", &up.url("/rotating"), &ca)
                .table(&format!(
                    "[endpoint.signing]\nscheme = \"standard-webhooks\"\nsecrets = [{old:?}, {new:?}]"
                ))
                .toml(),
        )
        .start();
    let r = d.post_event(&event("Test.rotation", "rot-1", DATA));
    assert_eq!(r.status, 202, "{r:?}");
    let req = &up.wait_for(1)[0];

    // Independently: one `v1,` entry per secret, in the configured order.
    let content = signed_content(req, &req.body);
    let entries: Vec<&str> = header(req, "webhook-signature").split(' ').collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    for (entry, secret) in entries.iter().zip([&old, &new]) {
        let raw = B64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
        let mac = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &raw), &content);
        assert_eq!(*entry, format!("v1,{}", B64.encode(mac.as_ref())));
    }

    if !tools::python_module(
        "standardwebhooks",
        "the rotation check with the reference library",
    ) {
        return;
    }
    let body_file = d.dir().join("body.json");
    let headers_file = d.dir().join("headers.json");
    std::fs::write(&body_file, &req.body).unwrap();
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), v.clone().into()))
        .collect();
    std::fs::write(
        &headers_file,
        serde_json::Value::Object(headers).to_string(),
    )
    .unwrap();
    let out = Command::new("python3")
        .arg("-c")
        .arg(VERIFY_EACH)
        .arg(&body_file)
        .arg(&headers_file)
        .args([&old, &new, &unrelated])
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        verdicts,
        ["ok", "ok", "fail"],
        "old secret, new secret, a secret edgehook never had"
    );
}

#[test]
fn ed25519_v1a_verifies_against_the_published_public_key() {
    let seed: [u8; 32] = rand::random();
    let secret = format!("whsk_{}", B64.encode(seed));
    let up = Upstream::start();
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let d = b
        .toml(
            &Endpoint::new("asym", &up.url("/asym"), &ca)
                .table(&format!(
                    "[endpoint.signing]\nscheme = \"standard-webhooks\"\nsecret = {secret:?}"
                ))
                .toml(),
        )
        .start();

    // The receiver's side: the whpk_ key check-config publishes for this endpoint.
    let config = d.config.to_str().unwrap().to_owned();
    let (code, stdout, stderr) = run_cli(&["check-config", "--config", &config], None);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let published = stdout
        .lines()
        .find_map(|l| l.strip_prefix("endpoint asym: receivers verify v1a signatures with "))
        .unwrap_or_else(|| panic!("no whpk_ line for endpoint asym in:\n{stdout}"));
    assert!(
        !stdout.contains(&secret) && !stdout.contains(&B64.encode(seed)),
        "the secret key leaked into check-config output:\n{stdout}"
    );
    let public = B64
        .decode(published.strip_prefix("whpk_").expect("whpk_ prefix"))
        .expect("base64 public key");
    let ours = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
    use ring::signature::KeyPair as _;
    assert_eq!(
        public,
        ours.public_key().as_ref(),
        "the published key is the seed's public key"
    );

    let r = d.post_event(&event("Test.v1a", "v1a-1", DATA));
    assert_eq!(r.status, 202, "{r:?}");
    let req = &up.wait_for(1)[0];
    let value = header(req, "webhook-signature");
    let signature = B64
        .decode(
            value
                .strip_prefix("v1a,")
                .unwrap_or_else(|| panic!("one v1a entry: {value}")),
        )
        .expect("base64 signature");
    let verifier = UnparsedPublicKey::new(&ED25519, &public);
    verifier
        .verify(&signed_content(req, &req.body), &signature)
        .expect("the v1a signature verifies with ring against the published whpk_ key");
    let mut tampered = req.body.to_vec();
    tampered.pop();
    assert!(verifier
        .verify(&signed_content(req, &tampered), &signature)
        .is_err());
}

#[test]
fn gzip_sends_compressed_bodies_signed_uncompressed() {
    const SECRET: &str = "gzip-secret";
    let up = Upstream::start();
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let d = b
        .toml(
            &Endpoint::new("zipped", &up.url("/zipped"), &ca)
                .key("compress = \"gzip\"")
                .table(&format!(
                    "[endpoint.signing]\nscheme = \"hmac-sha256\"\nsecret = {SECRET:?}"
                ))
                .toml(),
        )
        .toml(&Endpoint::new("plain", &up.url("/plain"), &ca).toml())
        .start();
    // Repetitive data, so compression visibly shrinks it.
    let data = format!("{{\"rows\":[{}1]}}", "1234567890, ".repeat(200));
    let r = d.post_event(&event("Test.gzip", "gzip-1", &data));
    assert_eq!(r.status, 202, "{r:?}");
    let got = up.wait_for(2);

    let plain = at(&got, "/plain");
    assert_eq!(plain.header("content-encoding"), None);
    let zipped = at(&got, "/zipped");
    assert_eq!(header(zipped, "content-encoding"), "gzip");
    let mut body = Vec::new();
    flate2::read::GzDecoder::new(&zipped.body[..])
        .read_to_end(&mut body)
        .expect("the body is gzip");
    assert_eq!(body, plain.body, "decompressed: the same envelope");
    assert_eq!(
        body,
        format!(
            r#"{{"type":"Test.gzip","timestamp":"{}","data":{data}}}"#,
            envelope_timestamp(&plain.body)
        )
        .as_bytes()
    );
    assert!(
        zipped.body.len() * 4 < body.len(),
        "compressed {} bytes, plain {}",
        zipped.body.len(),
        body.len()
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
    let expected = format!("sha256={}", hex(hmac::sign(&key, &body).as_ref()));
    assert_eq!(
        header(zipped, "x-hub-signature-256"),
        expected,
        "signed over the uncompressed body"
    );
}

/// The `timestamp` of an envelope.
fn envelope_timestamp(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).expect("the envelope is JSON");
    v["timestamp"].as_str().expect("a timestamp").to_owned()
}
