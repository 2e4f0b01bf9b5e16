//! `[endpoint.auth]`.

use super::*;

#[test]
fn auth_api_key() {
    let e = ok_endpoint("[endpoint.auth]\ntype = \"api-key\"\nvalue = \"k1\"");
    let Some(AuthConfig::ApiKey {
        placement: ApiKeyPlacement::Header(h),
        value,
    }) = &e.auth
    else {
        panic!("{:?}", e.auth)
    };
    assert_eq!((h.as_str(), value.expose()), ("x-api-key", "k1"));

    let e = ok_endpoint("auth = { type = \"api-key\", header = \"X-Key\", value = \"k\" }");
    assert!(
        matches!(&e.auth, Some(AuthConfig::ApiKey { placement: ApiKeyPlacement::Header(h), .. }) if h == "x-key")
    );

    let e = ok_endpoint("auth = { type = \"api-key\", in = \"query\", value = \"k\" }");
    assert!(
        matches!(&e.auth, Some(AuthConfig::ApiKey { placement: ApiKeyPlacement::Query(p), .. }) if p == "api_key")
    );
    let e = ok_endpoint(
        "auth = { type = \"api-key\", in = \"query\", param = \"token\", value = \"k\" }",
    );
    assert!(
        matches!(&e.auth, Some(AuthConfig::ApiKey { placement: ApiKeyPlacement::Query(p), .. }) if p == "token")
    );
    // The SPEC's listing sets header, in and param together: accepted.
    ok_endpoint("[endpoint.auth]\ntype = \"api-key\"\nheader = \"x-api-key\"\nin = \"header\"\nparam = \"api_key\"\nvalue = \"k\"");

    assert_has(
        &endpoint_error("auth = { type = \"api-key\" }"),
        &["auth.value: missing, type \"api-key\" needs it"],
    );
    assert_has(
        &endpoint_error("auth = { type = \"api-key\", in = \"body\", value = \"k\" }"),
        &["auth.in: unknown value \"body\"; expected \"header\" or \"query\""],
    );
    assert_has(
        &endpoint_error(
            "auth = { type = \"api-key\", in = \"query\", param = \"a b\", value = \"k\" }",
        ),
        &["auth.param: \"a b\""],
    );
    assert_has(
        &endpoint_error("auth = { type = \"api-key\", header = \"x key\", value = \"k\" }"),
        &["auth.header: \"x key\" is not a valid HTTP header name"],
    );
    let err = endpoint_error("auth = { type = \"api-key\", value = \"line\\nsecret\" }");
    assert_has(
        &err,
        &["auth.value: the secret from literal is not a valid HTTP header value"],
    );
    assert!(!err.contains("secret\""), "{err}");
    // In the query string any bytes are fine (they are percent-encoded).
    ok_endpoint("auth = { type = \"api-key\", in = \"query\", value = \"a b&c\" }");
}

#[test]
fn auth_bearer_and_basic() {
    let e = ok_endpoint("auth = { type = \"bearer\", token = \"t\" }");
    assert!(matches!(&e.auth, Some(AuthConfig::Bearer { token }) if token.expose() == "t"));
    let e = ok_endpoint("auth = { type = \"basic\", username = \"bob\", password = \"pw\" }");
    assert!(
        matches!(&e.auth, Some(AuthConfig::Basic { username, password }) if username == "bob" && password.expose() == "pw")
    );

    assert_has(
        &endpoint_error("auth = { type = \"bearer\" }"),
        &["auth.token: missing, type \"bearer\" needs it"],
    );
    let errs = errors(&endpoint("auth = { type = \"basic\" }"));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_has(
        &endpoint_error("auth = { type = \"basic\", username = \"a:b\", password = \"p\" }"),
        &["auth.username: must be non-empty and contain no ':'"],
    );
    assert_has(
        &endpoint_error("auth = { type = \"bearer\", token = \"a\\u0001\" }"),
        &["auth.token: the secret from literal is not a valid HTTP header value"],
    );
}

#[test]
fn auth_fields_of_another_type_are_errors() {
    let errs = errors(&endpoint(
        "[endpoint.auth]\ntype = \"bearer\"\ntoken = \"t\"\nvalue = \"v\"\nusername = \"u\"",
    ));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_has(
        &errs[0],
        &[
            ":7:9:",
            "auth.value: not used by type \"bearer\" (it takes token)",
        ],
    );
    assert_has(
        &errs[1],
        &[":8:12:", "auth.username: not used by type \"bearer\""],
    );
    assert_has(
        &endpoint_error(
            "auth = { type = \"basic\", username = \"u\", password = \"p\", in = \"query\" }",
        ),
        &["auth.in: not used by type \"basic\" (it takes username and password)"],
    );
    assert_has(
        &endpoint_error("auth = { type = \"api-key\", value = \"v\", token = \"t\" }"),
        &["auth.token: not used by type \"api-key\""],
    );
    assert_has(
        &endpoint_error("auth = { value = \"v\" }"),
        &["auth.type: missing: one of \"api-key\", \"bearer\", \"basic\""],
    );
    assert_has(
        &endpoint_error("auth = { type = \"oauth\" }"),
        &["auth.type: unknown value \"oauth\""],
    );
}
