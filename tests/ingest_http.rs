//! `POST /v1/events` and `GET /v1/health` over the ingest socket (SPEC §1, §2).

use std::io::Write;

use nix::sys::signal::Signal;
use serde_json::json;

use crate::util::{client, event, Builder, Reply, TestDaemon, ENDPOINTS};

fn assert_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.code(), code, "{r:?}");
    assert!(!r.message().is_empty(), "an error needs a message: {r:?}");
}

#[test]
fn single_event_is_stored_with_one_delivery_per_matching_endpoint() {
    let d = TestDaemon::start();

    let r = d.post_event(r#"{"type":"UploadProduct","data":{"sku":"A-1"}}"#);
    assert_eq!(r.status, 202, "{r:?}");
    let id = r.json["id"].as_str().expect("202 has an id").to_string();
    assert!(id.starts_with("evt_"), "assigned ids start with evt_: {id}");
    assert_eq!(r.json["endpoints"], json!(["spark"]));
    assert_eq!(d.events_with_id(&id), 1);
    assert_eq!(d.delivery_endpoints(&id), ["spark"]);
    let data: Vec<u8> = d
        .db()
        .query_row("SELECT data FROM events WHERE id = ?1", [&id], |r| r.get(0))
        .unwrap();
    assert_eq!(data, br#"{"sku":"A-1"}"#, "data is stored byte for byte");

    let r = d.post_event(r#"{"type":"flows/comments.updated","data":1}"#);
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.json["endpoints"], json!(["flows"]));
    assert_eq!(
        d.delivery_endpoints(r.json["id"].as_str().unwrap()),
        ["flows"]
    );

    let r = d.post_event(&event("Test.both", "both-1", "{}"));
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.json["id"], "both-1", "an explicit id is kept");
    assert_eq!(r.json["endpoints"], json!(["spark", "flows"]));
    assert_eq!(d.delivery_endpoints("both-1"), ["flows", "spark"]);
}

#[test]
fn event_no_endpoint_wants_is_accepted_but_not_stored() {
    let d = TestDaemon::start();
    let r = d.post_event(&event("Nobody.wants.this", "unwanted-1", "{}"));
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.json["endpoints"], json!([]));
    assert_eq!(d.events_with_id("unwanted-1"), 0);
    assert_eq!(d.query_i64("SELECT COUNT(*) FROM events", []), 0);
}

#[test]
fn ndjson_batch_is_stored_whole() {
    let d = TestDaemon::start();
    let batch: String = (1..=5)
        .map(|i| event("Test.batch", &format!("b-{i}"), "{}") + "\n")
        .collect();
    let r = d.post("/v1/events", "application/x-ndjson", batch.as_bytes());
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.json["accepted"], 5);
    assert_eq!(r.json["ids"], json!(["b-1", "b-2", "b-3", "b-4", "b-5"]));
    assert_eq!(
        d.query_i64("SELECT COUNT(*) FROM events WHERE id LIKE 'b-%'", []),
        5
    );
    assert_eq!(
        d.query_i64("SELECT COUNT(*) FROM deliveries", []),
        10,
        "two endpoints each"
    );
}

#[test]
fn ndjson_batch_with_bad_lines_names_them_and_stores_nothing() {
    let d = TestDaemon::start();
    let batch = [
        event("Test.batch", "ok-1", "{}"),
        r#"{"type":"Test.batch","data": }"#.to_string(),
        event("Test.batch", "ok-3", "{}"),
        r#"{"type":"Test.batch","data":{},"tpye":1}"#.to_string(),
        event("Test.batch", "ok-5", "{}"),
    ]
    .join("\n");
    let r = d.post("/v1/events", "application/x-ndjson", batch.as_bytes());
    assert_eq!(r.status, 400, "{r:?}");
    let message = r.message();
    assert!(
        message.contains("line 2") && message.contains("line 4"),
        "{message}"
    );
    assert!(
        !message.contains("line 1:") && !message.contains("line 3"),
        "{message}"
    );
    assert_eq!(
        d.query_i64("SELECT COUNT(*) FROM events", []),
        0,
        "nothing of the batch is stored"
    );
}

