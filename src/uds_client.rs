//! A minimal HTTP/1.1 client over a Unix socket, for the CLI commands that talk to a
//! running daemon (`send`, later the admin commands) and for the demo.

use std::path::Path;

use anyhow::{anyhow, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

/// Send one request and return the status and the whole body.
pub async fn request(
    socket: &Path,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> anyhow::Result<(u16, Bytes)> {
    let stream = UnixStream::connect(socket).await.with_context(|| {
        format!(
            "cannot connect to {}: is edgehook running, and may this user open the socket?",
            socket.display()
        )
    })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake over the socket failed")?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let req = req.body(Full::new(Bytes::from(body)))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| anyhow!("request to {} failed: {e}", socket.display()))?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}
