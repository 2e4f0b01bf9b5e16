//! JSON over HTTP, shared by the ingest and admin APIs: the error type with its status
//! and stable code, and the replies built from values and errors.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde_json::json;

pub type Body = Full<Bytes>;

/// Seconds a client is told to wait (`Retry-After`) when the queue is full or failing.
pub const RETRY_AFTER_SECS: u64 = 5;

/// An error answer, shared by both protocols: HTTP status, stable code, human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn too_large(what: &str, limit: usize, key: &str) -> Self {
        ApiError::new(
            413,
            "too_large",
            format!("{what} is larger than {limit} bytes ({key}); split it or raise {key}"),
        )
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError {
            retry_after: Some(RETRY_AFTER_SECS),
            ..ApiError::new(503, "unavailable", message)
        }
    }

    /// `{"code":…,"message":…}`: the inside of an error reply.
    pub fn body(&self) -> serde_json::Value {
        json!({"code": self.code, "message": self.message})
    }
}

/// A JSON reply with `status`.
pub fn json(status: u16, body: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// `{"error":{"code","message"}}` with the error's status and `Retry-After` if it has one.
pub fn error(e: &ApiError) -> Response<Body> {
    let mut r = json(e.status, &json!({"error": e.body()}));
    if let Some(secs) = e.retry_after {
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

/// 405 naming the method to use, with `Allow`.
pub fn not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = error(&ApiError::new(
        405,
        "method_not_allowed",
        format!("use {allow} on this resource"),
    ));
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}
