//! `POST /v1/dead/retry` and `POST /v1/dead/purge`: queue again, or delete, the dead
//! letters a body `{"endpoint"?, "ids"?}` selects.
//!
//! The matching dead letters are read once, as a snapshot, then worked through in
//! batches of [`BATCH`]. Each batch is one writer command, so it commits inside one
//! bounded group transaction: a retry of a million dead letters never holds the queue's
//! single writer (and with it ingest and delivery outcomes) for one huge transaction, and
//! every batch that committed stays done if the daemon stops half-way. Only the snapshot
//! is touched: a dead letter that dies again after its retry, or that dies while the
//! operation runs, waits for the next one, so each is retried or purged at most once per
//! request and a purge never deletes more than it was asked to.
//!
//! The answer is `{"retried":N}` / `{"purged":N}` (rows that stopped being dead in the
//! meantime are not counted). A client sending `Accept: application/x-ndjson` gets a
//! stream instead, which the CLI draws its progress bar from: `{"done":0,"total":T}`,
//! `{"done":D,"total":T}` after each batch, then the result line. A failure after the
//! first line is a last line `{"error":{"code","message"}}` (the status was already
//! 200). A client that goes away stops the operation after the current batch.

use std::io;

use bytes::Bytes;
use http_body_util::channel::{Channel, Sender};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use hyper::{HeaderMap, Request, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{body, parse, Body};
use super::Ctx;
use crate::reply::{error, ApiError};
use crate::store::admin::DeadFilter;
use crate::store::{Store, StoreError};
use crate::transfer::routes::boxed;

/// Dead letters per writer command: a few milliseconds of the writer's time.
pub const BATCH: usize = 1000;
/// The streamed answer's media type, asked for with `Accept`.
pub const NDJSON: &str = "application/x-ndjson";

/// Which of the two operations.
#[derive(Debug, Clone, Copy)]
pub(super) enum Op {
    Retry,
    Purge,
}

impl Op {
    /// The result line's key: `retried` or `purged`.
    fn key(self) -> &'static str {
        match self {
            Op::Retry => "retried",
            Op::Purge => "purged",
        }
    }

    async fn batch(self, store: &Store, seqs: &[i64]) -> Result<u64, StoreError> {
        match self {
            Op::Retry => store.retry_dead(seqs.to_vec()).await,
            Op::Purge => store.purge_dead(seqs.to_vec()).await,
        }
    }
}

/// `{"endpoint"?, "ids"?}`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Select {
    endpoint: Option<String>,
    #[serde(default)]
    ids: Vec<String>,
}

/// Answer a retry or purge request.
pub(super) async fn route(ctx: &Ctx, req: Request<Incoming>, op: Op) -> Response<Body> {
    let streamed = wants_stream(req.headers());
    let seqs = match snapshot(ctx, req).await {
        Ok(seqs) => seqs,
        Err(e) => return boxed(error(&e)),
    };
    let store = ctx.runtime.store.clone();
    if !streamed {
        return boxed(match run(&store, op, &seqs, None).await {
            Ok(n) => crate::reply::json(200, &json!({ op.key(): n })),
            Err(e) => error(&e),
        });
    }
    let (mut tx, body) = Channel::<Bytes, io::Error>::new(2);
    tokio::spawn(async move {
        let last = match run(&store, op, &seqs, Some(&mut tx)).await {
            Ok(n) => json!({ op.key(): n }),
            Err(e) => json!({"error": e.body()}),
        };
        let _ = tx.send_data(line(&last)).await;
    });
    let mut r = Response::new(body.boxed());
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    r
}

/// Whether the client asked for the progress stream.
fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.split(';').next().unwrap_or("").trim() == NDJSON)
}

/// The rows of the dead letters the request's body selects, now.
async fn snapshot(ctx: &Ctx, req: Request<Incoming>) -> Result<Vec<i64>, ApiError> {
    let s: Select = parse(&body(req).await?)?;
    let filter = DeadFilter {
        endpoint: s.endpoint,
        ids: s.ids,
    };
    Ok(ctx.runtime.store.dead_seqs(filter).await?)
}

/// Apply `op` to `seqs` batch by batch; with `progress`, send a line before the first
/// batch and after each. Returns how many rows it changed.
async fn run(
    store: &Store,
    op: Op,
    seqs: &[i64],
    mut progress: Option<&mut Sender<Bytes, io::Error>>,
) -> Result<u64, ApiError> {
    let total = seqs.len();
    let mut changed = 0;
    let mut done = 0;
    loop {
        if let Some(tx) = progress.as_deref_mut() {
            let line = line(&json!({"done": done, "total": total}));
            if tx.send_data(line).await.is_err() {
                return Err(ApiError::new(499, "gone", "the client went away"));
            }
        }
        let Some(chunk) = seqs
            .get(done..(done + BATCH).min(total))
            .filter(|c| !c.is_empty())
        else {
            return Ok(changed);
        };
        changed += op.batch(store, chunk).await.map_err(|e| {
            let e = ApiError::from(e);
            ApiError {
                message: format!(
                    "stopped after {done} of {total} dead letters ({changed} {}): {}",
                    op.key(),
                    e.message
                ),
                ..e
            }
        })?;
        done += chunk.len();
    }
}

/// `v` as one NDJSON line.
fn line(v: &Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_is_asked_for_with_accept() {
        let with = |accept: &str| {
            let mut h = HeaderMap::new();
            h.insert(ACCEPT, HeaderValue::from_str(accept).unwrap());
            wants_stream(&h)
        };
        assert!(with("application/x-ndjson"));
        assert!(with("application/json, application/x-ndjson;q=0.9"));
        assert!(!with("application/json"));
        assert!(!wants_stream(&HeaderMap::new()));
    }
}
