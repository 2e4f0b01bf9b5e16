//! `[endpoint.signing]`.

use super::*;

#[test]
fn signing_schemes_and_defaults() {
    let s = ok_endpoint(&format!(
        "signing = {{ scheme = \"standard-webhooks\", secret = \"{WHSEC}\" }}"
    ))
    .signing
    .clone()
    .unwrap();
    assert_eq!(s.scheme, SigningScheme::StandardWebhooks);
    assert_eq!(
        (s.header.as_str(), s.prefix.as_str()),
        ("webhook-signature", "")
    );
    assert_eq!(s.secrets.len(), 1);
    assert_eq!(s.secrets[0].expose(), WHSEC);

    let s = ok_endpoint("signing = { scheme = \"hmac-sha256\", secret = \"s\" }")
        .signing
        .clone()
        .unwrap();
    assert_eq!(
        (s.header.as_str(), s.prefix.as_str()),
        ("x-hub-signature-256", "sha256=")
    );
    // "" is the SPEC's spelling of "the scheme's default".
    let s = ok_endpoint(
        "signing = { scheme = \"hmac-sha256\", secret = \"s\", header = \"\", prefix = \"\" }",
    )
    .signing
    .clone()
    .unwrap();
    assert_eq!(
        (s.header.as_str(), s.prefix.as_str()),
        ("x-hub-signature-256", "sha256=")
    );
    let s = ok_endpoint("signing = { scheme = \"hmac-sha1\", secret = \"s\" }")
        .signing
        .clone()
        .unwrap();
    assert_eq!(
        (s.header.as_str(), s.prefix.as_str()),
        ("x-spark-signature", "")
    );
    let s = ok_endpoint(
        "signing = { scheme = \"hmac-sha1\", secret = \"s\", header = \"X-Webex-Signature\" }",
    )
    .signing
    .clone()
    .unwrap();
    assert_eq!(s.header, "x-webex-signature");
    // Rotation.
    let s = ok_endpoint(&format!(
        "signing = {{ scheme = \"standard-webhooks\", secrets = [\"{WHSEC}\", \"whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"] }}"
    ))
    .signing
    .clone()
    .unwrap();
    assert_eq!(s.secrets.len(), 2);
    // Naming the one header standard-webhooks uses is fine.
    ok_endpoint(&format!(
        "signing = {{ scheme = \"standard-webhooks\", secret = \"{WHSEC}\", header = \"Webhook-Signature\" }}"
    ));
}

#[test]
fn signing_errors() {
    let sig = |body: &str| endpoint_error(&format!("[endpoint.signing]\n{body}"));
    assert_has(&sig("secret = \"s\""), &["signing.scheme: missing"]);
    assert_has(
        &sig("scheme = \"hmac-md5\"\nsecret = \"s\""),
        &["\"standard-webhooks\", \"hmac-sha256\", \"hmac-sha1\""],
    );
    assert_has(&sig("scheme = \"hmac-sha1\""), &["signing.secret: missing"]);
    assert_has(
        &sig("scheme = \"hmac-sha1\"\nsecret = \"a\"\nsecrets = [\"b\"]"),
        &[":7:11:", "either secret or secrets, not both"],
    );
    assert_has(
        &sig("scheme = \"hmac-sha1\"\nsecrets = []"),
        &["signing.secrets: is empty"],
    );
    assert_has(
        &sig("scheme = \"hmac-sha256\"\nsecrets = [\"a\", \"b\"]"),
        &["only standard-webhooks carries several signatures"],
    );
    let err = sig("scheme = \"standard-webhooks\"\nsecret = \"plainsecret\"");
    assert_has(
        &err,
        &[
            ":6:10:",
            "signing.secret: the secret from literal:",
            "whsec_",
        ],
    );
    assert!(!err.contains("plainsecret"), "{err}");
    let err = sig("scheme = \"standard-webhooks\"\nsecret = \"whsec_not*base64\"");
    assert_has(&err, &["not valid base64"]);
    assert!(!err.contains("not*base64"), "{err}");
    assert_has(
        &sig("scheme = \"standard-webhooks\"\nsecret = \"whsec_\""),
        &["nothing after the whsec_/whsk_ prefix"],
    );
    assert_has(
        &sig(&format!(
            "scheme = \"standard-webhooks\"\nsecrets = [\"{WHSEC}\", \"bad\"]"
        )),
        &["signing.secrets[1]:"],
    );
    assert_has(
        &sig(&format!(
            "scheme = \"standard-webhooks\"\nsecret = \"{WHSEC}\"\nheader = \"x-sig\""
        )),
        &["signing.header: standard-webhooks always uses webhook-signature"],
    );
    assert_has(
        &sig("scheme = \"hmac-sha1\"\nsecret = \"s\"\nprefix = \"sha1=\""),
        &["signing.prefix: only hmac-sha256 takes a prefix"],
    );
    assert_has(
        &sig("scheme = \"hmac-sha256\"\nsecret = \"s\"\nheader = \"bad header\""),
        &["signing.header: \"bad header\" is not a valid HTTP header name"],
    );
    assert_has(
        &sig("scheme = \"hmac-sha256\"\nsecret = \"\""),
        &["signing.secret: is empty"],
    );
}
