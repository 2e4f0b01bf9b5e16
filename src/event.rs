//! The validated [`Event`]: the only type that crosses ingest → store → deliver.
//!
//! Parsing is pure (`&[u8]` in, `Event` or [`EventError`] out) so it is unit-tested here
//! and fuzzable. The `data` member is kept as the exact bytes the app sent
//! ([`RawValue`]), because the contract forwards it byte for byte.

use serde::Deserialize;
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Longest `type` and `id`, from the contract (SPEC §1).
const MAX_TYPE_LEN: usize = 128;
const MAX_ID_LEN: usize = 128;

/// A valid event, ready to be routed and stored.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    /// True when edgehook made up the id (`evt_` + ULID); such ids need no dedupe check.
    pub id_assigned: bool,
    pub event_type: String,
    /// RFC 3339, as the app sent it or the time of receipt.
    pub timestamp: String,
    /// The `data` member, byte for byte.
    pub data: Box<RawValue>,
    /// `endpoints`: deliver only to these (still subject to their filters).
    pub endpoints: Option<Vec<String>>,
}

/// Why a body is not an event; `code` is the API error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EventError {
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidJson,
    InvalidEvent,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidEvent => "invalid_event",
        }
    }
}

impl EventError {
    fn invalid(message: impl Into<String>) -> Self {
        EventError {
            code: ErrorCode::InvalidEvent,
            message: message.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    #[serde(rename = "type")]
    event_type: String,
    data: Box<RawValue>,
    id: Option<String>,
    timestamp: Option<String>,
    endpoints: Option<Vec<String>>,
}

impl Event {
    /// Parse and validate one event from JSON bytes.
    pub fn parse(bytes: &[u8]) -> Result<Event, EventError> {
        // serde reads a JSON array into a struct too (its fields in order), so
        // `["t", 1]` would pass as an event: only an object is one.
        let first = bytes
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
        if first.is_some_and(|b| *b != b'{') {
            return Err(
                match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                    Err(err) => json_error(err),
                    Ok(_) => EventError::invalid(
                        "an event is a JSON object, e.g. {\"type\":\"UploadProduct\",\"data\":{…}}",
                    ),
                },
            );
        }
        let wire: Wire = serde_json::from_slice(bytes).map_err(json_error)?;
        validate_type(&wire.event_type)?;
        validate_readable(bytes)?;
        let (id, id_assigned) = match wire.id {
            Some(id) => {
                validate_id(&id)?;
                (id, false)
            }
            None => (new_id(), true),
        };
        let timestamp = match wire.timestamp {
            Some(ts) => {
                OffsetDateTime::parse(&ts, &Rfc3339).map_err(|err| {
                    EventError::invalid(format!(
                        "`timestamp` {ts:?} is not an RFC 3339 date-time ({err}); e.g. \"2026-11-25T08:00:00Z\""
                    ))
                })?;
                ts
            }
            None => now_rfc3339(),
        };
        if let Some(endpoints) = &wire.endpoints {
            if endpoints.is_empty() {
                return Err(EventError::invalid(
                    "`endpoints` is an empty list; omit it to deliver to every subscribed endpoint",
                ));
            }
        }
        Ok(Event {
            id,
            id_assigned,
            event_type: wire.event_type,
            timestamp,
            data: wire.data,
            endpoints: wire.endpoints,
        })
    }

    /// The event as a JSON document (`type`, `id`, `timestamp`, `data`), for `match` filters.
    pub fn document(&self) -> serde_json::Value {
        let data: serde_json::Value =
            serde_json::from_str(self.data.get()).unwrap_or(serde_json::Value::Null);
        serde_json::json!({
            "type": self.event_type,
            "id": self.id,
            "timestamp": self.timestamp,
            "data": data,
        })
    }

    /// Bytes this event occupies in the queue, for `queue.max_bytes` accounting.
    pub fn stored_size(&self) -> u64 {
        stored_size(
            &self.id,
            &self.event_type,
            &self.timestamp,
            self.data.get().len(),
        )
    }
}

/// What an event counts against `queue.max_bytes`: its text plus a rough row overhead
/// (also used for events queued by `edgehook import`).
pub fn stored_size(id: &str, event_type: &str, timestamp: &str, data_len: usize) -> u64 {
    /// Rough per-row overhead of the events table and its delivery rows.
    const ROW_OVERHEAD: u64 = 64;
    (data_len + event_type.len() + id.len() + timestamp.len()) as u64 + ROW_OVERHEAD
}

/// A serde error as the API reports it: bad syntax is `invalid_json`, a wrong shape
/// `invalid_event`; serde_json's message names the line and column.
fn json_error(err: serde_json::Error) -> EventError {
    use serde_json::error::Category;
    let code = match err.classify() {
        Category::Data => ErrorCode::InvalidEvent,
        Category::Io | Category::Syntax | Category::Eof => ErrorCode::InvalidJson,
    };
    let message = match code {
        ErrorCode::InvalidJson => format!("body is not valid JSON: {err}"),
        ErrorCode::InvalidEvent => format!("not a valid event: {err}"),
    };
    EventError { code, message }
}

/// Read the whole body once more as a document, keeping nothing, to check what
/// serde_json's `RawValue` lets through unread in `data`: nesting deeper than serde_json's
/// limit of 127 levels (the event object is one of them), numbers beyond the range of
/// f64 (`1e999`) and unpaired UTF-16 surrogate escapes (`"\ud800"`). Such data passes the
/// JSON grammar, but no document can be made of it: `match` filters and `order_key` would
/// silently see no `data`, and receivers differ on what it means. The errors name the line
/// and column in the body.
fn validate_readable(body: &[u8]) -> Result<(), EventError> {
    let Err(err) = serde_json::from_slice::<Readable>(body) else {
        return Ok(());
    };
    if err.to_string().starts_with("recursion limit exceeded") {
        return Err(EventError::invalid(format!(
            "the event nests arrays and objects more than 127 levels deep (at line {} column {}); flatten `data`",
            err.line(),
            err.column()
        )));
    }
    Err(json_error(err))
}

/// Any JSON value, read in full (strings decoded, numbers converted) and dropped.
struct Readable;

impl<'de> Deserialize<'de> for Readable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Readable, D::Error> {
        d.deserialize_any(Readable)
    }
}

