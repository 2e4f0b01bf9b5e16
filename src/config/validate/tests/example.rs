//! `config.example.toml`: as shipped it is the defaults, and uncommented it documents every
//! key with its default.

use super::*;

const EXAMPLE: &str = include_str!("../../../../config.example.toml");

#[test]
fn example_config_as_shipped_is_the_defaults() {
    let shipped = ok(EXAMPLE);
    let defaults = ok("");
    assert_eq!(
        format!("{:?}", shipped.daemon),
        format!("{:?}", defaults.daemon)
    );
    assert_eq!(
        format!("{:?}", shipped.ingest),
        format!("{:?}", defaults.ingest)
    );
    assert_eq!(
        format!("{:?}", shipped.queue),
        format!("{:?}", defaults.queue)
    );
    assert!(shipped.endpoints.is_empty());
}

/// Remove the `#` from every commented-out key and table header (`#key = …`, `#[…]`),
/// leaving the `# explanation` lines alone.
fn uncomment(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c == '[' || c.is_ascii_lowercase()) => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn example_config_documents_every_key_with_its_default() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    let key = dir.path().join("keys/spark");
    std::fs::write(&key, "api-key\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let transfer = dir.path().join("transfer.key");
    std::fs::write(&transfer, "q83vASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4k=\n").unwrap();
    std::fs::set_permissions(&transfer, std::fs::Permissions::from_mode(0o600)).unwrap();
    let env = |name: &str| (name == "SPARK_WEBHOOK_SECRET").then(|| OsString::from(WHSEC));
    let text = uncomment(EXAMPLE);
    let (c, _) = parse_with(&text, &dir.path().join("edgehook.toml"), &env)
        .unwrap_or_else(|err| panic!("uncommented example:\n{err}"));

    let defaults = ok(&endpoint(""));
    assert_eq!(format!("{:?}", c.daemon), format!("{:?}", defaults.daemon));
    assert_eq!(format!("{:?}", c.ingest), format!("{:?}", defaults.ingest));
    assert_eq!(format!("{:?}", c.queue), format!("{:?}", defaults.queue));
    assert!(c.transfer.key.is_some(), "[transfer] key is documented");
    let (e, d) = (&c.endpoints[0], &defaults.endpoints[0]);
    assert_eq!(&*e.name, "spark");
    assert_eq!(e.url, "https://spark.example.com/hooks");
    let fields = |e: &EndpointConfig| {
        format!(
            "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
            e.filter,
            e.body,
            e.headers,
            e.ordering,
            e.order_key,
            e.concurrency,
            e.adaptive,
            e.connect_timeout,
            e.timeout,
            e.rate_limit,
            e.permanent_status,
            e.max_attempts,
            e.compress,
            e.proxy,
            e.allow_plain_http,
            e.retry,
            e.tls
        )
    };
    assert_eq!(fields(e), fields(d));
    let Some(AuthConfig::ApiKey {
        placement: ApiKeyPlacement::Header(h),
        value,
    }) = &e.auth
    else {
        panic!("{:?}", e.auth)
    };
    assert_eq!((h.as_str(), value.expose()), ("x-api-key", "api-key"));
    let s = e.signing.as_ref().unwrap();
    assert_eq!(s.scheme, SigningScheme::StandardWebhooks);
    assert_eq!(s.header, "webhook-signature");
    assert_eq!(
        s.secrets[0].source(),
        &SecretSource::Env("SPARK_WEBHOOK_SECRET".into())
    );
    assert_eq!(c.watched_files, [transfer, key]);

    // Every SPEC §11 key appears in the example.
    for key in [
        "state_dir",
        "admin_socket",
        "admin_group",
        "shutdown_timeout",
        "log_format",
        "metrics_listen",
        "socket",
        "lines_socket",
        "socket_mode",
        "socket_group",
        "allowed_uids",
        "allowed_gids",
        "max_event_bytes",
        "max_batch_bytes",
        "max_connections",
        "durability",
        "max_bytes",
        "when_full",
        "max_age",
        "dedupe_window",
        "keep_delivered",
        "name",
        "url",
        "events",
        "match",
        "body",
        "headers",
        "ordering",
        "order_key",
        "concurrency",
        "timeout",
        "rate_limit",
        "permanent_status",
        "max_attempts",
        "compress",
        "proxy",
        "allow_plain_http",
        "initial",
        "multiplier",
        "max",
        "jitter",
        "type",
        "header",
        "in",
        "param",
        "value",
        "scheme",
        "secret",
        "prefix",
        "roots",
        "ca_file",
        "client_cert",
        "client_key",
        "min_version",
        "server_name",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{key} = "))),
            "{key} is not documented in config.example.toml"
        );
    }
}
