//! HTTP/1.1 over the Unix socket: `POST /v1/events` (one JSON event, or an NDJSON batch
//! stored atomically) and `GET /v1/health`.
//!
//! Every resource a client can hold is bounded: connections (a semaphore of
//! `ingest.max_connections`), header bytes (hyper's read buffer), body bytes (checked
//! against `Content-Length` up front and while reading), idle and slow-header time
//! (hyper's header-read timeout, which also closes idle keep-alive connections), and
//! slow bodies ([`BODY_TIMEOUT`]). One client's misbehaviour costs only its own connection.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::UnixListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{peer, Accepted, ApiError, Ingest, Prepared};
use crate::reply::{error, json, not_allowed, Body};
use crate::store::Peer;

/// Time a client gets to send its request headers, and to start its next request on a
/// kept-alive connection before the connection is closed.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a client gets to send a whole body: generous for 16 MiB on a slow local disk,
/// short enough that a stalled client cannot hold a connection slot for long.
const BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest request head (request line + headers) accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How long open connections get to finish their request once shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serve the HTTP protocol on `listener` until `shutdown` fires, then let open requests finish.
pub async fn run(listener: UnixListener, ingest: Arc<Ingest>, shutdown: CancellationToken) {
    let max_connections = ingest.config().ingest.max_connections;
    let slots = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    while let Some((stream, permit)) =
        peer::next_client(&listener, &slots, &shutdown, "ingest.socket").await
    {
        let Ok(peer) = peer::credentials(&stream) else {
            continue;
        };
        let ingest = ingest.clone();
        let service = hyper::service::service_fn(move |req| {
            let ingest = ingest.clone();
            async move { Ok::<_, Infallible>(handle(req, &ingest, peer).await) }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                debug!(error = %err, "Ingest connection ended with an error.");
            }
            drop(permit);
        });
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("Some ingest connections did not finish in time and were closed.");
    }
}

async fn handle(req: Request<Incoming>, ingest: &Ingest, peer: Peer) -> Response<Body> {
    if !ingest.config().ingest.allows(peer.uid, peer.gid) {
        return error(&ApiError::new(
            403,
            "forbidden",
            peer::forbidden_message(&peer),
        ));
    }
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::GET, "/v1/health") => health(ingest),
        (&Method::POST, "/v1/events") => match events(req, ingest, peer).await {
            Ok(response) => response,
            Err(e) => error(&e),
        },
        (_, "/v1/health") => not_allowed("GET"),
        (_, "/v1/events") => not_allowed("POST"),
        _ => error(&ApiError::new(
            404,
            "not_found",
            format!("no such resource {path:?}; use POST /v1/events or GET /v1/health"),
        )),
    }
}

fn health(ingest: &Ingest) -> Response<Body> {
    if let Some(reason) = ingest.unhealthy() {
        let mut r = json(503, &json!({"status": "unavailable", "reason": reason}));
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("5"));
        return r;
    }
    json(200, &json!({"status": "ok"}))
}

enum Kind {
    Single,
    Batch,
}

async fn events(
    req: Request<Incoming>,
    ingest: &Ingest,
    peer: Peer,
) -> Result<Response<Body>, ApiError> {
    let kind = media_kind(req.headers().get(CONTENT_TYPE))?;
    let config = ingest.config();
    let (limit, key, what) = match kind {
        Kind::Single => (
            config.ingest.max_event_bytes,
            "ingest.max_event_bytes",
            "event",
        ),
        Kind::Batch => (
            config.ingest.max_batch_bytes,
            "ingest.max_batch_bytes",
            "batch",
        ),
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::too_large(what, limit, key));
    }
    let body =
        match tokio::time::timeout(BODY_TIMEOUT, Limited::new(req.into_body(), limit).collect())
            .await
        {
            Err(_) => {
                return Err(ApiError::new(
                    408,
                    "timeout",
                    format!("the body did not arrive within {}s", BODY_TIMEOUT.as_secs()),
                ))
            }
            Ok(Err(err)) if err.is::<http_body_util::LengthLimitError>() => {
                return Err(ApiError::too_large(what, limit, key))
            }
            Ok(Err(err)) => {
                return Err(ApiError::new(
                    400,
                    "invalid_json",
                    format!("reading the body failed: {err}"),
                ))
            }
            Ok(Ok(collected)) => collected.to_bytes(),
        };
    match kind {
        Kind::Single => {
            let prepared = ingest.prepare(&body, peer);
            let answer = ingest.accept(vec![prepared], true).await?;
            let accepted = answer.into_iter().next().expect("one answer per item")?;
            Ok(single_reply(&accepted))
        }
        Kind::Batch => batch(&body, ingest, peer).await,
    }
}

