//! A minimal HTTP/1.1 client over a Unix socket, for the CLI commands that talk to a
//! running daemon (`send`, later the admin commands) and for the demo.

use std::path::Path;

use anyhow::{anyhow, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
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
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = send(socket, req.body(Full::new(Bytes::from(body)))?).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Send `req` on a new connection to `socket`; the answer's body is left to stream.
pub async fn send<B>(socket: &Path, req: Request<B>) -> anyhow::Result<Response<Incoming>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
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
    sender
        .send_request(req)
        .await
        .map_err(|e| anyhow!("request to {} failed: {e}", socket.display()))
}
