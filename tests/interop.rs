//! Interop (SPEC §4 "must verify with the reference libraries"): a live delivery's
//! Standard Webhooks signature is checked by the reference Python library,
//! `standardwebhooks` from PyPI, exactly as a receiver would call it.
//!
//! Needs `python3` with the package (`python3 -m pip install standardwebhooks`); without
//! it the test is skipped with a message, or fails under CI (`util::tools`).

use std::path::Path;
use std::process::{Command, Output};

use crate::util::delivery::{Endpoint, Upstream};
use crate::util::{tools, Builder};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Verify `argv[2]` (body file) with headers `argv[3]` (JSON object) and secret `argv[1]`;
/// exits non-zero with `WebhookVerificationError` when the signature does not match.
const VERIFY: &str = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
body = open(sys.argv[2], "rb").read()
headers = json.load(open(sys.argv[3]))
Webhook(sys.argv[1]).verify(body, headers)
print("verified")
"#;

fn verify(dir: &Path, body: &[u8], headers: &serde_json::Value) -> Output {
    let body_file = dir.join("body.json");
    let headers_file = dir.join("headers.json");
    std::fs::write(&body_file, body).unwrap();
    std::fs::write(&headers_file, headers.to_string()).unwrap();
    Command::new("python3")
        .arg("-c")
        .arg(VERIFY)
        .arg(SECRET)
        .arg(&body_file)
        .arg(&headers_file)
        .output()
        .expect("running python3")
}

#[test]
fn reference_library_verifies_a_live_delivery() {
    if !tools::python_module("standardwebhooks", "the Standard Webhooks interop test") {
        return;
    }
    let up = Upstream::start();
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let d = b
        .toml(
            &Endpoint::new("signed", &up.url("/hook"), &ca)
                .table(&format!(
                    "[endpoint.signing]\nscheme = \"standard-webhooks\"\nsecret = {SECRET:?}"
                ))
                .toml(),
        )
        .start();

    // Non-ASCII and odd spacing: the signature covers the exact bytes on the wire.
    let r = d.post_event(
        r#"{"type":"Test.interop","id":"interop-1","data":{"name" : "Zoë",  "n":1.50}}"#,
    );
    assert_eq!(r.status, 202, "{r:?}");
    let got = up.wait_for(1);
    let req = &got[0];
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), v.clone().into()))
        .collect();
    let headers = serde_json::Value::Object(headers);

    let out = verify(d.dir(), &req.body, &headers);
    assert!(
        out.status.success(),
        "standardwebhooks rejected edgehook's signature on {:?} with headers {headers}:\n{}",
        String::from_utf8_lossy(&req.body),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "verified");

    let tampered = String::from_utf8_lossy(&req.body).replace("1.50", "1.5");
    assert_ne!(tampered.as_bytes(), &req.body[..]);
    let out = verify(d.dir(), tampered.as_bytes(), &headers);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("WebhookVerificationError"),
        "a tampered body must fail verification: {stderr}"
    );
}
