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
/// Deepest nesting of arrays and objects accepted in `data`: serde_json's recursion
/// limit, which `match` filters and `order_key` (they parse `data`) are subject to. Deeper
/// data could not be routed, and is a stack-overflow hazard for receivers' parsers.
const MAX_DEPTH: usize = 128;

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
        validate_depth(wire.data.get())?;
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
        /// Rough per-row overhead of the events table and its delivery rows.
        const ROW_OVERHEAD: u64 = 64;
        (self.data.get().len() + self.event_type.len() + self.id.len() + self.timestamp.len())
            as u64
            + ROW_OVERHEAD
    }
}

/// A serde error as the API reports it: bad syntax (with line and column, also for
/// nesting deeper than serde_json's limit of 128) is `invalid_json`, a wrong shape
/// `invalid_event`.
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

/// `data` (valid JSON) nests at most [`MAX_DEPTH`] arrays and objects.
fn validate_depth(data: &str) -> Result<(), EventError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, b) in data.bytes().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(EventError::invalid(format!(
                        "`data` nests arrays and objects deeper than {MAX_DEPTH} levels (at byte {i} of data); flatten it"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
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
    fn data_nests_at_most_128_levels() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let body = |data: &str| format!(r#"{{"type":"t","data":{data}}}"#);
        assert!(Event::parse(body(&nested(128)).as_bytes()).is_ok());
        let e = err(&body(&nested(129)));
        assert_eq!(e.code, ErrorCode::InvalidEvent);
        assert!(e.message.contains("deeper than 128"), "{}", e.message);
        let e = err(&body(&nested(100_000)));
        assert!(e.message.contains("at byte 128 of data"), "{}", e.message);
        let objects = format!("{}1{}", r#"{"a":"#.repeat(200), "}".repeat(200));
        assert_eq!(err(&body(&objects)).code, ErrorCode::InvalidEvent);
        // Brackets inside strings (escaped quotes included) are not nesting.
        let text = format!(r#"["\"{}"]"#, "[".repeat(500));
        assert!(Event::parse(body(&text).as_bytes()).is_ok());
        // A top-level array is not an event, however deep, and is no crash.
        assert_eq!(err(&nested(100_000)).code, ErrorCode::InvalidEvent);
    }

    #[test]
    fn document_exposes_data_for_pointers() {
        let e = Event::parse(br#"{"type":"t","data":{"roomId":"Y2l"}}"#).unwrap();
        let doc = e.document();
        assert_eq!(doc.pointer("/data/roomId").unwrap(), "Y2l");
        assert_eq!(doc.pointer("/type").unwrap(), "t");
    }
}
