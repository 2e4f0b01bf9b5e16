//! The file as a whole: the defaults, every key set, syntax errors and unknown keys at their
//! positions, every problem reported at once, and `load` reading the file.

use super::*;

// ----- defaults and the file as a whole -----

#[test]
fn empty_file_gives_spec_defaults() {
    let c = ok("");
    assert_eq!(c.path, Path::new(PATH));
    assert_eq!(c.daemon.state_dir, Path::new("/var/lib/edgehook"));
    assert_eq!(c.queue_db(), Path::new("/var/lib/edgehook/queue.db"));
    assert_eq!(c.daemon.admin_socket, Path::new("/run/edgehook/admin.sock"));
    assert_eq!(c.daemon.admin_group, None);
    assert_eq!(c.daemon.shutdown_timeout, Duration::from_secs(10));
    assert_eq!(c.daemon.log_format, LogFormat::Auto);
    assert_eq!(c.daemon.metrics_listen, None);

    assert_eq!(c.ingest.socket, Path::new("/run/edgehook/edgehook.sock"));
    assert_eq!(c.ingest.lines_socket, None);
    assert_eq!(c.ingest.socket_mode, 0o660);
    assert_eq!(c.ingest.socket_group, None);
    assert!(c.ingest.allowed_uids.is_empty() && c.ingest.allowed_gids.is_empty());
    assert_eq!(c.ingest.max_event_bytes, 1 << 20);
    assert_eq!(c.ingest.max_batch_bytes, 16 << 20);
    assert_eq!(c.ingest.max_connections, 1024);

    assert_eq!(c.queue.durability, Durability::Full);
    assert_eq!(c.queue.max_bytes, 1 << 30);
    assert_eq!(c.queue.when_full, WhenFull::Reject);
    assert_eq!(c.queue.max_age, None);
    assert_eq!(c.queue.dedupe_window, Duration::from_secs(24 * 3600));
    assert_eq!(c.queue.keep_delivered, Duration::ZERO);

    assert!(c.endpoints.is_empty());
    assert!(c.watched_files.is_empty());
    assert_eq!(
        c.warnings,
        ["no [[endpoint]] configured: events will be answered with endpoints [] and not stored"]
    );
}

#[test]
fn endpoint_defaults() {
    let c = ok(&endpoint(""));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let e = &c.endpoints[0];
    assert_eq!(&*e.name, "a");
    assert_eq!(e.url, "https://a.example.com/hooks");
    assert_eq!(e.filter, Filter::firehose());
    assert_eq!(e.body, BodyMode::Envelope);
    assert!(e.headers.is_empty());
    assert_eq!(e.ordering, Ordering::None);
    assert_eq!(e.order_key, None);
    assert_eq!((e.concurrency, e.adaptive), (64, true));
    assert_eq!(e.connect_timeout, Duration::from_secs(5));
    assert_eq!(e.timeout, Duration::from_secs(10));
    assert_eq!(e.rate_limit, None);
    assert_eq!(e.permanent_status, [400, 413, 422]);
    assert_eq!(e.max_attempts, None);
    assert_eq!(e.compress, None);
    assert!(e.proxy.is_none());
    assert!(!e.allow_plain_http);
    assert_eq!(
        e.retry,
        RetryConfig {
            initial: Duration::from_secs(1),
            multiplier: 2.0,
            max: Duration::from_secs(600),
            jitter: 0.2,
        }
    );
    assert!(e.auth.is_none() && e.signing.is_none());
    assert_eq!(e.tls.roots, Roots::System);
    assert_eq!(e.tls.ca_file, None);
    assert_eq!(e.tls.client_cert, None);
    assert!(e.tls.client_key.is_none());
    assert_eq!(e.tls.min_version, TlsVersion::V1_2);
    assert_eq!(e.tls.server_name, None);
    assert!(c.endpoint("a").is_some() && c.endpoint("b").is_none());
}

