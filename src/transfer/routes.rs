//! The admin API's transfer routes: bundles and receipts stream through the admin socket,
//! so the operator needs the admin socket only (never the key or the queue file), and the
//! running daemon's writer does the queue work while it keeps accepting events.
//!
//! | route | request body | answer |
//! |---|---|---|
//! | `POST /v1/export` | `{"endpoints":[…]}` (empty: every configured endpoint) | the bundle, streamed; `x-edgehook-summary` |
//! | `POST /v1/import` | the bundle | the receipt (after every delivery is queued); `x-edgehook-summary` |
//! | `POST /v1/receipt` | the receipt | `{"bundle","removed","missing"}` |
//!
//! A request body is spooled to a temporary file in `daemon.state_dir` first, then read
//! twice: once to verify all of it (nothing is applied from a file that fails anywhere),
//! once to apply it in pages.

use std::io;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use chacha20poly1305::Key;
use http_body_util::channel::Channel;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::records::Site;
use crate::config::Config;
use crate::reply::{error, json, not_allowed, ApiError};
use crate::runtime::Runtime;
use crate::store::transfer::{Done, Op};

/// Admin answer bodies: JSON whole, bundles and receipts streamed.
pub type Body = BoxBody<Bytes, io::Error>;

/// The header carrying a streamed answer's JSON summary.
pub const SUMMARY_HEADER: &str = "x-edgehook-summary";

/// A whole (JSON) answer as a [`Body`] answer.
pub fn boxed(r: Response<Full<Bytes>>) -> Response<Body> {
    r.map(|b| b.map_err(|never| match never {}).boxed())
}

/// Whether `path` is one of the routes here.
pub fn is_transfer(path: &str) -> bool {
    matches!(path, "/v1/export" | "/v1/import" | "/v1/receipt")
}

/// Answer a transfer route.
pub async fn handle(req: Request<Incoming>, rt: &Arc<Runtime>) -> Response<Body> {
    if req.method() != Method::POST {
        return boxed(not_allowed("POST"));
    }
    let result = match req.uri().path() {
        "/v1/export" => super::export::run(rt, req.into_body()).await,
        "/v1/import" => super::import::run(rt, req.into_body()).await,
        _ => super::receipt::run(rt, req.into_body())
            .await
            .map(|v| boxed(json(200, &v))),
    };
    result.unwrap_or_else(|e| boxed(error(&e)))
}

/// The key from `[transfer] key`, or why transfer is off.
pub(super) fn key(config: &Config) -> Result<Key, ApiError> {
    let secret = config.transfer.key.as_ref().ok_or_else(|| {
        ApiError::new(
            409,
            "transfer_off",
            format!(
                "no [transfer] key in {}: both sites need the same key (README \"Air-gapped sites\"; make one with `{}`)",
                config.path.display(),
                super::key::HOW_TO_MAKE
            ),
        )
    })?;
    super::key::decode(secret.expose())
        .map_err(|e| ApiError::new(409, "transfer_off", format!("transfer.key: {e}")))
}

/// This relay as a transfer site.
pub(super) async fn site(rt: &Runtime) -> Result<Site, ApiError> {
    match rt.store.transfer(Op::Site).await? {
        Done::Site(id) => Ok(Site { id, host: host() }),
        other => Err(unexpected(other)),
    }
}

pub(super) fn unexpected(done: Done) -> ApiError {
    ApiError::new(500, "internal", format!("unexpected store answer {done:?}"))
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Write a request body to a temporary file in `dir` (removed when dropped).
pub(super) async fn spool(
    mut body: Incoming,
    dir: &Path,
) -> Result<tempfile::NamedTempFile, ApiError> {
    let storage = |e: io::Error| {
        ApiError::unavailable(format!(
            "cannot spool the upload in {} (daemon.state_dir): {e}",
            dir.display()
        ))
    };
    let tmp = tempfile::Builder::new()
        .prefix(".transfer-")
        .tempfile_in(dir)
        .map_err(storage)?;
    let mut file = tokio::fs::File::from_std(tmp.reopen().map_err(storage)?);
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::new(400, "upload_failed", format!("the upload stopped: {e}")))?;
        if let Ok(data) = frame.into_data() {
            file.write_all(&data).await.map_err(storage)?;
        }
    }
    file.flush().await.map_err(storage)?;
    Ok(tmp)
}

/// A streamed answer: `body` with its summary header.
pub(super) fn streamed(body: Body, summary: &Value) -> Response<Body> {
    let mut r = Response::new(body);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_bytes(summary.to_string().as_bytes()) {
        r.headers_mut().insert(SUMMARY_HEADER, v);
    }
    r
}

/// `file` as a streamed body, read in 64 KiB chunks: `progress(n)` after each chunk is
/// taken, `done()` after the last. A read error aborts the body.
pub(crate) fn file_body(
    mut file: tokio::fs::File,
    progress: impl Fn(u64) + Send + 'static,
    done: impl FnOnce() + Send + 'static,
) -> Body {
    let (mut sender, body) = Channel::<Bytes, io::Error>::new(4);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match file.read(&mut buf).await {
                Ok(0) => break done(),
                Ok(n) => {
                    let chunk = Bytes::copy_from_slice(&buf[..n]);
                    if sender.send_data(chunk).await.is_err() {
                        break;
                    }
                    progress(n as u64);
                }
                Err(e) => break sender.abort(e),
            }
        }
    });
    body.boxed()
}

/// A verification failure as a refusal: nothing of the file was applied.
pub(super) fn refused(what: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        422,
        "refused",
        format!("{what} refused, nothing of it was applied: {reason}"),
    )
}

/// Run blocking transfer work (file reading, compression, crypto) off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(500, "internal", format!("transfer task failed: {e}")))?
}
