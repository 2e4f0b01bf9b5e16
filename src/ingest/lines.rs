//! The line protocol: one JSON event per input line, one reply line per input line, in
//! order, each written after its event's commit.
//!
//! Per connection a reader task splits the byte stream into lines (an over-long line is
//! answered `too_large` and skipped up to the next newline, so the stream resynchronises)
//! and a committer takes *every* line that has arrived while the previous commit was in
//! flight and stores them as one call: a client that pipelines thousands of lines shares
//! one fsync among them, and order is kept because one connection commits sequentially.

use std::sync::Arc;

use bytes::BytesMut;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{peer, Accepted, ApiError, Ingest, Prepared};
use crate::store::Peer;

/// Most lines stored in one call: bounds one commit's size and a reply burst.
const MAX_LINES_PER_COMMIT: usize = 8192;
/// Read chunks queued between reader and committer: the pipelining depth per connection.
const QUEUED_CHUNKS: usize = 64;
/// Socket read size.
const READ_CHUNK: usize = 64 * 1024;

enum Line {
    Bytes(Vec<u8>),
    TooLong,
}

/// Serve the line protocol on `listener` until `shutdown` fires.
pub async fn run(listener: UnixListener, ingest: Arc<Ingest>, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(ingest.config().ingest.max_connections));
    while let Some((stream, permit)) =
        peer::next_client(&listener, &slots, &shutdown, "ingest.lines_socket").await
    {
        let ingest = ingest.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(err) = serve(stream, &ingest, shutdown).await {
                debug!(error = %err, "Line-socket connection ended with an error.");
            }
            drop(permit);
        });
    }
}

async fn serve(
    stream: UnixStream,
    ingest: &Ingest,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let peer = peer::credentials(&stream)?;
    let (rd, wr) = stream.into_split();
    let mut wr = BufWriter::new(wr);
    if !ingest.config().ingest.allows(peer.uid, peer.gid) {
        let e = ApiError::new(403, "forbidden", peer::forbidden_message(&peer));
        wr.write_all(&reply(&Err(e))).await?;
        return wr.flush().await;
    }
    let max_line = ingest.config().ingest.max_event_bytes;
    let (tx, mut rx) = mpsc::channel(QUEUED_CHUNKS);
    let reader = tokio::spawn(read_lines(rd, max_line, tx, shutdown));
    while let Some(first) = rx.recv().await {
        let mut lines: Vec<Line> = first;
        while lines.len() < MAX_LINES_PER_COMMIT {
            match rx.try_recv() {
                Ok(more) => lines.extend(more),
                Err(_) => break,
            }
        }
        let out = commit(ingest, peer, lines).await;
        wr.write_all(&out).await?;
        if rx.is_empty() {
            wr.flush().await?;
        }
    }
    wr.flush().await?;
    reader.await.unwrap_or(Ok(()))
}

/// Store one group of lines and render their reply lines, in input order.
async fn commit(ingest: &Ingest, peer: Peer, lines: Vec<Line>) -> Vec<u8> {
    let max = ingest.config().ingest.max_event_bytes;
    let items: Vec<Prepared> = lines
        .into_iter()
        .map(|line| match line {
            Line::TooLong => Err(ApiError::too_large("line", max, "ingest.max_event_bytes")),
            Line::Bytes(b) if b.iter().all(u8::is_ascii_whitespace) => Err(ApiError::new(
                400,
                "invalid_json",
                "empty line: send one JSON event per line",
            )),
            Line::Bytes(b) => ingest.prepare(&b, peer),
        })
        .collect();
    let n = items.len();
    let answers = match ingest.accept(items, false).await {
        Ok(answers) => answers,
        Err(e) => vec![Err(e); n],
    };
    let mut out = Vec::with_capacity(n * 48);
    for answer in &answers {
        out.extend_from_slice(&reply(answer));
    }
    out
}

fn reply(answer: &Result<Accepted, ApiError>) -> Vec<u8> {
    let value = match answer {
        Ok(a) if a.duplicate => json!({"ok": true, "id": a.id, "duplicate": true}),
        Ok(a) => json!({"ok": true, "id": a.id}),
        Err(e) => json!({"ok": false, "error": e.body()}),
    };
    let mut line = value.to_string().into_bytes();
    line.push(b'\n');
    line
}

/// Split the stream into lines of at most `max` bytes and queue them for the committer.
async fn read_lines(
    mut rd: tokio::net::unix::OwnedReadHalf,
    max: usize,
    tx: mpsc::Sender<Vec<Line>>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut discarding = false;
    loop {
        let n = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            n = rd.read_buf(&mut buf) => n?,
        };
        let mut lines = Vec::new();
        if n == 0 {
            if discarding {
                lines.push(Line::TooLong);
            } else if !buf.is_empty() {
                lines.push(Line::Bytes(trim_cr(&buf).to_vec()));
            }
            if !lines.is_empty() {
                let _ = tx.send(lines).await;
            }
            return Ok(());
        }
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line = buf.split_to(i + 1);
            if discarding {
                discarding = false;
                lines.push(Line::TooLong);
            } else if i > max {
                lines.push(Line::TooLong);
            } else {
                lines.push(Line::Bytes(trim_cr(&line[..i]).to_vec()));
            }
        }
        if buf.len() > max {
            discarding = true;
            buf.clear();
        }
        if !lines.is_empty() && tx.send(lines).await.is_err() {
            return Ok(());
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}
