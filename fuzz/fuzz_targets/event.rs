//! `Event::parse` on any bytes, alone and as the lines of an NDJSON batch
//! (`ingest::http::ndjson_lines`): never a panic, a hang or a stack overflow, and an
//! accepted event keeps the contract — it is a JSON object, `data` is the sender's bytes
//! verbatim and parses as the document filters use, `type` and `id` are within their
//! character sets and lengths.
#![no_main]

use edgehook::event::Event;
use edgehook::ingest::http::ndjson_lines;
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    let Ok(event) = Event::parse(bytes) else {
        return;
    };
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    assert_eq!(first, Some(&b'{'), "only a JSON object is an event");
    let data = event.data.get();
    assert!(
        bytes.windows(data.len()).any(|w| w == data.as_bytes()),
        "data is a verbatim slice of the input"
    );
    // Parsed the way `match` filters and `order_key` see it (serde_json's depth limit).
    serde_json::from_str::<serde_json::Value>(data).expect("data parses as a document");
    assert!((1..=128).contains(&event.event_type.len()));
    assert!(event
        .event_type
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._:/-".contains(c)));
    assert!((1..=128).contains(&event.id.len()));
    assert!(event.id.bytes().all(|b| (0x20..0x7f).contains(&b)));
    let _ = event.document();
    let _ = event.stored_size();
}

fuzz_target!(|bytes: &[u8]| {
    check(bytes);
    let mut last = 0;
    for (n, line) in ndjson_lines(bytes) {
        assert!(n > last, "line numbers increase");
        last = n;
        assert!(!line.contains(&b'\n'));
        assert!(!line.iter().all(u8::is_ascii_whitespace));
        check(line);
    }
});
