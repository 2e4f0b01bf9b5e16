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

/// Most lines stored in one call: bounds one commit's size, a reply burst and the memory
/// a pipelining client makes the daemon hold (parsed events wait here for the commit:
/// 8 192 of them were most of the line socket's 34 MiB peak RSS on issue 14's rig).
/// 2 048 lines still share one fsync among thousands of events.
const MAX_LINES_PER_COMMIT: usize = 2048;
/// Most deliveries (routes) stored in one call: with many endpoints, memory follows the
/// routes, not the lines (8 192 events × 100 endpoints held 287 MiB, BENCHMARKS.md).
/// Checked after each read chunk, so one call holds at most this plus one chunk's routes.
const MAX_ROUTES_PER_COMMIT: usize = 16_384;
/// Read chunks queued between reader and committer: the pipelining depth per connection,
/// and what a client that never reads its replies can make the daemon hold (16 reads of
/// up to 64 KiB). 64 bought no throughput in the bench (BENCHMARKS.md) and cost memory.
const QUEUED_CHUNKS: usize = 16;
/// Socket read size.
const READ_CHUNK: usize = 64 * 1024;

/// One input line, as the [`Splitter`] cut it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// The line without its `\n` (and without a `\r` before it).
    Bytes(Vec<u8>),
    /// Longer than the limit; its bytes were skipped up to the next newline.
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
        let mut out = Vec::new();
        reply(&mut out, &Err(e));
        wr.write_all(&out).await?;
        return wr.flush().await;
    }
    let max_line = ingest.config().ingest.max_event_bytes;
    let (tx, mut rx) = mpsc::channel(QUEUED_CHUNKS);
    let reader = tokio::spawn(read_lines(rd, max_line, tx, shutdown));
    while let Some(first) = rx.recv().await {
        let mut group = Group::default();
        group.add(ingest, peer, first);
        while group.items.len() < MAX_LINES_PER_COMMIT && group.routes < MAX_ROUTES_PER_COMMIT {
            match rx.try_recv() {
                Ok(more) => group.add(ingest, peer, more),
                Err(_) => break,
            }
        }
        let out = commit(ingest, group.items).await;
        wr.write_all(&out).await?;
        if rx.is_empty() {
            wr.flush().await?;
        }
    }
    wr.flush().await?;
    reader.await.unwrap_or(Ok(()))
}

/// Lines parsed and routed as they arrive, until a commit's bounds are reached.
#[derive(Default)]
struct Group {
    items: Vec<Prepared>,
    /// Deliveries the items will create.
    routes: usize,
}

impl Group {
    fn add(&mut self, ingest: &Ingest, peer: Peer, lines: Vec<Line>) {
        let max = ingest.config().ingest.max_event_bytes;
        for line in lines {
            let item = match line {
                Line::TooLong => Err(ApiError::too_large("line", max, "ingest.max_event_bytes")),
                Line::Bytes(b) if b.iter().all(u8::is_ascii_whitespace) => Err(ApiError::new(
                    400,
                    "invalid_json",
                    "empty line: send one JSON event per line",
                )),
                Line::Bytes(b) => ingest.prepare(&b, peer),
            };
            self.routes += item.as_ref().map_or(0, |new| new.routes.len());
            self.items.push(item);
        }
    }
}

/// Store one group of lines and render their reply lines, in input order.
async fn commit(ingest: &Ingest, items: Vec<Prepared>) -> Vec<u8> {
    let n = items.len();
    let answers = match ingest.accept(items, false).await {
        Ok(answers) => answers,
        Err(e) => vec![Err(e); n],
    };
    let mut out = Vec::with_capacity(n * 48);
    for answer in &answers {
        reply(&mut out, answer);
    }
    out
}

