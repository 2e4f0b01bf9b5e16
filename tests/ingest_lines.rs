//! The line socket (`ingest.lines_socket`, SPEC §3): one reply line per input line, in
//! order, after the commit.

use serde_json::Value;

use crate::util::client::LineClient;
use crate::util::{event, Builder, TestDaemon, ENDPOINTS};

fn start(ingest: &str) -> TestDaemon {
    Builder::new()
        .lines_socket()
        .ingest(ingest)
        .toml(ENDPOINTS)
        .start()
}

fn lines_client(d: &TestDaemon) -> LineClient {
    LineClient::connect(d.lines_socket().expect("lines socket configured"))
}

fn assert_ok(reply: &Value, id: &str) {
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["id"], id, "{reply}");
}

#[test]
fn thousand_pipelined_lines_are_answered_in_order() {
    let d = start("");
    let mut c = lines_client(&d);
    let ids: Vec<String> = (0..1000).map(|i| format!("line-{i:04}")).collect();
    let input: String = ids
        .iter()
        .map(|id| event("Test.lines", id, r#"{"k":1}"#) + "\n")
        .collect();
    let writer = c.send(input.into_bytes());
    for id in &ids {
        assert_ok(&c.reply(), id);
    }
    writer.join().unwrap();
    assert_eq!(
        d.query_i64("SELECT COUNT(*) FROM events WHERE id LIKE 'line-%'", []),
        1000
    );
    assert_eq!(
        d.query_i64("SELECT COUNT(DISTINCT id) FROM events", []),
        1000
    );
}

#[test]
fn bad_line_gets_an_error_reply_and_the_next_line_is_accepted() {
    let d = start("");
    let mut c = lines_client(&d);
    let input = format!(
        "{}\n{{\"type\":\"Test.lines\",\"data\":\n{}\n",
        event("Test.lines", "before-bad", "1"),
        event("Test.lines", "after-bad", "2"),
    );
    c.send(input.into_bytes()).join().unwrap();
    assert_ok(&c.reply(), "before-bad");
    let bad = c.reply();
    assert_eq!(bad["ok"], false, "{bad}");
    assert_eq!(bad["error"]["code"], "invalid_json", "{bad}");
    assert!(
        bad["error"]["message"].as_str().unwrap().contains("column"),
        "{bad}"
    );
    assert_ok(&c.reply(), "after-bad");
    assert_eq!(d.events_with_id("before-bad"), 1);
    assert_eq!(d.events_with_id("after-bad"), 1);
}

#[test]
fn over_long_line_is_too_large_and_the_reader_resynchronises() {
    let d = start("max_event_bytes = \"1KiB\"");
    let mut c = lines_client(&d);
    let long = event(
        "Test.lines",
        "too-long",
        &format!("\"{}\"", "x".repeat(100_000)),
    );
    let input = format!("{long}\n{}\n", event("Test.lines", "after-long", "{}"));
    let writer = c.send(input.into_bytes());
    let r = c.reply();
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error"]["code"], "too_large", "{r}");
    assert_ok(&c.reply(), "after-long");
    writer.join().unwrap();
    assert_eq!(d.events_with_id("too-long"), 0);
    assert_eq!(d.events_with_id("after-long"), 1);
}

/// A line refused with `queue_full` was not accepted, so sending it again once there is
/// room must store it, not answer "duplicate" (which would lose it).
#[test]
fn line_refused_as_queue_full_is_not_remembered_as_seen() {
    let mut d = Builder::new()
        .lines_socket()
        .toml("[queue]\nmax_bytes = \"2KiB\"\nwhen_full = \"reject\"")
        .toml(ENDPOINTS)
        .start();
    let data = format!("\"{}\"", "z".repeat(200));
    let mut c = lines_client(&d);
    let refused = (0..100)
        .map(|i| format!("fill-{i}"))
        .find(|id| {
            c.send(format!("{}\n", event("Test.fill", id, &data)).into_bytes())
                .join()
                .unwrap();
            let r = c.reply();
            assert!(r["ok"] == true || r["error"]["code"] == "queue_full", "{r}");
            r["ok"] == false
        })
        .expect("a 2 KiB queue fills up");
    drop(c);
    d.stop();
    let config = std::fs::read_to_string(&d.config)
        .unwrap()
        .replace("\"2KiB\"", "\"1MiB\"");
    std::fs::write(&d.config, config).unwrap();
    d.restart();

    let mut c = lines_client(&d);
    c.send(format!("{}\n", event("Test.fill", &refused, &data)).into_bytes())
        .join()
        .unwrap();
    let r = c.reply();
    assert_eq!(
        r,
        serde_json::json!({"ok": true, "id": refused}),
        "retry after queue_full"
    );
    assert_eq!(d.events_with_id(&refused), 1);
}
