//! Routing, a pure decision: which endpoints want an event (`event × endpoints → routes`).
//!
//! Runs at ingest so the deliveries are stored in the same transaction as the event.

use crate::config::Config;
use crate::event::{ErrorCode, Event, EventError};
use crate::store::Route;

/// The deliveries to create for `event` under `config`.
///
/// An `endpoints` list naming an endpoint the config does not have is an error (a typo
/// should surface at once, not silently drop the event).
pub fn route(config: &Config, event: &Event) -> Result<Vec<Route>, EventError> {
    if let Some(names) = &event.endpoints {
        let unknown: Vec<&str> = names
            .iter()
            .filter(|n| config.endpoint(n).is_none())
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(EventError {
                code: ErrorCode::InvalidEvent,
                message: format!(
                    "`endpoints` names unknown endpoint(s) {unknown:?}; configured: {:?}",
                    config
                        .endpoints
                        .iter()
                        .map(|e| &*e.name)
                        .collect::<Vec<_>>()
                ),
            });
        }
    }
    let mut document = None;
    let mut routes = Vec::new();
    for endpoint in &config.endpoints {
        if let Some(names) = &event.endpoints {
            if !names.iter().any(|n| **n == *endpoint.name) {
                continue;
            }
        }
        if !endpoint.filter.matches_type(&event.event_type) {
            continue;
        }
        let needs_doc = endpoint.filter.needs_document() || endpoint.order_key.is_some();
        if needs_doc && document.is_none() {
            document = Some(event.document());
        }
        if !endpoint
            .filter
            .matches(&event.event_type, document.as_ref())
        {
            continue;
        }
        let order_key = endpoint
            .order_key
            .as_ref()
            .map(|pointer| order_key(pointer, document.as_ref().and_then(|d| d.get("data"))));
        routes.push(Route {
            endpoint: endpoint.name.clone(),
            order_key,
        });
    }
    Ok(routes)
}

/// The `order_key` value of an event whose `data` is `data`: the string at `pointer`, any
/// other JSON value as text, or "" when absent (one shared key).
pub fn order_key(pointer: &str, data: Option<&serde_json::Value>) -> String {
    match data.and_then(|data| data.pointer(pointer)) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(toml: &str) -> Config {
        crate::config::parse(toml, Path::new("/etc/edgehook/test.toml")).unwrap()
    }

    fn names(routes: &[Route]) -> Vec<&str> {
        routes.iter().map(|r| &*r.endpoint).collect()
    }

    const TWO: &str = r#"
        [[endpoint]]
        name = "spark"
        url = "https://spark.example.com/hooks"
        events = ["Upload*", "PublishEngine"]
        [[endpoint]]
        name = "webex"
        url = "https://webex.example.com/hooks"
        events = ["messages.*"]
        match = { "/data/roomId" = "Y2lz" }
        order_key = "/roomId"
    "#;

    #[test]
    fn globs_select_endpoints() {
        let c = config(TWO);
        let e = Event::parse(br#"{"type":"UploadProduct","data":{}}"#).unwrap();
        assert_eq!(names(&route(&c, &e).unwrap()), ["spark"]);
        let e = Event::parse(br#"{"type":"Other","data":{}}"#).unwrap();
        assert!(route(&c, &e).unwrap().is_empty());
    }

    #[test]
    fn match_filter_and_order_key() {
        let c = config(TWO);
        let e = Event::parse(br#"{"type":"messages.created","data":{"roomId":"Y2lz"}}"#).unwrap();
        let r = route(&c, &e).unwrap();
        assert_eq!(names(&r), ["webex"]);
        assert_eq!(r[0].order_key.as_deref(), Some("Y2lz"));
        let e = Event::parse(br#"{"type":"messages.created","data":{"roomId":"other"}}"#).unwrap();
        assert!(route(&c, &e).unwrap().is_empty());
    }

    #[test]
    fn endpoints_field_restricts_and_rejects_unknown_names() {
        let c = config(TWO);
        let e =
            Event::parse(br#"{"type":"UploadProduct","data":{},"endpoints":["webex"]}"#).unwrap();
        assert!(route(&c, &e).unwrap().is_empty());
        let e =
            Event::parse(br#"{"type":"UploadProduct","data":{},"endpoints":["spakr"]}"#).unwrap();
        let err = route(&c, &e).unwrap_err();
        assert!(err.message.contains("spakr"), "{}", err.message);
    }
}
