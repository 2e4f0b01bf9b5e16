//! An endpoint's `headers`.

use super::*;

#[test]
fn headers() {
    let e = ok_endpoint("headers = { \"X-Tenant\" = \"acme\", user-agent = \"mine/1\" }");
    assert_eq!(e.headers[0], ("x-tenant".to_owned(), "acme".to_owned()));
    assert_has(
        &endpoint_error("headers = { \"bad header\" = \"x\" }"),
        &[":4:13:", "\"bad header\" is not a valid HTTP header name"],
    );
    let err = endpoint_error("headers = { x-a = \"line\\nbreak\" }");
    assert_has(&err, &["headers.x-a: not a valid HTTP header value"]);
    assert!(!err.contains("break"), "value not echoed: {err}");
    for reserved in ["Content-Type", "webhook-id", "Edgehook-Attempt", "host"] {
        assert_has(
            &endpoint_error(&format!("headers = {{ {reserved} = \"x\" }}")),
            &["is set by edgehook on every delivery"],
        );
    }
    assert_has(
        &endpoint_error("headers = { x-a = \"1\", X-A = \"2\" }"),
        &["repeats", "ignore case"],
    );
    assert_has(
        &endpoint_error(
            "headers = { Authorization = \"x\" }\nauth = { type = \"bearer\", token = \"t\" }",
        ),
        &["already set by [endpoint.auth]"],
    );
    assert_has(
        &endpoint_error(
            "headers = { x-api-key = \"x\" }\nauth = { type = \"api-key\", value = \"t\" }",
        ),
        &["already set by [endpoint.auth]"],
    );
    assert!(ok_endpoint("headers = { authorization = \"x\" }")
        .auth
        .is_none());
    assert_has(
        &endpoint_error("headers = { x-hub-signature-256 = \"x\" }\nsigning = { scheme = \"hmac-sha256\", secret = \"s\" }"),
        &["already set by [endpoint.signing]"],
    );
}
