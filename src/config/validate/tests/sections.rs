//! `[daemon]`, `[ingest]` and `[queue]`, and the sockets they name.

use super::*;

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