#[test]
fn duplicate_id_is_answered_200_and_stored_once() {
    let d = TestDaemon::start();
    let body = event("UploadProduct", "order-42", r#"{"n":1}"#);
    let first = d.post_event(&body);
    assert_eq!(first.status, 202, "{first:?}");
    let second = d.post_event(&body);
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(second.json, json!({"id": "order-42", "duplicate": true}));
    assert_eq!(d.events_with_id("order-42"), 1);
    assert_eq!(d.delivery_endpoints("order-42"), ["spark"]);
}

#[test]
fn health_is_ok() {
    let d = TestDaemon::start();
    let r = d.health();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json, json!({"status": "ok"}));
}

#[test]
fn invalid_json_names_line_and_column() {
    let d = TestDaemon::start();
    let r = d.post_event("{\"type\":\"Test.x\",\n  \"data\": }");
    assert_error(&r, 400, "invalid_json");
    assert!(r.message().contains("line 2 column"), "{}", r.message());
}

#[test]
fn invalid_event_is_400_with_the_reason() {
    let d = TestDaemon::start();
    let r = d.post_event(r#"{"type":"Test.x","data":{},"tpye":"oops"}"#);
    assert_error(&r, 400, "invalid_event");
    assert!(
        r.message().contains("tpye"),
        "names the unknown field: {}",
        r.message()
    );

    let r = d.post_event(r#"{"type":5,"data":{}}"#);
    assert_error(&r, 400, "invalid_event");
    assert!(r.message().contains("invalid type"), "{}", r.message());
    assert_eq!(d.query_i64("SELECT COUNT(*) FROM events", []), 0);
}

#[test]
fn unknown_path_is_404_and_wrong_method_405() {
    let d = TestDaemon::start();
    let r = d.post(
        "/v1/evnets",
        "application/json",
        event("Test.x", "x", "{}").as_bytes(),
    );
    assert_error(&r, 404, "not_found");
    assert!(r.message().contains("/v1/evnets"), "{}", r.message());

    let r = d.request("GET", "/v1/events", None, b"");
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("POST"));
}

#[test]
fn bodies_over_the_limits_are_413() {
    let d = Builder::new()
        .ingest("max_event_bytes = \"1KiB\"\nmax_batch_bytes = \"4KiB\"")
        .toml(ENDPOINTS)
        .start();
    let big = event("Test.big", "big-1", &format!("\"{}\"", "x".repeat(2000)));
    let r = d.post_event(&big);
    assert_error(&r, 413, "too_large");
    assert!(
        r.message().contains("ingest.max_event_bytes"),
        "{}",
        r.message()
    );

    // Eight events of ~700 bytes: each under max_event_bytes, together over max_batch_bytes.
    let batch: String = (0..8)
        .map(|i| {
            event(
                "Test.big",
                &format!("part-{i}"),
                &format!("\"{}\"", "y".repeat(650)),
            ) + "\n"
        })
        .collect();
    assert!(batch.len() > 4096);
    let r = d.post("/v1/events", "application/x-ndjson", batch.as_bytes());
    assert_error(&r, 413, "too_large");
    assert!(
        r.message().contains("ingest.max_batch_bytes"),
        "{}",
        r.message()
    );

    assert_eq!(d.query_i64("SELECT COUNT(*) FROM events", []), 0);
    let r = d.post_event(&event("Test.small", "small-1", "{}"));
    assert_eq!(r.status, 202, "a small event still fits: {r:?}");
}

#[test]
fn unsupported_media_type_is_415() {
    let d = TestDaemon::start();
    let r = d.post(
        "/v1/events",
        "text/plain",
        event("Test.x", "x", "{}").as_bytes(),
    );
    assert_error(&r, 415, "unsupported_media_type");
    assert!(r.message().contains("application/json"), "{}", r.message());
    assert_eq!(d.events_with_id("x"), 0);
}

#[test]
fn full_queue_is_507_with_retry_after() {
    let d = Builder::new()
        .toml("[queue]\nmax_bytes = \"2KiB\"\nwhen_full = \"reject\"")
        .toml(ENDPOINTS)
        .start();
    let data = format!("\"{}\"", "z".repeat(200));
    let mut accepted = 0;
    let full = (0..100)
        .map(|i| d.post_event(&event("Test.fill", &format!("fill-{i}"), &data)))
        .find(|r| {
            if r.status == 202 {
                accepted += 1;
            }
            r.status != 202
        })
        .expect("a 2 KiB queue fills up within 100 events of 300 bytes");
    assert_error(&full, 507, "queue_full");
    assert!(
        full.message().contains("queue.max_bytes"),
        "{}",
        full.message()
    );
    let retry: u64 = full
        .header("retry-after")
        .expect("507 has Retry-After")
        .parse()
        .unwrap();
    assert!(retry > 0);
    assert!(accepted > 0, "events fit before the queue was full");
    assert_eq!(d.query_i64("SELECT COUNT(*) FROM events", []), accepted);
}

/// Storage failing: another process holds the database's write lock, so the writer's
/// `BEGIN IMMEDIATE` times out (busy_timeout, 5 s) and the event is refused with 503.
/// Once the lock is gone the daemon accepts again by itself.
#[test]
fn storage_failure_is_503_with_retry_after_and_recovers() {
    let d = TestDaemon::start();
    assert_eq!(d.post_event(&event("Test.x", "before", "{}")).status, 202);

    let db = rusqlite::Connection::open(d.state_dir.join("queue.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    let r = d.post_event(&event("Test.x", "locked-out", "{}"));
    assert_error(&r, 503, "unavailable");
    assert!(
        r.header("retry-after").is_some(),
        "503 has Retry-After: {r:?}"
    );
    let h = d.health();
    assert_eq!(h.status, 503, "health reports the failing storage: {h:?}");
    assert!(
        h.json["reason"]
            .as_str()
            .unwrap_or("")
            .contains("storage is failing"),
        "{h:?}"
    );
    db.execute_batch("ROLLBACK").unwrap();
    drop(db);

    let r = d.post_event(&event("Test.x", "locked-out", "{}"));
    assert_eq!(r.status, 202, "recovers once the lock is gone: {r:?}");
    assert_eq!(d.events_with_id("locked-out"), 1);
    assert_eq!(d.health().status, 200, "health recovers with the storage");
}

/// Shutting down: requests in flight when SIGTERM arrives are answered 503 (their bodies
/// are still coming), not accepted, and the daemon exits 0.
#[test]
fn request_in_flight_at_shutdown_is_503() {
    let mut d = TestDaemon::start();
    let body = event("Test.late", "late", "{}");
    // `Expect: 100-continue`: the 100 proves the daemon is inside the handler, waiting
    // for the body, so graceful shutdown lets the request finish.
    let mut held: Vec<_> = (0..3)
        .map(|_| {
            let mut s = client::connect(d.socket()).unwrap();
            let head = format!(
                "POST /v1/events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).unwrap();
            let interim = Reply::read(&mut s).unwrap();
            assert_eq!(interim.status, 100, "{interim:?}");
            s
        })
        .collect();

    d.signal(Signal::SIGTERM);
    d.wait_notify("STOPPING=1");
    // The flag is set right after STOPPING=1; the first body almost surely arrives after
    // it, and any later one surely does.
    let mut replies = Vec::new();
    for s in &mut held {
        s.write_all(body.as_bytes()).unwrap();
        let r = Reply::read(s).unwrap();
        let done = r.status == 503;
        replies.push(r);
        if done {
            break;
        }
    }
    let (r, earlier) = replies.split_last().unwrap();
    assert!(
        earlier.iter().all(|e| e.status == 202),
        "before the flag only 202: {earlier:?}"
    );
    assert_error(r, 503, "unavailable");
    assert!(r.message().contains("shutting down"), "{}", r.message());
    assert!(
        r.header("retry-after").is_some(),
        "503 has Retry-After: {r:?}"
    );
    drop(held);
    let status = d.wait_exit();
    assert!(
        status.success(),
        "exit after SIGTERM: {status}; stderr:\n{}",
        d.log()
    );
}
