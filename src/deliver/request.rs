//! Building the webhook request for one delivery attempt (SPEC §4): URL (with a query
//! api-key), body (`envelope` or `data`, the data bytes verbatim), the `webhook-*` and
//! `edgehook-*` headers, custom headers, auth and signature. Pure apart from reading
//! the already-resolved secrets.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    HeaderName, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, USER_AGENT,
};
use hyper::{Method, Request, Uri};

use crate::config::{ApiKeyPlacement, AuthConfig, BodyMode, Compress, EndpointConfig};
use crate::sign::Signer;
use crate::store::deliveries::Due;

/// `user-agent` of every request.
pub const USER_AGENT_VALUE: &str = concat!("edgehook/", env!("CARGO_PKG_VERSION"));

/// The request body for `due` under `mode`.
pub fn body(mode: BodyMode, due: &Due) -> Vec<u8> {
    match mode {
        BodyMode::Data => due.data.clone(),
        BodyMode::Envelope => {
            let mut out = Vec::with_capacity(due.data.len() + due.event_type.len() + 64);
            out.extend_from_slice(b"{\"type\":");
            out.extend_from_slice(
                serde_json::to_string(&due.event_type)
                    .unwrap_or_default()
                    .as_bytes(),
            );
            out.extend_from_slice(b",\"timestamp\":");
            out.extend_from_slice(
                serde_json::to_string(&due.timestamp)
                    .unwrap_or_default()
                    .as_bytes(),
            );
            out.extend_from_slice(b",\"data\":");
            out.extend_from_slice(&due.data);
            out.push(b'}');
            out
        }
    }
}

/// The full request for attempt number `attempt` (1-based) at unix time `now_secs`.
pub fn build(
    endpoint: &EndpointConfig,
    signer: Option<&Signer>,
    due: &Due,
    attempt: u32,
    now_secs: i64,
) -> Result<Request<Full<Bytes>>, String> {
    let body = body(endpoint.body, due);
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(uri(endpoint)?)
        .header(CONTENT_TYPE, "application/json")
        .header(USER_AGENT, USER_AGENT_VALUE)
        .header("webhook-id", header_value(&due.event_id)?)
        .header("webhook-timestamp", now_secs)
        .header("edgehook-event-type", header_value(&due.event_type)?)
        .header("edgehook-attempt", attempt);
    let headers = req.headers_mut().ok_or("invalid request")?;
    for (name, value) in &endpoint.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
        headers.insert(name, header_value(value)?);
    }
    match &endpoint.auth {
        Some(AuthConfig::ApiKey {
            placement: ApiKeyPlacement::Header(name),
            value,
        }) => {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
            headers.insert(name, sensitive(value.expose())?);
        }
        Some(AuthConfig::Bearer { token }) => {
            headers.insert(
                AUTHORIZATION,
                sensitive(&format!("Bearer {}", token.expose()))?,
            );
        }
        Some(AuthConfig::Basic { username, password }) => {
            let creds = B64.encode(format!("{username}:{}", password.expose()));
            headers.insert(AUTHORIZATION, sensitive(&format!("Basic {creds}"))?);
        }
        Some(AuthConfig::ApiKey {
            placement: ApiKeyPlacement::Query(_),
            ..
        })
        | None => {}
    }
    if let Some(signer) = signer {
        let (name, value) = signer.sign(&due.event_id, now_secs, &body);
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
        headers.insert(name, sensitive(&value)?);
    }
    // Signatures are over the uncompressed body; compression is only the transport.
    let body = match endpoint.compress {
        Some(Compress::Gzip) => {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            gzip(&body)
        }
        None => body,
    };
    req.body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())
}

fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 2 + 32),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

/// The endpoint URL, with the api key appended to the query when configured so.
fn uri(endpoint: &EndpointConfig) -> Result<Uri, String> {
    let Some(AuthConfig::ApiKey {
        placement: ApiKeyPlacement::Query(param),
        value,
    }) = &endpoint.auth
    else {
        return Ok(endpoint.url.clone());
    };
    let mut parts = endpoint.url.clone().into_parts();
    let path = parts
        .path_and_query
        .as_ref()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let pair: String = form_urlencoded::Serializer::new(String::new())
        .append_pair(param, value.expose())
        .finish();
    let sep = if path.contains('?') { '&' } else { '?' };
    parts.path_and_query = Some(
        format!("{path}{sep}{pair}")
            .parse()
            .map_err(|e| format!("{e}"))?,
    );
    Uri::from_parts(parts).map_err(|e| e.to_string())
}