impl<'de> serde::de::Visitor<'de> for Readable {
    type Value = Readable;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_str<E>(self, _: &str) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_unit<E>(self) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Readable, A::Error> {
        while seq.next_element::<Readable>()?.is_some() {}
        Ok(Readable)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Readable, A::Error> {
        while map.next_entry::<Readable, Readable>()?.is_some() {}
        Ok(Readable)
    }
}

fn validate_type(t: &str) -> Result<(), EventError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "._:/-".contains(c);
    if t.is_empty() || t.len() > MAX_TYPE_LEN {
        return Err(EventError::invalid(format!(
            "`type` must be 1–{MAX_TYPE_LEN} characters, got {}",
            t.len()
        )));
    }
    if let Some(bad) = t.chars().find(|c| !ok_char(*c)) {
        return Err(EventError::invalid(format!(
            "`type` {t:?} contains {bad:?}; allowed are A-Z a-z 0-9 . _ : / -"
        )));
    }
    Ok(())
}

fn validate_id(id: &str) -> Result<(), EventError> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(EventError::invalid(format!(
            "`id` must be 1–{MAX_ID_LEN} characters, got {}",
            id.len()
        )));
    }
    if !id.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(EventError::invalid(
            "`id` must be printable ASCII (no control characters or non-ASCII)",
        ));
    }
    Ok(())
}

/// A fresh event id: `evt_` + ULID (sortable by time, unique without coordination).
pub fn new_id() -> String {
    format!("evt_{}", ulid::Ulid::new())
}

