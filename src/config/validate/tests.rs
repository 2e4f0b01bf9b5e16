//! Validation tests: inline TOML in, `Config` or the exact problems out.

use super::*;
use crate::config::{RateLimit, SecretSource};
use std::os::unix::fs::PermissionsExt;

const PATH: &str = "/etc/edgehook/edgehook.toml";

fn no_env(_: &str) -> Option<OsString> {
    None
}

fn try_parse(text: &str) -> Result<Config, ConfigError> {
    parse_with(text, Path::new(PATH), &no_env).map(|(config, _)| config)
}

fn ok(text: &str) -> Config {
    try_parse(text).unwrap_or_else(|err| panic!("expected a valid config, got:\n{err}"))
}

fn errors(text: &str) -> Vec<String> {
    match try_parse(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(err) => err.messages().to_vec(),
    }
}

/// The one error `text` has; panics if there are more or none.
fn error(text: &str) -> String {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    errors.into_iter().next().unwrap()
}

fn assert_has(haystack: &str, needles: &[&str]) {
    for needle in needles {
        assert!(haystack.contains(needle), "{needle:?} not in {haystack:?}");
    }
}

/// A valid endpoint `a` with `extra` appended to its table (keys or sub-tables).
fn endpoint(extra: &str) -> String {
    format!("[[endpoint]]\nname = \"a\"\nurl = \"https://a.example.com/hooks\"\n{extra}\n")
}

fn ok_endpoint(extra: &str) -> Arc<EndpointConfig> {
    ok(&endpoint(extra)).endpoints[0].clone()
}

/// The single error for endpoint `a` with `extra`.
fn endpoint_error(extra: &str) -> String {
    error(&endpoint(extra))
}

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
    assert_eq!(e.name, "a");
    assert_eq!(e.url, "https://a.example.com/hooks");
    assert_eq!(e.filter, Filter::firehose());
    assert_eq!(e.body, BodyMode::Envelope);
    assert!(e.headers.is_empty());
    assert_eq!(e.ordering, Ordering::None);
    assert_eq!(e.order_key, None);
    assert_eq!(e.concurrency, 8);
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
    assert_eq!(e.name, "spark_1-x");
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

// ----- [daemon] -----

