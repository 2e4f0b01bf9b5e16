//! What goes on the wire (SPEC §4): body bytes, headers, auth, Standard Webhooks
//! signatures, and that delivered events leave the queue (SPEC §6, `keep_delivered = 0s`).
//!
//! The daemon is the real binary; the upstream is the demo's HTTPS receiver with a CA made
//! for the test, trusted through `[endpoint.tls] ca_file`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use edgehook::demo::receiver::Recorded;
use edgehook::sign;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::util::delivery::{count_by_id, pending, unix_now, wait_db, Endpoint, Upstream};
use crate::util::{event, Builder};

/// Event data with spacing and a number form a JSON re-encoder would change.
const DATA: &str = r#"{"b" : 1.50,  "a":[1, 2]}"#;
/// A Standard Webhooks secret (the one of the published test vector).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn body_text(r: &Recorded) -> &str {
    std::str::from_utf8(&r.body).expect("the body is UTF-8")
}

/// The request to `path` (exact `path_and_query`).
fn at<'a>(got: &'a [Recorded], path: &str) -> &'a Recorded {
    got.iter()
        .find(|r| r.path_and_query == path)
        .unwrap_or_else(|| panic!("no request to {path}: {got:#?}"))
}

/// The headers every delivery carries (SPEC §4), for a first attempt sent between
/// `sent_after` and `sent_before` (unix seconds).
fn assert_standard_headers(
    r: &Recorded,
    id: &str,
    event_type: &str,
    sent_after: i64,
    sent_before: i64,
) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    let agent = concat!("edgehook/", env!("CARGO_PKG_VERSION"));
    assert_eq!(r.header("user-agent"), Some(agent), "{r:?}");
    assert_eq!(r.header("webhook-id"), Some(id), "{r:?}");
    assert_eq!(r.header("edgehook-event-type"), Some(event_type), "{r:?}");
    assert_eq!(r.header("edgehook-attempt"), Some("1"), "{r:?}");
    let ts: i64 = r
        .header("webhook-timestamp")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("webhook-timestamp is unix seconds: {r:?}"));
    assert!(
        (sent_after - 1..=sent_before + 1).contains(&ts),
        "webhook-timestamp {ts} is not the time of the attempt ({sent_after}..={sent_before})"
    );
}

