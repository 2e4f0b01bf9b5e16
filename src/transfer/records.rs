//! What a sealed file says: deflate-compressed JSON lines inside the [`format`] container.
//! The first line is a [`Header`], then one [`Line::Delivery`] (bundle) or
//! [`Line::Receipted`] (receipt) per delivery, then [`Line::End`] with their count.
//!
//! [`Writer`] and [`Reader`] hold one line at a time, so a million deliveries pass through
//! in constant memory.

use std::io::{self, BufRead, BufReader, Read, Write};

use chacha20poly1305::Key;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use serde::{Deserialize, Serialize};

use super::format::{unwrap_error, FormatError, Kind, Opener, Sealer};

/// Longest line a reader accepts (an event's data is at most `ingest.max_event_bytes`,
/// escaped): a bound on memory for any input, even an authenticated one.
const MAX_LINE: u64 = 64 * 1024 * 1024;

/// A relay taking part in a transfer: its site id (made once, kept in its queue database)
/// and its host name, for messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    pub id: String,
    pub host: String,
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (host {})", self.id, self.host)
    }
}

/// The first line of a bundle or receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// The bundle's id; a receipt repeats the id of the bundle it answers.
    pub bundle: String,
    /// The site that exported the bundle (for a receipt: the site it is for).
    pub origin: Site,
    /// The relay that imported the bundle (receipts only).
    pub importer: Option<Site>,
    /// RFC 3339, when this file was written.
    pub created_at: String,
    /// The endpoints exported (bundles; empty in receipts).
    pub endpoints: Vec<String>,
}

/// One delivery carried in a bundle, with its event. `seq` is the origin's delivery row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    pub seq: i64,
    pub endpoint: String,
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub timestamp: String,
    /// The event's `data`, byte for byte, as a JSON string.
    pub data: String,
    pub attempts: u32,
    /// When the origin queued it (unix ms).
    pub created_at: i64,
}

/// One delivery a receipt confirms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipted {
    pub seq: i64,
    pub endpoint: String,
    pub id: String,
}

/// A line after the header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Line {
    Delivery(Delivery),
    Receipted(Receipted),
    End { count: u64 },
}

/// Writes a bundle or receipt: header first, then lines, then [`Writer::finish`].
pub struct Writer<W: Write> {
    out: DeflateEncoder<Sealer<W>>,
    count: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W, key: &Key, kind: Kind, header: &Header) -> io::Result<Self> {
        let sealer = Sealer::new(out, key, kind)?;
        let mut w = Writer {
            out: DeflateEncoder::new(sealer, flate2::Compression::default()),
            count: 0,
        };
        w.line(header)?;
        Ok(w)
    }

    fn line(&mut self, value: &impl Serialize) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, value)?;
        self.out.write_all(b"\n")
    }

    pub fn push(&mut self, line: &Line) -> io::Result<()> {
        self.count += 1;
        self.line(line)
    }

    /// Write the end line and the final chunk; returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        let end = Line::End { count: self.count };
        self.line(&end)?;
        self.out.finish()?.finish()
    }
}

/// Reads a bundle or receipt line by line; every error says what is wrong.
pub struct Reader<R: Read> {
    input: BufReader<DeflateDecoder<Opener<R>>>,
    buf: Vec<u8>,
    line_no: u64,
    count: u64,
    ended: bool,
}

impl<R: Read> Reader<R> {
    /// Open a file of `kind` and read its header.
    pub fn open(input: R, key: &Key, kind: Kind) -> Result<(Header, Self), FormatError> {
        let opener = Opener::new(input, key, kind)?;
        let mut r = Reader {
            input: BufReader::with_capacity(64 * 1024, DeflateDecoder::new(opener)),
            buf: Vec::new(),
            line_no: 0,
            count: 0,
            ended: false,
        };
        if !r.raw_line()? {
            return Err(FormatError::Invalid("it is empty: no header".into()));
        }
        let header = serde_json::from_slice(&r.buf).map_err(|e| r.bad(e))?;
        Ok((header, r))
    }