#[test]
fn daemon_rules() {
    assert_has(
        &error("[daemon]\nlog_format = \"xml\""),
        &["\"auto\", \"journald\", \"text\", \"json\""],
    );
    assert_has(
        &error("[daemon]\nmetrics_listen = \"localhost\""),
        &["daemon.metrics_listen", "127.0.0.1:9464"],
    );
    assert_eq!(
        ok("[daemon]\nmetrics_listen = \"[::1]:9464\"")
            .daemon
            .metrics_listen,
        Some("[::1]:9464".parse().unwrap())
    );
    assert_eq!(
        ok("[daemon]\nmetrics_listen = \"\"").daemon.metrics_listen,
        None
    );
    assert_has(
        &error("[daemon]\nstate_dir = \"\""),
        &["daemon.state_dir: must not be empty"],
    );
    assert_eq!(ok("[daemon]\nadmin_group = \"\"").daemon.admin_group, None);
    assert_eq!(
        ok("[daemon]\nshutdown_timeout = \"0s\"")
            .daemon
            .shutdown_timeout,
        Duration::ZERO
    );
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let c = ok(r#"
        [daemon]
        state_dir = "state"
        admin_socket = "./run/admin.sock"
        [ingest]
        socket = "../run/events.sock"
        lines_socket = "lines.sock"
    "#);
    assert_eq!(c.daemon.state_dir, Path::new("/etc/edgehook/state"));
    assert_eq!(
        c.daemon.admin_socket,
        Path::new("/etc/edgehook/./run/admin.sock")
    );
    assert_eq!(
        c.ingest.socket,
        Path::new("/etc/edgehook/../run/events.sock")
    );
    assert_eq!(
        c.ingest.lines_socket.as_deref(),
        Some(Path::new("/etc/edgehook/lines.sock"))
    );

    // A relative config path is made absolute first.
    let (c, _) = parse_with(
        "[daemon]\nstate_dir = \"s\"",
        Path::new("conf/e.toml"),
        &no_env,
    )
    .unwrap();
    assert!(c.daemon.state_dir.is_absolute(), "{:?}", c.daemon.state_dir);
    assert!(c.daemon.state_dir.ends_with("conf/s"));
    assert_eq!(c.path, Path::new("conf/e.toml"));
}

#[test]
fn sockets() {
    let long = format!("/run/{}.sock", "x".repeat(110));
    assert_has(
        &error(&format!("[ingest]\nsocket = \"{long}\"")),
        &[
            ":2:10:",
            "ingest.socket",
            "Unix socket paths are limited to 107",
        ],
    );
    assert_has(
        &error("[ingest]\nlines_socket = \"/run/edgehook/edgehook.sock\""),
        &["ingest.socket and ingest.lines_socket are the same path"],
    );
    assert_has(
        &error("[daemon]\nadmin_socket = \"/run/edgehook/edgehook.sock\""),
        &["daemon.admin_socket and ingest.socket"],
    );
}

// ----- [ingest] -----

#[test]
fn ingest_rules() {
    assert_eq!(
        ok("[ingest]\nsocket_mode = 0o640").ingest.socket_mode,
        0o640
    );
    assert_has(
        &error("[ingest]\nsocket_mode = \"4770\""),
        &["ingest.socket_mode", "beyond 0o777"],
    );
    assert_has(
        &error("[ingest]\nsocket_mode = 660"),
        &["ingest.socket_mode", "beyond 0o777"],
    );
    assert_has(
        &error("[ingest]\nmax_event_bytes = \"2MiB\"\nmax_batch_bytes = \"1MiB\""),
        &[
            ":2:19:",
            "max_event_bytes (2MiB) is larger than ingest.max_batch_bytes (1MiB)",
        ],
    );
    // Against the default batch size, too.
    assert_has(
        &error("[ingest]\nmax_event_bytes = \"32MiB\""),
        &["larger than ingest.max_batch_bytes (16MiB)"],
    );
    assert_has(&error("[ingest]\nmax_batch_bytes = \"1KiB\""), &[":2:19:"]);
    assert_has(
        &error("[ingest]\nmax_event_bytes = 0"),
        &["ingest.max_event_bytes: must be more than 0"],
    );
    assert_has(
        &error("[ingest]\nmax_event_bytes = \"lots\""),
        &["ingest.max_event_bytes: invalid size \"lots\""],
    );
    assert_has(
        &error("[ingest]\nmax_connections = -5"),
        &["ingest.max_connections: -5 must be at least 1"],
    );
    let errs = errors("[ingest]\nallowed_uids = [-1, 4294967296, 5]\nallowed_gids = [4294967295]");
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert_has(
        &errs[0],
        &[":2:17:", "ingest.allowed_uids: -1 is not a valid id"],
    );
}

// ----- [queue] -----

#[test]
fn queue_rules() {
    assert_has(
        &error("[queue]\ndurability = \"fast\""),
        &["queue.durability: unknown value \"fast\"; expected one of \"full\", \"normal\""],
    );
    assert_has(
        &error("[queue]\nwhen_full = \"drop\""),
        &["\"reject\", \"drop_oldest\""],
    );
    assert_eq!(ok("[queue]\nmax_age = \"\"").queue.max_age, None);
    assert_has(
        &error("[queue]\nmax_age = \"0s\""),
        &["queue.max_age", "\"\""],
    );
    assert_has(
        &error("[queue]\nmax_age = \"30\""),
        &["queue.max_age: invalid duration"],
    );
    assert_eq!(ok("[queue]\nmax_bytes = 4096").queue.max_bytes, 4096);
    assert_has(
        &error("[queue]\nmax_bytes = \"0\""),
        &["queue.max_bytes: must be more than 0"],
    );
    assert_has(
        &error("[queue]\nmax_bytes = 1.5"),
        &["queue.max_bytes: invalid size: found a float"],
    );
    assert_eq!(
        ok("[queue]\ndedupe_window = \"0s\"").queue.dedupe_window,
        Duration::ZERO
    );
}

// ----- [[endpoint]] basics -----

#[test]
fn endpoint_names() {
    for bad in ["Spark", "spark.io", "", "a b", "ü"] {
        let err = error(&format!(
            "[[endpoint]]\nname = \"{bad}\"\nurl = \"https://x/\""
        ));
        assert_has(&err, &[":2:8:", "a-z, 0-9, _ and -"]);
    }
    let err = error(
        "[[endpoint]]\nname = \"a\"\nurl = \"https://x/\"\n[[endpoint]]\nname = \"a\"\nurl = \"https://y/\"\n",
    );
    assert_has(&err, &[":5:8:", "\"a\" is already used at", ":2:8"]);

    let err = error("[[endpoint]]\nurl = \"https://x/\"\n");
    assert_has(&err, &[":1:1:", "endpoint #1: missing key `name`"]);
    let err = error("[[endpoint]]\nname = \"a\"\n");
    assert_has(&err, &[":1:1:", "endpoint a: missing key `url`"]);
    let errs = errors("[[endpoint]]\n[[endpoint]]\nname = \"b\"\n");
    assert_eq!(errs.len(), 3, "{errs:#?}");
}

#[test]
fn urls() {
    let e = ok_endpoint("");
    assert_eq!(e.url.scheme_str(), Some("https"));

    let url = |u: &str, extra: &str| format!("[[endpoint]]\nname = \"a\"\nurl = \"{u}\"\n{extra}");
    assert_has(
        &error(&url("http://a.example.com/", "")),
        &[
            ":3:7:",
            "endpoint a: url: plain http is refused",
            "allow_plain_http = true",
        ],
    );
    let c = ok(&url("http://a.example.com/", "allow_plain_http = true"));
    assert_eq!(
        c.warnings,
        ["endpoint a: plain http allowed, payloads and credentials travel unencrypted"]
    );
    assert!(ok(&url("https://a/", "allow_plain_http = true"))
        .warnings
        .is_empty());
    for (bad, why) in [
        ("ftp://a.example.com/", "must start with https://"),
        ("a.example.com/hooks", "not a valid URL"),
        ("/hooks", "has no host"),
        ("https://", "not a valid URL"),
        ("https://a b/", "not a valid URL"),
        (
            "https://bob:pw@a.example.com/",
            "must not contain credentials",
        ),
        ("https://bob:pw@a b/", "not a valid URL"),
    ] {
        let err = error(&url(bad, ""));
        assert_has(&err, &["endpoint a: url:", why]);
        assert!(!err.contains("pw@"), "password shown: {err}");
    }
}

#[test]
fn events_and_match() {
    let e = ok_endpoint("events = [\"Upload*\", \"flows/comments.?\"]");
    assert!(e.filter.matches_type("UploadProduct"));
    assert!(e.filter.matches_type("flows/comments.x"));
    assert!(!e.filter.matches_type("Delete"));

    assert_has(
        &endpoint_error("events = [\"ok\", \"bad glob\"]"),
        &[
            ":4:17:",
            "endpoint a: events: pattern \"bad glob\" contains ' '",
        ],
    );
    assert_has(&endpoint_error("events = [\"\"]"), &["empty pattern"]);
    let c = ok(&endpoint("events = []"));
    assert_eq!(c.warnings.len(), 1);
    assert_has(
        &c.warnings[0],
        &["endpoint a: events = [] matches no event"],
    );
    assert!(!c.endpoints[0].filter.matches_type("x"));

    assert_has(
        &endpoint_error("match = { \"data/roomId\" = \"x\" }"),
        &[":4:11:", "endpoint a: match:", "must start with \"/\""],
    );
    assert_has(
        &endpoint_error("match = { \"/data/when\" = 1979-05-27T07:32:00Z }"),
        &["match.\"/data/when\"", "quote it"],
    );
    let e = ok_endpoint("match = { \"/data/tags\" = [\"a\", 1], \"/data/o\" = { k = false } }");
    let doc = serde_json::json!({"data": {"tags": ["a", 1], "o": {"k": false}}});
    assert!(e.filter.matches("t", Some(&doc)));
    assert!(!e.filter.matches("t", None));
}

#[test]
fn body_ordering_order_key() {
    assert_has(
        &endpoint_error("body = \"raw\""),
        &["endpoint a: body: unknown value \"raw\"; expected one of \"envelope\", \"data\""],
    );
    assert_has(
        &endpoint_error("ordering = \"strict\""),
        &["\"none\", \"fifo\""],
    );
    assert_eq!(ok_endpoint("ordering = \"fifo\"").ordering, Ordering::Fifo);
    assert_eq!(ok_endpoint("order_key = \"\"").order_key, None);
    assert_has(
        &endpoint_error("order_key = \"roomId\""),
        &["endpoint a: order_key:", "must start with \"/\""],
    );
    assert_has(
        &endpoint_error("ordering = \"fifo\"\norder_key = \"/roomId\""),
        &[
            ":5:13:",
            "order_key: cannot be combined with ordering = \"fifo\"",
        ],
    );
}

#[test]
fn numbers_and_durations() {
    assert_has(
        &endpoint_error("concurrency = 0"),
        &["concurrency: 0 must be at least 1"],
    );
    assert_has(
        &endpoint_error("concurrency = -2"),
        &["concurrency: -2 must be at least 1"],
    );
    assert_has(
        &endpoint_error("timeout = \"0ms\""),
        &["timeout: must be more than 0"],
    );
    assert_has(
        &endpoint_error("timeout = \"10\""),
        &["timeout: invalid duration \"10\""],
    );
    assert_eq!(ok_endpoint("rate_limit = \"\"").rate_limit, None);
    assert_eq!(
        ok_endpoint("rate_limit = \"10/h\"").rate_limit,
        Some(RateLimit {
            count: 10,
            per: Duration::from_secs(3600)
        })
    );
    assert_has(
        &endpoint_error("rate_limit = \"fast\""),
        &["rate_limit: invalid rate limit"],
    );
    let errs = errors(&endpoint("permanent_status = [399, 404, 600, -1]"));
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert_has(&errs[0], &["399 is not a 4xx or 5xx status"]);
    assert_eq!(
        ok_endpoint("permanent_status = []").permanent_status,
        Vec::<u16>::new()
    );
    assert_eq!(ok_endpoint("max_attempts = 0").max_attempts, None);
    assert_eq!(ok_endpoint("max_attempts = 7").max_attempts, Some(7));
    assert_has(
        &endpoint_error("max_attempts = -1"),
        &["max_attempts: -1 is out of range"],
    );
    assert_eq!(ok_endpoint("compress = \"\"").compress, None);
    assert_has(&endpoint_error("compress = \"zstd\""), &["\"\", \"gzip\""]);
}

#[test]
fn proxies() {
    assert!(ok_endpoint("proxy = \"\"").proxy.is_none());
    let p = ok_endpoint("proxy = \"http://10.0.0.1:3128\"")
        .proxy
        .clone()
        .unwrap();
    assert_eq!(p.host(), Some("10.0.0.1"));
    // Proxy credentials come from the userinfo (Proxy-Authorization: Basic).
    let p = ok_endpoint("proxy = \"http://u:secretpw@proxy:3128\"")
        .proxy
        .clone()
        .unwrap();
    assert_eq!(p.host(), Some("proxy"));
    for (bad, why) in [
        ("https://proxy:3128", "only http:// proxies"),
        ("http://proxy", "the port is missing"),
        ("http://proxy:3128/path", "no path or query"),
        ("http://u:secretpw@proxy", "the port is missing"),
        ("http://u:secretpw@a b", "is not a URL"),
        ("socks5://proxy:1080", "not an http:// URL"),
        ("proxy:3128", "not an http:// URL"),
        ("http://a b", "is not a URL"),
    ] {
        let err = endpoint_error(&format!("proxy = \"{bad}\""));
        assert_has(&err, &["endpoint a: proxy:", why]);
        assert!(!err.contains("secretpw"), "password shown: {err}");
    }
}

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

#[test]
fn retry_rules() {
    let r = ok_endpoint("[endpoint.retry]\nmultiplier = 1\njitter = 1").retry;
    assert_eq!((r.multiplier, r.jitter), (1.0, 1.0));
    assert_has(
        &endpoint_error("[endpoint.retry]\ninitial = \"0s\""),
        &["retry.initial: must be more than 0"],
    );
    assert_has(
        &endpoint_error("[endpoint.retry]\nmultiplier = 0.5"),
        &["retry.multiplier: 0.5 must be at least 1.0"],
    );
    assert_has(
        &endpoint_error("[endpoint.retry]\nmultiplier = nan"),
        &["retry.multiplier: NaN must be at least 1.0"],
    );
    assert_has(
        &endpoint_error("[endpoint.retry]\ninitial = \"1m\"\nmax = \"30s\""),
        &[":6:7:", "retry.max: 30s is less than retry.initial (1m)"],
    );
    // Against the default max, pointing at initial.
    assert_has(
        &endpoint_error("[endpoint.retry]\ninitial = \"1h\""),
        &[":5:11:", "retry.max: 10m is less than retry.initial (1h)"],
    );
    assert_has(
        &endpoint_error("[endpoint.retry]\njitter = -0.1"),
        &["retry.jitter: -0.1 must be between 0.0 and 1.0"],
    );
}

// ----- [endpoint.auth] -----

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

// ----- [endpoint.signing] -----

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

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

// ----- secrets -----

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

// ----- [endpoint.tls] -----

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

// ----- config.example.toml -----

const EXAMPLE: &str = include_str!("../../../config.example.toml");

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
    let env = |name: &str| (name == "SPARK_WEBHOOK_SECRET").then(|| OsString::from(WHSEC));
    let text = uncomment(EXAMPLE);
    let (c, _) = parse_with(&text, &dir.path().join("edgehook.toml"), &env)
        .unwrap_or_else(|err| panic!("uncommented example:\n{err}"));

    let defaults = ok(&endpoint(""));
    assert_eq!(format!("{:?}", c.daemon), format!("{:?}", defaults.daemon));
    assert_eq!(format!("{:?}", c.ingest), format!("{:?}", defaults.ingest));
    assert_eq!(format!("{:?}", c.queue), format!("{:?}", defaults.queue));
    let (e, d) = (&c.endpoints[0], &defaults.endpoints[0]);
    assert_eq!(e.name, "spark");
    assert_eq!(e.url, "https://spark.example.com/hooks");
    let fields = |e: &EndpointConfig| {
        format!(
            "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
            e.filter,
            e.body,
            e.headers,
            e.ordering,
            e.order_key,
            e.concurrency,
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
    assert_eq!(c.watched_files, [key]);

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
