//! `edgehook send` (SPEC §8): one event from flags to a running daemon.

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