fn single_reply(a: &Accepted) -> Response<Body> {
    if a.duplicate {
        json(200, &json!({"id": a.id, "duplicate": true}))
    } else {
        let endpoints: Vec<&str> = a.endpoints.iter().map(|e| &**e).collect();
        json(202, &json!({"id": a.id, "endpoints": endpoints}))
    }
}

async fn batch(body: &[u8], ingest: &Ingest, peer: Peer) -> Result<Response<Body>, ApiError> {
    let mut items: Vec<Prepared> = Vec::new();
    let mut bad: Vec<(usize, ApiError)> = Vec::new();
    for (n, line) in ndjson_lines(body) {
        match ingest.prepare(line, peer) {
            Ok(item) => items.push(Ok(item)),
            Err(e) => bad.push((n, e)),
        }
    }
    if !bad.is_empty() {
        ingest.count_rejected(items.len() + bad.len());
        return Err(batch_error(bad));
    }
    if items.is_empty() {
        return Err(ApiError::new(
            400,
            "invalid_event",
            "the batch is empty: send one JSON event per line",
        ));
    }
    let answers = ingest.accept(items, true).await?;
    let mut ids = Vec::with_capacity(answers.len());
    let mut duplicates = Vec::new();
    for answer in answers {
        let a = answer?;
        if a.duplicate {
            duplicates.push(a.id.clone());
        }
        ids.push(a.id);
    }
    let mut reply = json!({"accepted": ids.len() - duplicates.len(), "ids": ids});
    if !duplicates.is_empty() {
        reply["duplicates"] = json!(duplicates);
    }
    Ok(json(202, &reply))
}

/// The events of an NDJSON body with their 1-based line numbers: lines split at `\n`, a
/// `\r` before it dropped, blank lines skipped. Pure, fuzzed in `fuzz/`.
pub fn ndjson_lines(body: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    body.split(|b| *b == b'\n')
        .enumerate()
        .map(|(n, line)| (n + 1, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
}

/// One error for a batch with bad lines: every line number, nothing stored.
fn batch_error(bad: Vec<(usize, ApiError)>) -> ApiError {
    let status = if bad.iter().any(|(_, e)| e.status == 413) {
        413
    } else {
        400
    };
    let code = bad
        .iter()
        .find(|(_, e)| e.status == status)
        .map(|(_, e)| e.code)
        .unwrap_or("invalid_event");
    let lines: Vec<String> = bad.iter().map(|(n, _)| n.to_string()).collect();
    let details: Vec<String> = bad
        .iter()
        .take(10)
        .map(|(n, e)| format!("line {n}: {}", e.message))
        .collect();
    let more = if bad.len() > 10 {
        format!("; and {} more", bad.len() - 10)
    } else {
        String::new()
    };
    ApiError::new(
        status,
        code,
        format!(
            "batch rejected, nothing stored; bad line(s) {}: {}{more}",
            lines.join(", "),
            details.join("; ")
        ),
    )
}

fn media_kind(value: Option<&HeaderValue>) -> Result<Kind, ApiError> {
    let media = value.and_then(|v| v.to_str().ok()).map(|v| {
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    match media.as_deref() {
        Some("application/json") => Ok(Kind::Single),
        Some("application/x-ndjson" | "application/ndjson" | "application/jsonl") => Ok(Kind::Batch),
        other => Err(ApiError::new(
            415,
            "unsupported_media_type",
            format!(
                "Content-Type {} is not supported: send application/json (one event) or application/x-ndjson (a batch); with curl add -H 'Content-Type: application/json'",
                other.map(|m| format!("{m:?}")).unwrap_or_else(|| "(missing)".into())
            ),
        )),
    }
}
