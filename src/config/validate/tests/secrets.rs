//! Secret references (`file:`, `env:`, `credential:`, literals): resolved, watched, warned
//! about, never shown.

use super::*;

#[test]
fn secret_references_resolve_and_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    let key = dir.path().join("keys/spark");
    std::fs::write(&key, "file-secret\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config_path = dir.path().join("edgehook.toml");
    let env = |name: &str| (name == "SPARK_SECRET").then(|| OsString::from("env-secret"));
    let text = endpoint(
        "auth = { type = \"api-key\", value = \"file:keys/spark\" }\nsigning = { scheme = \"hmac-sha256\", secret = \"env:SPARK_SECRET\" }",
    );
    let (c, literal) = parse_with(&text, &config_path, &env).unwrap();
    assert!(!literal);
    let e = &c.endpoints[0];
    let Some(AuthConfig::ApiKey { value, .. }) = &e.auth else {
        panic!()
    };
    assert_eq!(value.expose(), "file-secret");
    assert_eq!(value.source(), &SecretSource::File(key.clone()));
    assert_eq!(
        e.signing.as_ref().unwrap().secrets[0].expose(),
        "env-secret"
    );
    assert_eq!(c.watched_files, std::slice::from_ref(&key));
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert_has(
        &c.warnings[0],
        &[
            "endpoint a: auth.value: secret file",
            &key.display().to_string(),
            "0644",
        ],
    );

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (c, _) = parse_with(&text, &config_path, &env).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    let errs = parse_with(&text, &config_path, &no_env).unwrap_err();
    assert_eq!(errs.messages().len(), 1, "{errs}");
    assert_has(
        &errs.messages()[0],
        &[":5:46:", "endpoint a: signing.secret: env:SPARK_SECRET: environment variable SPARK_SECRET is not set"],
    );

    let text = endpoint(
        "auth = { type = \"bearer\", token = \"file:/nonexistent/token\" }\nsigning = { scheme = \"hmac-sha1\", secret = \"credential:spark\" }",
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_has(
        &errs[0],
        &["auth.token: cannot open secret file /nonexistent/token: No such file or directory"],
    );
    assert_has(
        &errs[1],
        &["signing.secret: credential:spark: $CREDENTIALS_DIRECTORY is not set"],
    );
}

#[test]
fn secrets_never_in_debug_output() {
    let c = ok(&endpoint(&format!(
        "auth = {{ type = \"basic\", username = \"bob\", password = \"pw-hunter2\" }}\n\
         signing = {{ scheme = \"standard-webhooks\", secrets = [\"{WHSEC}\"] }}"
    )));
    let debug = format!("{c:?} {c:#?}");
    assert!(!debug.contains("pw-hunter2"), "{debug}");
    assert!(
        !debug.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        "{debug}"
    );
    assert!(debug.contains("<redacted literal>"));
    let (_, literal) = parse_with(
        &endpoint("auth = { type = \"bearer\", token = \"t\" }"),
        Path::new(PATH),
        &no_env,
    )
    .unwrap();
    assert!(literal);
}

#[test]
fn wrongly_typed_secrets_are_not_quoted() {
    for (toml, found) in [
        ("auth = { type = \"bearer\", token = 987654321 }", "integer"),
        ("auth = { type = \"api-key\", value = 98765.4321 }", "float"),
        (
            "auth = { type = \"basic\", username = \"u\", password = [\"pw987654321\"] }",
            "array",
        ),
        (
            "signing = { scheme = \"hmac-sha1\", secrets = \"pw987654321\" }",
            "string",
        ),
        (
            "signing = { scheme = \"hmac-sha1\", secrets = [987654321] }",
            "integer",
        ),
        (
            "signing = { scheme = \"hmac-sha1\", secret = { a = \"pw987654321\" } }",
            "table",
        ),
        ("tls = { client_key = 987654321 }", "integer"),
    ] {
        let err = endpoint_error(toml);
        assert_has(&err, &[":4:", found, "value not shown"]);
        assert!(
            !err.contains("987654321") && !err.contains("98765.4321"),
            "{err}"
        );
    }
}