/// Now as RFC 3339 UTC with millisecond precision.
pub fn now_rfc3339() -> String {
    let now = OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
        .unwrap_or(now);
    now.format(&Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> EventError {
        Event::parse(s.as_bytes()).unwrap_err()
    }

    #[test]
    fn minimal_event_gets_id_and_timestamp() {
        let e = Event::parse(br#"{"type":"UploadProduct","data":{"a": 1}}"#).unwrap();
        assert!(e.id.starts_with("evt_") && e.id.len() == 30, "{}", e.id);
        assert!(e.id_assigned);
        assert_eq!(e.event_type, "UploadProduct");
        assert!(OffsetDateTime::parse(&e.timestamp, &Rfc3339).is_ok());
        assert_eq!(e.endpoints, None);
    }

    #[test]
    fn data_is_kept_byte_for_byte() {
        let body = br#"{"type":"t","data":{"b" : 1.50,   "a":"\u00e9"}}"#;
        let e = Event::parse(body).unwrap();
        assert_eq!(e.data.get(), r#"{"b" : 1.50,   "a":"\u00e9"}"#);
        let e = Event::parse(br#"{"type":"t","data":null}"#).unwrap();
        assert_eq!(e.data.get(), "null");
    }

    #[test]
    fn explicit_fields_are_kept() {
        let e = Event::parse(
            br#"{"type":"flows/comments.updated","data":1,"id":"abc 1","timestamp":"2026-01-02T03:04:05+01:00","endpoints":["spark"]}"#,
        )
        .unwrap();
        assert_eq!(e.id, "abc 1");
        assert!(!e.id_assigned);
        assert_eq!(e.timestamp, "2026-01-02T03:04:05+01:00");
        assert_eq!(e.endpoints, Some(vec!["spark".to_string()]));
    }

    #[test]
    fn syntax_errors_are_invalid_json_with_position() {
        let e = err("{\"type\":\"t\",\n \"data\": }");
        assert_eq!(e.code, ErrorCode::InvalidJson);
        assert!(e.message.contains("line 2 column"), "{}", e.message);
        assert_eq!(err("").code, ErrorCode::InvalidJson);
        assert_eq!(
            err("{\"type\":\"t\",\"data\":1} x").code,
            ErrorCode::InvalidJson
        );
        assert_eq!(err("[1,").code, ErrorCode::InvalidJson);
        let unclosed = "[".repeat(10_000);
        let e = err(&unclosed);
        assert_eq!(e.code, ErrorCode::InvalidJson);
        assert!(e.message.contains("line 1 column"), "{}", e.message);
        let e = err(&format!(r#"{{"type":"t","data":{unclosed}}}"#));
        assert_eq!(e.code, ErrorCode::InvalidJson);
    }

    #[test]
    fn shape_errors_are_invalid_event() {
        for (body, needle) in [
            (r#"{"data":1}"#, "missing field `type`"),
            (r#"{"type":"t"}"#, "missing field `data`"),
            (r#"{"type":5,"data":1}"#, "invalid type"),
            (r#"{"type":"t","data":1,"tpye":2}"#, "unknown field `tpye`"),
            (r#"[1,2]"#, "JSON object"),
            (r#" ["t", {"a": 1}]"#, "JSON object"),
            (r#""t""#, "JSON object"),
            (r#"{"type":"","data":1}"#, "1–128"),
            (r#"{"type":"a b","data":1}"#, "contains ' '"),
            (r#"{"type":"t","data":1,"id":""}"#, "`id`"),
            (r#"{"type":"t","data":1,"id":"a\u0001"}"#, "printable"),
            (
                r#"{"type":"t","data":1,"timestamp":"yesterday"}"#,
                "RFC 3339",
            ),
            (r#"{"type":"t","data":1,"endpoints":[]}"#, "empty list"),
        ] {
            let e = err(body);
            assert_eq!(e.code, ErrorCode::InvalidEvent, "{body}");
            assert!(e.message.contains(needle), "{body}: {}", e.message);
        }
        let long = format!(r#"{{"type":"{}","data":1}}"#, "a".repeat(129));
        assert_eq!(err(&long).code, ErrorCode::InvalidEvent);
    }

    #[test]
    fn events_nest_at_most_127_levels() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let body = |data: &str| format!(r#"{{"type":"t","data":{data}}}"#);
        // The event object is the first level, as for serde_json's documents.
        assert!(Event::parse(body(&nested(126)).as_bytes()).is_ok());
        let e = err(&body(&nested(127)));
        assert_eq!(e.code, ErrorCode::InvalidEvent);
        assert!(e.message.contains("more than 127 levels"), "{}", e.message);
        let e = err(&body(&nested(100_000)));
        assert!(e.message.contains("line 1 column 146"), "{}", e.message);
        let objects = format!("{}1{}", r#"{"a":"#.repeat(200), "}".repeat(200));
        assert_eq!(err(&body(&objects)).code, ErrorCode::InvalidEvent);
        // Brackets inside strings (escaped quotes included) are not nesting.
        let text = format!(r#"["\"{}"]"#, "[".repeat(500));
        assert!(Event::parse(body(&text).as_bytes()).is_ok());
        // A top-level array is not an event, however deep, and is no crash.
        assert_eq!(err(&nested(100_000)).code, ErrorCode::InvalidEvent);
    }

    #[test]
    fn data_must_be_readable_as_a_document() {
        let e =
            Event::parse(br#"{"type":"t","data":["\ud83d\ude00 \u00e9 \\ud800", 1e308]}"#).unwrap();
        assert!(e.document()["data"][0].is_string(), "a pair is a character");
        for body in [
            r#"{"type":"t","data":"\ud800"}"#,
            r#"{"type":"t","data":{"k\udc00":1}}"#,
            r#"{"type":"t","data":"\ud800\u0041"}"#,
            r#"{"type":"t","data":"\ud800"#,
            r#"{"type":"t","data":[1e999]}"#,
            r#"{"type":"t","data":-1e400}"#,
        ] {
            let e = err(body);
            assert_eq!(e.code, ErrorCode::InvalidJson, "{body}");
            assert!(e.message.contains("line 1 column"), "{body}: {}", e.message);
        }
        let e = err("{\"type\":\"t\",\n\"data\":[\"\\udbff\"]}");
        assert!(e.message.contains("at line 2 column"), "{}", e.message);
    }

    #[test]
    fn document_exposes_data_for_pointers() {
        let e = Event::parse(br#"{"type":"t","data":{"roomId":"Y2l"}}"#).unwrap();
        let doc = e.document();
        assert_eq!(doc.pointer("/data/roomId").unwrap(), "Y2l");
        assert_eq!(doc.pointer("/type").unwrap(), "t");
    }
}
