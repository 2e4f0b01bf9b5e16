//! `edgehook send` (SPEC §8): one event from flags to a running daemon.

use std::os::unix::fs::PermissionsExt;

use crate::util::cli::{as_nobody, run_command};
use crate::util::{run_cli, TestDaemon};

fn send(
    d: &TestDaemon,
    event_type: &str,
    data: &str,
    stdin: Option<&[u8]>,
) -> (i32, String, String) {
    let socket = d.socket().to_str().unwrap();
    run_cli(
        &[
            "send", "--type", event_type, "--data", data, "--socket", socket,
        ],
        stdin,
    )
}

/// The stored `data` bytes of the one event of `event_type`.
fn stored_data(d: &TestDaemon, event_type: &str) -> Vec<u8> {
    d.db()
        .query_row(
            "SELECT data FROM events WHERE type = ?1",
            [event_type],
            |r| r.get(0),
        )
        .unwrap_or_else(|e| panic!("no event of type {event_type}: {e}"))
}

#[test]
fn send_data_from_argument_file_and_stdin() {
    let d = TestDaemon::start();

    let (code, stdout, stderr) = send(&d, "Test.arg", r#"{"a":1}"#, None);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("accepted evt_"), "{stdout}");
    assert_eq!(stored_data(&d, "Test.arg"), br#"{"a":1}"#);

    let file = d.dir().join("data.json");
    std::fs::write(&file, "{\"b\": [1, 2]}\n").unwrap();
    let (code, stdout, stderr) = send(&d, "Test.file", &format!("@{}", file.display()), None);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stored_data(&d, "Test.file"), br#"{"b": [1, 2]}"#);

    let (code, stdout, stderr) = send(&d, "Test.stdin", "-", Some(b"{\"c\":\"from stdin\"}\n"));
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stored_data(&d, "Test.stdin"), br#"{"c":"from stdin"}"#);
}

#[test]
fn send_invalid_json_fails_with_one_line() {
    let d = TestDaemon::start();
    let (code, stdout, stderr) = send(&d, "Test.bad", r#"{"a":"#, None);
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.contains("--data"), "{stderr}");
    assert_eq!(d.query_i64("SELECT COUNT(*) FROM events", []), 0);
}

/// A config naming the daemon's socket and an endpoint whose secret this user cannot
/// resolve (an unset environment variable): `send` needs only `ingest.socket`.
fn config_with_unresolvable_secret(d: &TestDaemon) -> std::path::PathBuf {
    let config = d.dir().join("app-view.toml");
    std::fs::write(
        &config,
        format!(
            "[ingest]\nsocket = {:?}\n\n[[endpoint]]\nname = \"spark\"\nurl = \"https://127.0.0.1:9/\"\n\
             [endpoint.signing]\nsecret = \"env:EDGEHOOK_TEST_UNSET_SECRET\"\n",
            d.socket()
        ),
    )
    .unwrap();
    config
}

#[test]
fn send_finds_the_socket_in_a_config_whose_secrets_it_cannot_resolve() {
    let d = TestDaemon::start();
    let config = config_with_unresolvable_secret(&d);
    let (code, stdout, stderr) = run_cli(
        &[
            "send",
            "-t",
            "Test.cfg",
            "--config",
            config.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout
            .trim_end()
            .ends_with(&format!("via {}", d.socket().display())),
        "says which socket it used: {stdout}"
    );
    assert_eq!(d.query_i64("SELECT COUNT(*) FROM events", []), 1);
}

#[test]
fn send_reports_an_unreadable_or_broken_config_instead_of_a_default_socket() {
    let d = TestDaemon::start();
    // Unreadable for the app's user: the config is root's 0600 file.
    let config = config_with_unresolvable_secret(&d);
    let c = config.to_str().unwrap();
    if let Some(nobody) = as_nobody() {
        std::fs::set_permissions(d.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (code, stdout, stderr) = run_command(nobody, &["send", "-t", "Test.x", "-c", c]);
        assert_eq!((code, stdout.as_str()), (1, ""), "{stderr}");
        assert_eq!(
            stderr,
            format!(
                "edgehook: cannot read the config file {c} to find ingest.socket: permission denied; \
                 run as a user that may read it (e.g. a member of its group), or pass --socket PATH\n"
            )
        );
    }
    // Not TOML: the parse error, not a connection failure.
    std::fs::write(&config, "[ingest\nsocket = 1\n").unwrap();
    let (code, _, stderr) = run_cli(&["send", "-t", "Test.x", "-c", c], None);
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with(&format!(
            "edgehook: cannot find ingest.socket: the config file {c} is not valid TOML"
        )),
        "{stderr}"
    );
    // A named config that does not exist is an error too (only the default path may be
    // missing).
    let missing = d.dir().join("missing.toml");
    let (code, _, stderr) = run_cli(
        &["send", "-t", "Test.x", "-c", missing.to_str().unwrap()],
        None,
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("no such file"), "{stderr}");
    assert_eq!(d.query_i64("SELECT COUNT(*) FROM events", []), 0);
}

#[test]
fn send_names_the_socket_and_its_source_when_nothing_listens() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("edgehook.toml");
    std::fs::write(&config, "[ingest]\nsocket = \"run/in.sock\"\n").unwrap();
    let (code, _, stderr) = run_cli(
        &["send", "-t", "Test.x", "--config", config.to_str().unwrap()],
        None,
    );
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        format!(
            "edgehook: cannot send to {} (ingest.socket in {}): nothing listens there; is edgehook running?\n",
            dir.path().join("run/in.sock").display(),
            config.display()
        )
    );
}