#[test]
fn every_key_set() {
    let c = ok(r#"
        [daemon]
        state_dir = "/srv/edgehook"
        admin_socket = "/run/eh/admin.sock"
        admin_group = "wheel"
        shutdown_timeout = "1500ms"
        log_format = "json"
        metrics_listen = "127.0.0.1:9464"

        [ingest]
        socket = "/run/eh/events.sock"
        lines_socket = "/run/eh/lines.sock"
        socket_mode = "0600"
        socket_group = "apps"
        allowed_uids = [0, 1000]
        allowed_gids = [100]
        max_event_bytes = "64KiB"
        max_batch_bytes = 1048576
        max_connections = 10

        [queue]
        durability = "normal"
        max_bytes = "10MB"
        when_full = "drop_oldest"
        max_age = "30d"
        dedupe_window = "1h"
        keep_delivered = "7d"

        [[endpoint]]
        name = "spark_1-x"
        url = "https://spark.example.com:8443/hooks?x=1"
        events = ["UploadProduct", "Delete*", "flows/comments.*"]
        match = { "/data/roomId" = "Y2lz", "/data/n" = 3, "/data/ok" = true, "/data/f" = 1.5 }
        body = "data"
        headers = { "X-Tenant" = "acme", x-other = "1" }
        ordering = "none"
        order_key = "/roomId"
        concurrency = 2
        timeout = "30s"
        rate_limit = "600/m"
        permanent_status = [400, 401, 599]
        max_attempts = 5
        compress = "gzip"
        proxy = "http://proxy.local:3128"
        allow_plain_http = false
        [endpoint.retry]
        initial = "500ms"
        multiplier = 3
        max = "1h"
        jitter = 0.0
        [endpoint.auth]
        type = "bearer"
        token = "tok"
        [endpoint.signing]
        scheme = "hmac-sha256"
        secret = "s"
        header = "X-Sig"
        prefix = "v1="
        [endpoint.tls]
        min_version = "1.3"
        server_name = "internal.example.com"
    "#);
    assert_eq!(c.daemon.state_dir, Path::new("/srv/edgehook"));
    assert_eq!(c.daemon.admin_group.as_deref(), Some("wheel"));
    assert_eq!(c.daemon.shutdown_timeout, Duration::from_millis(1500));
    assert_eq!(c.daemon.log_format, LogFormat::Json);
    assert_eq!(
        c.daemon.metrics_listen,
        Some("127.0.0.1:9464".parse().unwrap())
    );
    assert_eq!(
        c.ingest.lines_socket.as_deref(),
        Some(Path::new("/run/eh/lines.sock"))
    );
    assert_eq!(c.ingest.socket_mode, 0o600);
    assert_eq!(c.ingest.socket_group.as_deref(), Some("apps"));
    assert_eq!(c.ingest.allowed_uids, [0, 1000]);
    assert_eq!(c.ingest.allowed_gids, [100]);
    assert!(c.ingest.allows(1000, 5) && c.ingest.allows(5, 100) && !c.ingest.allows(5, 5));
    assert_eq!(c.ingest.max_event_bytes, 65536);
    assert_eq!(c.ingest.max_batch_bytes, 1 << 20);
    assert_eq!(c.ingest.max_connections, 10);
    assert_eq!(c.queue.durability, Durability::Normal);
    assert_eq!(c.queue.max_bytes, 10_000_000);
    assert_eq!(c.queue.when_full, WhenFull::DropOldest);
    assert_eq!(c.queue.max_age, Some(Duration::from_secs(30 * 86_400)));
    assert_eq!(c.queue.dedupe_window, Duration::from_secs(3600));
    assert_eq!(c.queue.keep_delivered, Duration::from_secs(7 * 86_400));

    let e = &c.endpoints[0];
    assert_eq!(&*e.name, "spark_1-x");
    assert_eq!(e.url.port_u16(), Some(8443));
    assert_eq!(
        e.filter.globs(),
        ["UploadProduct", "Delete*", "flows/comments.*"]
    );
    assert!(e.filter.needs_document());
    let doc = serde_json::json!({"type": "UploadProduct", "data": {"roomId": "Y2lz", "n": 3, "ok": true, "f": 1.5}});
    assert!(e.filter.matches("UploadProduct", Some(&doc)));
    assert!(!e.filter.matches("Other", Some(&doc)));
    assert_eq!(e.body, BodyMode::Data);
    assert_eq!(
        e.headers,
        [
            ("x-tenant".to_owned(), "acme".to_owned()),
            ("x-other".to_owned(), "1".to_owned())
        ],
        "file order"
    );
    assert_eq!(e.order_key.as_deref(), Some("/roomId"));
    assert_eq!(e.concurrency, 2);
    assert_eq!(e.timeout, Duration::from_secs(30));
    assert_eq!(
        e.rate_limit,
        Some(RateLimit {
            count: 600,
            per: Duration::from_secs(60)
        })
    );
    assert_eq!(e.permanent_status, [400, 401, 599]);
    assert_eq!(e.max_attempts, Some(5));
    assert_eq!(e.compress, Some(Compress::Gzip));
    assert_eq!(e.proxy.as_ref().unwrap().port_u16(), Some(3128));
    assert_eq!(e.retry.initial, Duration::from_millis(500));
    assert_eq!(e.retry.multiplier, 3.0);
    assert_eq!(e.retry.max, Duration::from_secs(3600));
    assert_eq!(e.retry.jitter, 0.0);
    assert!(matches!(&e.auth, Some(AuthConfig::Bearer { token }) if token.expose() == "tok"));
    let s = e.signing.as_ref().unwrap();
    assert_eq!(s.scheme, SigningScheme::HmacSha256);
    assert_eq!(s.header, "x-sig");
    assert_eq!(s.prefix, "v1=");
    assert_eq!(s.secrets[0].expose(), "s");
    assert_eq!(e.tls.min_version, TlsVersion::V1_3);
    assert_eq!(e.tls.server_name.as_deref(), Some("internal.example.com"));
}

// ----- syntax errors and unknown keys -----

#[test]
fn unknown_keys_name_the_key_and_position() {
    let err = error("[daemon]\nstate_dir = \"/x\"\nstate_dri = \"/y\"\n");
    assert!(err.starts_with(&format!("{PATH}:3:1: ")), "{err}");
    assert_has(&err, &["unknown field `state_dri`", "state_dir"]);

    let err = error("[ingest]\n  sockett = \"/x\"\n");
    assert!(err.starts_with(&format!("{PATH}:2:3: ")), "{err}");
    assert_has(&err, &["`sockett`"]);

    let err = error("bogus = 1\n");
    assert_has(&err, &[":1:1:", "`bogus`"]);

    let err = error(&endpoint(
        "[endpoint.tls]\nroots = \"system\"\ncafile = \"x\"",
    ));
    assert_has(&err, &[":6:1:", "`cafile`", "ca_file"]);

    let err = error(&endpoint(
        "[endpoint.auth]\ntype = \"bearer\"\ntokn = \"x\"",
    ));
    assert_has(&err, &[":6:1:", "`tokn`"]);

    let err = error(&endpoint("retries = 3"));
    assert_has(&err, &[":4:1:", "`retries`"]);
}

#[test]
fn syntax_and_type_errors_have_positions() {
    let err = error("[daemon\nstate_dir = 1\n");
    assert!(err.starts_with(&format!("{PATH}:1:8: ")), "{err}");
    assert!(!err.contains('\n'), "one line: {err:?}");

    let err = error("[daemon]\nstate_dir = 1\n");
    assert_has(&err, &[":2:13:", "expected a string"]);

    let err = error(&endpoint("events = \"*\""));
    assert_has(&err, &[":4:10:", "sequence"]);

    // Columns count characters, not bytes.
    let err = error("# é\n[daemon]\n  \"é\" = 1\n");
    assert_has(&err, &[":3:3:"]);
}

#[test]
fn every_problem_is_reported_at_once() {
    let errs = errors(
        r#"
[daemon]
log_format = "xml"
shutdown_timeout = "soon"

[ingest]
socket_mode = "0999"
max_connections = 0

[[endpoint]]
name = "Bad Name"
url = "http://a.example.com/"
concurrency = 0
permanent_status = [200]

[[endpoint]]
name = "b"
url = "https://b.example.com/"
timeout = "0s"
[endpoint.retry]
jitter = 2.0
"#,
    );
    let expected = [
        ":3:14: daemon.log_format: unknown value \"xml\"",
        ":4:20: daemon.shutdown_timeout: invalid duration",
        ":7:15: ingest.socket_mode:",
        ":8:19: ingest.max_connections: 0 must be at least 1",
        ":11:8: endpoint name \"Bad Name\"",
        ":12:7: endpoint #1: url: plain http is refused",
        ":14:21: endpoint #1: permanent_status: 200",
        ":13:15: endpoint #1: concurrency: 0 must be at least 1",
        ":19:11: endpoint b: timeout: must be more than 0",
        ":21:10: endpoint b: retry.jitter: 2 must be between 0.0 and 1.0",
    ];
    assert_eq!(errs.len(), expected.len(), "{errs:#?}");
    for want in expected {
        assert!(
            errs.iter().any(|e| e.contains(want) && e.starts_with(PATH)),
            "{want:?} not in {errs:#?}"
        );
    }
    let err = try_parse("[daemon]\nlog_format = 1\n").unwrap_err();
    assert_eq!(err.path(), Path::new(PATH));
    let err = try_parse("[daemon]\nlog_format = \"a\"\nstate_dir = \"\"\n").unwrap_err();
    assert_eq!(
        err.to_string().lines().count(),
        2,
        "one problem per line: {err}"
    );
    assert_eq!(err.to_string(), err.messages().join("\n"));
}

// ----- load -----

#[test]
fn load_reads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edgehook.toml");
    let err = load(&path).unwrap_err();
    assert_eq!(err.messages().len(), 1);
    assert_has(
        &err.messages()[0],
        &[
            &format!("{}: cannot read config file:", path.display()),
            "No such file",
            "--config",
        ],
    );

    std::fs::write(
        &path,
        endpoint("auth = { type = \"bearer\", token = \"t\" }"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let c = load(&path).unwrap();
    assert_eq!(c.path, path);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let c = load(&path).unwrap();
    assert_eq!(c.warnings.len(), 1);
    assert_has(
        &c.warnings[0],
        &["holds literal secrets and is readable by others", "0644"],
    );

    std::fs::write(&path, "[daemon]\nstate_dir = 3\n").unwrap();
    let err = load(&path).unwrap_err();
    assert_has(&err.to_string(), &[&format!("{}:2:13:", path.display())]);
}
