//! Tiny blocking clients for the daemon's Unix sockets: HTTP/1.1 written by hand (one
//! request per connection, `Content-Length` bodies) and the line protocol.
//!
//! Hand-written rather than hyper so a test can also send a request in pieces
//! ([`Reply::read`] after writing a head itself) and so client threads need no runtime.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// How long a client waits for any answer before the test fails instead of hanging.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// One HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON; a JSON string of the raw text if it is not JSON.
    pub json: serde_json::Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `error.code` of an error reply ("" if absent).
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    /// `error.message` of an error reply ("" if absent).
    pub fn message(&self) -> &str {
        self.json["error"]["message"].as_str().unwrap_or("")
    }

    /// Read one response from `stream`. A connection reset after the whole response has
    /// arrived is not an error (the daemon may close a connection it did not read fully).
    pub fn read(stream: &mut UnixStream) -> io::Result<Reply> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            // A socket with a read timeout returns EINTR on any handled signal (socket(7)),
            // e.g. SIGCHLD once a test's tokio runtime has spawned a process.
            let n = match stream.read(&mut chunk) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => other?,
            };
            match n {
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "no response head",
                    ))
                }
                n => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {status_line:?}")))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: Option<usize> = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok());
        let mut body = buf[head_end..].to_vec();
        if (100..200).contains(&status) {
            // An interim response (100 Continue) has no body; the caller reads again later.
            body.clear();
        } else {
            loop {
                if length.is_some_and(|n| body.len() >= n) {
                    break;
                }
                match stream.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => body.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
                    Err(e) => return Err(e),
                }
            }
            if let Some(n) = length {
                if body.len() < n {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short body"));
                }
                body.truncate(n);
            }
        }
        let json = serde_json::from_slice(&body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())
        });
        Ok(Reply {
            status,
            headers,
            json,
        })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Connect to `socket` with [`IO_TIMEOUT`] on reads and writes.
pub fn connect(socket: &Path) -> io::Result<UnixStream> {
    let stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(stream)
}

/// The request head for `method path` with a `Content-Length` body.
pub fn head(method: &str, path: &str, content_type: Option<&str>, len: usize) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    if method != "GET" || len > 0 {
        head.push_str(&format!("Content-Length: {len}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// One request on a fresh connection to `socket`.
pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> io::Result<Reply> {
    let mut stream = connect(socket)?;
    let mut bytes = head(method, path, content_type, body.len()).into_bytes();
    bytes.extend_from_slice(body);
    // The daemon may answer (413) and close before reading the whole body: a failed
    // write is fine as long as the answer arrived.
    let written = stream.write_all(&bytes);
    match Reply::read(&mut stream) {
        Ok(reply) => Ok(reply),
        Err(read_err) => Err(written.err().unwrap_or(read_err)),
    }
}

/// POST events with ids `{prefix}-0`, `{prefix}-1`, … (data from `data(n)`) one after the
/// other until the daemon stops answering (a test killed it). Each id answered 202 goes
/// to `acked`; the loop also ends when `acked` returns false.
///
/// # Panics
/// On an answer other than 202 while the daemon runs.
pub fn post_until_killed(
    socket: &Path,
    prefix: &str,
    data: impl Fn(u64) -> String,
    mut acked: impl FnMut(String) -> bool,
) {
    for n in 0.. {
        let id = format!("{prefix}-{n}");
        let body = super::event("Test.crash", &id, &data(n));
        // An error means the daemon is gone: the kill happened.
        let Ok(r) = request(
            socket,
            "POST",
            "/v1/events",
            Some("application/json"),
            body.as_bytes(),
        ) else {
            return;
        };
        assert_eq!(r.status, 202, "{id}: {r:?}");
        if !acked(id) {
            return;
        }
    }
}

/// A line-protocol connection: write lines, read reply lines.
pub struct LineClient {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl LineClient {
    pub fn connect(socket: &Path) -> LineClient {
        let stream =
            connect(socket).unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
        let reader = BufReader::new(stream.try_clone().expect("cloning the socket"));
        LineClient {
            writer: stream,
            reader,
        }
    }

    /// Write `bytes` in one `write_all`, from a thread so a large pipeline cannot
    /// deadlock against the replies filling our receive buffer.
    pub fn send(&mut self, bytes: Vec<u8>) -> std::thread::JoinHandle<()> {
        let mut w = self.writer.try_clone().expect("cloning the socket");
        std::thread::spawn(move || w.write_all(&bytes).expect("writing lines"))
    }

    /// Write `bytes` now, from this thread (for small inputs), returning any error.
    pub fn try_write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// Read one reply line as JSON.
    ///
    /// # Panics
    /// On EOF, a timeout, or a line that is not JSON.
    pub fn reply(&mut self) -> serde_json::Value {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .expect("reading a reply line");
        assert!(n > 0, "the line socket closed before replying");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("reply {line:?} is not JSON: {e}"))
    }

    /// Whether the daemon closed the connection with nothing more to read: EOF, or a
    /// reset when it closed with our unread input still queued.
    pub fn at_eof(&mut self) -> bool {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => true,
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        }
    }
}