#[test]
fn body_and_headers_are_byte_exact() {
    let up = Upstream::start();
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let d = b
        .toml(
            &Endpoint::new("envelope", &up.url("/envelope"), &ca)
                .key(r#"headers = { "x-site" = "north", "X-Trace" = "t-1" }"#)
                .toml(),
        )
        .toml(
            &Endpoint::new("flat", &up.url("/flat"), &ca)
                .key(r#"body = "data""#)
                .toml(),
        )
        .start();

    let before = unix_now();
    let ts = "2026-01-02T03:04:05+01:00";
    let r = d.post_event(&format!(
        r#"{{"type":"Test.wire","id":"wire-1","timestamp":"{ts}","data":{DATA}}}"#
    ));
    assert_eq!(r.status, 202, "{r:?}");
    let got = up.wait_for(2);
    let after = unix_now();

    let envelope = at(&got, "/envelope");
    assert_eq!(
        body_text(envelope),
        format!(r#"{{"type":"Test.wire","timestamp":"{ts}","data":{DATA}}}"#)
    );
    assert_standard_headers(envelope, "wire-1", "Test.wire", before, after);
    assert_eq!(envelope.header("x-site"), Some("north"));
    assert_eq!(envelope.header("x-trace"), Some("t-1"));
    assert_eq!(envelope.header("webhook-signature"), None, "not signing");

    let flat = at(&got, "/flat");
    assert_eq!(
        body_text(flat),
        DATA,
        "body = \"data\" sends the data bytes"
    );
    assert_standard_headers(flat, "wire-1", "Test.wire", before, after);
    assert_eq!(flat.header("x-site"), None, "headers are per endpoint");

    // Without a timestamp the envelope carries the time of receipt, as RFC 3339.
    let before = unix_now();
    let r = d.post_event(&event("Test.wire", "wire-2", DATA));
    assert_eq!(r.status, 202, "{r:?}");
    let got = up.wait_for(4);
    let after = unix_now();
    let second = got
        .iter()
        .find(|r| r.path_and_query == "/envelope" && r.header("webhook-id") == Some("wire-2"))
        .expect("wire-2 reached /envelope");
    let body = body_text(second);
    let stamp = body
        .strip_prefix(r#"{"type":"Test.wire","timestamp":""#)
        .and_then(|rest| rest.strip_suffix(&format!(r#"","data":{DATA}}}"#)))
        .unwrap_or_else(|| panic!("envelope shape: {body}"));
    let stamp = OffsetDateTime::parse(stamp, &Rfc3339)
        .unwrap_or_else(|e| panic!("envelope timestamp {stamp:?}: {e}"))
        .unix_timestamp();
    assert!((before - 1..=after + 1).contains(&stamp), "{stamp}");
    assert_standard_headers(second, "wire-2", "Test.wire", before, after);
}

#[test]
fn auth_api_key_bearer_and_basic() {
    let up = Upstream::start();
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let auth = |name: &str, path: &str, table: &str| {
        Endpoint::new(name, &up.url(path), &ca)
            .table(&format!("[endpoint.auth]\n{table}"))
            .toml()
    };
    let d = b
        .toml(&auth(
            "key-default",
            "/key-default",
            "type = \"api-key\"\nvalue = \"k-default\"",
        ))
        .toml(&auth(
            "key-custom",
            "/key-custom",
            "type = \"api-key\"\nheader = \"x-custom-key\"\nvalue = \"k-custom\"",
        ))
        .toml(&auth(
            "key-query",
            "/key-query",
            "type = \"api-key\"\nin = \"query\"\nvalue = \"k q&1\"",
        ))
        .toml(&auth(
            "key-param",
            "/key-param?site=north",
            "type = \"api-key\"\nin = \"query\"\nparam = \"token\"\nvalue = \"k4\"",
        ))
        .toml(&auth(
            "bearer",
            "/bearer",
            "type = \"bearer\"\ntoken = \"t0k.en\"",
        ))
        .toml(&auth(
            "basic",
            "/basic",
            "type = \"basic\"\nusername = \"user\"\npassword = \"pa:ss w0rd\"",
        ))
        .start();

    let r = d.post_event(&event("Test.auth", "auth-1", "{}"));
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(
        r.json["endpoints"].as_array().map(Vec::len),
        Some(6),
        "{r:?}"
    );
    let got = up.wait_for(6);

    let basic = format!("Basic {}", B64.encode("user:pa:ss w0rd"));
    // (path and query as received, the one auth header expected there)
    let expected: [(&str, Option<(&str, &str)>); 6] = [
        ("/key-default", Some(("x-api-key", "k-default"))),
        ("/key-custom", Some(("x-custom-key", "k-custom"))),
        ("/key-query?api_key=k+q%261", None),
        ("/key-param?site=north&token=k4", None),
        ("/bearer", Some(("authorization", "Bearer t0k.en"))),
        ("/basic", Some(("authorization", &basic))),
    ];
    for (path, header) in expected {
        let r = at(&got, path);
        for name in ["x-api-key", "x-custom-key", "authorization"] {
            let want = header.filter(|(n, _)| *n == name).map(|(_, v)| v);
            assert_eq!(r.header(name), want, "{name} at {path}");
        }
    }
}

#[test]
fn standard_webhooks_signature_verifies() {
    let up = Upstream::start();
    up.receiver.verify_with(SECRET);
    let new_secret = format!("whsec_{}", B64.encode("edgehook rotation test key, 32B!"));
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let signing =
        |secrets: &str| format!("[endpoint.signing]\nscheme = \"standard-webhooks\"\n{secrets}");
    let d = b
        .toml(
            &Endpoint::new("signed", &up.url("/signed"), &ca)
                .table(&signing(&format!("secret = {SECRET:?}")))
                .toml(),
        )
        .toml(
            &Endpoint::new("rotating", &up.url("/rotating"), &ca)
                .table(&signing(&format!("secrets = [{new_secret:?}, {SECRET:?}]")))
                .toml(),
        )
        .start();

    let r = d.post_event(&event("Test.signed", "sig-1", DATA));
    assert_eq!(r.status, 202, "{r:?}");
    let got = up.wait_for(2);
    let key = sign::decode_whsec(SECRET).unwrap();
    let new_key = sign::decode_whsec(&new_secret).unwrap();
    for r in &got {
        // The receiver answers 401 to a bad signature; these were accepted.
        assert_eq!(r.signature_ok, Some(true), "{r:?}");
        let id = r.header("webhook-id").unwrap();
        let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
        let ours = sign::standard_webhooks(&key, id, ts, &r.body);
        let expected = match r.path_and_query.as_str() {
            "/signed" => ours,
            "/rotating" => format!(
                "{} {ours}",
                sign::standard_webhooks(&new_key, id, ts, &r.body)
            ),
            other => panic!("unexpected request to {other}"),
        };
        assert_eq!(r.header("webhook-signature"), Some(expected.as_str()));
    }
    assert_eq!(got.len(), 2, "a verified delivery is not repeated");
}

#[test]
fn delivered_events_leave_the_queue() {
    const N: usize = 40;
    let up = Upstream::start();
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let d = b
        .toml(&Endpoint::new("a", &up.url("/a"), &ca).toml())
        .toml(&Endpoint::new("b", &up.url("/b"), &ca).toml())
        .start();

    let batch: String = (0..N)
        .map(|n| {
            event(
                "Test.drain",
                &format!("drain-{n}"),
                &format!("{{\"n\":{n}}}"),
            ) + "\n"
        })
        .collect();
    let r = d.post("/v1/events", "application/x-ndjson", batch.as_bytes());
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.json["accepted"], N);

    let got = up.wait_for(2 * N);
    wait_db(&d, "the queue to be empty after delivery", |d| {
        pending(d) == 0
            && d.query_i64("SELECT COUNT(*) FROM deliveries", []) == 0
            && d.query_i64("SELECT COUNT(*) FROM events", []) == 0
    });
    let counts = count_by_id(&got);
    assert_eq!(counts.len(), N, "{counts:?}");
    assert!(
        counts.values().all(|&c| c == 2),
        "once per endpoint: {counts:?}"
    );
}