fn header_value(v: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(v).map_err(|_| format!("{v:?} cannot be sent as an HTTP header value"))
}

/// A header value marked sensitive, so hyper never prints it in debug output.
fn sensitive(v: &str) -> Result<HeaderValue, String> {
    let mut value = HeaderValue::from_str(v)
        .map_err(|_| "a secret cannot be sent as an HTTP header value".to_string())?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due() -> Due {
        Due {
            seq: 1,
            next_at: 0,
            attempts: 0,
            created_at: 0,
            order_key: None,
            event_id: "evt_1".into(),
            event_type: "UploadProduct".into(),
            timestamp: "2026-11-25T08:00:00Z".into(),
            data: br#"{"b" : 1.50}"#.to_vec(),
        }
    }

    fn endpoint(extra: &str) -> EndpointConfig {
        let toml =
            format!("[[endpoint]]\nname = \"e\"\nurl = \"https://x.example/h?a=1\"\n{extra}");
        let c = crate::config::parse(&toml, std::path::Path::new("/t.toml")).unwrap();
        (*c.endpoints[0]).clone()
    }

    #[test]
    fn envelope_keeps_data_bytes() {
        assert_eq!(
            body(BodyMode::Envelope, &due()),
            br#"{"type":"UploadProduct","timestamp":"2026-11-25T08:00:00Z","data":{"b" : 1.50}}"#
        );
        assert_eq!(body(BodyMode::Data, &due()), br#"{"b" : 1.50}"#);
    }

    #[test]
    fn headers_auth_and_query_key() {
        let e = endpoint("headers = { \"x-site\" = \"north\" }\n[endpoint.auth]\ntype = \"api-key\"\nin = \"query\"\nvalue = \"k y\"");
        let r = build(&e, None, &due(), 2, 1_700_000_000).unwrap();
        assert_eq!(r.uri().to_string(), "https://x.example/h?a=1&api_key=k+y");
        let h = r.headers();
        assert_eq!(h["webhook-id"], "evt_1");
        assert_eq!(h["webhook-timestamp"], "1700000000");
        assert_eq!(h["edgehook-attempt"], "2");
        assert_eq!(h["edgehook-event-type"], "UploadProduct");
        assert_eq!(h["x-site"], "north");
        assert_eq!(h["user-agent"], USER_AGENT_VALUE);
        let e = endpoint("[endpoint.auth]\ntype = \"basic\"\nusername = \"u\"\npassword = \"p\"");
        let r = build(&e, None, &due(), 1, 0).unwrap();
        assert_eq!(r.headers()[AUTHORIZATION], "Basic dTpw");
        assert!(format!("{:?}", r.headers()).contains("Sensitive"));
    }

    #[test]
    fn gzip_compresses_after_signing() {
        use std::io::Read;
        let e = endpoint(
            "compress = \"gzip\"\n[endpoint.signing]\nscheme = \"hmac-sha256\"\nsecret = \"k\"",
        );
        let signer = Signer::new(e.signing.as_ref().unwrap()).unwrap();
        let r = build(&e, Some(&signer), &due(), 1, 0).unwrap();
        assert_eq!(r.headers()[CONTENT_ENCODING], "gzip");
        let plain = body(BodyMode::Envelope, &due());
        let (_, expected) = signer.sign("evt_1", 0, &plain);
        assert_eq!(r.headers()["x-hub-signature-256"], expected.as_str());
        let compressed = futures_body(r);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&compressed[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, plain);
    }

    fn futures_body(r: Request<Full<Bytes>>) -> Vec<u8> {
        use http_body_util::BodyExt;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(r.into_body().collect())
            .unwrap()
            .to_bytes()
            .to_vec()
    }
}