    /// The next line, or `None` after the end line once the file is verified to end there.
    pub fn next_line(&mut self) -> Result<Option<Line>, FormatError> {
        if !self.raw_line()? {
            if self.ended {
                // The compressed stream may end before the final chunk was read: read
                // on, so a missing final chunk or bytes after it are still refused.
                let mut rest = Vec::new();
                self.input
                    .get_mut()
                    .get_mut()
                    .read_to_end(&mut rest)
                    .map_err(unwrap_error)?;
                if !rest.is_empty() {
                    return Err(FormatError::Invalid(format!(
                        "{} bytes follow the end of its content",
                        rest.len()
                    )));
                }
                return Ok(None);
            }
            return Err(FormatError::Invalid(
                "its content stops before the end line (written by a failed export?)".into(),
            ));
        };
        if self.ended {
            return Err(FormatError::Invalid(format!(
                "line {} comes after the end line",
                self.line_no
            )));
        }
        let line: Line = serde_json::from_slice(&self.buf).map_err(|e| self.bad(e))?;
        match line {
            Line::End { count } if count != self.count => Err(FormatError::Invalid(format!(
                "the end line counts {count} deliveries but {} were read",
                self.count
            ))),
            Line::End { .. } => {
                self.ended = true;
                self.next_line()
            }
            line => {
                self.count += 1;
                Ok(Some(line))
            }
        }
    }

    fn bad(&self, err: serde_json::Error) -> FormatError {
        FormatError::Invalid(format!(
            "line {} is not what this edgehook writes: {err}",
            self.line_no
        ))
    }

    /// Read the next line into `buf` (without the newline); `false` at the end of the content.
    fn raw_line(&mut self) -> Result<bool, FormatError> {
        self.buf.clear();
        let n = (&mut self.input)
            .take(MAX_LINE)
            .read_until(b'\n', &mut self.buf)
            .map_err(unwrap_error)?;
        if n == 0 {
            return Ok(false);
        }
        self.line_no += 1;
        match self.buf.pop() {
            Some(b'\n') => Ok(true),
            _ if n as u64 == MAX_LINE => Err(FormatError::Invalid(format!(
                "line {} is longer than {MAX_LINE} bytes",
                self.line_no
            ))),
            _ => Err(FormatError::Invalid(format!(
                "line {} is cut off (written by a failed export?)",
                self.line_no
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            bundle: "bundle_1".into(),
            origin: Site {
                id: "site_a".into(),
                host: "ship".into(),
            },
            importer: None,
            created_at: "2026-01-01T00:00:00Z".into(),
            endpoints: vec!["spark".into()],
        }
    }

    #[test]
    fn lines_round_trip_and_compress() {
        let key = *Key::from_slice(&[3; 32]);
        let mut w = Writer::new(Vec::new(), &key, Kind::Bundle, &header()).unwrap();
        let d = |i: i64| {
            Line::Delivery(Delivery {
                seq: i,
                endpoint: "spark".into(),
                id: format!("evt_{i}"),
                event_type: "Upload".into(),
                timestamp: "2026-01-01T00:00:00Z".into(),
                data: "{\"a\": [1,\n 2]}".into(),
                attempts: 0,
                created_at: 1,
            })
        };
        for i in 0..2000 {
            w.push(&d(i)).unwrap();
        }
        let file = w.finish().unwrap();
        assert!(file.len() < 2000 * 20, "compressed: {} bytes", file.len());
        let (h, mut r) = Reader::open(&file[..], &key, Kind::Bundle).unwrap();
        assert_eq!(h, header());
        for i in 0..2000 {
            assert_eq!(r.next_line().unwrap(), Some(d(i)));
        }
        assert_eq!(r.next_line().unwrap(), None);
    }
}
