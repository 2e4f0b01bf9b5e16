//! An endpoint's `headers`: valid names and values, none that edgehook,
//! `[endpoint.auth]` or `[endpoint.signing]` already write, no name twice.

use std::collections::HashMap;

use hyper::header::{HeaderName, HeaderValue};

use super::Ctx;
use crate::config::raw::RawEndpoint;
use crate::config::{ApiKeyPlacement, AuthConfig, SigningConfig};

/// Headers edgehook writes itself on every delivery (SPEC §4); `headers` may not set them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "content-type",
    "content-encoding",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "edgehook-event-type",
    "edgehook-attempt",
];

impl Ctx<'_> {
    pub(super) fn headers(
        &mut self,
        raw: &RawEndpoint,
        label: &str,
        auth: Option<&AuthConfig>,
        signing: Option<&SigningConfig>,
    ) -> Vec<(String, String)> {
        let Some(table) = &raw.headers else {
            return Vec::new();
        };
        let auth_header = match auth {
            Some(AuthConfig::ApiKey {
                placement: ApiKeyPlacement::Header(name),
                ..
            }) => Some(name.clone()),
            Some(AuthConfig::Bearer { .. } | AuthConfig::Basic { .. }) => {
                Some("authorization".to_owned())
            }
            _ => None,
        };
        let mut seen: HashMap<String, &str> = HashMap::new();
        let mut headers = Vec::new();
        let mut entries: Vec<_> = table.get_ref().iter().collect();
        entries.sort_by_key(|(name, _)| name.span().start);
        for (name, value) in entries {
            let written = name.get_ref();
            let header = match HeaderName::from_bytes(written.as_bytes()) {
                Ok(header) => header,
                Err(_) => {
                    self.error(
                        name.span(),
                        format!("{label}: headers: {written:?} is not a valid HTTP header name"),
                    );
                    continue;
                }
            };
            let lower = header.as_str().to_owned();
            if RESERVED_HEADERS.contains(&lower.as_str()) {
                self.error(
                    name.span(),
                    format!("{label}: headers: {written} is set by edgehook on every delivery"),
                );
            } else if auth_header.as_deref() == Some(lower.as_str()) {
                self.error(
                    name.span(),
                    format!("{label}: headers: {written} is already set by [endpoint.auth]"),
                );
            } else if signing.is_some_and(|s| s.header == lower) {
                self.error(
                    name.span(),
                    format!("{label}: headers: {written} is already set by [endpoint.signing]"),
                );
            } else if let Some(first) = seen.get(&lower) {
                self.error(
                    name.span(),
                    format!(
                        "{label}: headers: {written} repeats {first} (header names ignore case)"
                    ),
                );
            }
            seen.insert(lower.clone(), written);
            if HeaderValue::from_str(value.get_ref()).is_err() {
                self.error(
                    value.span(),
                    format!(
                        "{label}: headers.{written}: not a valid HTTP header value \
                         (control characters or non-ASCII)"
                    ),
                );
            }
            headers.push((lower, value.get_ref().clone()));
        }
        headers
    }
}