/// Append the reply line for one answer. An accepted event's line is written directly
/// (the same text `json!` gave, without building a map per line: the line socket's hot
/// path); errors go through `serde_json`.
fn reply(out: &mut Vec<u8>, answer: &Result<Accepted, ApiError>) {
    match answer {
        Ok(a) => {
            out.extend_from_slice(br#"{"ok":true,"id":"#);
            // A JSON string, escaped as needed: ids may come from the client.
            serde_json::to_writer(&mut *out, &a.id).expect("writing to a Vec");
            if a.duplicate {
                out.extend_from_slice(br#","duplicate":true"#);
            }
            out.extend_from_slice(b"}\n");
        }
        Err(e) => {
            let line = json!({"ok": false, "error": e.body()});
            serde_json::to_writer(&mut *out, &line).expect("writing to a Vec");
            out.push(b'\n');
        }
    }
}

/// Split the stream into lines of at most `max` bytes and queue them for the committer.
async fn read_lines(
    mut rd: tokio::net::unix::OwnedReadHalf,
    max: usize,
    tx: mpsc::Sender<Vec<Line>>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut splitter = Splitter::new(max);
    loop {
        let n = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            n = rd.read_buf(splitter.buffer()) => n?,
        };
        if n == 0 {
            if let Some(last) = splitter.finish() {
                let _ = tx.send(vec![last]).await;
            }
            return Ok(());
        }
        let lines = splitter.lines();
        if !lines.is_empty() && tx.send(lines).await.is_err() {
            return Ok(());
        }
    }
}

/// Cuts a byte stream into [`Line`]s of at most `max` bytes (not counting the `\n`),
/// whatever the read boundaries: pure, so it is unit-tested and fuzzed (`fuzz/`).
///
/// Memory stays under `max` plus one read: a line that grows past `max` is dropped as it
/// arrives and answered [`Line::TooLong`] at its newline, and each byte is scanned for a
/// newline once (a client dribbling a long line byte by byte costs linear time).
#[derive(Debug)]
pub struct Splitter {
    max: usize,
    buf: BytesMut,
    /// Bytes of `buf` already known to hold no newline.
    scanned: usize,
    /// Inside a too-long line: skip up to the next newline.
    discarding: bool,
}

impl Splitter {
    pub fn new(max: usize) -> Splitter {
        Splitter {
            max,
            buf: BytesMut::with_capacity(READ_CHUNK),
            scanned: 0,
            discarding: false,
        }
    }

    /// The buffer to read into (append only), with room for at least a quarter read.
    pub fn buffer(&mut self) -> &mut BytesMut {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        &mut self.buf
    }

    /// Append `bytes` (what [`Splitter::buffer`] is for, without a socket).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Line> {
        self.buffer().extend_from_slice(bytes);
        self.lines()
    }

    /// The lines completed by the bytes added since the last call, in order.
    pub fn lines(&mut self) -> Vec<Line> {
        let mut lines = Vec::new();
        while let Some(i) = self.buf[self.scanned..].iter().position(|b| *b == b'\n') {
            let end = self.scanned + i;
            let line = self.buf.split_to(end + 1);
            self.scanned = 0;
            if std::mem::take(&mut self.discarding) || end > self.max {
                lines.push(Line::TooLong);
            } else {
                lines.push(Line::Bytes(trim_cr(&line[..end]).to_vec()));
            }
        }
        if self.buf.len() > self.max {
            self.discarding = true;
            self.buf.clear();
        }
        self.scanned = self.buf.len();
        lines
    }

    /// At the end of the stream: the last line if it had no newline.
    pub fn finish(&mut self) -> Option<Line> {
        let rest = self.buf.split();
        self.scanned = 0;
        if std::mem::take(&mut self.discarding) {
            Some(Line::TooLong)
        } else if rest.is_empty() {
            None
        } else {
            Some(Line::Bytes(trim_cr(&rest).to_vec()))
        }
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &str) -> Line {
        Line::Bytes(s.as_bytes().to_vec())
    }

    /// Every line of `input` fed in pieces of `chunk` bytes, then the end of stream.
    fn split(input: &[u8], max: usize, chunk: usize) -> Vec<Line> {
        let mut s = Splitter::new(max);
        let mut out: Vec<Line> = input.chunks(chunk).flat_map(|c| s.push(c)).collect();
        out.extend(s.finish());
        out
    }

    #[test]
    fn lines_do_not_depend_on_read_boundaries() {
        let input = b"{\"a\":1}\r\nshort\n0123456789abc\n\n tail";
        let want = vec![
            bytes("{\"a\":1}"),
            bytes("short"),
            Line::TooLong,
            bytes(""),
            bytes(" tail"),
        ];
        for chunk in 1..=input.len() {
            assert_eq!(split(input, 10, chunk), want, "chunk {chunk}");
        }
    }

    #[test]
    fn a_line_of_exactly_max_bytes_fits() {
        assert_eq!(split(b"0123456789\n", 10, 3), vec![bytes("0123456789")]);
        assert_eq!(split(b"0123456789", 10, 3), vec![bytes("0123456789")]);
        assert_eq!(split(b"0123456789a", 10, 3), vec![Line::TooLong]);
    }

    #[test]
    fn a_too_long_line_is_not_kept_in_memory() {
        let mut s = Splitter::new(16);
        for _ in 0..1000 {
            assert!(s.push(&[b'x'; 100]).is_empty());
            assert!(s.buf.len() <= 16, "{} bytes buffered", s.buf.len());
        }
        assert_eq!(s.push(b"\nok\n"), vec![Line::TooLong, bytes("ok")]);
    }

    #[test]
    fn accepted_lines_are_the_json_they_always_were() {
        for (id, duplicate) in [("evt_01J", false), ("a \"quoted\"\\ id\u{1}é", true)] {
            let answer = Ok(Accepted {
                id: id.to_string(),
                endpoints: Vec::new(),
                duplicate,
            });
            let mut out = Vec::new();
            reply(&mut out, &answer);
            let want = if duplicate {
                json!({"ok": true, "id": id, "duplicate": true})
            } else {
                json!({"ok": true, "id": id})
            };
            assert_eq!(String::from_utf8(out).unwrap(), format!("{want}\n"));
        }
    }
}
